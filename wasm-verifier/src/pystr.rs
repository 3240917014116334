//! CPython's `str` methods the reference calls, on the reference's own Unicode data
//! (`tables.rs`): `isspace`, `split()`, `strip()`, `lower()` (with the Final_Sigma rule),
//! `casefold()` and `repr()`, plus the `repr` of JSON values.

use crate::json::Value;
use crate::numfmt::py_float_repr;
use crate::tables;
use std::fmt::Write;

pub fn in_ranges(table: &[(u32, u32)], c: u32) -> bool {
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                core::cmp::Ordering::Less
            } else if lo > c {
                core::cmp::Ordering::Greater
            } else {
                core::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Code points a table maps `c` to, if it maps it.
pub fn lookup_map<'a>(table: &[(u32, u16, u8)], data: &'a [u32], c: u32) -> Option<&'a [u32]> {
    match table.binary_search_by_key(&c, |e| e.0) {
        Ok(i) => {
            let (_, off, len) = table[i];
            Some(&data[off as usize..off as usize + len as usize])
        }
        Err(_) => None,
    }
}

pub fn is_space(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return matches!(u, 0x09..=0x0d | 0x1c..=0x20);
    }
    in_ranges(tables::SPACE, u)
}

/// `str.split()` with no separator: runs of whitespace separate, none are kept.
pub fn split_ws(s: &str) -> Vec<&str> {
    s.split(is_space).filter(|w| !w.is_empty()).collect()
}

/// `str.strip()` with no argument.
pub fn strip_ws(s: &str) -> &str {
    s.trim_matches(is_space)
}

fn push_code(out: &mut String, u: u32) {
    if let Some(c) = char::from_u32(u) {
        out.push(c);
    }
}

fn case_ignorable(c: char) -> bool {
    in_ranges(tables::CASE_IGNORABLE, c as u32)
}

fn cased(c: char) -> bool {
    in_ranges(tables::CASED, c as u32)
}

/// `str.lower()`: full lowercase mappings, and U+03A3 becomes final sigma (U+03C2) when
/// preceded by a cased letter and not followed by one (case-ignorables skipped).
pub fn lower(s: &str) -> String {
    if s.is_ascii() {
        return s.to_ascii_lowercase();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    for (i, &c) in chars.iter().enumerate() {
        if c == '\u{3a3}' {
            out.push(if final_sigma(&chars, i) { '\u{3c2}' } else { '\u{3c3}' });
            continue;
        }
        match lookup_map(tables::LOWER, tables::LOWER_DATA, c as u32) {
            Some(codes) => codes.iter().for_each(|&u| push_code(&mut out, u)),
            None => out.push(c),
        }
    }
    out
}

fn final_sigma(chars: &[char], i: usize) -> bool {
    let mut j = i;
    let mut before = None;
    while j > 0 {
        j -= 1;
        if !case_ignorable(chars[j]) {
            before = Some(chars[j]);
            break;
        }
    }
    let mut is_final = before.map_or(false, cased);
    if is_final && i + 1 < chars.len() {
        let after = chars[i + 1..].iter().find(|c| !case_ignorable(**c));
        is_final = after.map_or(true, |c| !cased(*c));
    }
    is_final
}

/// `str.casefold()` (full case folding, context-free).
pub fn casefold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match lookup_map(tables::CASEFOLD, tables::CASEFOLD_DATA, c as u32) {
            Some(codes) => codes.iter().for_each(|&u| push_code(&mut out, u)),
            None => out.push(c),
        }
    }
    out
}

fn printable(c: char) -> bool {
    let u = c as u32;
    if (0x20..0x7f).contains(&u) {
        return true;
    }
    !in_ranges(tables::NONPRINTABLE, u)
}

/// `repr(s)` for a str.
pub fn repr_str(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        let u = c as u32;
        if c == quote || c == '\\' {
            out.push('\\');
            out.push(c);
        } else if c == '\t' {
            out.push_str("\\t");
        } else if c == '\n' {
            out.push_str("\\n");
        } else if c == '\r' {
            out.push_str("\\r");
        } else if u < 0x20 || u == 0x7f {
            let _ = write!(out, "\\x{:02x}", u);
        } else if u < 0x7f || printable(c) {
            out.push(c);
        } else if u <= 0xff {
            let _ = write!(out, "\\x{:02x}", u);
        } else if u <= 0xffff {
            let _ = write!(out, "\\u{:04x}", u);
        } else {
            let _ = write!(out, "\\U{:08x}", u);
        }
    }
    out.push(quote);
    out
}

/// `repr(value)` of a JSON value as Python holds it (dict, list, str, int, float…).
pub fn repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, value);
    out
}

fn write_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => {
            let _ = write!(out, "{}", i);
        }
        Value::Float(f) => out.push_str(&py_float_repr(*f)),
        Value::Str(s) => out.push_str(&repr_str(s)),
        Value::Array(items) => {
            out.push('[');
            for (k, item) in items.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (k, (key, item)) in members.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                out.push_str(&repr_str(key));
                out.push_str(": ");
                write_repr(out, item);
            }
            out.push('}');
        }
    }
}

/// `str(value)` for the values f-strings interpolate without `!r`.
pub fn str_of(value: &Value) -> String {
    match value {
        Value::Str(s) => s.clone(),
        other => repr(other),
    }
}

/// Python's `len(s)`: code points.
pub fn len(s: &str) -> usize {
    s.chars().count()
}

/// `s[:n]` by code points.
pub fn prefix(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigma() {
        assert_eq!(lower("ΟΔΟΣ"), "\u{3bf}\u{3b4}\u{3bf}\u{3c2}");
        assert_eq!(lower("Σ"), "σ");
        assert_eq!(lower("AΣB"), "aσb");
        assert_eq!(lower("AΣ"), "aς");
        assert_eq!(lower("İ"), "i\u{307}");
    }

    #[test]
    fn reprs() {
        assert_eq!(repr_str("a'b"), "\"a'b\"");
        assert_eq!(repr_str("a'\"b"), "'a\\'\"b'");
        assert_eq!(repr_str("\u{200b}x\u{7f}"), "'\\u200bx\\x7f'");
        assert_eq!(repr_str("é"), "'é'");
    }
}
