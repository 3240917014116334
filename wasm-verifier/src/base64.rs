//! Base64 (RFC 4648) over a given alphabet: checkpoint.rs reads standard, padded base64
//! (C2SP notes), envelope.rs unpadded base64url (policy signatures). Each checks its own
//! spelling rules; both check that the bytes encode back to the text they read.

/// §4, standard.
pub const STANDARD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// §5, URL and filename safe.
pub const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `data` in `alphabet`, padded with `=` to whole quads when `pad`.
pub fn encode(data: &[u8], alphabet: &[u8], pad: bool) -> String {
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = ((b[0] as u32) << 16) | ((b[1] as u32) << 8) | b[2] as u32;
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// The bytes of `text`, every character of which the caller has checked is in
/// `alphabet` (no padding); leftover bits are dropped, so only re-encoding tells whether
/// the spelling was canonical.
pub fn decode(text: &[u8], alphabet: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for &c in text {
        let v = alphabet.iter().position(|&x| x == c).unwrap_or(0) as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}
