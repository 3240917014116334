// node --test wasm-verifier/js/test/vectors.test.mjs : the shipped module through verifier.mjs, on every
// shared vector, plus the loader's own behaviour (digest check, buffer growth).
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { loadVerifier, sha256Hex } from "../verifier.mjs";
import { checkVectors } from "./vectors.mjs";

const repo = new URL("../../../", import.meta.url);
const vectorsDir = new URL("tests/vectors/", repo);
const moduleUrl = new URL("shared/vettra/data/verifier.wasm", repo);
const json = async (url) => JSON.parse(await readFile(url, "utf8"));

async function dir(name) {
  const base = new URL(`${name}/`, vectorsDir);
  let names;
  try {
    names = (await readdir(base)).filter((n) => n.endsWith(".json")).sort();
  } catch {
    return [];
  }
  return Promise.all(names.map(async (n) => [n, await json(new URL(n, base))]));
}

export async function allVectors() {
  return {
    canonical: await dir("canonical"),
    merkle: await dir("merkle"),
    policy: await dir("policy"),
    decide: [...(await dir("risk")), ...(await dir("differential"))],
    checkpoint: await dir("checkpoint"),
    audit: await json(new URL("audit/saved-checkpoints.json", vectorsDir)),
  };
}

test("every shared vector passes through verifier.mjs", async () => {
  const digest = (await readFile(new URL("shared/vettra/data/verifier.wasm.sha256", repo), "ascii")).split(/\s+/)[0];
  const v = await loadVerifier(moduleUrl, { expectedSha256: digest });
  const info = v.info();
  assert.equal(info.ok, true);
  assert.equal(info.ed25519, true);
  const catalogue = await json(new URL("shared/vettra/data/catalogue.json", repo));
  const { count, failures } = checkVectors(v, await allVectors(), catalogue);
  assert.deepEqual(failures, []);
  assert.ok(count > 550, `only ${count} cases ran`);
});

test("a module with other bytes is refused before it is compiled", async () => {
  const bytes = new Uint8Array(await readFile(moduleUrl));
  bytes[bytes.length - 1] ^= 1;
  const wanted = await sha256Hex(await readFile(moduleUrl));
  await assert.rejects(loadVerifier(bytes, { expectedSha256: wanted }), /expected [0-9a-f]{64}: refused/);
});

test("requests larger than the buffer, and the default module path", async () => {
  const v = await loadVerifier();
  const text = JSON.stringify(["x".repeat(300000)]);
  assert.equal(v.canonical(text).canonical, text);
  assert.equal(v.canonical("[1e21, 1.0]").canonical, "[1e+21,1]");
  assert.equal(v.request({ op: "nope" }).error, "bad-request");
});
