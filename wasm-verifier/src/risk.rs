//! risk.py: the four-factor score, its level, and every reason behind it.

use crate::catalogue::{self, points, Catalogue, Profile, RuleOp, FACTORS, UNKNOWN_READ_DEFAULTS};
use crate::glob;
use crate::json::{self, Value};
use crate::pystr;
use crate::textfold;
use crate::Fallback;

pub use crate::limits::patterns::MAX_PATTERN_LENGTH;
pub use crate::limits::risk::*; // MEDIUM_FROM, HIGH_FROM and the MAX_* bounds of risk.py
const LABELS: [&str; 4] = ["Action type", "Reversibility", "Blast radius", "Sensitivity"];
const SUSPICIOUS_RAISE: [(&str, &str); 2] = [("reversibility", "unknown"), ("sensitivity", "regulated")];

pub fn forced_category(category: &str) -> bool {
    category == "financial" || category == "auth"
}

/// What scoring and evaluation read of an action bundle.
#[derive(Clone, Debug)]
pub struct Bundle {
    pub tool: String,
    pub service: Value,
    pub operation: Value,
    pub arguments: Value,
    pub framework: Value,
    pub session_id: Value,
    pub resource: Value,
    pub context: Value,
    pub server: Option<String>,
}

impl Bundle {
    pub fn from_value(v: &Value) -> Result<Bundle, String> {
        let field = |k: &str| v.get(k).cloned().unwrap_or(Value::Null);
        let tool = v.get("tool").and_then(|t| t.as_str()).ok_or("bundle.tool must be a string")?;
        let server = match v.get("server") {
            None | Some(Value::Null) => None,
            Some(Value::Str(s)) => Some(s.clone()),
            Some(_) => return Err("bundle.server must be a string or null".into()),
        };
        Ok(Bundle {
            tool: tool.to_string(),
            service: field("service"),
            operation: field("operation"),
            arguments: field("arguments"),
            framework: field("framework"),
            session_id: field("session_id"),
            resource: field("resource"),
            context: field("context"),
            server,
        })
    }
}

#[derive(Clone, Debug)]
pub struct Risk {
    pub score: i128,
    pub level: String,
    pub category: String,
    pub factors: [i128; 4],
    pub choices: [String; 4],
    pub reasons: Vec<String>,
    pub forced_high: bool,
}

impl Risk {
    pub fn to_value(&self) -> Value {
        let pairs = |vals: Vec<Value>| {
            Value::Object(FACTORS.iter().map(|f| f.to_string()).zip(vals).collect())
        };
        json::obj(vec![
            ("score", Value::Int(self.score)),
            ("level", Value::str(&self.level)),
            ("category", Value::str(&self.category)),
            ("factors", pairs(self.factors.iter().map(|p| Value::Int(*p)).collect())),
            ("reasons", Value::Array(self.reasons.iter().map(|r| Value::str(r)).collect())),
            ("choices", pairs(self.choices.iter().map(|c| Value::str(c)).collect())),
            ("forced_high", Value::Bool(self.forced_high)),
        ])
    }
}

pub fn level_for(score: i128, category: &str) -> &'static str {
    if forced_category(category) || score >= HIGH_FROM {
        "HIGH"
    } else if score >= MEDIUM_FROM {
        "MEDIUM"
    } else {
        "LOW"
    }
}

/// `key in some_dict` in Python: a list or dict key raises TypeError (unhashable).
pub fn hashable(value: &Value) -> Result<(), Fallback> {
    match value {
        Value::Array(_) => Err(Fallback::raises("unhashable type: 'list'")),
        Value::Object(_) => Err(Fallback::raises("unhashable type: 'dict'")),
        _ => Ok(()),
    }
}

/// `risk.validate_override`: the problems with one override (empty when valid).
pub fn validate_override(o: &Value) -> Result<Vec<String>, Fallback> {
    let members = match o.as_object() {
        Some(m) => m,
        None => return Ok(vec!["expected an object {tool, set, reason?}".to_string()]),
    };
    let mut unknown: Vec<&String> =
        members.iter().map(|(k, _)| k).filter(|k| !["tool", "set", "reason"].contains(&k.as_str())).collect();
    unknown.sort();
    let mut problems: Vec<String> =
        unknown.iter().map(|k| format!("unknown key {}", pystr::repr_str(k))).collect();
    match o.get("tool") {
        Some(Value::Str(t)) if (1..=MAX_PATTERN_LENGTH).contains(&pystr::len(t)) => {}
        _ => problems.push(format!("tool must be a glob of 1-{} characters", MAX_PATTERN_LENGTH)),
    }
    match o.get("set") {
        Some(Value::Object(sets)) if !sets.is_empty() => {
            for (factor, option) in sets {
                if catalogue::options(factor).is_none() {
                    problems.push(format!(
                        "set: unknown factor {} (expected one of {})",
                        pystr::repr_str(factor),
                        FACTORS.join(", ")
                    ));
                    continue;
                }
                hashable(option)?;
                let known = option.as_str().map_or(false, |s| points(factor, s).is_some());
                if !known {
                    problems.push(format!(
                        "set.{}: unknown option {} (expected one of {})",
                        factor,
                        pystr::repr(option),
                        catalogue::option_names(factor).join(", ")
                    ));
                }
            }
        }
        _ => problems.push("set must be a non-empty object of factor -> option".to_string()),
    }
    match o.get("reason") {
        None => {}
        Some(Value::Str(r)) if pystr::len(r) <= MAX_OVERRIDE_REASON => {}
        _ => problems.push(format!(
            "reason must be a string of at most {} characters",
            MAX_OVERRIDE_REASON
        )),
    }
    Ok(problems)
}

fn factor_index(factor: &str) -> usize {
    FACTORS.iter().position(|f| *f == factor).unwrap_or(0)
}

/// `risk.assess`.
pub fn assess(bundle: &Bundle, catalogue: &Catalogue, overrides: &[Value]) -> Result<Risk, Fallback> {
    for (i, o) in overrides.iter().enumerate() {
        let problems = validate_override(o)?;
        if !problems.is_empty() {
            return Err(Fallback::raises(&format!("risk override {}: {}", i, problems.join("; "))));
        }
    }
    let tool = bundle.tool.as_str();
    let empty = Value::Object(Vec::new());
    let arguments = if bundle.arguments.is_object() { &bundle.arguments } else { &empty };
    let profile = catalogue.profile_for(tool)?;
    let mut choices = profile.choices();
    let default_source = if profile.known {
        "from the catalogue"
    } else {
        "the default for tools not in the catalogue"
    };
    let mut source: [String; 4] = [
        default_source.to_string(),
        default_source.to_string(),
        default_source.to_string(),
        default_source.to_string(),
    ];
    let mut reasons: Vec<String> = vec![if profile.known {
        format!(
            "{} matches catalogue entry {}: {}",
            tool,
            pystr::repr_str(profile.pattern.as_deref().unwrap_or("")),
            profile.description
        )
    } else {
        profile.description.clone()
    }];
    if let Some(server) = &bundle.server {
        reasons.push(format!(
            "MCP server {} is the agent's claim, not proven: the tool was scored as {}",
            pystr::repr_str(server),
            tool
        ));
    }
    let raise = |choices: &mut [String; 4], source: &mut [String; 4], factor: &str, option: &str, why: &str| {
        let k = factor_index(factor);
        if points(factor, option).unwrap_or(0) > points(factor, &choices[k]).unwrap_or(0) {
            choices[k] = option.to_string();
            source[k] = why.to_string();
        }
    };
    if !profile.known && profile.category == "read" && profile.reversibility == "reversible" {
        if let Some(word) = secret_word_in(arguments) {
            let why = format!(
                "because an argument mentions {}: it may expose secrets",
                pystr::repr_str(&word)
            );
            for (factor, option) in UNKNOWN_READ_DEFAULTS.iter() {
                raise(&mut choices, &mut source, factor, option, &why);
            }
        }
    }
    for rule in &profile.rules {
        if !rule_holds(rule, arguments) {
            continue;
        }
        let why = format!("because {}", rule.reason);
        for (factor, option) in &rule.sets {
            raise(&mut choices, &mut source, factor, option, &why);
        }
    }
    if let Some(why) = disguised(arguments)? {
        let why = format!("because {}", why);
        for (factor, option) in SUSPICIOUS_RAISE.iter() {
            raise(&mut choices, &mut source, factor, option, &why);
        }
    }
    let protected = forced_category(&choices[0]);
    let canonical = catalogue.canonical_tool(tool);
    let mut names = vec![tool.to_string(), canonical];
    names.sort();
    names.dedup();
    for o in overrides {
        let pattern = o.get("tool").and_then(|t| t.as_str()).unwrap_or("");
        let compiled = glob::Glob::compile(pattern).map_err(|e| Fallback::raises(&e.0))?;
        if !names.iter().any(|n| compiled.matches(n)) {
            continue;
        }
        let mut why = format!("set by the policy override for {}", pystr::repr_str(pattern));
        if let Some(Value::Str(r)) = o.get("reason") {
            if !r.is_empty() {
                why.push_str(": ");
                why.push_str(r);
            }
        }
        if let Some(Value::Object(sets)) = o.get("set") {
            for (factor, option) in sets {
                let option = option.as_str().unwrap_or("");
                if factor == "action_type" && protected && !forced_category(option) {
                    let current = choices[0].clone();
                    reasons.push(format!(
                        "Ignored the action type {}: it would move a {} action to {}, and {} actions stay HIGH",
                        why, current, option, current
                    ));
                    continue;
                }
                let k = factor_index(factor);
                choices[k] = option.to_string();
                source[k] = why.clone();
            }
        }
    }
    let factors: [i128; 4] = [
        points(FACTORS[0], &choices[0]).unwrap_or(0),
        points(FACTORS[1], &choices[1]).unwrap_or(0),
        points(FACTORS[2], &choices[2]).unwrap_or(0),
        points(FACTORS[3], &choices[3]).unwrap_or(0),
    ];
    let score: i128 = factors.iter().sum();
    let category = choices[0].clone();
    let forced_high = protected || forced_category(&category);
    let level = if forced_high { "HIGH" } else { level_for(score, &category) };
    for k in 0..4 {
        reasons.push(format!("{}: {} (+{}), {}", LABELS[k], choices[k], factors[k], source[k]));
    }
    let shown = shown_arguments(&profile, arguments);
    if !shown.is_empty() {
        reasons.push(format!("Arguments: {}", shown));
    }
    if forced_high {
        reasons.push(format!(
            "Forced HIGH: {} actions are always HIGH, whatever the score ({})",
            category, score
        ));
    }
    Ok(Risk {
        score,
        level: level.to_string(),
        category,
        factors,
        choices,
        reasons,
        forced_high,
    })
}

enum Looked<'a> {
    Absent,
    Found(&'a Value),
}

fn lookup<'a>(arguments: &'a Value, path: &str) -> Looked<'a> {
    let mut value = arguments;
    for key in path.split('.') {
        match value.get(key) {
            Some(v) if value.is_object() => value = v,
            _ => return Looked::Absent,
        }
    }
    Looked::Found(value)
}

/// risk.count_items: how many things an argument names.
fn count_items(value: Option<&Value>) -> i128 {
    match value {
        None | Some(Value::Null) => 0,
        Some(Value::Str(s)) => s
            .split(|c| c == ',' || c == ';')
            .filter(|part| !pystr::strip_ws(part).is_empty())
            .count() as i128,
        Some(Value::Array(items)) => items.iter().map(|v| count_items(Some(v))).sum(),
        Some(_) => 1,
    }
}

fn same(value: &Value, expected: &Value) -> bool {
    match (value, expected) {
        (Value::Str(a), Value::Str(b)) => pystr::lower(pystr::strip_ws(a)) == pystr::lower(b),
        (Value::Bool(a), Value::Bool(b)) => a == b,
        (Value::Bool(_), _) | (_, Value::Bool(_)) => false,
        (a, b) if a.is_number() && b.is_number() => json::num_eq(a, b),
        _ => false,
    }
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Str(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

pub fn rule_holds(rule: &catalogue::Rule, arguments: &Value) -> bool {
    let values: Vec<Looked> = rule.args.iter().map(|p| lookup(arguments, p)).collect();
    if rule.op == RuleOp::CountGte {
        let total: i128 = values
            .iter()
            .map(|v| match v {
                Looked::Absent => 0,
                Looked::Found(v) => count_items(Some(v)),
            })
            .sum();
        return json::num_cmp(&Value::Int(total), &rule.operand)
            .map_or(false, |o| o != core::cmp::Ordering::Less);
    }
    let present: Vec<&Value> = values
        .iter()
        .filter_map(|v| match v {
            Looked::Absent => None,
            Looked::Found(v) => Some(*v),
        })
        .collect();
    if rule.op == RuleOp::Present {
        return present.iter().any(|v| !is_empty_value(v));
    }
    let mut scalars: Vec<&Value> = Vec::new();
    for v in &present {
        match v {
            Value::Array(items) => scalars.extend(items.iter()),
            other => scalars.push(other),
        }
    }
    match rule.op {
        RuleOp::Equals => scalars.iter().any(|s| same(s, &rule.operand)),
        RuleOp::In => {
            let operands = rule.operand.as_array().map(|a| a.as_slice()).unwrap_or(&[]);
            scalars.iter().any(|s| operands.iter().any(|o| same(s, o)))
        }
        _ => {
            let texts: Vec<String> = scalars.iter().filter_map(|s| s.as_str()).map(pystr::lower).collect();
            let needles: Vec<String> = rule
                .operand
                .as_array()
                .map(|a| a.iter().filter_map(|n| n.as_str()).map(pystr::lower).collect())
                .unwrap_or_default();
            texts.iter().any(|t| needles.iter().any(|n| t.contains(n.as_str())))
        }
    }
}

fn secret_word_in(arguments: &Value) -> Option<String> {
    let mut stack: Vec<&Value> = vec![arguments];
    let mut seen = 0;
    while seen < MAX_SCANNED_STRINGS {
        let value = match stack.pop() {
            Some(v) => v,
            None => break,
        };
        match value {
            Value::Str(s) => {
                seen += 1;
                let lowered = pystr::lower(s);
                let tokens: Vec<&str> = lowered
                    .split(|c: char| !(c.is_ascii_digit() || c.is_ascii_lowercase()))
                    .collect();
                if let Some(word) = catalogue::sensitive_word(&tokens) {
                    return Some(word);
                }
            }
            Value::Object(members) => stack.extend(members.iter().map(|(_, v)| v)),
            Value::Array(items) => stack.extend(items.iter()),
            _ => {}
        }
    }
    None
}

fn all_ascii(value: &Value) -> bool {
    match value {
        Value::Str(s) => s.is_ascii(),
        Value::Array(items) => items.iter().all(all_ascii),
        Value::Object(members) => members.iter().all(|(k, v)| k.is_ascii() && all_ascii(v)),
        _ => true,
    }
}

fn disguised(arguments: &Value) -> Result<Option<String>, Fallback> {
    if all_ascii(arguments) {
        return Ok(None);
    }
    let mut judged = 0;
    let mut found: Option<String> = None;
    textfold::texts(arguments, None, |text| {
        if text.is_ascii() {
            return false;
        }
        if let Some(why) = textfold::is_suspicious(text) {
            found = Some(format!("an argument may be disguised: {}", why));
            return true;
        }
        judged += 1;
        judged >= MAX_JUDGED_TEXTS
    })
    .map_err(|u| Fallback::unsupported(&u.0))?;
    Ok(found)
}

fn shown_arguments(profile: &Profile, arguments: &Value) -> String {
    let mut parts = Vec::new();
    for name in &profile.show_args {
        if let Some(value) = arguments.get(name) {
            let mut text = json::py_dumps(value);
            if pystr::len(&text) > MAX_SHOWN_VALUE {
                text = format!("{}\u{2026}", pystr::prefix(&text, MAX_SHOWN_VALUE - 1));
            }
            parts.push(format!("{}={}", name, text));
        }
    }
    parts.join(", ")
}
