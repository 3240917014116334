//! audit_verify.py's LogVerifier: hash, link and order, HMAC, and the Merkle root at
//! every signed (or saved) checkpoint size, stopping at the first bad entry.

use crate::json::{self, Value};
use crate::merkle::{CompactRange, Hash};
use crate::pystr;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const KEY_ID: &[u8] = b",\"key_id\":\"";
const EXPORT_PREFIX: &[u8] = b"{\"body\":";
const HASH_MARK: &[u8] = b",\"hash\":\"";
const MAC_MARK: &[u8] = b"\",\"mac\":\"";
const EXPORT_SUFFIX_LEN: usize = 9 + 64 + 9 + 64 + 2;

pub struct Checkpoint {
    pub size: u64,
    pub root: Hash,
    pub saved: bool,
}

pub struct LogVerifier {
    keys: Option<Vec<(String, Hmac<Sha256>)>>,
    due: Vec<(u64, Vec<Checkpoint>)>,
    pub count: u64,
    prev: String,
    pub failure: Option<Value>,
    tree: CompactRange,
    matched: u64,
    matched_size: u64,
    saved_matched: u64,
}

fn verification_failure(seq: u64, reason: String) -> Value {
    json::obj(vec![("seq", Value::Int(seq as i128)), ("reason", Value::Str(reason))])
}

/// `_fields`: (key_id, prev_hash, seq) sliced out of canonical body bytes.
fn fields(body: &[u8]) -> Option<(String, &str, u64)> {
    let at = rfind(body, KEY_ID)?;
    let rest = &body[at + KEY_ID.len()..];
    // ([^"\\]*)","prev_hash":"([0-9a-f]{64})","seq":(0|[1-9][0-9]{0,17}),
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    if rest[end] != b'"' {
        return None;
    }
    let key_id = String::from_utf8_lossy(&rest[..end]).into_owned();
    let rest = &rest[end..];
    let rest = rest.strip_prefix(b"\",\"prev_hash\":\"".as_slice())?;
    if rest.len() < 64 || !rest[..64].iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)) {
        return None;
    }
    let prev = core::str::from_utf8(&rest[..64]).ok()?;
    let rest = rest[64..].strip_prefix(b"\",\"seq\":".as_slice())?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let digits_ok = digits >= 1 && (rest[0] != b'0' || digits == 1);
    if !digits_ok {
        return None;
    }
    // the regex reads at most 18 digits and then needs a comma
    if digits > 18 || rest.get(digits) != Some(&b',') {
        return None;
    }
    let seq: u64 = core::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    Some((key_id, prev, seq))
}

fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.len() > hay.len() {
        return None;
    }
    (0..=hay.len() - needle.len()).rev().find(|&i| &hay[i..i + needle.len()] == needle)
}

/// `split_export_line`: (body, hash hex, mac hex) of one exported record.
pub fn split_export_line(line: &[u8]) -> Result<(&[u8], String, String), String> {
    let mut data = line;
    while let Some((&last, rest)) = data.split_last() {
        if last == b'\r' || last == b'\n' {
            data = rest;
        } else {
            break;
        }
    }
    let malformed = || "malformed record: expected {\"body\":…,\"hash\":…,\"mac\":…}".to_string();
    if data.len() < EXPORT_SUFFIX_LEN {
        return Err(malformed());
    }
    let cut = data.len() - EXPORT_SUFFIX_LEN;
    let mac_at = cut + HASH_MARK.len() + 64;
    if cut <= EXPORT_PREFIX.len()
        || !data.starts_with(EXPORT_PREFIX)
        || &data[cut..cut + HASH_MARK.len()] != HASH_MARK
        || &data[mac_at..mac_at + MAC_MARK.len()] != MAC_MARK
        || !data.ends_with(b"\"}")
    {
        return Err(malformed());
    }
    let ascii = |b: &[u8]| b.iter().map(|&c| if c < 0x80 { c as char } else { '\u{fffd}' }).collect::<String>();
    Ok((
        &data[EXPORT_PREFIX.len()..cut],
        ascii(&data[cut + HASH_MARK.len()..mac_at]),
        ascii(&data[mac_at + MAC_MARK.len()..data.len() - 2]),
    ))
}

impl LogVerifier {
    pub fn new(hmac_keys: Option<Vec<(String, Vec<u8>)>>, checkpoints: Vec<Checkpoint>) -> LogVerifier {
        let keys = hmac_keys.map(|ks| {
            ks.into_iter()
                .filter_map(|(id, key)| Hmac::<Sha256>::new_from_slice(&key).ok().map(|m| (id, m)))
                .collect()
        });
        let mut due: Vec<(u64, Vec<Checkpoint>)> = Vec::new();
        // the log's own checkpoints first, then the saved ones (the reference's order)
        let (own, saved): (Vec<Checkpoint>, Vec<Checkpoint>) = checkpoints.into_iter().partition(|c| !c.saved);
        for cp in own.into_iter().chain(saved) {
            match due.iter_mut().find(|(s, _)| *s == cp.size) {
                Some((_, list)) => list.push(cp),
                None => due.push((cp.size, vec![cp])),
            }
        }
        let mut v = LogVerifier {
            keys,
            due,
            count: 0,
            prev: GENESIS_HASH.to_string(),
            failure: None,
            tree: CompactRange::default(),
            matched: 0,
            matched_size: 0,
            saved_matched: 0,
        };
        if v.due.iter().any(|(s, _)| *s == 0) {
            v.check_roots(0);
        }
        v
    }

    pub fn add(&mut self, body: &[u8], hash_hex: &str, mac_hex: &str) -> bool {
        if self.failure.is_some() {
            return false;
        }
        let expected = self.count + 1;
        let actual = match self.check(body, hash_hex, mac_hex, expected) {
            Ok(actual) => actual,
            Err(reason) => {
                self.failure = Some(verification_failure(expected, reason));
                return false;
            }
        };
        self.tree.append_leaf_data(&actual);
        self.count = expected;
        self.prev = hash_hex.to_string();
        if self.due.iter().any(|(s, _)| *s == expected) {
            return self.check_roots(expected);
        }
        true
    }

    fn check(&self, body: &[u8], hash_hex: &str, mac_hex: &str, expected: u64) -> Result<[u8; 32], String> {
        let (key_id, prev, seq) = fields(body)
            .ok_or_else(|| "malformed entry: expected key_id, prev_hash and seq members after data".to_string())?;
        if seq != expected {
            return Err(format!("gap: expected seq {}, got {}", expected, seq));
        }
        if prev != self.prev {
            return Err(format!(
                "broken link: expected prev_hash {}\u{2026}, got {}\u{2026}",
                pystr::prefix(&self.prev, 16),
                pystr::prefix(prev, 16)
            ));
        }
        let actual = Sha256::digest(body);
        let actual_hex = crate::hex(&actual);
        if actual_hex != hash_hex {
            return Err(format!(
                "hash mismatch: expected {}\u{2026}, got {}\u{2026}",
                &actual_hex[..16],
                pystr::prefix(hash_hex, 16)
            ));
        }
        if let Some(keys) = &self.keys {
            let mac = match keys.iter().find(|(id, _)| *id == key_id) {
                Some((_, m)) => m,
                None => return Err(format!("unknown HMAC key id {}", pystr::repr_str(&key_id))),
            };
            let mut m = mac.clone();
            m.update(&actual);
            let got = crate::hex(&m.finalize().into_bytes());
            if !constant_eq(got.as_bytes(), mac_hex.as_bytes()) {
                return Err("bad HMAC: the entry was not sealed with the named key".to_string());
            }
        }
        Ok(actual.into())
    }

    fn check_roots(&mut self, size: u64) -> bool {
        let root = self.tree.root();
        let at = match self.due.iter().position(|(s, _)| *s == size) {
            Some(at) => at,
            None => return true,
        };
        let (_, cps) = self.due.remove(at);
        for cp in cps {
            if !constant_eq(&root, &cp.root) {
                let first = self.matched_size + 1;
                let which = if cp.saved { "your saved checkpoint" } else { "the signed root" };
                self.failure = Some(json::obj(vec![
                    ("seq", Value::Int(first as i128)),
                    ("last_seq", Value::Int(size as i128)),
                    (
                        "reason",
                        Value::Str(format!(
                            "inconsistent checkpoint: entries {}..{} do not match {} for size {} (expected {}\u{2026}, the entries give {}\u{2026})",
                            first,
                            size,
                            which,
                            size,
                            &crate::hex(&cp.root)[..16],
                            &crate::hex(&root)[..16]
                        )),
                    ),
                ]));
                return false;
            }
            if cp.saved {
                self.saved_matched += 1;
            } else {
                self.matched += 1;
            }
        }
        self.matched_size = size;
        true
    }

    pub fn finish(mut self) -> Value {
        if self.failure.is_none() && !self.due.is_empty() {
            let largest = self.due.iter().map(|(s, _)| *s).max().unwrap_or(0);
            let saved = self
                .due
                .iter()
                .find(|(s, _)| *s == largest)
                .map_or(false, |(_, cps)| cps.iter().any(|c| c.saved));
            let which = if saved { "your saved checkpoint" } else { "a signed checkpoint" };
            self.failure = Some(verification_failure(
                self.count + 1,
                format!("rollback: {} covers {} entries, the log has {}", which, largest, self.count),
            ));
        }
        json::obj(vec![
            ("valid", Value::Bool(self.failure.is_none())),
            ("length", Value::Int(self.count as i128)),
            ("first_invalid", self.failure.clone().unwrap_or(Value::Null)),
            ("head_hash", Value::Str(self.prev.clone())),
            ("root_hash", Value::Str(crate::hex(&self.tree.root()))),
            ("checkpoints_verified", Value::Int(self.matched as i128)),
            ("hmac_checked", Value::Bool(self.keys.is_some())),
            ("uncovered", Value::Int((self.count - self.matched_size) as i128)),
            ("saved_verified", Value::Int(self.saved_matched as i128)),
        ])
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
