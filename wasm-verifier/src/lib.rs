//! Vettra's verifier: the Python reference's decisions and audit checks, as one
//! deterministic WebAssembly module for the backend (wasmtime) and the browser.
//!
//! Interface (no imports): one reusable buffer in linear memory. The host calls
//! `vv_reserve(n)` for a pointer to at least `n` bytes, writes a JSON request there and
//! calls `vv_call(n)` once; the module answers in the same buffer and returns
//! `(pointer << 32) | length` of the JSON response. Memory may grow during a call, so
//! the host re-reads it afterwards. Requests and answers are documented in api.rs.

pub mod api;
pub mod audit;
pub mod base64;
pub mod catalogue;
pub mod checkpoint;
pub mod conditions;
pub mod envelope;
pub mod glob;
pub mod json;
pub mod limits;
pub mod merkle;
pub mod numfmt;
pub mod policy;
pub mod pystr;
pub mod risk;
pub mod tables;
pub mod textfold;
pub mod unicode;

use sha2::{Digest, Sha256};

/// A request this module will not answer itself: the reference raises there (`raises`),
/// or its answer cannot be reproduced here (`unsupported`). The bridge then asks the
/// Python reference, which gives (or raises) the authoritative answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Fallback {
    pub kind: &'static str,
    pub detail: String,
}

impl Fallback {
    pub fn raises(detail: &str) -> Fallback {
        Fallback { kind: "raises", detail: detail.to_string() }
    }
    pub fn unsupported(detail: &str) -> Fallback {
        Fallback { kind: "unsupported", detail: detail.to_string() }
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

pub fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(data.len() * 2);
    for b in data {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if bytes.len() % 2 != 0 {
        return None;
    }
    let digit = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    bytes.chunks(2).map(|p| Some(digit(p[0])? << 4 | digit(p[1])?)).collect()
}

// ------------------------------------------------------------------------------ wasm ABI

use std::cell::RefCell;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = RefCell::new(Vec::new());
    static STATE: RefCell<api::State> = RefCell::new(api::State::default());
}

/// A pointer to at least `len` bytes of the request buffer.
#[no_mangle]
pub extern "C" fn vv_reserve(len: u32) -> u32 {
    BUFFER.with(|b| {
        let mut buf = b.borrow_mut();
        if buf.len() < len as usize {
            buf.resize(len as usize, 0);
        }
        buf.as_mut_ptr() as usize as u32
    })
}

/// Answer the request in the buffer's first `len` bytes; returns `(ptr << 32) | length`.
/// The buffer never shrinks: a pointer from `vv_reserve(n)` (or from this call) stays
/// good for `n` (or the answer's length) bytes until the next call returns another one.
#[no_mangle]
pub extern "C" fn vv_call(len: u32) -> u64 {
    BUFFER.with(|b| {
        let mut buf = b.borrow_mut();
        let n = (len as usize).min(buf.len());
        let response = STATE.with(|s| api::handle_bytes(&mut s.borrow_mut(), &buf[..n]));
        let bytes = response.as_bytes();
        if buf.len() < bytes.len() {
            buf.resize(bytes.len(), 0);
        }
        buf[..bytes.len()].copy_from_slice(bytes);
        ((buf.as_ptr() as usize as u64) << 32) | bytes.len() as u64
    })
}
