/**
 * The audit log verified in the browser with WebCrypto (SHA-256, Ed25519), the same
 * checks as `vettra audit verify` (docs/audit.md), so the page trusts nothing the server
 * says about itself:
 *
 * - each entry's hash is SHA-256 of its RFC 8785 canonical body (canonicalize, npm);
 * - entries link by prev_hash with no gap in seq (a whole chain: admins, exports);
 * - the signed checkpoint (C2SP signed note, Ed25519) verifies with the published key
 *   (sumdb key string), and its Merkle root (RFC 9162 §2.1) is the root of the first
 *   `size` entries, or, for an approver who sees only their own entries, each entry's
 *   inclusion proof (§2.1.3.2) leads to that root.
 *
 * Every failure names the first bad seq and why, in the CLI's words.
 */
import canonicalize from "../vendor/canonicalize/canonicalize.js";

export const GENESIS = "0".repeat(64);
export const BODY_FIELDS = ["seq", "chain", "type", "action_id", "actor", "user", "at", "data", "prev_hash", "key_id"];
const EXPORT_FORMAT = "vettra.audit-export/v1";
const encoder = new TextEncoder();

export class Broken extends Error {
  constructor(seq, reason) {
    super(reason);
    this.seq = seq;
    this.reason = reason;
  }
}

export function hex(bytes) {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function unhex(text) {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** Standard base64 in its one canonical spelling (padding bits zero), else an error: a
 * note must not verify under two byte strings (docs/audit-checkpoints.md). */
function unbase64(text, what = "base64") {
  let bytes;
  try {
    bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  } catch {
    throw new Error(`${what}: not standard base64`);
  }
  let again = "";
  for (const b of bytes) again += String.fromCharCode(b);
  if (btoa(again) !== text) throw new Error(`${what}: not canonical base64`);
  return bytes;
}

async function sha256(...parts) {
  const size = parts.reduce((n, p) => n + p.length, 0);
  const all = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest("SHA-256", all));
}

const LEAF = Uint8Array.of(0);
const NODE = Uint8Array.of(1);

/** The hashed members of an entry (the API's entries carry more). */
export function entryBody(entry) {
  return Object.fromEntries(BODY_FIELDS.map((f) => [f, entry[f]]));
}

/** SHA-256 of the RFC 8785 canonical body, as hex. */
export async function entryHash(entry) {
  return hex(await sha256(encoder.encode(canonicalize(entryBody(entry)))));
}

export async function leafHash(entryHashHex) {
  return sha256(LEAF, unhex(entryHashHex));
}

/** RFC 9162 §2.1.1 Merkle Tree Hash of the leaf hashes. */
export async function merkleRoot(leaves) {
  if (leaves.length === 0) return sha256();
  if (leaves.length === 1) return leaves[0];
  let k = 1;
  while (k * 2 < leaves.length) k *= 2;
  return sha256(NODE, await merkleRoot(leaves.slice(0, k)), await merkleRoot(leaves.slice(k)));
}

/** RFC 9162 §2.1.3.2: does `proof` lead from the leaf to `root`? */
export async function verifyInclusion(leafIndex, treeSize, leaf, proof, root) {
  if (leafIndex < 0 || leafIndex >= treeSize) return false;
  if (leaf.length !== 32 || root.length !== 32 || proof.some((p) => p.length !== 64 || !/^[0-9a-f]+$/.test(p))) return false;
  let fn = leafIndex;
  let sn = treeSize - 1;
  let r = leaf;
  for (const p of proof.map(unhex)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await sha256(NODE, p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = await sha256(NODE, r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && hex(r) === hex(root);
}

/** A sumdb verifier key string `name+hexid+base64(0x01 ‖ public key)`. */
export async function parseVerifierKey(text) {
  // the name has no "+" nor space; the base64 key may hold "+" (split at the first two)
  const first = text.indexOf("+");
  const second = text.indexOf("+", first + 1);
  const bad = (why) => new Error(`verifier key: ${why}`);
  if (first <= 0 || second < 0) throw bad("expected name+keyhash+key");
  const [name, id, key] = [text.slice(0, first), text.slice(first + 1, second), text.slice(second + 1)];
  if (/\s/u.test(name)) throw bad("the name has a space");
  if (!/^[0-9a-f]{8}$/.test(id)) throw bad("the key hash is not 8 lowercase hex digits");
  let raw;
  try {
    raw = unbase64(key, "key");
  } catch (error) {
    throw bad(error.message);
  }
  if (raw.length !== 33 || raw[0] !== 1) throw bad("not an Ed25519 key (0x01 and 32 bytes)");
  const publicKey = raw.slice(1);
  const expected = hex((await sha256(encoder.encode(name), Uint8Array.of(0x0a, 0x01), publicKey)).slice(0, 4));
  if (expected !== id) throw bad(`key hash ${id} does not match the key`);
  const cryptoKey = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
  return { name, id, cryptoKey };
}

const MAX_SIZE = (1n << 64n) - 1n;
const MAX_SIGNATURES = 100;

/**
 * C2SP signed-note (and Go's note.Open): the text, once a signature by a known key
 * verifies; unknown signers are ignored, a bad signature by a known key rejects all.
 */
export async function openNote(note, keys) {
  if (typeof note !== "string" || !note.isWellFormed()) throw new Error("bad checkpoint: not valid UTF-8");
  if (/[\u0000-\u0009\u000b-\u001f\u007f]/u.test(note)) throw new Error("bad checkpoint: no control characters but newline");
  if (!note.endsWith("\n")) throw new Error("bad checkpoint: the signature block must end with a newline");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new Error("bad checkpoint: no blank line before the signatures");
  const text = note.slice(0, split + 1);
  const signatures = note.slice(split + 2, -1).split("\n");
  if (signatures.length > MAX_SIGNATURES) throw new Error("bad checkpoint: too many signatures");
  let signer = null;
  const seen = new Set();
  for (const line of signatures) {
    const match = /^\u2014 ([^\s+]+) ([A-Za-z0-9+/=]+)$/u.exec(line);
    if (!match) throw new Error("bad checkpoint: malformed signature line");
    const raw = unbase64(match[2], "signature");
    if (raw.length < 5) throw new Error("bad checkpoint: malformed signature line");
    const key = keys.find((k) => k.name === match[1] && k.id === hex(raw.slice(0, 4)));
    if (!key || seen.has(key)) continue; // unknown signers are ignored (rotation, witnesses)
    seen.add(key);
    if (raw.length !== 68 || !(await crypto.subtle.verify({ name: "Ed25519" }, key.cryptoKey, raw.slice(4), encoder.encode(text)))) {
      throw new Error(`bad checkpoint signature: not a valid signature by ${key.name}`);
    }
    signer = signer || key;
  }
  if (!signer) throw new Error("bad checkpoint signature: expected a signature by one of the published keys");
  return { text, signer, signers: [...seen] };
}

/**
 * C2SP tlog-checkpoint in a signed note (docs/audit-checkpoints.md, as strict as the
 * server's verifier): {origin, size, root, extensions}. `origin` defaults to the
 * signing key's name.
 */
export async function verifyNote(note, keys, origin) {
  const { text, signer } = await openNote(note, keys);
  const lines = text.slice(0, -1).split("\n");
  if (lines.length < 3) throw new Error("bad checkpoint: a checkpoint has at least 3 lines");
  const [name, size, root, ...extensions] = lines;
  const wanted = origin ?? signer.name;
  if (name !== wanted) throw new Error(`bad checkpoint: origin: expected ${wanted}, found ${name}`);
  if (!/^(0|[1-9][0-9]*)$/.test(size) || BigInt(size) > MAX_SIZE) throw new Error("bad checkpoint: tree size");
  let rootBytes;
  try {
    rootBytes = unbase64(root, "root hash");
  } catch {
    throw new Error("bad checkpoint: root hash");
  }
  if (rootBytes.length !== 32) throw new Error("bad checkpoint: root hash");
  if (extensions.some((e) => e === "")) throw new Error("bad checkpoint: empty extension line");
  return { origin: name, size: Number(size), root: rootBytes, extensions };
}

/**
 * A whole chain from seq 1: hashes, links, gaps, then every checkpoint's root.
 * `entries` carry `seq`, `prev_hash`, `hash` and either `bodyText` (an export: hashed
 * byte for byte) or the body fields (the API: canonicalised here).
 */
export async function verifyChain(entries, checkpoints, onProgress = () => {}) {
  const leaves = [];
  let prev = GENESIS;
  for (const [i, e] of entries.entries()) {
    const seq = i + 1;
    if (e.seq !== seq) throw new Broken(seq, e.seq > seq ? `gap: seq ${seq} is missing` : `out of order: found seq ${e.seq}`);
    const recomputed = e.bodyText !== undefined ? hex(await sha256(encoder.encode(e.bodyText))) : await entryHash(e);
    if (recomputed !== e.hash) throw new Broken(seq, "hash mismatch: the entry is not what was hashed");
    if (e.prev_hash !== prev) throw new Broken(seq, "broken link: prev_hash is not the previous entry's hash");
    prev = e.hash;
    leaves.push(await leafHash(e.hash));
    if (seq % 200 === 0) onProgress(seq);
  }
  let matched = 0;
  for (const cp of [...checkpoints].sort((a, b) => a.size - b.size)) {
    if (cp.size > leaves.length) {
      throw new Broken(leaves.length + 1, `rollback: a signed checkpoint covers ${cp.size} entries, the log has ${leaves.length}`);
    }
    if (hex(await merkleRoot(leaves.slice(0, cp.size))) !== hex(cp.root)) {
      throw new Broken(matched + 1, `inconsistent checkpoint: entries ${matched + 1}..${cp.size} do not match the signed root`);
    }
    matched = cp.size;
  }
  return { length: leaves.length, covered: matched, head: prev };
}

/** A `vettra audit export` file (JSON Lines) split into its checkpoint notes and its
 * entry records, in order, after its header is checked. */
export function splitExport(text) {
  const all = text.split("\n").filter((l) => l.trim() !== "");
  let header;
  try {
    header = JSON.parse(all[0] || "");
  } catch {
    throw new Error("not a Vettra audit export: the first line is not JSON");
  }
  if (header.format !== EXPORT_FORMAT) throw new Error(`not a Vettra audit export (format ${header.format ?? "missing"})`);
  const notes = [];
  const lines = [];
  for (const line of all.slice(1)) {
    if (line.startsWith('{"checkpoint":')) notes.push(JSON.parse(line).checkpoint);
    else lines.push(line);
  }
  return { header, notes, lines };
}

/** Parse a `vettra audit export` file; entry bodies stay as exported bytes. */
export function parseExport(text) {
  const { header, notes, lines } = splitExport(text);
  const entries = [];
  const tail = /,"hash":"([0-9a-f]{64})","mac":"([0-9a-f]{64})"}$/;
  for (const line of lines) {
    const match = tail.exec(line);
    if (!line.startsWith('{"body":') || !match) throw new Broken(entries.length + 1, "malformed record: not an entry or a checkpoint");
    const bodyText = line.slice(8, match.index);
    let body;
    try {
      body = JSON.parse(bodyText);
    } catch {
      throw new Broken(entries.length + 1, "hash mismatch: the entry's body is not JSON");
    }
    entries.push({ ...body, bodyText, hash: match[1], mac: match[2] });
  }
  return { header, notes, entries };
}
