/**
 * Which verifier checks the audit log in this browser. The first choice is the WASM
 * module the backend runs (shared/vettra/data/verifier.wasm, served at /verifier.wasm):
 * its bytes must hash to the digest pinned here before it is compiled, and it must pass
 * a self-check against WebCrypto. If it cannot be fetched, is not those bytes, does not
 * compile or fails the self-check, the WebCrypto verifier (verify.js) is used instead,
 * and the page says so and why.
 *
 * Both verifiers answer the same questions for pages/audit.js:
 *
 *   checkpoint(note, keys)        -> {size, root (hex)}   or throws Error(reason)
 *   chain(entries, checkpoints)   -> {length, covered, head} or throws Broken(seq, reason)
 *   exportFile(text, keys)        -> {length, covered, checkpoints} or throws Broken / Error
 *   entryHash(entry)              -> hex SHA-256 of the entry's canonical body
 *   inclusion(index, size, entryHashHex, proof, rootHex) -> bool
 *   consistency(oldSize, newSize, oldRootHex, newRootHex, proof) -> bool
 *
 * `keys` are the published verifier key strings (current first, then previous ones).
 */
import { loadVerifier } from "./verifier.mjs";
import * as webcrypto from "./verify.js";

/** build.sh's record of the committed module (shared/vettra/data/verifier.wasm.sha256);
 * tests/unit/test_dashboard_static.py fails when they differ. */
export const MODULE_SHA256 = "7e3e56ec6f5961f547dd80939fbd2c05208ece540160f721ebbfa349cb3ed2d1";
export const MODULE_URL = "/verifier.wasm";

const { Broken } = webcrypto;
let chosen;

/** The verifier to use, chosen once per page load. */
export function chooseVerifier() {
  chosen ??= loadWasm().catch((error) => fallback(error));
  return chosen;
}

function fallback(error) {
  const engine = webCryptoVerifier();
  engine.note = `The WASM verifier was not used (${error.message}); the WebCrypto verifier checked instead.`;
  return engine;
}

async function loadWasm() {
  if (typeof WebAssembly !== "object") throw new Error("this browser has no WebAssembly");
  const response = await fetch(MODULE_URL, { cache: "no-cache" });
  if (!response.ok) throw new Error(`${MODULE_URL}: HTTP ${response.status}`);
  const module = await loadVerifier(await response.arrayBuffer(), { expectedSha256: MODULE_SHA256 });
  await selfCheck(module);
  return wasmVerifier(module);
}

/** The module must agree with WebCrypto on a canonical digest and refuse a bad proof. */
async function selfCheck(v) {
  const info = v.info();
  if (!info.ok || info.ed25519 !== true) throw new Error("self-check: the module was built without Ed25519");
  const body = {
    seq: 1, chain: "default", type: "self.check", action_id: null, actor: "dashboard", user: "é",
    at: "2026-01-01T00:00:00Z", data: { b: [1.5, 1e21, "x"], a: {} }, prev_hash: webcrypto.GENESIS, key_id: "k1",
  };
  const wanted = await webcrypto.entryHash(body);
  const got = answer(v.request({ op: "digest", value: webcrypto.entryBody(body) }));
  if (got.digest !== `sha256:${wanted}`) throw new Error("self-check: the module's digest differs from WebCrypto's");
  const leaf = answer(v.request({ op: "merkle_hash", kind: "leaf", data: wanted })).hash;
  const good = answer(v.verifyInclusion({ leafHash: leaf, index: 0, size: 1, proof: [], root: leaf }));
  const bad = answer(v.verifyInclusion({ leafHash: leaf, index: 0, size: 1, proof: [], root: wanted }));
  if (good.valid !== true || bad.valid !== false) throw new Error("self-check: the module's inclusion proofs are wrong");
}

/** A module answer with ok: false is a fault of the request or the module, not a verdict. */
function answer(reply) {
  if (!reply.ok) throw new Error(`the WASM verifier could not answer (${reply.error}: ${reply.detail})`);
  return reply;
}

function brokenOf(report) {
  const first = report.first_invalid;
  return new Broken(first.seq, first.reason);
}

function wasmVerifier(v) {
  const checkpoint = (note, keys) => {
    // one key at a time, the current one first: the reason given is the current key's
    let reason = null;
    for (const key of keys) {
      const r = answer(v.verifyCheckpoint(note, key));
      if (r.valid) return { size: r.size, root: r.root_hash };
      reason ??= r.reason;
    }
    throw new Error(reason ?? "no published verifier key");
  };
  const covered = (report) => ({ length: report.length, covered: report.length - report.uncovered, head: report.head_hash });
  return {
    name: "WASM",
    label: `the WASM verifier (verifier.wasm ${MODULE_SHA256.slice(0, 12)}…, the backend's module)`,
    note: null,
    checkpoint,
    chain(entries, checkpoints) {
      const bodies = entries.map((e) => {
        const c = answer(v.canonical(JSON.stringify(webcrypto.entryBody(e))));
        if (!c.valid) throw new Broken(e.seq, `malformed entry: ${c.detail}`);
        return { body: c.canonical, hash: e.hash, mac: e.mac ?? "" };
      });
      const report = answer(v.verifyLog({ entries: bodies, checkpoints }));
      if (!report.valid) throw brokenOf(report);
      return covered(report);
    },
    exportFile(text, keys) {
      const { notes, lines } = webcrypto.splitExport(text);
      const checkpoints = notes.map((note) => {
        try {
          return checkpoint(note, keys);
        } catch (error) {
          throw new Broken(0, error.message);
        }
      });
      const report = answer(v.verifyLog({ lines, checkpoints }));
      if (!report.valid) throw brokenOf(report);
      return { ...covered(report), checkpoints: checkpoints.length };
    },
    entryHash(entry) {
      return answer(v.request({ op: "digest", value: webcrypto.entryBody(entry) })).digest.slice("sha256:".length);
    },
    inclusion(index, size, entryHashHex, proof, rootHex) {
      const leafHash = answer(v.request({ op: "merkle_hash", kind: "leaf", data: entryHashHex })).hash;
      return answer(v.verifyInclusion({ leafHash, index, size, proof, root: rootHex })).valid === true;
    },
    consistency(oldSize, newSize, oldRoot, newRoot, proof) {
      return answer(v.verifyConsistency({ oldSize, newSize, oldRoot, newRoot, proof })).valid === true;
    },
  };
}

export function webCryptoVerifier() {
  const parse = (keys) => Promise.all(keys.map(webcrypto.parseVerifierKey));
  const checkpoint = async (note, keys) => {
    const cp = await webcrypto.verifyNote(note, await parse(keys));
    return { size: cp.size, root: webcrypto.hex(cp.root) };
  };
  const roots = (checkpoints) => checkpoints.map((c) => ({ size: c.size, root: webcrypto.unhex(c.root) }));
  return {
    name: "WebCrypto",
    label: "the WebCrypto verifier (verify.js)",
    note: null,
    checkpoint,
    chain: (entries, checkpoints) => webcrypto.verifyChain(entries, roots(checkpoints)),
    async exportFile(text, keys) {
      const parsed = webcrypto.parseExport(text);
      const checkpoints = [];
      for (const note of parsed.notes) {
        try {
          checkpoints.push(await checkpoint(note, keys));
        } catch (error) {
          throw new Broken(0, error.message);
        }
      }
      return { ...(await webcrypto.verifyChain(parsed.entries, roots(checkpoints))), checkpoints: checkpoints.length };
    },
    entryHash: (entry) => webcrypto.entryHash(entry),
    async inclusion(index, size, entryHashHex, proof, rootHex) {
      return webcrypto.verifyInclusion(index, size, await webcrypto.leafHash(entryHashHex), proof, webcrypto.unhex(rootHex));
    },
    consistency: null, // not in verify.js: only the WASM verifier checks consistency proofs
  };
}
