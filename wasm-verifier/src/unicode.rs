//! Unicode normalization (UAX #15) as CPython's `unicodedata.normalize` does it: full
//! decomposition from the generated tables (Hangul algorithmically), canonical ordering
//! by insertion sort, and for NFKC the canonical composition loop of `nfc_nfkc`.

use crate::tables;

const S_BASE: u32 = 0xAC00;
const L_BASE: u32 = 0x1100;
const V_BASE: u32 = 0x1161;
const T_BASE: u32 = 0x11A7;
const L_COUNT: u32 = 19;
const V_COUNT: u32 = 21;
const T_COUNT: u32 = 28;
const N_COUNT: u32 = V_COUNT * T_COUNT;
const S_COUNT: u32 = L_COUNT * N_COUNT;

pub fn ccc(c: u32) -> u8 {
    if c < 0x300 {
        return 0;
    }
    match tables::CCC.binary_search_by_key(&c, |e| e.0) {
        Ok(i) => tables::CCC[i].1,
        Err(_) => 0,
    }
}

fn decompose(s: &str, compat: bool) -> Vec<u32> {
    let (table, data) = if compat {
        (tables::NFKD, tables::NFKD_DATA)
    } else {
        (tables::NFD, tables::NFD_DATA)
    };
    let mut out: Vec<u32> = Vec::with_capacity(s.len());
    for ch in s.chars() {
        let c = ch as u32;
        if (S_BASE..S_BASE + S_COUNT).contains(&c) {
            let index = c - S_BASE;
            out.push(L_BASE + index / N_COUNT);
            out.push(V_BASE + (index % N_COUNT) / T_COUNT);
            let t = index % T_COUNT;
            if t != 0 {
                out.push(T_BASE + t);
            }
            continue;
        }
        match crate::pystr::lookup_map(table, data, c) {
            Some(codes) => out.extend_from_slice(codes),
            None => out.push(c),
        }
    }
    // canonical ordering: a stable sort of every run of non-starters by combining class
    let mut i = 1;
    while i < out.len() {
        let cur = ccc(out[i]);
        if cur != 0 {
            let mut o = i;
            while o > 0 {
                let prev = ccc(out[o - 1]);
                if prev == 0 || prev <= cur {
                    break;
                }
                out.swap(o - 1, o);
                o -= 1;
            }
        }
        i += 1;
    }
    out
}

fn compose_pair(first: u32, second: u32) -> Option<u32> {
    tables::COMPOSE
        .binary_search_by(|e| (e.0, e.1).cmp(&(first, second)))
        .ok()
        .map(|i| tables::COMPOSE[i].2)
}

fn is_first(c: u32) -> bool {
    let i = tables::COMPOSE.partition_point(|e| e.0 < c);
    i < tables::COMPOSE.len() && tables::COMPOSE[i].0 == c
}

fn compose(input: &[u32]) -> Vec<u32> {
    let len = input.len();
    let mut output: Vec<u32> = Vec::with_capacity(len);
    let mut skipped: Vec<usize> = Vec::new();
    let mut i = 0;
    while i < len {
        if let Some(pos) = skipped.iter().position(|&k| k == i) {
            skipped.swap_remove(pos);
            i += 1;
            continue;
        }
        let code = input[i];
        // Hangul: L V -> LV, LV T -> LVT
        if (L_BASE..L_BASE + L_COUNT).contains(&code)
            && i + 1 < len
            && (V_BASE..V_BASE + V_COUNT).contains(&input[i + 1])
        {
            let l = code - L_BASE;
            let v = input[i + 1] - V_BASE;
            let mut syllable = S_BASE + (l * V_COUNT + v) * T_COUNT;
            i += 2;
            if i < len && (T_BASE + 1..T_BASE + T_COUNT).contains(&input[i]) {
                syllable += input[i] - T_BASE;
                i += 1;
            }
            output.push(syllable);
            continue;
        }
        output.push(code);
        if !is_first(code) {
            i += 1;
            continue;
        }
        let mut i1 = i + 1;
        let mut comb: u8 = 0;
        while i1 < len {
            let code1 = input[i1];
            let comb1 = ccc(code1);
            if comb != 0 {
                if comb1 == 0 {
                    break;
                }
                if comb >= comb1 {
                    i1 += 1; // blocked
                    continue;
                }
            }
            let last = *output.last().unwrap_or(&0);
            match compose_pair(last, code1) {
                Some(composite) => {
                    *output.last_mut().unwrap() = composite;
                    skipped.push(i1);
                    i1 += 1;
                    if !is_first(composite) {
                        break;
                    }
                }
                _ => {
                    if comb1 == 0 {
                        break;
                    }
                    comb = comb1;
                    i1 += 1;
                }
            }
        }
        i += 1;
    }
    output
}

fn to_string(codes: &[u32]) -> String {
    codes.iter().filter_map(|&u| char::from_u32(u)).collect()
}

pub fn nfd(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    to_string(&decompose(s, false))
}

pub fn nfkc(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    to_string(&compose(&decompose(s, true)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples() {
        assert_eq!(nfkc("ｆｕｌｌ"), "full");
        assert_eq!(nfkc("e\u{301}"), "é");
        assert_eq!(nfd("é"), "e\u{301}");
        assert_eq!(nfkc("\u{1100}\u{1161}\u{11a8}"), "각");
        assert_eq!(nfkc("ﬁ"), "fi");
        assert_eq!(nfkc("a\u{323}\u{302}"), "ậ");
        assert_eq!(nfkc("a\u{302}\u{323}"), "ậ");
    }
}
