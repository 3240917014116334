"""The dashboard's in-browser audit verifier (web/app/verify.js, WebCrypto) against the
repository's independent vectors, in Chromium: C2SP signed notes and checkpoints (ours,
Go's sumdb/note, sum.golang.org and sigsum-go), verifier key strings, RFC 9162 Merkle
roots and inclusion proofs (transparency-dev). Every valid case must verify to the same
values, and every tampered or malformed one must be refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .browser import TIMEOUT_MS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

VECTORS = Path(__file__).resolve().parents[1] / "vectors"

RUN = """async (suites) => {
  const v = await import('/app/verify.js');
  const failures = [];
  const note = (c) => c.note_hex
    ? new TextDecoder().decode(Uint8Array.from(c.note_hex.match(/../g).map((b) => parseInt(b, 16))))
    : c.note;
  const b64 = (bytes) => btoa(String.fromCharCode(...bytes));
  for (const [file, suite] of Object.entries(suites)) {
    for (const c of suite.cases) {
      const where = `${file}: ${c.desc}`;
      let got, error;
      try {
        if (suite.kind === 'verifier_key') {
          got = (await v.parseVerifierKey(c.key)).name;
        } else if (suite.kind === 'note') {
          const keys = await Promise.all(c.verifier_keys.map(v.parseVerifierKey));
          const opened = await v.openNote(note(c), keys);
          got = {text: opened.text, names: opened.signers.map((k) => k.name).sort()};
        } else if (suite.kind === 'checkpoint') {
          const keys = [await v.parseVerifierKey(c.verifier_key || suite.verifier_key)];
          const cp = await v.verifyNote(note(c), keys, c.origin);
          got = {origin: cp.origin, size: cp.size, root_hash: b64(cp.root), extensions: cp.extensions};
        } else if (suite.kind === 'root') {
          const leaves = await Promise.all(c.leaves.map(async (d) =>
            new Uint8Array(await crypto.subtle.digest('SHA-256', Uint8Array.from([0, ...v.unhex(d)])))));
          got = v.hex(await v.merkleRoot(leaves));
        } else if (suite.kind === 'inclusion') {
          got = await v.verifyInclusion(c.index, c.size, v.unhex(c.leaf_hash), c.proof, v.unhex(c.root));
          if (!got) error = 'refused';
        }
      } catch (e) {
        error = String(e.message || e);
      }
      const wantsError = c.want_err !== null && c.want_err !== false && c.want_err !== undefined;
      if (wantsError && !error) failures.push(`${where}: accepted, wanted an error (${c.want_err})`);
      if (!wantsError && error) failures.push(`${where}: refused: ${error}`);
      if (!wantsError && !error) {
        const want = suite.kind === 'note' ? {text: c.want_text, names: [...c.want_names].sort()}
          : suite.kind === 'inclusion' ? true : suite.kind === 'verifier_key' ? c.key.split('+')[0] : c.want;
        if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`${where}: got ${JSON.stringify(got)}`);
      }
    }
  }
  return failures;
}"""


def _suites() -> dict[str, dict]:
    suites = {}
    for name in ("vettra-checkpoints", "interop-checkpoints", "go-sumdb-note", "verifier-keys"):
        suites[name] = json.loads((VECTORS / "checkpoint" / f"{name}.json").read_text())
    root = {"kind": "root", "cases": []}
    inclusion = {"kind": "inclusion", "cases": []}
    for path in sorted((VECTORS / "merkle").glob("*.json")):
        case = json.loads(path.read_text())
        {"root": root, "inclusion": inclusion}.get(case["kind"], {"cases": []})["cases"].append(
            case
        )
    suites["merkle-root"], suites["merkle-inclusion"] = root, inclusion
    return suites


def test_the_browser_verifier_agrees_with_every_vector(browser, web_server) -> None:
    suites = _suites()
    counts = {name: len(s["cases"]) for name, s in suites.items()}
    assert counts["merkle-inclusion"] > 20 and counts["vettra-checkpoints"] > 25, counts
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"http://localhost:{web_server.port}/")
        page.wait_for_selector("#signin-title")
        failures = page.evaluate(RUN, suites)
    finally:
        context.close()
    assert failures == [], "\n".join(failures)
    assert errors == []
    print(f"\nin-browser verifier: {sum(counts.values())} vectors agree ({counts})")
