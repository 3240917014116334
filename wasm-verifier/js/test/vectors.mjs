// The shared vectors (tests/vectors) as checks on a loaded Verifier, for Node
// (vectors.test.mjs) and for a browser page (tests/e2e/test_wasm_browser.py): the same
// cases the Python bridge and cargo test run.

function sorted(value) {
  if (Array.isArray(value)) return value.map(sorted);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sorted(value[k])]));
  }
  return value;
}

const same = (a, b) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
const fields = (errors) => [...new Set((errors || []).map((e) => e.field))].sort();
const hexOfBase64 = (text) => [...atob(text)].map((c) => c.charCodeAt(0).toString(16).padStart(2, "0")).join("");

/** Run every case; returns {count, failures: [description, ...]}. */
export function checkVectors(v, vectors, catalogue) {
  const failures = [];
  let count = 0;
  const check = (ok, what) => {
    count += 1;
    if (!ok) failures.push(what);
  };
  for (const [name, c] of vectors.canonical) {
    const a = v.canonical(c.input);
    check(c.want_err ? a.valid === false : a.canonical === c.want, `canonical ${name}: ${JSON.stringify(a)}`);
  }
  for (const [name, c] of vectors.merkle) {
    let a;
    if (c.kind === "hash") {
      a = v.request({ op: "merkle_hash", kind: c.op, data: c.data, left: c.left, right: c.right });
      check(a.hash === c.want, `merkle ${name}`);
    } else if (c.kind === "root") {
      a = v.request({ op: "merkle_root", leaves: c.leaves });
      check(a.root === c.want, `merkle ${name}`);
    } else {
      const { desc, kind, want_err, leaves, ...args } = c;
      a = v.request({ op: `verify_${kind}`, ...args });
      check(want_err === false ? a.valid === true : a.valid === false && a.reason === want_err, `merkle ${name}: ${JSON.stringify(a)}`);
    }
  }
  for (const [name, doc] of vectors.policy) {
    doc.cases.forEach((c, i) => {
      const what = `policy ${name}[${i}] ${c.desc}`;
      if (doc.kind === "evaluate") {
        const a = v.request({ op: "evaluate", policy: doc.policy, bundle: c.bundle, risk: c.risk, agent: c.agent ?? null });
        check(a.ok && Object.keys(c.want).every((k) => same(a.decision[k], c.want[k])), `${what}: ${JSON.stringify(a)}`);
      } else if (doc.kind === "validate") {
        const a = v.validatePolicy(c.policy);
        check(same(fields(a.errors), c.want_err), `${what}: ${JSON.stringify(a)}`);
      } else {
        let active = null;
        if (c.active_payload) {
          active = { version: c.active_payload.version, digest: v.validatePolicy(c.active_payload).digest };
        }
        const a = v.verifyEnvelope(c.envelope, doc.trusted_keys, { minVersion: c.min_version ?? 0, active });
        check(c.want_err === null ? a.valid === true : same(fields(a.errors), c.want_err), `${what}: ${JSON.stringify(a)}`);
      }
    });
  }
  v.configure(catalogue);
  for (const [name, doc] of vectors.decide) {
    doc.cases.forEach((c, i) => {
      const a = v.decide(doc.policies[c.policy], c.bundle, c.agent);
      const ok = "raises" in c ? !a.ok : a.ok && same({ risk: a.risk, decision: a.decision }, { risk: c.risk, decision: c.decision });
      check(ok, `decide ${name}[${i}] ${c.desc}`);
    });
  }
  for (const [name, doc] of vectors.checkpoint) {
    if (doc.kind !== "checkpoint") continue;
    doc.cases.forEach((c, i) => {
      if (c.note !== undefined && c.note.isWellFormed && !c.note.isWellFormed()) return; // lone surrogate
      if (c.note !== undefined && /[\ud800-\udfff]/.test(c.note.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ""))) return;
      const request = { op: "verify_checkpoint", verifier_key: c.verifier_key ?? doc.verifier_key };
      if (c.note_hex !== undefined) request.note_hex = c.note_hex;
      else request.note = c.note;
      if (c.origin !== undefined) request.origin = c.origin;
      const a = v.request(request);
      const ok =
        c.want_err === null
          ? a.valid === true && a.origin === c.want.origin && a.size === c.want.size &&
            same(a.extensions, c.want.extensions) && a.root_hash === hexOfBase64(c.want.root_hash)
          : a.valid === false && a.reason.includes(c.want_err);
      check(ok, `checkpoint ${name}[${i}] ${c.desc}: ${JSON.stringify(a)}`);
    });
  }
  const audit = vectors.audit;
  for (const c of audit.cases) {
    const checkpoint = (note, saved) => {
      const a = v.verifyCheckpoint(note, audit.verifier_key);
      return { size: a.size, root: a.root_hash, saved };
    };
    const checkpoints = [];
    const lines = [];
    for (const line of c.export.slice(1)) {
      if (line.startsWith('{"checkpoint":')) checkpoints.push(checkpoint(JSON.parse(line).checkpoint, false));
      else lines.push(line);
    }
    for (const note of c.saved) checkpoints.push(checkpoint(note, true));
    const r = v.verifyLog({ lines, checkpoints });
    const e = c.expected;
    const ok =
      r.valid === e.valid &&
      (e.uncovered === undefined || r.uncovered === e.uncovered) &&
      (e.seq === undefined || (r.first_invalid.seq === e.seq && r.first_invalid.reason.startsWith(e.reason_prefix)));
    check(ok, `audit ${c.name}: ${JSON.stringify(r)}`);
  }
  return { count, failures };
}
