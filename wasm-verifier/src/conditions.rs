//! policy_conditions.py: validation and evaluation of a rule's `when`.

use crate::glob::{Glob, GlobError};
use crate::json::{self, Value};
use crate::pystr;
use crate::textfold::{self, fold, skeleton};
use crate::Fallback;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub use crate::limits::conditions::*; // the MAX_* bounds of policy_conditions.py
pub use crate::limits::patterns::MAX_PATTERN_LENGTH;

pub const TOP_FIELDS: [&str; 13] = [
    "resource", "framework", "session_id", "tool", "service", "operation", "risk.score",
    "risk.level", "risk.category", "server", "agent", "arguments", "context",
];
const OPS: [&str; 16] = [
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "text_glob", "text_in",
    "confusable_with", "contains", "exists", "glob", "count_gte", "domain_not_in",
];
const TEXT_OPS: [&str; 3] = ["text_glob", "text_in", "confusable_with"];
const NUMBER_OPS: [&str; 4] = ["gt", "gte", "lt", "lte"];
const ADDRESS_SEPARATORS: &str = " \t\r\n,;<>\"'()[]";

#[derive(Clone, Debug, PartialEq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: &str) -> FieldError {
        FieldError { field: field.to_string(), message: message.to_string() }
    }
    pub fn to_value(&self) -> Value {
        json::obj(vec![("field", Value::str(&self.field)), ("message", Value::str(&self.message))])
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::Str(_) | Value::Bool(_) | Value::Int(_) | Value::Float(_))
}

fn valid_field(path: &Value) -> bool {
    let path = match path.as_str() {
        Some(p) => p,
        None => return false,
    };
    if TOP_FIELDS.contains(&path) {
        return true;
    }
    let (root, rest) = match path.find('.') {
        Some(at) => (&path[..at], &path[at + 1..]),
        None => return false,
    };
    if root != "arguments" && root != "context" {
        return false;
    }
    let segments: Vec<&str> = rest.split('.').collect();
    segments.len() <= MAX_FIELD_SEGMENTS && segments.iter().all(|s| !s.is_empty())
}

fn sorted_top_fields() -> String {
    let mut fields = TOP_FIELDS.to_vec();
    fields.sort_unstable();
    fields.join(", ")
}

fn check_operand(op: &str, operand: &Value, where_: &str, errors: &mut Vec<FieldError>) {
    let mut bad = |m: String| errors.push(FieldError { field: where_.to_string(), message: m });
    if let Value::Str(s) = operand {
        if pystr::len(s) > MAX_OPERAND_STRING {
            bad(format!("string longer than {} characters", MAX_OPERAND_STRING));
            return;
        }
    }
    if op == "eq" || op == "ne" || op == "contains" {
        if !is_scalar(operand) {
            bad(format!("expected a string, number or boolean, found {}", operand.type_name()));
        }
    } else if NUMBER_OPS.contains(&op) {
        if !operand.is_number() {
            bad(format!("expected a number, found {}", operand.type_name()));
        }
    } else if op == "count_gte" {
        if !matches!(operand, Value::Int(i) if *i >= 0) {
            bad("expected a non-negative integer".to_string());
        }
    } else if op == "exists" {
        if !matches!(operand, Value::Bool(_)) {
            bad("expected true or false".to_string());
        }
    } else if op == "glob" {
        if !matches!(operand, Value::Str(s) if (1..=MAX_PATTERN_LENGTH).contains(&pystr::len(s))) {
            bad(format!("expected a glob string of 1-{} characters", MAX_PATTERN_LENGTH));
        }
    } else if TEXT_OPS.contains(&op) {
        let single = [operand.clone()];
        let items: &[Value] = match operand {
            Value::Array(a) => a,
            _ => &single,
        };
        let limit = if op == "text_glob" { MAX_PATTERN_LENGTH } else { MAX_OPERAND_STRING };
        if (op == "text_in" && operand.as_array().is_none())
            || !(1..=MAX_BRANCHES).contains(&items.len())
        {
            bad(format!(
                "expected {} of 1-{} strings",
                if op == "text_in" { "a list" } else { "a string or a list" },
                MAX_BRANCHES
            ));
        } else if !items.iter().all(|v| {
            matches!(v, Value::Str(s) if (1..=limit).contains(&pystr::len(s)) && !fold(s).is_empty())
        }) {
            bad(format!("expected strings of 1-{} characters, not blank once folded", limit));
        }
    } else if op == "in" || op == "not_in" || op == "domain_not_in" {
        let want_str = op == "domain_not_in";
        match operand {
            Value::Array(items) if items.len() <= MAX_BRANCHES => {
                let ok = items.iter().all(|v| {
                    if want_str {
                        matches!(v, Value::Str(s) if (1..=MAX_OPERAND_STRING).contains(&pystr::len(s)))
                    } else {
                        is_scalar(v)
                    }
                });
                if !ok {
                    bad(if want_str {
                        "expected non-empty domain strings".to_string()
                    } else {
                        "expected strings, numbers or booleans".to_string()
                    });
                }
            }
            _ => bad(format!("expected a list of at most {} items", MAX_BRANCHES)),
        }
    }
}

pub fn validate_condition(cond: &Value, where_: &str, errors: &mut Vec<FieldError>, depth: usize) {
    if depth > MAX_DEPTH {
        errors.push(FieldError::new(where_, &format!("conditions nest deeper than {} levels", MAX_DEPTH)));
        return;
    }
    let members = match cond.as_object() {
        Some(m) => m,
        None => {
            errors.push(FieldError::new(
                where_,
                &format!("expected a condition object, found {}", cond.type_name()),
            ));
            return;
        }
    };
    let branches: Vec<&str> = ["all", "any", "not"]
        .iter()
        .copied()
        .filter(|b| members.iter().any(|(k, _)| k == b))
        .collect();
    if !branches.is_empty() {
        if members.len() != 1 {
            errors.push(FieldError::new(where_, "all/any/not must be the only key of its object"));
            return;
        }
        let key = branches[0];
        let inner = &members[0].1;
        if key == "not" {
            validate_condition(inner, &format!("{}.not", where_), errors, depth + 1);
            return;
        }
        match inner {
            Value::Array(items) if (1..=MAX_BRANCHES).contains(&items.len()) => {
                for (i, item) in items.iter().enumerate() {
                    validate_condition(item, &format!("{}.{}[{}]", where_, key, i), errors, depth + 1);
                }
            }
            _ => errors.push(FieldError::new(
                &format!("{}.{}", where_, key),
                &format!("expected a list of 1-{} conditions", MAX_BRANCHES),
            )),
        }
        return;
    }
    match cond.get("field") {
        None => errors.push(FieldError::new(&format!("{}.field", where_), "a leaf condition needs a field")),
        Some(f) if !valid_field(f) => errors.push(FieldError::new(
            &format!("{}.field", where_),
            &format!(
                "unknown field {}; expected arguments.<path>, context.<path> or one of {}",
                pystr::repr(f),
                sorted_top_fields()
            ),
        )),
        _ => {}
    }
    let ops: Vec<&(String, Value)> =
        members.iter().filter(|(k, _)| k != "field" && k != "keys").collect();
    let unknown: Vec<&&(String, Value)> = ops.iter().filter(|(k, _)| !OPS.contains(&k.as_str())).collect();
    for (key, _) in unknown.iter().map(|m| (&m.0, &m.1)) {
        errors.push(FieldError::new(
            &format!("{}.{}", where_, key),
            &format!("unknown operator {}", pystr::repr_str(key)),
        ));
    }
    let known: Vec<&&(String, Value)> = ops.iter().filter(|(k, _)| OPS.contains(&k.as_str())).collect();
    if known.len() != 1 {
        if unknown.is_empty() {
            errors.push(FieldError::new(
                &format!("{}.op", where_),
                &format!("expected exactly one operator, found {}", known.len()),
            ));
        }
        return;
    }
    let (op, operand) = (known[0].0.as_str(), &known[0].1);
    check_operand(op, operand, &format!("{}.{}", where_, op), errors);
    if let Some(keys) = cond.get("keys") {
        if !TEXT_OPS.contains(&op) {
            let mut names = TEXT_OPS.to_vec();
            names.sort_unstable();
            errors.push(FieldError::new(
                &format!("{}.keys", where_),
                &format!("keys applies only to {}", names.join(", ")),
            ));
        } else {
            let ok = matches!(keys, Value::Array(k) if (1..=MAX_BRANCHES).contains(&k.len())
                && k.iter().all(|g| matches!(g, Value::Str(s) if (1..=MAX_PATTERN_LENGTH).contains(&pystr::len(s)))));
            if !ok {
                errors.push(FieldError::new(
                    &format!("{}.keys", where_),
                    &format!(
                        "expected a list of 1-{} key globs of 1-{} characters",
                        MAX_BRANCHES, MAX_PATTERN_LENGTH
                    ),
                ));
            }
        }
    }
}

// ------------------------------------------------------------------------------ evaluation

/// Globs (and folded operands) computed once per policy: operands come from the signed
/// policy, not from agents, so they are few and worth keeping.
#[derive(Default)]
pub struct GlobCache {
    plain: RefCell<HashMap<String, Result<Rc<Glob>, GlobError>>>,
    folded: RefCell<HashMap<String, Result<Rc<Glob>, GlobError>>>,
    texts: RefCell<HashMap<String, Rc<(String, String)>>>,
}

type GlobMap = RefCell<HashMap<String, Result<Rc<Glob>, GlobError>>>;

fn cached(map: &GlobMap, key: &str, make: impl FnOnce() -> String) -> Result<Rc<Glob>, Fallback> {
    let hit = map.borrow().get(key).cloned();
    let entry = match hit {
        Some(entry) => entry,
        None => {
            let entry = Glob::compile(&make()).map(Rc::new);
            map.borrow_mut().insert(key.to_string(), entry.clone());
            entry
        }
    };
    entry.map_err(|e| Fallback::raises(&e.0))
}

impl GlobCache {
    /// The glob `pattern` as written (tool patterns, `glob` operands, key skeletons).
    pub fn get(&self, pattern: &str) -> Result<Rc<Glob>, Fallback> {
        cached(&self.plain, pattern, || pattern.to_string())
    }
    /// The glob of `fold(pattern)` (a `text_glob` operand).
    pub fn folded(&self, pattern: &str) -> Result<Rc<Glob>, Fallback> {
        cached(&self.folded, pattern, || fold(pattern))
    }
    /// `(fold(text), skeleton(text))` of an operand.
    pub fn shapes(&self, text: &str) -> Rc<(String, String)> {
        if let Some(hit) = self.texts.borrow().get(text) {
            return hit.clone();
        }
        let made = Rc::new((fold(text), skeleton(text)));
        self.texts.borrow_mut().insert(text.to_string(), made.clone());
        made
    }
}

/// The flat view conditions read (`policy.action_facts`).
pub struct Facts<'a> {
    pub fields: Vec<(&'static str, &'a Value)>,
}

impl<'a> Facts<'a> {
    /// `resolve`: the value at `path`, or None for missing (JSON null counts as missing).
    fn resolve(&self, path: &str) -> Option<&'a Value> {
        if let Some((_, v)) = self.fields.iter().find(|(k, _)| *k == path) {
            return if v.is_null() { None } else { Some(*v) };
        }
        let (root, rest) = match path.find('.') {
            Some(at) => (&path[..at], &path[at + 1..]),
            None => (path, ""),
        };
        let mut value: &'a Value = match self.fields.iter().find(|(k, _)| *k == root) {
            Some((_, v)) => *v,
            None => return None,
        };
        for segment in rest.split('.') {
            match value {
                Value::Object(_) => match value.get(segment) {
                    Some(v) => value = v,
                    None => return None,
                },
                _ => return None,
            }
        }
        if value.is_null() {
            None
        } else {
            Some(value)
        }
    }
}

fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (x, y) if x.is_number() && y.is_number() => json::num_eq(x, y),
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Str(x), Value::Str(y)) => x == y,
        _ => false,
    }
}

fn ascii_lower(s: &str) -> String {
    s.chars().map(|c| c.to_ascii_lowercase()).collect()
}

fn email_domains(value: &Value) -> Vec<String> {
    let texts: Vec<&str> = match value {
        Value::Str(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    let mut domains = Vec::new();
    for text in texts {
        let mut token = String::new();
        for ch in text.chars().chain(core::iter::once(' ')) {
            if ADDRESS_SEPARATORS.contains(ch) {
                if let Some(at) = token.rfind('@') {
                    domains.push(ascii_lower(&token[at + 1..]).trim_end_matches('.').to_string());
                }
                token.clear();
            } else {
                token.push(ch);
            }
        }
    }
    domains
}

fn count_items(value: &Value) -> Option<i128> {
    match value {
        Value::Array(items) => Some(items.len() as i128),
        Value::Str(s) => Some(
            s.split(',').filter(|p| !p.trim_matches(|c| " \t\r\n".contains(c)).is_empty()).count() as i128,
        ),
        _ => None,
    }
}

fn text_leaf(op: &str, value: &Value, operand: &Value, keys: Option<&Value>, cache: &GlobCache) -> Result<bool, Fallback> {
    let single = [operand.clone()];
    let wanted: &[Value] = match operand {
        Value::Array(a) => a,
        _ => &single,
    };
    let wanted: Vec<&str> = wanted.iter().filter_map(|v| v.as_str()).collect();
    let key_globs: Option<Vec<Glob>> = match keys.and_then(|k| k.as_array()) {
        Some(ks) if !ks.is_empty() => {
            let mut globs = Vec::new();
            for k in ks {
                let shape = cache.shapes(k.as_str().unwrap_or("")).1.clone();
                globs.push((*cache.get(&shape)?).clone());
            }
            Some(globs)
        }
        _ => None,
    };
    let unsupported = |u: textfold::Unsupported| Fallback::unsupported(&u.0);
    let mut found = false;
    match op {
        "text_glob" => {
            let mut globs = Vec::new();
            for g in &wanted {
                globs.push(cache.folded(g)?);
            }
            textfold::texts(value, key_globs.as_deref(), |t| {
                let folded = fold(t);
                found = globs.iter().any(|g| g.matches(&folded));
                found
            })
            .map_err(unsupported)?;
        }
        "text_in" => {
            let targets: Vec<Rc<(String, String)>> = wanted.iter().map(|v| cache.shapes(v)).collect();
            // set.intersection consumes every text (no short cut), so walk them all
            textfold::texts(value, key_globs.as_deref(), |t| {
                if !found && {
                    let folded = fold(t);
                    targets.iter().any(|s| s.0 == folded)
                } {
                    found = true;
                }
                false
            })
            .map_err(unsupported)?;
        }
        _ => {
            let shapes: Vec<Rc<(String, String)>> = wanted.iter().map(|v| cache.shapes(v)).collect();
            textfold::texts(value, key_globs.as_deref(), |t| {
                let shape = skeleton(t);
                found = shapes.iter().any(|s| shape.contains(s.1.as_str()));
                found
            })
            .map_err(unsupported)?;
        }
    }
    Ok(found)
}

fn leaf(op: &str, value: Option<&Value>, operand: &Value, cache: &GlobCache) -> Result<bool, Fallback> {
    if op == "exists" {
        return Ok(matches!(operand, Value::Bool(b) if *b == value.is_some()));
    }
    let value = match value {
        None => return Ok(false),
        Some(v) => v,
    };
    Ok(match op {
        "eq" => json_equal(value, operand),
        "ne" => {
            let same_type = (value.is_number() && operand.is_number())
                || matches!((value, operand), (Value::Str(_), Value::Str(_)) | (Value::Bool(_), Value::Bool(_)));
            same_type && !json_equal(value, operand)
        }
        "gt" | "gte" | "lt" | "lte" => {
            if !value.is_number() {
                return Ok(false);
            }
            use core::cmp::Ordering::*;
            match json::num_cmp(value, operand) {
                None => false,
                Some(o) => match op {
                    "gt" => o == Greater,
                    "gte" => o != Less,
                    "lt" => o == Less,
                    _ => o != Greater,
                },
            }
        }
        "in" => {
            is_scalar(value) && operand.as_array().map_or(false, |a| a.iter().any(|v| json_equal(value, v)))
        }
        "not_in" => {
            is_scalar(value) && !operand.as_array().map_or(false, |a| a.iter().any(|v| json_equal(value, v)))
        }
        "contains" => match value {
            Value::Str(s) => matches!(operand, Value::Str(o) if s.contains(o.as_str())),
            Value::Array(items) => items.iter().any(|i| json_equal(i, operand)),
            _ => false,
        },
        "glob" => match value {
            // the pattern is the policy's operand: compiled once per policy
            Value::Str(s) => {
                let pattern = operand.as_str().unwrap_or("");
                cache.get(pattern)?.matches(s)
            }
            _ => false,
        },
        "count_gte" => match count_items(value) {
            Some(n) => json::num_cmp(&Value::Int(n), operand).map_or(false, |o| o != core::cmp::Ordering::Less),
            None => false,
        },
        "domain_not_in" => {
            let allowed: Vec<String> = operand
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|d| d.as_str())
                        .map(|d| ascii_lower(d).trim_end_matches('.').to_string())
                        .collect()
                })
                .unwrap_or_default();
            email_domains(value).iter().any(|d| !allowed.contains(d))
        }
        _ => false,
    })
}

pub fn condition_holds(cond: &Value, facts: &Facts, cache: &GlobCache) -> Result<bool, Fallback> {
    if let Some(items) = cond.get("all") {
        for c in items.as_array().map(|a| a.as_slice()).unwrap_or(&[]) {
            if !condition_holds(c, facts, cache)? {
                return Ok(false);
            }
        }
        return Ok(true);
    }
    if let Some(items) = cond.get("any") {
        for c in items.as_array().map(|a| a.as_slice()).unwrap_or(&[]) {
            if condition_holds(c, facts, cache)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if let Some(inner) = cond.get("not") {
        return Ok(!condition_holds(inner, facts, cache)?);
    }
    let members = cond.as_object().map(|m| m.as_slice()).unwrap_or(&[]);
    let (op, operand) = match members.iter().find(|(k, _)| k != "field" && k != "keys") {
        Some((k, v)) => (k.as_str(), v),
        None => return Err(Fallback::raises("a condition without an operator")),
    };
    let path = cond.get("field").and_then(|f| f.as_str()).unwrap_or("");
    let value = facts.resolve(path);
    if TEXT_OPS.contains(&op) {
        return match value {
            None => Ok(false),
            Some(v) => text_leaf(op, v, operand, cond.get("keys"), cache),
        };
    }
    leaf(op, value, operand, cache)
}
