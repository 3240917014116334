//! checkpoint.py's reading side: C2SP tlog-checkpoint bodies in C2SP signed notes,
//! verified with a `<name>+<hex8>+<base64(0x01 || key)>` verifier key, so a browser can
//! check the checkpoints the dashboard shows with the same rules as `vettra audit verify`.

use crate::base64::{self, STANDARD as STD64};
use crate::json::Value;
use crate::pystr;
use crate::Fallback;

const SIG_PREFIX: &str = "\u{2014} ";
const MAX_SIGNATURES: usize = 100;

pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: [u8; 32],
    pub extensions: Vec<String>,
}

fn fail(what: &str, expected: &str, found: &Value) -> String {
    let shown = match found {
        Value::Int(_) => pystr::repr(found),
        Value::Str(s) if pystr::len(s) <= 80 => pystr::repr_str(s),
        other => {
            let text = pystr::str_of(other);
            pystr::repr_str(&format!("{}...", pystr::prefix(&text, 77)))
        }
    };
    format!("{}: expected {}, found {}", what, expected, shown)
}

fn fail_s(what: &str, expected: &str, found: &str) -> String {
    fail(what, expected, &Value::str(found))
}

fn check_text(text: &str, what: &str) -> Result<(), String> {
    for (index, c) in text.chars().enumerate() {
        if (c as u32) < 0x20 && c != '\n' {
            return Err(fail_s(
                what,
                "no control characters but newline",
                &format!("U+{:04X} at index {}", c as u32, index),
            ));
        }
    }
    Ok(())
}

fn check_name(name: &str, what: &str) -> Result<(), String> {
    check_text(name, what)?;
    if name.is_empty() || name.contains('+') || name.contains('\n') || name.chars().any(pystr::is_space) {
        return Err(fail_s(what, "a non-empty name without spaces or '+'", name));
    }
    Ok(())
}

fn b64encode(raw: &[u8]) -> String {
    base64::encode(raw, STD64, true)
}

/// Standard base64 (RFC 4648 §4), canonical spelling only.
pub fn b64decode(value: &str, what: &str) -> Result<Vec<u8>, String> {
    let bytes = value.as_bytes();
    let body_len = bytes.iter().take_while(|c| STD64.contains(c)).count();
    let pad = &bytes[body_len..];
    if pad.len() > 2 || pad.iter().any(|&c| c != b'=') || bytes.len() % 4 != 0 {
        return Err(fail_s(what, "standard base64", value));
    }
    let out = base64::decode(&bytes[..body_len], STD64);
    if b64encode(&out) != value {
        return Err(fail_s(what, "canonical base64", value));
    }
    Ok(out)
}

fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut data = name.as_bytes().to_vec();
    data.extend_from_slice(b"\n\x01");
    data.extend_from_slice(public);
    let h = crate::sha256(&data);
    [h[0], h[1], h[2], h[3]]
}

pub struct NoteVerifier {
    pub name: String,
    pub key_hash: [u8; 4],
    pub public: Vec<u8>,
}

impl NoteVerifier {
    pub fn parse(verifier_key: &str) -> Result<NoteVerifier, String> {
        let bad = || fail_s("verifier key", "<name>+<hex8>+<base64 key>", verifier_key);
        let (name, rest) = verifier_key.split_once('+').ok_or_else(bad)?;
        let (hex_id, key64) = rest.split_once('+').ok_or_else(bad)?;
        check_name(name, "key name")?;
        if hex_id.len() != 8 || !hex_id.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c)) {
            return Err(fail_s("verifier key ID", "8 lowercase hex digits", hex_id));
        }
        let raw = b64decode(key64, "verifier key")?;
        if raw.len() != 33 || raw[0] != 1 {
            return Err(fail_s("verifier key", "0x01 then 32 key bytes", &format!("{} bytes", raw.len())));
        }
        let id = key_id(name, &raw[1..]);
        if crate::hex(&id) != hex_id {
            return Err(fail_s("verifier key ID", &crate::hex(&id), hex_id));
        }
        Ok(NoteVerifier { name: name.to_string(), key_hash: id, public: raw[1..].to_vec() })
    }
}

/// `open_note` with one verifier: the signed text.
fn open_note(note: &str, verifier: &NoteVerifier) -> Result<Result<String, String>, Fallback> {
    if let Err(e) = check_text(note, "note") {
        return Ok(Err(e));
    }
    let split = match note.rfind("\n\n") {
        Some(at) => at,
        None => return Ok(Err(fail_s("note", "a blank line before the signatures", "none"))),
    };
    let (text, block) = (&note[..split + 1], &note[split + 2..]);
    if !block.ends_with('\n') {
        let tail: String = block.chars().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        return Ok(Err(fail_s("signature block", "lines ending in a newline", &tail)));
    }
    let lines: Vec<&str> = block[..block.len() - 1].split('\n').collect();
    if lines.len() > MAX_SIGNATURES {
        return Ok(Err(fail(
            "note",
            &format!("at most {} signatures", MAX_SIGNATURES),
            &Value::Int(lines.len() as i128),
        )));
    }
    let mut verified = 0;
    let mut seen = false;
    for line in &lines {
        let rest = match line.strip_prefix(SIG_PREFIX) {
            Some(r) => r,
            None => return Ok(Err(fail_s("signature line", "'\u{2014} <name> <base64>'", line))),
        };
        let (name, sig64) = match rest.split_once(' ') {
            Some(p) => p,
            None => (rest, ""),
        };
        if let Err(e) = check_name(name, "signature key name") {
            return Ok(Err(e));
        }
        let raw = match b64decode(sig64, "signature") {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        if raw.len() <= 4 {
            return Ok(Err(fail_s("signature", "more than 4 bytes", &format!("{} bytes", raw.len()))));
        }
        if name != verifier.name || raw[..4] != verifier.key_hash || seen {
            continue;
        }
        seen = true;
        if !crate::envelope::verify_signature(&verifier.public, &raw[4..], text.as_bytes())? {
            return Ok(Err(fail_s(
                "signature",
                &format!("a valid signature by {}+{}", name, crate::hex(&verifier.key_hash)),
                "an invalid one",
            )));
        }
        verified += 1;
    }
    if verified == 0 {
        let wanted = format!("['{}+{}']", verifier.name, crate::hex(&verifier.key_hash));
        return Ok(Err(fail_s(
            "note",
            &format!("a signature by one of {}", wanted),
            &format!("{} by unknown keys", lines.len()),
        )));
    }
    Ok(Ok(text.to_string()))
}

fn parse_body(body: &str) -> Result<Checkpoint, String> {
    check_text(body, "checkpoint")?;
    if !body.ends_with('\n') {
        let tail: String = body.chars().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
        return Err(fail_s("checkpoint", "text ending in a newline", &tail));
    }
    let lines: Vec<&str> = body[..body.len() - 1].split('\n').collect();
    if lines.len() < 3 {
        return Err(fail_s(
            "checkpoint",
            "at least 3 lines (origin, size, root hash)",
            &format!("{} lines", lines.len()),
        ));
    }
    let (origin, size, root) = (lines[0], lines[1], lines[2]);
    let size_ok = !size.is_empty()
        && size.bytes().all(|c| c.is_ascii_digit())
        && (size == "0" || !size.starts_with('0'));
    let parsed = if size_ok { size.parse::<u64>().ok() } else { None };
    let size = match parsed {
        Some(s) => s,
        None => {
            return Err(fail_s("tree size", "decimal digits without leading zeros, at most 2^64-1", size))
        }
    };
    let root_hash = b64decode(root, "root hash")?;
    for (label, line) in core::iter::once(("origin", origin)).chain(lines[3..].iter().map(|l| ("extension line", *l))) {
        if line.is_empty() {
            return Err(fail_s(label, "a non-empty single line", line));
        }
    }
    if root_hash.len() != 32 {
        let shown = format!("{}...", pystr::prefix(&bytes_repr(&root_hash), 77));
        return Err(format!("root hash: expected 32 bytes, found {}", pystr::repr_str(&shown)));
    }
    let mut root_arr = [0u8; 32];
    root_arr.copy_from_slice(&root_hash);
    Ok(Checkpoint {
        origin: origin.to_string(),
        size,
        root: root_arr,
        extensions: lines[3..].iter().map(|l| l.to_string()).collect(),
    })
}

fn bytes_repr(b: &[u8]) -> String {
    let mut s = String::from("b'");
    for &c in b {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\'' => s.push_str("\\'"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{:02x}", c)),
        }
    }
    s.push('\'');
    s
}

/// The note as bytes (what a file or a response body holds): UTF-8 or refused.
pub fn note_text(raw: &[u8]) -> Result<&str, String> {
    core::str::from_utf8(raw).map_err(|e| {
        let at = e.valid_up_to();
        fail_s("note", "valid UTF-8", &format!("byte 0x{:02x} at {}", raw[at], at))
    })
}

/// `verify_checkpoint(note, NoteVerifier(verifier_key), origin=origin)`.
pub fn verify_checkpoint(note: &str, verifier_key: &str, origin: Option<&str>) -> Result<Result<Checkpoint, String>, Fallback> {
    let verifier = match NoteVerifier::parse(verifier_key) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    let text = match open_note(note, &verifier)? {
        Ok(t) => t,
        Err(e) => return Ok(Err(e)),
    };
    let cp = match parse_body(&text) {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let expected = origin.unwrap_or(&verifier.name);
    if cp.origin != expected {
        return Ok(Err(fail_s("origin", &pystr::repr_str(expected), &cp.origin)));
    }
    Ok(Ok(cp))
}
