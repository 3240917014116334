// The Vettra verifier module in JavaScript (Node 18+ and browsers): the same .wasm the
// backend runs, so an approver's own machine can check a policy bundle, the audit log
// and its signed checkpoints, and recompute a decision, without trusting the server.
// The dashboard loads it from here (web/app/wasm.js); wasm-verifier/js re-exports it for
// Node. No dependencies, so the page and Node run the same file.
//
//   import { loadVerifier } from "./verifier.mjs";
//   const v = await loadVerifier(new URL("/verifier.wasm", location.href)); // browser
//   const v = await loadVerifier();            // Node: the checkout's shared/vettra/data copy
//   v.verifyCheckpoint(note, verifierKey)      // -> {valid, origin, size, root_hash, ...}
//   v.verifyLog({lines, checkpoints})          // -> audit_verify.Report + saved_verified
//
// Interface: one reusable buffer in the module's memory. `vv_reserve(n)` returns a
// pointer to at least n bytes; the request's UTF-8 JSON is written there and `vv_call(n)`
// answers in the same buffer, returning (pointer << 32n) | length as a BigInt. Memory may
// grow during a call, so its buffer is read again afterwards. Requests and answers are
// listed in wasm-verifier/src/api.rs. Every answer has `ok`; `ok: false` has `error`
// ("bad-request", "raises", "unsupported") and `detail`.

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const DEFAULT_MODULE = new URL("../../shared/vettra/data/verifier.wasm", import.meta.url);

async function bytesOf(source) {
  if (source instanceof ArrayBuffer || ArrayBuffer.isView(source)) return source;
  if (typeof Response !== "undefined" && source instanceof Response) return source.arrayBuffer();
  const url = source instanceof URL ? source : new URL(String(source), import.meta.url);
  if (url.protocol === "file:") {
    const { readFile } = await import("node:fs/promises");
    return readFile(url);
  }
  const response = await fetch(url);
  if (!response.ok) throw new Error(`verifier module: HTTP ${response.status} for ${url}`);
  return response.arrayBuffer();
}

/** Hex SHA-256 of the module bytes (compare with verifier.wasm.sha256 before use). */
export async function sha256Hex(bytes) {
  const view = bytes instanceof ArrayBuffer ? new Uint8Array(bytes) : bytes;
  const digest = await globalThis.crypto.subtle.digest("SHA-256", view);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export class Verifier {
  constructor(instance) {
    const { memory, vv_reserve: reserve, vv_call: call } = instance.exports;
    if (!(memory instanceof WebAssembly.Memory) || typeof reserve !== "function" || typeof call !== "function") {
      throw new Error("verifier module: it does not export memory, vv_reserve and vv_call");
    }
    this.memory = memory;
    this.reserve = reserve;
    this.call = call;
    this.capacity = 64 * 1024;
    this.ptr = reserve(this.capacity) >>> 0;
  }

  /** One JSON request, one wasm call, the parsed answer. */
  request(payload) {
    const data = encoder.encode(JSON.stringify(payload));
    if (data.length > this.capacity) {
      this.capacity = Math.max(data.length, 2 * this.capacity);
      this.ptr = this.reserve(this.capacity) >>> 0;
    }
    new Uint8Array(this.memory.buffer, this.ptr, data.length).set(data);
    const packed = BigInt.asUintN(64, BigInt(this.call(data.length)));
    const ptr = Number(packed >> 32n);
    const length = Number(packed & 0xffffffffn);
    const answer = decoder.decode(new Uint8Array(this.memory.buffer, ptr, length)); // re-read: it may have grown
    this.ptr = ptr;
    this.capacity = Math.max(this.capacity, length);
    return JSON.parse(answer);
  }

  info() {
    return this.request({ op: "info" });
  }

  /** RFC 8785 canonical form of untrusted JSON text (read as loads_strict reads it). */
  canonical(text) {
    return this.request({ op: "canonical", text });
  }

  verifyInclusion({ leafHash, index, size, proof, root }) {
    return this.request({ op: "verify_inclusion", leaf_hash: leafHash, index, size, proof, root });
  }

  verifyConsistency({ oldSize, newSize, oldRoot, newRoot, proof }) {
    return this.request({
      op: "verify_consistency",
      old_size: oldSize,
      new_size: newSize,
      old_root: oldRoot,
      new_root: newRoot,
      proof,
    });
  }

  /** A signed checkpoint note, with the published verifier key. */
  verifyCheckpoint(note, verifierKey, origin) {
    const request = { op: "verify_checkpoint", note, verifier_key: verifierKey };
    if (origin !== undefined) request.origin = origin;
    return this.request(request);
  }

  /**
   * An exported log segment: `lines` (JSON Lines records) or `entries` ({body, hash, mac}),
   * `checkpoints` [{size, root (hex), saved?}] already verified with verifyCheckpoint,
   * `hmacKeys` {keyId: hex} when the verifier holds them (null: hashes and links only).
   */
  verifyLog({ lines, entries, checkpoints = [], hmacKeys = null }) {
    const request = { op: "verify_log", checkpoints, hmac_keys: hmacKeys };
    if (lines !== undefined) request.lines = lines;
    else request.entries = entries;
    return this.request(request);
  }

  /** A signed policy bundle: trustedKeys {keyid: unpadded base64url public key}. */
  verifyEnvelope(envelope, trustedKeys, { minVersion = 0, active = null } = {}) {
    const request = { op: "verify_envelope", envelope, trusted_keys: trustedKeys, min_version: minVersion };
    if (active) request.active = active;
    return this.request(request);
  }

  validatePolicy(policy) {
    return this.request({ op: "validate_policy", policy });
  }

  /** The catalogue (shared/vettra/data/catalogue.json) must be given before decide. */
  configure(catalogue) {
    return this.request({ op: "configure", catalogue });
  }

  /** The whole decision on one action bundle: {risk, decision}. */
  decide(policy, bundle, agent = null) {
    return this.request({ op: "decide", policy, bundle, agent });
  }
}

/**
 * Load and instantiate the module (no imports). `source`: a URL, a Response, bytes, or
 * nothing (Node: the repository's shared/vettra/data/verifier.wasm). With
 * `expectedSha256`, a module with other bytes is refused before it is compiled.
 */
export async function loadVerifier(source = DEFAULT_MODULE, { expectedSha256 } = {}) {
  const bytes = await bytesOf(source);
  if (expectedSha256) {
    const actual = await sha256Hex(bytes);
    if (actual !== expectedSha256) {
      throw new Error(`verifier module: sha256 ${actual}, expected ${expectedSha256}: refused`);
    }
  }
  const { instance } = await WebAssembly.instantiate(bytes, {});
  return new Verifier(instance);
}
