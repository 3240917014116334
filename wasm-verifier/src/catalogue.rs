//! catalogue.py: tool globs mapped to risk profiles, and the verb-based guess for tools
//! the catalogue does not list. The catalogue's JSON is handed over by the bridge at
//! boot (the same file the Python reference loaded and validated).

use crate::glob::Glob;
use crate::json::Value;
use crate::pystr;
use crate::Fallback;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

pub const FACTORS: [&str; 4] = ["action_type", "reversibility", "blast_radius", "sensitivity"];
const ACTION_TYPE: [(&str, i128); 5] =
    [("read", 0), ("write", 20), ("delete", 35), ("financial", 40), ("auth", 40)];
const REVERSIBILITY: [(&str, i128); 3] = [("reversible", 0), ("unknown", 15), ("irreversible", 25)];
const BLAST_RADIUS: [(&str, i128); 3] = [("single", 0), ("multiple", 12), ("system", 20)];
const SENSITIVITY: [(&str, i128); 4] =
    [("public", 0), ("internal", 5), ("confidential", 10), ("regulated", 15)];

pub fn options(factor: &str) -> Option<&'static [(&'static str, i128)]> {
    match factor {
        "action_type" => Some(&ACTION_TYPE),
        "reversibility" => Some(&REVERSIBILITY),
        "blast_radius" => Some(&BLAST_RADIUS),
        "sensitivity" => Some(&SENSITIVITY),
        _ => None,
    }
}

/// `FACTOR_POINTS[factor][option]`.
pub fn points(factor: &str, option: &str) -> Option<i128> {
    options(factor)?.iter().find(|(o, _)| *o == option).map(|(_, p)| *p)
}

pub fn option_names(factor: &str) -> Vec<&'static str> {
    options(factor).map(|o| o.iter().map(|(n, _)| *n).collect()).unwrap_or_default()
}

const READ_VERBS: [&str; 12] = [
    "get", "list", "read", "search", "fetch", "find", "describe", "view", "query", "retrieve",
    "lookup", "show",
];
const WRITE_VERBS: [&str; 35] = [
    "create", "update", "send", "post", "write", "put", "edit", "upload", "add", "set", "modify",
    "comment", "reply", "move", "copy", "rename", "close", "archive", "cancel", "approve", "merge",
    "reset", "disable", "enable", "run", "execute", "deploy", "publish", "submit", "import",
    "export", "sync", "assign", "lock", "unlock",
];
const DELETE_VERBS: [&str; 8] = ["delete", "remove", "destroy", "drop", "purge", "trash", "wipe", "erase"];
const FINANCIAL_VERBS: [&str; 9] = [
    "pay", "charge", "transfer", "refund", "payout", "purchase", "buy", "withdraw", "invoice",
];
const AUTH_VERBS: [&str; 9] =
    ["grant", "revoke", "invite", "share", "impersonate", "elevate", "promote", "sudo", "assume"];

fn verb_category(verb: &str) -> Option<&'static str> {
    if READ_VERBS.contains(&verb) {
        Some("read")
    } else if WRITE_VERBS.contains(&verb) {
        Some("write")
    } else if DELETE_VERBS.contains(&verb) {
        Some("delete")
    } else if FINANCIAL_VERBS.contains(&verb) {
        Some("financial")
    } else if AUTH_VERBS.contains(&verb) {
        Some("auth")
    } else {
        None
    }
}

const AUTH_WORDS: [&str; 10] = [
    "admin", "admins", "administrator", "administrators", "permission", "permissions", "role",
    "roles", "privilege", "privileges",
];
const SENSITIVE_WORDS: [&str; 52] = [
    "secret", "secrets", "credential", "credentials", "cred", "creds", "key", "keys", "apikey",
    "apikeys", "privatekey", "token", "tokens", "password", "passwords", "passwd", "passphrase",
    "otp", "totp", "mfa", "2fa", "cert", "certs", "certificate", "certificates", "ssh", "pgp", "gpg",
    "vault", "keyvault", "kms", "keychain", "keyring", "secretmanager", "1password", "onepassword",
    "lastpass", "bitwarden", "payment", "payments", "card", "cards", "iban", "bank", "billing",
    "ssn", "salary", "payroll", "admin", "admins", "administrator", "sudo",
];
const COMPOUND_WORDS: [&str; 2] = ["and", "then"];

pub const PLAIN_READ_DEFAULTS: [(&str, &str); 3] =
    [("reversibility", "reversible"), ("blast_radius", "single"), ("sensitivity", "confidential")];
pub const UNKNOWN_READ_DEFAULTS: [(&str, &str); 3] =
    [("reversibility", "unknown"), ("blast_radius", "single"), ("sensitivity", "regulated")];
const UNKNOWN_CHANGE_DEFAULTS: [(&str, &str); 3] =
    [("reversibility", "unknown"), ("blast_radius", "multiple"), ("sensitivity", "confidential")];

#[derive(Clone, Debug, PartialEq)]
pub enum RuleOp {
    Present,
    CountGte,
    Equals,
    In,
    ContainsAny,
}

#[derive(Clone, Debug)]
pub struct Rule {
    pub args: Vec<String>,
    pub op: RuleOp,
    pub operand: Value,
    pub sets: Vec<(String, String)>,
    pub reason: String,
}

#[derive(Clone, Debug)]
pub struct Profile {
    pub pattern: Option<String>,
    pub category: String,
    pub reversibility: String,
    pub blast_radius: String,
    pub sensitivity: String,
    pub description: String,
    pub rules: Vec<Rule>,
    pub show_args: Vec<String>,
    pub known: bool,
}

impl Profile {
    /// Factor -> option, before any argument rule or override (FACTORS order).
    pub fn choices(&self) -> [String; 4] {
        [
            self.category.clone(),
            self.reversibility.clone(),
            self.blast_radius.clone(),
            self.sensitivity.clone(),
        ]
    }
}

pub struct Catalogue {
    /// Most specific first (the reference's order); each glob compiled, or why not.
    order: Vec<(Result<Glob, String>, Rc<Profile>)>,
    aliases: Vec<(String, String)>,
    /// Profiles found per tool name (the reference keeps an LRU of 1024 too).
    found: RefCell<HashMap<String, Rc<Profile>>>,
}

const LOOKUP_CACHE_SIZE: usize = 1024;

/// Lower-cased words of a name, split on `.`, `_` and `-`.
pub fn name_tokens(text: &str) -> Vec<String> {
    pystr::lower(text)
        .split(|c| c == '.' || c == '_' || c == '-')
        .filter(|t| !t.is_empty())
        .map(|t| t.to_string())
        .collect()
}

pub fn sensitive_word<S: AsRef<str>>(tokens: &[S]) -> Option<String> {
    tokens.iter().map(|t| t.as_ref()).find(|t| SENSITIVE_WORDS.contains(t)).map(|t| t.to_string())
}

fn partition_dot(tool: &str) -> (&str, bool, &str) {
    match tool.find('.') {
        Some(at) => (&tool[..at], true, &tool[at + 1..]),
        None => (tool, false, ""),
    }
}

pub fn classify_unknown(tool: &str) -> Profile {
    let (service, dot, operation) = partition_dot(tool);
    let tokens = name_tokens(if dot { operation } else { tool });
    let auth_word = tokens.iter().find(|t| AUTH_WORDS.contains(&t.as_str()));
    let verb = tokens.first().map(|s| s.as_str()).unwrap_or("");
    let (category, basis) = if let Some(word) = auth_word {
        ("auth", format!("the word {} in the operation", pystr::repr_str(word)))
    } else if let Some(category) = verb_category(verb) {
        (category, format!("the leading verb {}", pystr::repr_str(verb)))
    } else {
        ("write", "no recognised verb (treated as a write)".to_string())
    };
    let (defaults, how) = if category != "read" {
        (UNKNOWN_CHANGE_DEFAULTS, "with conservative defaults".to_string())
    } else if let Some(other) = tokens.iter().skip(1).find(|t| {
        COMPOUND_WORDS.contains(&t.as_str()) || verb_category(t).unwrap_or("read") != "read"
    }) {
        (
            UNKNOWN_READ_DEFAULTS,
            format!("with conservative defaults (it also says {})", pystr::repr_str(other)),
        )
    } else {
        let words: Vec<String> = if dot {
            let mut all = name_tokens(service);
            all.extend(tokens.iter().cloned());
            all
        } else {
            tokens.clone()
        };
        match sensitive_word(&words) {
            Some(word) => (
                UNKNOWN_READ_DEFAULTS,
                format!(
                    "with conservative defaults (the name says {}: it may expose secrets)",
                    pystr::repr_str(&word)
                ),
            ),
            None => (PLAIN_READ_DEFAULTS, "as a plain read: it changes nothing".to_string()),
        }
    };
    Profile {
        pattern: None,
        category: category.to_string(),
        reversibility: defaults[0].1.to_string(),
        blast_radius: defaults[1].1.to_string(),
        sensitivity: defaults[2].1.to_string(),
        description: format!(
            "{} is not in the catalogue: classified as {} from {}, {}",
            tool, category, basis, how
        ),
        rules: Vec::new(),
        show_args: Vec::new(),
        known: false,
    }
}

fn text(entry: &Value, key: &str, where_: &str) -> Result<String, String> {
    entry
        .get(key)
        .and_then(|v| v.as_str())
        .map(|s| s.to_string())
        .ok_or_else(|| format!("{}: {} must be a string", where_, key))
}

fn parse_rule(raw: &Value, where_: &str) -> Result<Rule, String> {
    let when = raw.get("when").ok_or_else(|| format!("{}: missing when", where_))?;
    let members = when.as_object().ok_or_else(|| format!("{}: when must be an object", where_))?;
    let args = match when.get("arg") {
        Some(Value::Str(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|a| a.as_str().map(|s| s.to_string()))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| format!("{}: when.arg must name arguments", where_))?,
        _ => return Err(format!("{}: when.arg must name arguments", where_)),
    };
    let ops: Vec<&(String, Value)> = members.iter().filter(|(k, _)| k != "arg").collect();
    if ops.len() != 1 {
        return Err(format!("{}: when needs exactly one operator", where_));
    }
    let (name, operand) = (ops[0].0.as_str(), ops[0].1.clone());
    let op = match name {
        "present" => RuleOp::Present,
        "count_gte" => RuleOp::CountGte,
        "equals" => RuleOp::Equals,
        "in" => RuleOp::In,
        "contains_any" => RuleOp::ContainsAny,
        other => return Err(format!("{}: unknown operator {}", where_, other)),
    };
    let sets = raw
        .get("set")
        .and_then(|s| s.as_object())
        .ok_or_else(|| format!("{}: set must be an object", where_))?
        .iter()
        .map(|(f, o)| {
            let option = o.as_str().unwrap_or("");
            if points(f, option).is_none() {
                Err(format!("{}: bad set {}", where_, f))
            } else {
                Ok((f.clone(), option.to_string()))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Rule { args, op, operand, sets, reason: text(raw, "reason", where_)? })
}

impl Catalogue {
    /// The catalogue the reference validated (`Catalogue.from_dict`); structural checks only.
    pub fn from_value(data: &Value) -> Result<Catalogue, String> {
        let tools = data.get("tools").and_then(|t| t.as_object()).ok_or("catalogue: no tools")?;
        let mut entries: Vec<(String, Profile)> = Vec::new();
        for (pattern, entry) in tools {
            let where_ = format!("catalogue entry {}", pystr::repr_str(pattern));
            let mut rules = Vec::new();
            if let Some(raw_rules) = entry.get("rules") {
                let list = raw_rules.as_array().ok_or(format!("{}: rules must be a list", where_))?;
                for (i, raw) in list.iter().enumerate() {
                    rules.push(parse_rule(raw, &format!("{} rule {}", where_, i))?);
                }
            }
            let show_args = match entry.get("show_args") {
                None => Vec::new(),
                Some(v) => v
                    .as_array()
                    .and_then(|a| a.iter().map(|s| s.as_str().map(|s| s.to_string())).collect())
                    .ok_or(format!("{}: show_args must be names", where_))?,
            };
            let profile = Profile {
                pattern: Some(pattern.clone()),
                category: text(entry, "category", &where_)?,
                reversibility: text(entry, "reversibility", &where_)?,
                blast_radius: text(entry, "blast_radius", &where_)?,
                sensitivity: text(entry, "sensitivity", &where_)?,
                description: text(entry, "description", &where_)?,
                rules,
                show_args,
                known: true,
            };
            for (factor, option) in FACTORS.iter().zip(profile.choices().iter()) {
                if points(factor, option).is_none() {
                    return Err(format!("{}: bad {}", where_, factor));
                }
            }
            entries.push((pattern.clone(), profile));
        }
        // most specific first; ties: longer, then code-point order (catalogue.py)
        entries.sort_by(|a, b| {
            let ka = (-(crate::glob::specificity(&a.0) as i64), -(pystr::len(&a.0) as i64));
            let kb = (-(crate::glob::specificity(&b.0) as i64), -(pystr::len(&b.0) as i64));
            ka.cmp(&kb).then_with(|| a.0.cmp(&b.0))
        });
        let order = entries
            .into_iter()
            .map(|(p, profile)| (Glob::compile(&p).map_err(|e| e.0), Rc::new(profile)))
            .collect();
        let aliases = match data.get("service_aliases") {
            None => Vec::new(),
            Some(v) => v
                .as_object()
                .ok_or("catalogue: service_aliases must be an object")?
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or(k).to_string()))
                .collect(),
        };
        Ok(Catalogue { order, aliases, found: RefCell::new(HashMap::new()) })
    }

    /// The tool name with its service alias resolved.
    pub fn canonical_tool(&self, tool: &str) -> String {
        let (service, dot, operation) = partition_dot(tool);
        if !dot {
            return tool.to_string();
        }
        let service = self
            .aliases
            .iter()
            .find(|(k, _)| k == service)
            .map(|(_, v)| v.as_str())
            .unwrap_or(service);
        format!("{}.{}", service, operation)
    }

    pub fn profile_for(&self, tool: &str) -> Result<Rc<Profile>, Fallback> {
        let name = self.canonical_tool(tool);
        if let Some(hit) = self.found.borrow().get(&name) {
            return Ok(hit.clone());
        }
        let mut profile = None;
        for (glob, candidate) in &self.order {
            match glob {
                Ok(g) => {
                    if g.matches(&name) {
                        profile = Some(candidate.clone());
                        break;
                    }
                }
                Err(e) => return Err(Fallback::raises(e)),
            }
        }
        let profile = profile.unwrap_or_else(|| Rc::new(classify_unknown(&name)));
        let mut found = self.found.borrow_mut();
        if found.len() >= LOOKUP_CACHE_SIZE {
            found.clear();
        }
        found.insert(name, profile.clone());
        Ok(profile)
    }
}
