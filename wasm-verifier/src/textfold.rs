//! textfold.py: the text key (`fold`), confusable skeletons (`skeleton`), disguise
//! detection (`is_suspicious`) and the walk over every string inside a value (`texts`).

use crate::glob::Glob;
use crate::json::{self, Mode, ParseError, Value};
use crate::pystr::{self, in_ranges, is_space};
use crate::tables;
use crate::unicode;

pub use crate::limits::textfold::*; // the MAX_* bounds of textfold.py

/// Work the reference does that this module cannot reproduce (see json::ParseError).
#[derive(Debug, Clone, PartialEq)]
pub struct Unsupported(pub String);

fn strip_class(s: &str, table: &[(u32, u32)]) -> String {
    s.chars().filter(|c| !in_ranges(table, *c as u32)).collect()
}

/// NFKC, case-folded, NFKC, without default-ignorable characters or whitespace.
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text
            .chars()
            .filter(|c| !is_space(*c))
            .map(|c| c.to_ascii_lowercase())
            .collect();
    }
    let folded = unicode::nfkc(&pystr::casefold(&unicode::nfkc(text)));
    strip_class(&folded, tables::STRIP_IGNORABLE)
}

fn translate_ascii(s: &str, table: &[(u32, u8)]) -> String {
    s.chars()
        .map(|c| match table.binary_search_by_key(&(c as u32), |e| e.0) {
            Ok(i) => table[i].1 as char,
            Err(_) => c,
        })
        .collect()
}

/// The fold with every non-ASCII character replaced by its ASCII confusable.
pub fn skeleton(text: &str) -> String {
    if text.is_ascii() {
        return fold(text);
    }
    let folded = fold(&translate_ascii(text, tables::CONFUSABLE_RAW));
    if folded.is_ascii() {
        return folded;
    }
    let bare = strip_class(&unicode::nfd(&folded), tables::STRIP_MARKS);
    translate_ascii(&bare, tables::CONFUSABLE_FOLDED)
}

fn ignorable(c: char) -> bool {
    let u = c as u32;
    is_space(c) || in_ranges(tables::CF, u) || in_ranges(tables::IGNORABLE_EXTRA, u)
}

pub fn script(c: char) -> &'static str {
    let u = c as u32;
    let table = tables::SCRIPTS;
    match table.binary_search_by(|&(lo, hi, _)| {
        if hi < u {
            core::cmp::Ordering::Less
        } else if lo > u {
            core::cmp::Ordering::Greater
        } else {
            core::cmp::Ordering::Equal
        }
    }) {
        Ok(i) => tables::SCRIPT_NAMES[table[i].2 as usize],
        Err(_) => "Unknown",
    }
}

const NEUTRAL_SCRIPTS: [&str; 3] = ["COMMON", "INHERITED", "Unknown"];

/// Why `text` looks like a disguise, or None.
pub fn is_suspicious(text: &str) -> Option<String> {
    if text.is_ascii() {
        return None;
    }
    if text.chars().any(|c| !is_space(c) && ignorable(c)) {
        return Some("it holds invisible characters".to_string());
    }
    let words = pystr::split_ws(text);
    for word in &words {
        if word.is_ascii() {
            continue;
        }
        let mut scripts: Vec<&str> = Vec::new();
        for c in word.chars() {
            let s = script(c);
            if !NEUTRAL_SCRIPTS.contains(&s) && !scripts.contains(&s) {
                scripts.push(s);
            }
        }
        scripts.sort_unstable();
        if scripts.len() > 1 {
            return Some(format!(
                "the word {} mixes scripts ({})",
                pystr::repr_str(word),
                scripts.join(", ")
            ));
        }
        let folded = fold(word);
        if words.len() == 1
            && pystr::len(word) <= MAX_DISGUISED_WORD
            && !scripts.is_empty()
            && scripts != ["LATIN"]
            && !folded.is_ascii()
            && pystr::len(&folded) > 1
        {
            let shape = skeleton(word);
            if shape.is_ascii() && !shape.is_empty() && shape.chars().all(|c| c.is_ascii_alphabetic()) {
                return Some(format!(
                    "the word {} looks like the Latin {}",
                    pystr::repr_str(word),
                    pystr::repr_str(&shape)
                ));
            }
        }
    }
    None
}

/// `_JSON_TEXT.match(item)`: optional (Unicode) whitespace, then `[` or `{`.
fn looks_like_json(item: &str) -> bool {
    for c in item.chars() {
        if is_space(c) {
            continue;
        }
        return c == '[' || c == '{';
    }
    false
}

/// Every string inside `value` in the order `texts()` yields them; `visit` returns true
/// to stop (as `any()` stops consuming the generator). `keys` are the skeletons of the
/// key globs, compiled.
pub fn texts<F>(value: &Value, keys: Option<&[Glob]>, mut visit: F) -> Result<(), Unsupported>
where
    F: FnMut(&str) -> bool,
{
    let matches = |name: &str| -> bool {
        let shape = skeleton(name);
        match keys {
            None => true,
            Some(globs) => globs.iter().any(|g| g.matches(&shape)),
        }
    };
    // Parsed JSON texts are kept alive here while their items sit on the stack.
    let mut arena: Vec<std::rc::Rc<Value>> = Vec::new();
    let mut stack: Vec<(*const Value, bool, usize)> = vec![(value as *const Value, keys.is_none(), 0)];
    let mut count = 0usize;
    while let Some((ptr, inside, depth)) = stack.pop() {
        if count >= MAX_TEXTS {
            break;
        }
        // SAFETY: every pointer on the stack points into `value` or into an Rc in `arena`,
        // both alive until this function returns; nothing is mutated meanwhile.
        let item: &Value = unsafe { &*ptr };
        match item {
            Value::Str(s) => {
                if inside {
                    count += 1;
                    if visit(s) {
                        return Ok(());
                    }
                }
                if depth < MAX_JSON_TEXT_DEPTH
                    && pystr::len(s) <= MAX_JSON_TEXT_LENGTH
                    && looks_like_json(s)
                {
                    match json::parse(s, Mode::Python) {
                        Ok(parsed) => {
                            let rc = std::rc::Rc::new(parsed);
                            stack.push((&*rc as *const Value, inside, depth + 1));
                            arena.push(rc);
                        }
                        Err(ParseError::Invalid(_)) => {}
                        Err(ParseError::Unsupported(why)) => return Err(Unsupported(why)),
                    }
                }
            }
            Value::Array(items) => {
                for v in items.iter().rev() {
                    stack.push((v as *const Value, inside, depth));
                }
            }
            Value::Object(members) => {
                for (name, v) in members.iter().rev() {
                    let under = inside || matches(name);
                    if under {
                        count += 1;
                        if visit(name) {
                            return Ok(());
                        }
                    }
                    stack.push((v as *const Value, under, depth));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding() {
        assert_eq!(fold("ADMIN"), "admin");
        assert_eq!(fold("ａｄｍｉｎ"), "admin");
        assert_eq!(fold("ad\u{200b}min"), "admin");
        assert_eq!(skeleton("\u{430}dmin"), "admin");
        assert!(is_suspicious("\u{430}dmin").is_some());
        assert!(is_suspicious("café").is_none());
    }
}
