//! Shell globs exactly as Python's `fnmatch.fnmatchcase` reads them (patterns.py).
//!
//! `fnmatch.translate` turns a glob into a regular expression; its character classes
//! carry quirks (`[!...]`, a leading `]`, reversed ranges silently dropped, `-` rules)
//! that decide what matches. This module ports `translate` step by step to get the
//! same class text, parses that text as `re` (sre_parse) parses a set, and matches the
//! resulting items with the usual star backtracking: `(?>.*?fixed)` in the regex is
//! "the earliest match of the fixed part", which is what the backtracking loop tries
//! first, and glob semantics make that choice safe. A pattern the `re` module would
//! refuse (it raises in the reference) is an [`GlobError`].

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Star,
    Any,
    Lit(char),
    Class { negate: bool, items: Vec<(u32, u32)> },
    Never,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Glob {
    toks: Vec<Tok>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GlobError(pub String);

fn find(pat: &[char], ch: char, from: usize, to: usize) -> Option<usize> {
    if from >= to {
        return None;
    }
    (from..to).find(|&k| pat[k] == ch)
}

fn escape_chunk(chunk: &[char]) -> Vec<char> {
    let mut out = Vec::new();
    for &c in chunk {
        match c {
            '\\' => out.extend_from_slice(&['\\', '\\']),
            '-' => out.extend_from_slice(&['\\', '-']),
            _ => out.push(c),
        }
    }
    out
}

impl Glob {
    pub fn compile(pattern: &str) -> Result<Glob, GlobError> {
        let pat: Vec<char> = pattern.chars().collect();
        let n = pat.len();
        let mut toks: Vec<Tok> = Vec::new();
        let mut i = 0;
        while i < n {
            let c = pat[i];
            i += 1;
            if c == '*' {
                if toks.last() != Some(&Tok::Star) {
                    toks.push(Tok::Star);
                }
            } else if c == '?' {
                toks.push(Tok::Any);
            } else if c == '[' {
                let mut j = i;
                if j < n && pat[j] == '!' {
                    j += 1;
                }
                if j < n && pat[j] == ']' {
                    j += 1;
                }
                while j < n && pat[j] != ']' {
                    j += 1;
                }
                if j >= n {
                    toks.push(Tok::Lit('['));
                    continue;
                }
                let mut stuff: Vec<char>;
                if !pat[i..j].contains(&'-') {
                    stuff = Vec::new();
                    for &ch in &pat[i..j] {
                        if ch == '\\' {
                            stuff.extend_from_slice(&['\\', '\\']);
                        } else {
                            stuff.push(ch);
                        }
                    }
                } else {
                    let mut chunks: Vec<Vec<char>> = Vec::new();
                    let mut k = if pat[i] == '!' { i + 2 } else { i + 1 };
                    loop {
                        match find(&pat, '-', k, j) {
                            None => break,
                            Some(found) => {
                                chunks.push(pat[i..found].to_vec());
                                i = found + 1;
                                k = found + 3;
                            }
                        }
                    }
                    let chunk = pat[i..j].to_vec();
                    if !chunk.is_empty() {
                        chunks.push(chunk);
                    } else {
                        match chunks.last_mut() {
                            Some(last) => last.push('-'),
                            None => return Err(GlobError("index error in fnmatch.translate".into())),
                        }
                    }
                    // remove empty ranges (invalid in a regex), right to left
                    let mut k = chunks.len();
                    while k > 1 {
                        k -= 1;
                        let prev_last = chunks[k - 1].last().copied();
                        let next_first = chunks[k].first().copied();
                        let (a, b) = match (prev_last, next_first) {
                            (Some(a), Some(b)) => (a, b),
                            _ => return Err(GlobError("index error in fnmatch.translate".into())),
                        };
                        if a > b {
                            let mut merged = chunks[k - 1][..chunks[k - 1].len() - 1].to_vec();
                            merged.extend_from_slice(&chunks[k][1..]);
                            chunks[k - 1] = merged;
                            chunks.remove(k);
                        }
                    }
                    stuff = Vec::new();
                    for (idx, chunk) in chunks.iter().enumerate() {
                        if idx > 0 {
                            stuff.push('-');
                        }
                        stuff.extend(escape_chunk(chunk));
                    }
                }
                // escape set operations (&&, ~~ and ||)
                let mut escaped = Vec::with_capacity(stuff.len());
                for ch in stuff {
                    if ch == '&' || ch == '~' || ch == '|' {
                        escaped.push('\\');
                    }
                    escaped.push(ch);
                }
                let mut stuff = escaped;
                i = j + 1;
                if stuff.is_empty() {
                    toks.push(Tok::Never);
                } else if stuff == ['!'] {
                    toks.push(Tok::Any);
                } else {
                    if stuff[0] == '!' {
                        stuff[0] = '^';
                    } else if stuff[0] == '^' || stuff[0] == '[' {
                        stuff.insert(0, '\\');
                    }
                    toks.push(parse_set(&stuff)?);
                }
            } else {
                toks.push(Tok::Lit(c));
            }
        }
        Ok(Glob { toks })
    }

    pub fn matches(&self, text: &str) -> bool {
        // byte offsets into `text`, one character at a time: no allocation per match
        let t = &self.toks;
        let next = |si: usize| text[si..].chars().next();
        let (mut ti, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        loop {
            if ti < t.len() {
                if t[ti] == Tok::Star {
                    star = Some((ti, si));
                    ti += 1;
                    continue;
                }
                if let Some(c) = next(si) {
                    if one(&t[ti], c) {
                        ti += 1;
                        si += c.len_utf8();
                        continue;
                    }
                }
            } else if si == text.len() {
                return true;
            }
            match star {
                Some((sti, ssi)) if ssi < text.len() => {
                    let width = next(ssi).map_or(1, |c| c.len_utf8());
                    star = Some((sti, ssi + width));
                    ti = sti + 1;
                    si = ssi + width;
                }
                _ => return false,
            }
        }
    }
}

fn one(tok: &Tok, c: char) -> bool {
    match tok {
        Tok::Any => true,
        Tok::Lit(l) => *l == c,
        Tok::Class { negate, items } => {
            let u = c as u32;
            items.iter().any(|&(lo, hi)| lo <= u && u <= hi) != *negate
        }
        Tok::Never | Tok::Star => false,
    }
}

/// sre_parse's reading of `[` + stuff + `]` (stuff as translate writes it).
fn parse_set(stuff: &[char]) -> Result<Tok, GlobError> {
    let mut src: Vec<char> = stuff.to_vec();
    src.push(']');
    let mut pos = 0;
    // a token: one character, or a backslash and the next one
    let get = |pos: &mut usize| -> Option<(char, bool)> {
        if *pos >= src.len() {
            return None;
        }
        let c = src[*pos];
        if c == '\\' && *pos + 1 < src.len() {
            *pos += 2;
            return Some((src[*pos - 1], true));
        }
        *pos += 1;
        Some((c, false))
    };
    let negate = src[0] == '^';
    if negate {
        pos = 1;
    }
    let mut items: Vec<(u32, u32)> = Vec::new();
    loop {
        let (this, escaped) = match get(&mut pos) {
            None => return Err(GlobError("unterminated character set".into())),
            Some(t) => t,
        };
        if this == ']' && !escaped && !items.is_empty() {
            break;
        }
        if escaped && this.is_ascii_alphanumeric() {
            return Err(GlobError(format!("bad escape \\{}", this)));
        }
        let code1 = this as u32;
        if pos < src.len() && src[pos] == '-' {
            pos += 1;
            let (that, that_escaped) = match get(&mut pos) {
                None => return Err(GlobError("unterminated character set".into())),
                Some(t) => t,
            };
            if that == ']' && !that_escaped {
                items.push((code1, code1));
                items.push(('-' as u32, '-' as u32));
                break;
            }
            if that_escaped && that.is_ascii_alphanumeric() {
                return Err(GlobError(format!("bad escape \\{}", that)));
            }
            let code2 = that as u32;
            if code2 < code1 {
                return Err(GlobError(format!("bad character range {}-{}", this, that)));
            }
            items.push((code1, code2));
        } else {
            items.push((code1, code1));
        }
    }
    if pos != src.len() {
        // the set closed early: cannot happen for translate's output
        return Err(GlobError("unexpected text after a character set".into()));
    }
    Ok(Tok::Class { negate, items })
}

/// `patterns.specificity`: literal characters count, wildcards do not.
pub fn specificity(pattern: &str) -> usize {
    pattern.chars().filter(|c| !"*?[]".contains(*c)).count()
}

pub fn fnmatch(text: &str, pattern: &str) -> Result<bool, GlobError> {
    Ok(Glob::compile(pattern)?.matches(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: &str, p: &str) -> bool {
        fnmatch(t, p).unwrap()
    }

    #[test]
    fn basics() {
        assert!(m("gmail.send", "gmail.*"));
        assert!(!m("gmailx.read", "gmail.*"));
        assert!(m("a.b", "*"));
        assert!(m("abc", "a?c"));
        assert!(m("b", "[abc]"));
        assert!(!m("d", "[abc]"));
        assert!(m("d", "[!abc]"));
        assert!(m("]", "[]]"));
        assert!(m("-", "[a-]"));
        assert!(!m("b", "[z-a]"));
        assert!(m("[", "["));
        assert!(m("x.delete_account", "*.delete_account"));
        assert!(m("aXbXc", "a*b*c"));
        assert!(!m("aXbX", "a*b*c"));
    }
}
