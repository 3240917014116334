//! JSON values as the Python reference sees them, three readers and three writers.
//!
//! Why not serde_json: the reference's answers depend on details serde_json does not
//! keep or cannot express. Objects keep their member order (Python dicts do, and the
//! order decides which text is found first); integers and floats stay apart (`1` and
//! `1.0` are different Python values with different `repr`s); and each reader refuses
//! exactly what its Python counterpart refuses:
//!
//! - [`Mode::Strict`] is `canonical.loads_strict`: no NaN/Infinity, no duplicate keys,
//!   no lone surrogates, integers within ±(2^53-1) unless written as a double prints
//!   (RFC 8785 Appendix B), at most 32 nested containers;
//! - [`Mode::Request`] reads what the Python bridge writes (`json.dumps` of values that
//!   passed the reference's own checks): the strict rules but a generous depth;
//! - [`Mode::Python`] is plain `json.loads`, as `textfold.texts` applies it to JSON text
//!   inside a string: NaN/Infinity accepted, a repeated key keeps its first position and
//!   last value, integers of more than 4300 digits refused (CPython's int limit). Where
//!   CPython's own answer depends on its interpreter state (nesting near the recursion
//!   limit) or on values Rust strings cannot hold (lone surrogates), the reader says
//!   [`ParseError::Unsupported`] and the caller hands the request to the reference.
//!
//! Writers: [`canonical`] (RFC 8785), [`compact`] (`json.dumps(separators=(",", ":"),
//! ensure_ascii=False)`, for responses) and [`py_dumps`] (`json.dumps(ensure_ascii=False,
//! sort_keys=True)`, which the reference quotes in reasons).

use crate::numfmt;
use std::convert::Infallible;
use std::fmt::Write;

pub use crate::limits::canonical::{MAX_DEPTH, MAX_SAFE_INTEGER};
/// Containers a request may nest (the bridge wraps 32 levels of arguments in a few more).
const REQUEST_DEPTH: usize = 128;
/// JSON text inside a string nested deeper than this is left to the reference: CPython's
/// decoder gives up at its recursion limit (~990 levels minus the caller's stack).
pub const PYTHON_SAFE_DEPTH: usize = 300;
/// CPython refuses to convert integers of more digits (sys.get_int_max_str_digits()).
const PY_INT_MAX_DIGITS: usize = 4300;

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl Value {
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    pub fn as_object(&self) -> Option<&Vec<(String, Value)>> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }
    /// A Python ``int`` (not a bool).
    pub fn as_int(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
    pub fn is_number(&self) -> bool {
        matches!(self, Value::Int(_) | Value::Float(_))
    }
    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }
    /// ``type(value).__name__`` in Python.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "NoneType",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Array(_) => "list",
            Value::Object(_) => "dict",
        }
    }
    pub fn str(s: &str) -> Value {
        Value::Str(s.to_string())
    }
}

/// Exact comparison of two JSON numbers, as Python compares ints and floats.
pub fn num_cmp(a: &Value, b: &Value) -> Option<core::cmp::Ordering> {
    use core::cmp::Ordering;
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Float(x), Value::Float(y)) => x.partial_cmp(y),
        (Value::Int(x), Value::Float(y)) => int_float_cmp(*x, *y),
        (Value::Float(x), Value::Int(y)) => int_float_cmp(*y, *x).map(Ordering::reverse),
        _ => None,
    }
}

fn int_float_cmp(i: i128, f: f64) -> Option<core::cmp::Ordering> {
    use core::cmp::Ordering;
    if f.is_nan() {
        return None;
    }
    if f == f64::INFINITY {
        return Some(Ordering::Less);
    }
    if f == f64::NEG_INFINITY {
        return Some(Ordering::Greater);
    }
    // |f| >= 2^127 is beyond every i128
    if f >= 1.7014118346046923e38 {
        return Some(Ordering::Less);
    }
    if f < -1.7014118346046923e38 {
        return Some(Ordering::Greater);
    }
    let floor = f.floor();
    let whole = floor as i128; // exact: |floor| < 2^127
    match i.cmp(&whole) {
        Ordering::Equal => {
            if f > floor {
                Some(Ordering::Less)
            } else {
                Some(Ordering::Equal)
            }
        }
        other => Some(other),
    }
}

pub fn num_eq(a: &Value, b: &Value) -> bool {
    num_cmp(a, b) == Some(core::cmp::Ordering::Equal)
}

// ------------------------------------------------------------------------------- reading

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    Strict,
    Request,
    Python,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParseError {
    /// Not valid JSON for this reader (the message says where and why).
    Invalid(String),
    /// Valid or not, the reference's answer cannot be reproduced here.
    Unsupported(String),
}

impl ParseError {
    pub fn message(&self) -> &str {
        match self {
            ParseError::Invalid(m) | ParseError::Unsupported(m) => m,
        }
    }
}

pub fn parse(text: &str, mode: Mode) -> Result<Value, ParseError> {
    let mut p = Parser { s: text.as_bytes(), i: 0, mode };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i != p.s.len() {
        return Err(p.err("extra data after the JSON value"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    mode: Mode,
}

impl<'a> Parser<'a> {
    fn err(&self, what: &str) -> ParseError {
        ParseError::Invalid(format!("{} at byte {}", what, self.i))
    }

    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, lit: &[u8]) -> bool {
        if self.s[self.i..].starts_with(lit) {
            self.i += lit.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ParseError> {
        match self.peek() {
            None => Err(self.err("expected a value")),
            Some(b'{') | Some(b'[') => {
                let limit = match self.mode {
                    Mode::Strict => MAX_DEPTH,
                    Mode::Request => REQUEST_DEPTH,
                    Mode::Python => PYTHON_SAFE_DEPTH,
                };
                if depth >= limit {
                    return Err(match self.mode {
                        Mode::Strict => self.err("JSON nested deeper than 32 levels"),
                        Mode::Request => self.err("request nested too deeply"),
                        Mode::Python => self.deep_python(),
                    });
                }
                if self.peek() == Some(b'{') {
                    self.object(depth)
                } else {
                    self.array(depth)
                }
            }
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') if self.eat(b"true") => Ok(Value::Bool(true)),
            Some(b'f') if self.eat(b"false") => Ok(Value::Bool(false)),
            Some(b'n') if self.eat(b"null") => Ok(Value::Null),
            Some(b'N') if self.mode == Mode::Python && self.eat(b"NaN") => Ok(Value::Float(f64::NAN)),
            Some(b'I') if self.mode == Mode::Python && self.eat(b"Infinity") => {
                Ok(Value::Float(f64::INFINITY))
            }
            Some(b'-') if self.mode == Mode::Python && self.s[self.i..].starts_with(b"-Infinity") => {
                self.i += 9;
                Ok(Value::Float(f64::NEG_INFINITY))
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => self.number(),
            Some(_) => Err(self.err("expected a value")),
        }
    }

    /// Past the safe depth in Python mode: is the rest of this value valid JSON?
    /// Invalid text is "not JSON" to CPython whatever its recursion limit (both errors
    /// are caught alike), so only a valid deep value is left to the reference.
    fn deep_python(&mut self) -> ParseError {
        match self.skip_value() {
            Ok(()) => ParseError::Unsupported("JSON text nested near CPython's recursion limit".into()),
            Err(e) => e,
        }
    }

    /// Validates one value without building it, iteratively (any depth).
    fn skip_value(&mut self) -> Result<(), ParseError> {
        let mut stack: Vec<u8> = Vec::new();
        loop {
            // a value is expected here
            self.ws();
            match self.peek() {
                Some(b'[') => {
                    if !self.open_empty(b']') {
                        stack.push(b']');
                        continue;
                    }
                }
                Some(b'{') => {
                    if !self.open_empty(b'}') {
                        self.member_name("expected a property name")?;
                        stack.push(b'}');
                        continue;
                    }
                }
                _ => {
                    // a scalar: parse it with the ordinary reader (never recurses)
                    let here = self.peek();
                    if here.is_none() {
                        return Err(self.err("expected a value"));
                    }
                    let _ = self.value(0)?;
                }
            }
            // after a value: close containers or move to the next element
            loop {
                let close = match stack.last() {
                    None => return Ok(()),
                    Some(c) => *c,
                };
                self.ws();
                if self.eat(b",") {
                    if close == b'}' {
                        self.member_name("expected a property name")?;
                    }
                    break;
                }
                if self.peek() == Some(close) {
                    self.i += 1;
                    stack.pop();
                    continue;
                }
                return Err(self.err("expected ',' or the end of a container"));
            }
        }
    }

    /// Past a container's opening byte and white space; true, and past `close` too, when
    /// the container is empty.
    fn open_empty(&mut self, close: u8) -> bool {
        self.i += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// A member's name in double quotes and its ':' (white space around the name);
    /// `missing` says what was expected when no name is there.
    fn member_name(&mut self, missing: &str) -> Result<String, ParseError> {
        self.ws();
        if self.peek() != Some(b'"') {
            return Err(self.err(missing));
        }
        let key = self.string()?;
        self.ws();
        if !self.eat(b":") {
            return Err(self.err("expected ':'"));
        }
        Ok(key)
    }

    /// After a member or an item: past ',' (false: another follows) or past `close`
    /// (true: the container ends); anything else is the error `expected`.
    fn next_or_close(&mut self, close: u8, expected: &str) -> Result<bool, ParseError> {
        self.ws();
        match self.peek() {
            Some(b',') => {
                self.i += 1;
                Ok(false)
            }
            Some(c) if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(self.err(expected)),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ParseError> {
        let mut members: Vec<(String, Value)> = Vec::new();
        if self.open_empty(b'}') {
            return Ok(Value::Object(members));
        }
        loop {
            let key = self.member_name("expected a property name in double quotes")?;
            self.ws();
            let value = self.value(depth + 1)?;
            if let Some(slot) = members.iter_mut().find(|(k, _)| *k == key) {
                if self.mode != Mode::Python {
                    return Err(ParseError::Invalid(format!("duplicate key {:?}", key)));
                }
                slot.1 = value; // json.loads: the first position, the last value
            } else {
                members.push((key, value));
            }
            if self.next_or_close(b'}', "expected ',' or '}'")? {
                return Ok(Value::Object(members));
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, ParseError> {
        let mut items = Vec::new();
        if self.open_empty(b']') {
            return Ok(Value::Array(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            if self.next_or_close(b']', "expected ',' or ']'")? {
                return Ok(Value::Array(items));
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        if self.i + 4 > self.s.len() {
            return Err(self.err("invalid \\uXXXX escape"));
        }
        let mut v = 0u32;
        for k in 0..4 {
            let c = self.s[self.i + k];
            let d = match c {
                b'0'..=b'9' => c - b'0',
                b'a'..=b'f' => c - b'a' + 10,
                b'A'..=b'F' => c - b'A' + 10,
                _ => return Err(self.err("invalid \\uXXXX escape")),
            };
            v = v * 16 + d as u32;
        }
        self.i += 4;
        Ok(v)
    }

    fn string(&mut self) -> Result<String, ParseError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.i;
            while self.i < self.s.len() {
                let c = self.s[self.i];
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.i += 1;
            }
            // the input is a &str: any slice between ASCII delimiters is valid UTF-8
            out.push_str(core::str::from_utf8(&self.s[start..self.i]).unwrap_or(""));
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.i += 1;
                    let c = match self.peek() {
                        None => return Err(self.err("unterminated string")),
                        Some(c) => c,
                    };
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let u = self.hex4()?;
                            if (0xD800..0xDC00).contains(&u) {
                                // a high surrogate: only a following \uDC00-\uDFFF pairs it
                                if self.s[self.i..].starts_with(b"\\u") {
                                    let save = self.i;
                                    self.i += 2;
                                    let low = self.hex4()?;
                                    if (0xDC00..0xE000).contains(&low) {
                                        let code = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
                                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                                        continue;
                                    }
                                    self.i = save;
                                }
                                return Err(self.surrogate());
                            }
                            if (0xDC00..0xE000).contains(&u) {
                                return Err(self.surrogate());
                            }
                            out.push(char::from_u32(u).unwrap_or('\u{fffd}'));
                        }
                        _ => return Err(self.err("invalid \\escape")),
                    }
                }
                Some(_) => return Err(self.err("invalid control character in a string")),
            }
        }
    }

    fn surrogate(&self) -> ParseError {
        match self.mode {
            Mode::Python => ParseError::Unsupported("a lone surrogate in JSON text".into()),
            _ => self.err("string holds a lone UTF-16 surrogate"),
        }
    }

    fn number(&mut self) -> Result<Value, ParseError> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(c) if c.is_ascii_digit() => {
                while self.peek().map_or(false, |c| c.is_ascii_digit()) {
                    self.i += 1;
                }
            }
            _ => return Err(self.err("expected a value")),
        }
        let int_end = self.i;
        let mut is_float = false;
        if self.peek() == Some(b'.')
            && self.s.get(self.i + 1).map_or(false, |c| c.is_ascii_digit())
        {
            is_float = true;
            self.i += 1;
            while self.peek().map_or(false, |c| c.is_ascii_digit()) {
                self.i += 1;
            }
        }
        if matches!(self.peek(), Some(b'e') | Some(b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.peek(), Some(b'+') | Some(b'-')) {
                self.i += 1;
            }
            if self.peek().map_or(false, |c| c.is_ascii_digit()) {
                is_float = true;
                while self.peek().map_or(false, |c| c.is_ascii_digit()) {
                    self.i += 1;
                }
            } else {
                self.i = save; // like Python's NUMBER_RE: the "e" is left over (an error next)
            }
        }
        let text = core::str::from_utf8(&self.s[start..self.i]).unwrap_or("0");
        if is_float {
            let f: f64 = text.parse().unwrap_or(f64::NAN);
            if !f.is_finite() && self.mode != Mode::Python {
                return Err(ParseError::Invalid("number overflows a 64-bit float".into()));
            }
            return Ok(Value::Float(f));
        }
        let digits = int_end - start - usize::from(self.s[start] == b'-');
        if digits > PY_INT_MAX_DIGITS {
            return Err(self.err("integer string too long"));
        }
        let parsed = text.parse::<i128>();
        match (parsed, self.mode) {
            (Ok(v), _) if v.abs() <= MAX_SAFE_INTEGER => Ok(Value::Int(v)),
            (Ok(v), Mode::Python) | (Ok(v), Mode::Request) => Ok(Value::Int(v)),
            // beyond i128: the value is never read (texts() yields strings only)
            (Err(_), Mode::Python) => Ok(Value::Float(text.parse().unwrap_or(0.0))),
            (Err(_), Mode::Request) => Err(ParseError::Unsupported("integer beyond 128 bits".into())),
            (_, Mode::Strict) => {
                // loads_strict: an integer written as a double prints (1e20) is that double
                let f: f64 = text.parse().unwrap_or(f64::INFINITY);
                if f.is_finite() && numfmt::es_number(f) == text {
                    return Ok(Value::Float(f));
                }
                Err(ParseError::Invalid("integer outside the exact range \u{b1}(2^53-1)".into()))
            }
        }
    }
}

// ------------------------------------------------------------------------------- writing

/// JSON string escaping shared by RFC 8785 §3.2.2.2 and CPython's encoder (ensure_ascii=False).
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0..=0x1f => None,
            _ => continue,
        };
        out.push_str(&s[start..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                let _ = write!(out, "\\u{:04x}", b);
            }
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

#[derive(Debug, PartialEq)]
pub struct CanonicalError(pub String);

/// RFC 8785 canonical text, or why the value has none (as `canonical_json` raises).
pub fn canonical(value: &Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_canonical(&mut out, value)?;
    Ok(out)
}

fn utf16_key(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

fn write_canonical(out: &mut String, value: &Value) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(i) => {
            if i.abs() <= MAX_SAFE_INTEGER {
                let _ = write!(out, "{}", i);
            } else {
                // canonical._exact_doubles: an integer that prints as the double it is
                let f = *i as f64;
                let text = if f.is_finite() { numfmt::es_number(f) } else { String::new() };
                if f.is_finite() && text == i.to_string() {
                    out.push_str(&text);
                } else {
                    return Err(CanonicalError(format!(
                        "{} exceeds safe integer range for interoperability",
                        i
                    )));
                }
            }
        }
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(CanonicalError(format!("{} is not representable in JSON", numfmt::py_float_repr(*f))));
            }
            out.push_str(&numfmt::es_number(*f));
        }
        Value::Str(s) => write_string(out, s),
        Value::Array(items) => write_joined(out, ('[', ",", ']'), items.iter(), write_canonical)?,
        Value::Object(members) => {
            let mut keyed: Vec<(Vec<u16>, &String, &Value)> =
                members.iter().map(|(k, v)| (utf16_key(k), k, v)).collect();
            keyed.sort_by(|a, b| a.0.cmp(&b.0));
            write_joined(out, ('{', ",", '}'), keyed.into_iter(), |out, (_, key, item)| {
                write_string(out, key);
                out.push(':');
                write_canonical(out, item)
            })?;
        }
    }
    Ok(())
}

/// `json.dumps(value, separators=(",", ":"), ensure_ascii=False)`: the responses' form.
pub fn compact(value: &Value) -> String {
    let mut out = String::new();
    write_python(&mut out, value, false, ",", ":");
    out
}

/// `json.dumps(value, ensure_ascii=False, sort_keys=True)`, as the risk reasons quote it.
pub fn py_dumps(value: &Value) -> String {
    let mut out = String::new();
    write_python(&mut out, value, true, ", ", ": ");
    out
}

fn write_python(out: &mut String, value: &Value, sort: bool, item_sep: &str, key_sep: &str) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(i) => {
            let _ = write!(out, "{}", i);
        }
        Value::Float(f) => {
            if f.is_nan() {
                out.push_str("NaN");
            } else if *f == f64::INFINITY {
                out.push_str("Infinity");
            } else if *f == f64::NEG_INFINITY {
                out.push_str("-Infinity");
            } else {
                out.push_str(&numfmt::py_float_repr(*f));
            }
        }
        Value::Str(s) => write_string(out, s),
        Value::Array(items) => {
            let _ = write_joined(out, ('[', item_sep, ']'), items.iter(), |out, item| {
                write_python(out, item, sort, item_sep, key_sep);
                Ok::<(), Infallible>(())
            });
        }
        Value::Object(members) => {
            let mut refs: Vec<&(String, Value)> = members.iter().collect();
            if sort {
                refs.sort_by(|a, b| a.0.cmp(&b.0)); // str order: code points (= UTF-8 bytes)
            }
            let _ = write_joined(out, ('{', item_sep, '}'), refs.into_iter(), |out, (key, item)| {
                write_string(out, key);
                out.push_str(key_sep);
                write_python(out, item, sort, item_sep, key_sep);
                Ok::<(), Infallible>(())
            });
        }
    }
}

/// `open`, the items (each written by `write`) with `sep` between them, `close`: the
/// arrays and objects of both writers.
fn write_joined<T, E>(
    out: &mut String,
    (open, sep, close): (char, &str, char),
    items: impl Iterator<Item = T>,
    mut write: impl FnMut(&mut String, T) -> Result<(), E>,
) -> Result<(), E> {
    out.push(open);
    for (k, item) in items.enumerate() {
        if k > 0 {
            out.push_str(sep);
        }
        write(out, item)?;
    }
    out.push(close);
    Ok(())
}

/// Builder helpers for responses.
pub fn obj(members: Vec<(&str, Value)>) -> Value {
    Value::Object(members.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

pub fn opt_str(s: Option<&str>) -> Value {
    match s {
        Some(s) => Value::Str(s.to_string()),
        None => Value::Null,
    }
}

pub fn opt_int(i: Option<i128>) -> Value {
    match i {
        Some(i) => Value::Int(i),
        None => Value::Null,
    }
}
