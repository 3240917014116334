//! policy_schema.py (strict validation with field paths) and policy.py (evaluation).

use crate::conditions::{condition_holds, validate_condition, Facts, FieldError, GlobCache};
use crate::json::{self, Value};
use crate::pystr;
use crate::risk::{self, hashable, validate_override, HIGH_FROM, MEDIUM_FROM};
use crate::Fallback;

pub use crate::limits::policy::*; // SCHEMA and the MAX_* bounds of policy_schema.py
const SEVERITY: [(&str, i32); 4] =
    [("allow", 0), ("require_approval", 1), ("require_step_up", 2), ("deny", 3)];

fn severity(effect: &str) -> i32 {
    SEVERITY.iter().find(|(e, _)| *e == effect).map(|(_, s)| *s).unwrap_or(-1)
}

fn pending(effect: &str) -> bool {
    effect == "require_approval" || effect == "require_step_up"
}

fn is_int(v: Option<&Value>) -> Option<i128> {
    v.and_then(|v| v.as_int())
}

fn check_keys(
    obj: &[(String, Value)],
    allowed: &[&str],
    required: &[&str],
    where_: &str,
    errors: &mut Vec<FieldError>,
) {
    let prefix = if where_.is_empty() { String::new() } else { format!("{}.", where_) };
    let mut unknown: Vec<&String> =
        obj.iter().map(|(k, _)| k).filter(|k| !allowed.contains(&k.as_str())).collect();
    unknown.sort();
    for key in unknown {
        errors.push(FieldError::new(&format!("{}{}", prefix, key), "unknown field"));
    }
    let mut missing: Vec<&str> =
        required.iter().copied().filter(|r| !obj.iter().any(|(k, _)| k == r)).collect();
    missing.sort_unstable();
    for key in missing {
        errors.push(FieldError::new(&format!("{}{}", prefix, key), "required field is missing"));
    }
}

fn check_text(value: &Value, where_: &str, errors: &mut Vec<FieldError>, limit: usize) {
    if !matches!(value, Value::Str(s) if (1..=limit).contains(&pystr::len(s))) {
        errors.push(FieldError::new(where_, &format!("expected a string of 1-{} characters", limit)));
    }
}

fn check_id(value: &Value, where_: &str, errors: &mut Vec<FieldError>) {
    let ok = matches!(value, Value::Str(s) if (1..=MAX_ID_LENGTH).contains(&pystr::len(s))
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c)));
    if !ok {
        errors.push(FieldError::new(
            where_,
            &format!("expected 1-{} characters of a-z 0-9 - _ .", MAX_ID_LENGTH),
        ));
    }
}

fn check_thresholds(t: &Value, errors: &mut Vec<FieldError>) {
    let obj = match t.as_object() {
        Some(o) => o,
        None => {
            errors.push(FieldError::new("thresholds", "expected an object"));
            return;
        }
    };
    check_keys(obj, &["approval", "step_up"], &["approval", "step_up"], "thresholds", errors);
    for (key, limit) in [("approval", MEDIUM_FROM), ("step_up", HIGH_FROM)] {
        if let Some(v) = t.get(key) {
            if !matches!(v.as_int(), Some(i) if 0 <= i && i <= limit) {
                errors.push(FieldError::new(
                    &format!("thresholds.{}", key),
                    &format!("expected an integer 0-{} (a policy may only be stricter than the product)", limit),
                ));
            }
        }
    }
    if let (Some(a), Some(s)) = (is_int(t.get("approval")), is_int(t.get("step_up"))) {
        if a > s {
            errors.push(FieldError::new(
                "thresholds.approval",
                &format!("must not exceed step_up ({} > {})", a, s),
            ));
        }
    }
}

fn check_timeouts(o: &Value, errors: &mut Vec<FieldError>) -> Result<(), Fallback> {
    let obj = match o.as_object() {
        Some(m) => m,
        None => {
            errors.push(FieldError::new("timeouts", "expected an object"));
            return Ok(());
        }
    };
    let keys = ["MEDIUM", "HIGH", "max", "on_expiry"];
    check_keys(obj, &keys, &keys, "timeouts", errors);
    for key in ["MEDIUM", "HIGH", "max"] {
        if let Some(v) = o.get(key) {
            if !matches!(v.as_int(), Some(i) if 1 <= i && i <= MAX_TIMEOUT_S) {
                errors.push(FieldError::new(
                    &format!("timeouts.{}", key),
                    &format!("expected seconds, 1-{}", MAX_TIMEOUT_S),
                ));
            }
        }
    }
    if let Some(v) = o.get("on_expiry") {
        if v.as_str() != Some("deny") {
            errors.push(FieldError::new("timeouts.on_expiry", "expected one of ('deny',)"));
        }
    }
    Ok(())
}

fn check_approvers(approvers: &Value, where_: &str, errors: &mut Vec<FieldError>) {
    let obj = match approvers.as_object() {
        Some(o) => o,
        None => {
            errors.push(FieldError::new(where_, "expected an object {quorum, of}"));
            return;
        }
    };
    check_keys(obj, &["quorum", "of"], &["quorum", "of"], where_, errors);
    let mut names: Option<Vec<&str>> = None;
    if let Some(of) = approvers.get("of") {
        let list: Option<Vec<&str>> = of.as_array().and_then(|items| {
            if items.is_empty() || items.len() > MAX_APPROVERS {
                return None;
            }
            items
                .iter()
                .map(|n| match n {
                    Value::Str(s)
                        if (1..=MAX_APPROVER_ID_LENGTH).contains(&pystr::len(s))
                            && pystr::strip_ws(s) == s.as_str() =>
                    {
                        Some(s.as_str())
                    }
                    _ => None,
                })
                .collect()
        });
        match list {
            None => errors.push(FieldError::new(
                &format!("{}.of", where_),
                &format!(
                    "expected 1-{} user ids (strings of 1-{} characters, no surrounding spaces)",
                    MAX_APPROVERS, MAX_APPROVER_ID_LENGTH
                ),
            )),
            Some(list) => {
                let mut dups: Vec<&str> =
                    list.iter().copied().filter(|n| list.iter().filter(|m| *m == n).count() > 1).collect();
                dups.sort_unstable();
                dups.dedup();
                if !dups.is_empty() {
                    let shown: Vec<String> = dups.iter().map(|d| pystr::repr_str(d)).collect();
                    errors.push(FieldError::new(
                        &format!("{}.of", where_),
                        &format!("user ids must be distinct, found [{}] twice", shown.join(", ")),
                    ));
                }
                names = Some(list);
            }
        }
    }
    if let Some(q) = approvers.get("quorum") {
        match q.as_int() {
            Some(k) if k >= 1 => {
                if let Some(list) = &names {
                    let mut distinct = list.clone();
                    distinct.sort_unstable();
                    distinct.dedup();
                    if k > distinct.len() as i128 {
                        errors.push(FieldError::new(
                            &format!("{}.quorum", where_),
                            &format!(
                                "expected at most the {} approver(s) named in of, found {}",
                                distinct.len(),
                                k
                            ),
                        ));
                    }
                }
            }
            _ => errors.push(FieldError::new(&format!("{}.quorum", where_), "expected an integer >= 1")),
        }
    }
}

fn check_rule(rule: &Value, where_: &str, errors: &mut Vec<FieldError>, seen: &mut Vec<String>) -> Result<(), Fallback> {
    let obj = match rule.as_object() {
        Some(o) => o,
        None => {
            errors.push(FieldError::new(where_, "expected a rule object"));
            return Ok(());
        }
    };
    check_keys(
        obj,
        &["id", "effect", "tools", "when", "reason", "timeout_s", "approvers"],
        &["id", "effect", "tools", "reason"],
        where_,
        errors,
    );
    if let Some(id) = rule.get("id") {
        check_id(id, &format!("{}.id", where_), errors);
        if let Value::Str(s) = id {
            if seen.contains(s) {
                errors.push(FieldError::new(
                    &format!("{}.id", where_),
                    &format!("duplicate rule id {}", pystr::repr_str(s)),
                ));
            }
            seen.push(s.clone());
        }
    }
    let effect = rule.get("effect");
    if let Some(e) = effect {
        hashable(e)?;
        if severity(e.as_str().unwrap_or("\u{0}")) < 0 {
            errors.push(FieldError::new(
                &format!("{}.effect", where_),
                "expected one of ['allow', 'deny', 'require_approval', 'require_step_up']",
            ));
        }
    }
    if let Some(tools) = rule.get("tools") {
        let ok = matches!(tools, Value::Array(t) if (1..=MAX_TOOL_PATTERNS).contains(&t.len())
            && t.iter().all(|p| matches!(p, Value::Str(s) if (1..=risk::MAX_PATTERN_LENGTH).contains(&pystr::len(s)))));
        if !ok {
            errors.push(FieldError::new(
                &format!("{}.tools", where_),
                &format!(
                    "expected 1-{} glob strings of at most {} characters",
                    MAX_TOOL_PATTERNS,
                    risk::MAX_PATTERN_LENGTH
                ),
            ));
        }
    }
    if let Some(reason) = rule.get("reason") {
        check_text(reason, &format!("{}.reason", where_), errors, MAX_TEXT_LENGTH);
    }
    if let Some(when) = rule.get("when") {
        validate_condition(when, &format!("{}.when", where_), errors, 1);
    }
    let effect_pending = match effect {
        None => false,
        Some(e) => {
            hashable(e)?;
            pending(e.as_str().unwrap_or(""))
        }
    };
    if let Some(t) = rule.get("timeout_s") {
        if !effect_pending {
            errors.push(FieldError::new(
                &format!("{}.timeout_s", where_),
                "only require_approval/require_step_up rules hold actions",
            ));
        } else if !matches!(t.as_int(), Some(i) if 1 <= i && i <= MAX_TIMEOUT_S) {
            errors.push(FieldError::new(
                &format!("{}.timeout_s", where_),
                &format!("expected seconds, 1-{}", MAX_TIMEOUT_S),
            ));
        }
    }
    if let Some(a) = rule.get("approvers") {
        if !effect_pending {
            errors.push(FieldError::new(
                &format!("{}.approvers", where_),
                "only require_approval/require_step_up rules wait for approvers",
            ));
        } else {
            check_approvers(a, &format!("{}.approvers", where_), errors);
        }
    }
    Ok(())
}

/// `policy_schema.validate_payload`: every problem, with field paths.
pub fn validate_payload(payload: &Value) -> Result<Vec<FieldError>, Fallback> {
    let obj = match payload.as_object() {
        Some(o) => o,
        None => {
            return Ok(vec![FieldError::new(
                "$",
                &format!("expected a policy object, found {}", payload.type_name()),
            )])
        }
    };
    let mut errors = Vec::new();
    check_keys(
        obj,
        &["schema", "policy_id", "version", "description", "thresholds", "timeouts", "overrides", "rules"],
        &["schema", "policy_id", "version", "thresholds", "timeouts", "rules"],
        "",
        &mut errors,
    );
    if let Some(s) = payload.get("schema") {
        if s.as_str() != Some(SCHEMA) {
            errors.push(FieldError::new(
                "schema",
                &format!("expected {}, found {}", pystr::repr_str(SCHEMA), pystr::repr(s)),
            ));
        }
    }
    if let Some(id) = payload.get("policy_id") {
        check_id(id, "policy_id", &mut errors);
    }
    if let Some(v) = payload.get("version") {
        if !matches!(v.as_int(), Some(i) if 1 <= i && i <= MAX_VERSION) {
            errors.push(FieldError::new("version", "expected an integer >= 1"));
        }
    }
    if let Some(d) = payload.get("description") {
        check_text(d, "description", &mut errors, MAX_TEXT_LENGTH);
    }
    if let Some(t) = payload.get("thresholds") {
        check_thresholds(t, &mut errors);
    }
    if let Some(t) = payload.get("timeouts") {
        check_timeouts(t, &mut errors)?;
    }
    let empty = Value::Array(Vec::new());
    match payload.get("overrides").unwrap_or(&empty) {
        Value::Array(list) if list.len() <= MAX_OVERRIDES => {
            for (i, o) in list.iter().enumerate() {
                for problem in validate_override(o)? {
                    errors.push(FieldError::new(&format!("overrides[{}]", i), &problem));
                }
            }
        }
        _ => errors.push(FieldError::new(
            "overrides",
            &format!("expected a list of at most {}", MAX_OVERRIDES),
        )),
    }
    match payload.get("rules") {
        Some(Value::Array(rules)) if rules.len() <= MAX_RULES => {
            let mut seen = Vec::new();
            for (i, rule) in rules.iter().enumerate() {
                check_rule(rule, &format!("rules[{}]", i), &mut errors, &mut seen)?;
            }
        }
        Some(_) => errors.push(FieldError::new(
            "rules",
            &format!("expected a list of at most {} rules", MAX_RULES),
        )),
        None => {}
    }
    Ok(errors)
}

// ------------------------------------------------------------------------------ evaluation

pub struct PolicyRule {
    pub id: String,
    pub effect: String,
    pub tools: Vec<String>,
    pub reason: String,
    pub when: Option<Value>,
    pub timeout_s: Option<i128>,
    pub approvers: Option<(i128, Vec<String>)>,
}

pub struct Policy {
    pub policy_id: String,
    pub version: i128,
    pub approval: i128,
    pub step_up: i128,
    pub medium: i128,
    pub high: i128,
    pub max: i128,
    pub on_expiry: String,
    pub overrides: Vec<Value>,
    pub rules: Vec<PolicyRule>,
    pub digest: String,
    pub globs: GlobCache,
}

pub enum Loaded {
    Policy(Policy),
    Rejected(Vec<FieldError>),
}

fn text_of(v: Option<&Value>) -> String {
    v.and_then(|v| v.as_str()).unwrap_or("").to_string()
}

impl Policy {
    /// `Policy.from_payload`: validate, then read (the digest is of the canonical payload).
    pub fn from_payload(payload: &Value) -> Result<Loaded, Fallback> {
        let errors = validate_payload(payload)?;
        if !errors.is_empty() {
            return Ok(Loaded::Rejected(errors));
        }
        let canonical = json::canonical(payload).map_err(|e| Fallback::raises(&e.0))?;
        let digest = format!("sha256:{}", crate::hex(&crate::sha256(canonical.as_bytes())));
        let t = payload.get("thresholds").cloned().unwrap_or(Value::Null);
        let o = payload.get("timeouts").cloned().unwrap_or(Value::Null);
        let int = |v: &Value, k: &str| v.get(k).and_then(|x| x.as_int()).unwrap_or(0);
        let mut rules = Vec::new();
        for r in payload.get("rules").and_then(|r| r.as_array()).map(|a| a.as_slice()).unwrap_or(&[]) {
            let approvers = r.get("approvers").map(|a| {
                (
                    int(a, "quorum"),
                    a.get("of")
                        .and_then(|o| o.as_array())
                        .map(|o| o.iter().filter_map(|n| n.as_str()).map(|s| s.to_string()).collect())
                        .unwrap_or_default(),
                )
            });
            rules.push(PolicyRule {
                id: text_of(r.get("id")),
                effect: text_of(r.get("effect")),
                tools: r
                    .get("tools")
                    .and_then(|t| t.as_array())
                    .map(|t| t.iter().filter_map(|p| p.as_str()).map(|s| s.to_string()).collect())
                    .unwrap_or_default(),
                reason: text_of(r.get("reason")),
                when: r.get("when").cloned(),
                timeout_s: r.get("timeout_s").and_then(|t| t.as_int()),
                approvers,
            });
        }
        Ok(Loaded::Policy(Policy {
            policy_id: text_of(payload.get("policy_id")),
            version: int(payload, "version"),
            approval: int(&t, "approval"),
            step_up: int(&t, "step_up"),
            medium: int(&o, "MEDIUM"),
            high: int(&o, "HIGH"),
            max: int(&o, "max"),
            on_expiry: text_of(o.get("on_expiry")),
            overrides: payload.get("overrides").and_then(|v| v.as_array()).cloned().unwrap_or_default(),
            rules,
            digest,
            globs: GlobCache::default(),
        }))
    }
}

/// What evaluation reads of a risk assessment.
pub struct RiskFacts {
    pub score: i128,
    pub level: String,
    pub category: String,
    pub forced_high: bool,
}

pub struct Decision {
    pub outcome: String,
    pub rule_id: Option<String>,
    pub reason: String,
    pub timeout_s: Option<i128>,
    pub on_expiry: String,
    pub approvers: Option<(i128, Vec<String>)>,
}

impl Decision {
    pub fn to_value(&self) -> Value {
        json::obj(vec![
            ("outcome", Value::str(&self.outcome)),
            ("rule_id", json::opt_str(self.rule_id.as_deref())),
            ("reason", Value::str(&self.reason)),
            ("timeout_s", json::opt_int(self.timeout_s)),
            ("on_expiry", Value::str(&self.on_expiry)),
            (
                "approvers",
                match &self.approvers {
                    None => Value::Null,
                    Some((k, of)) => json::obj(vec![
                        ("quorum", Value::Int(*k)),
                        ("of", Value::Array(of.iter().map(|n| Value::str(n)).collect())),
                    ]),
                },
            ),
        ])
    }
}

fn baseline(policy: &Policy, risk: &RiskFacts) -> (&'static str, String) {
    let (score, level) = (risk.score, &risk.level);
    if risk.forced_high {
        return (
            "require_step_up",
            format!(
                "{} actions are always high risk: step-up authentication and approval are required",
                risk.category
            ),
        );
    }
    // the higher threshold first: a score at or above both takes step-up
    for (threshold, outcome, name) in
        [(policy.step_up, "require_step_up", "step-up"), (policy.approval, "require_approval", "approval")]
    {
        if score >= threshold {
            return (
                outcome,
                format!("risk score {} ({}) is at or above the {} threshold {}", score, level, name, threshold),
            );
        }
    }
    ("allow", format!("risk score {} ({}) is below the approval threshold", score, level))
}

fn rule_matches(rule: &PolicyRule, policy: &Policy, tool: &str, facts: &Facts) -> Result<bool, Fallback> {
    let mut hit = false;
    for pattern in &rule.tools {
        if policy.globs.get(pattern)?.matches(tool) {
            hit = true;
            break;
        }
    }
    if !hit {
        return Ok(false);
    }
    match &rule.when {
        None => Ok(true),
        Some(w) => condition_holds(w, facts, &policy.globs),
    }
}

/// `policy.evaluate`.
pub fn evaluate(policy: &Policy, bundle: &risk::Bundle, risk: &RiskFacts, agent: Option<&str>) -> Result<Decision, Fallback> {
    let score = Value::Int(risk.score);
    let level = Value::str(&risk.level);
    let category = Value::str(&risk.category);
    let tool = Value::str(&bundle.tool);
    let server = json::opt_str(bundle.server.as_deref());
    let agent_v = json::opt_str(agent);
    let facts = Facts {
        fields: vec![
            ("tool", &tool),
            ("service", &bundle.service),
            ("operation", &bundle.operation),
            ("resource", &bundle.resource),
            ("framework", &bundle.framework),
            ("session_id", &bundle.session_id),
            ("arguments", &bundle.arguments),
            ("context", &bundle.context),
            ("risk.score", &score),
            ("risk.level", &level),
            ("risk.category", &category),
            ("server", &server),
            ("agent", &agent_v),
        ],
    };
    let mut matched: Vec<&PolicyRule> = Vec::new();
    for rule in &policy.rules {
        if rule_matches(rule, policy, &bundle.tool, &facts)? {
            matched.push(rule);
        }
    }
    let (mut base, base_reason) = baseline(policy, risk);
    if base == "require_approval" && !risk.forced_high && matched.iter().any(|r| r.effect == "allow") {
        base = "allow";
    }
    let mut outcome: &str = base;
    for r in &matched {
        if r.effect != "allow" && severity(&r.effect) > severity(outcome) {
            outcome = &r.effect;
        }
    }
    let named = matched.iter().find(|r| r.effect == outcome);
    let mut reason = match named {
        Some(r) => r.reason.clone(),
        None => base_reason,
    };
    if let Some(s) = &bundle.server {
        reason.push_str(&format!(" (MCP server {} as claimed by the agent, not verified)", pystr::repr_str(s)));
    }
    let mut timeout = None;
    let mut approvers = None;
    if pending(outcome) {
        let first = if outcome == "require_approval" { policy.medium } else { policy.high };
        let mut t = first.min(policy.max);
        for r in &matched {
            if let Some(rt) = r.timeout_s {
                t = t.min(rt);
            }
        }
        timeout = Some(t);
        let quorum_rules: Vec<&&PolicyRule> =
            matched.iter().filter(|r| pending(&r.effect) && r.approvers.is_some()).collect();
        if !quorum_rules.is_empty() {
            let mut names: Vec<String> = quorum_rules[0].approvers.as_ref().map(|a| a.1.clone()).unwrap_or_default();
            for r in &quorum_rules[1..] {
                let of = &r.approvers.as_ref().map(|a| a.1.clone()).unwrap_or_default();
                names.retain(|n| of.contains(n));
            }
            names.sort();
            names.dedup();
            let quorum = quorum_rules.iter().map(|r| r.approvers.as_ref().map_or(0, |a| a.0)).max().unwrap_or(0);
            if quorum > names.len() as i128 {
                let mut strictest = quorum_rules[0];
                for r in &quorum_rules {
                    if r.approvers.as_ref().map_or(0, |a| a.0) > strictest.approvers.as_ref().map_or(0, |a| a.0) {
                        strictest = r;
                    }
                }
                let ids: Vec<&str> = quorum_rules.iter().map(|r| r.id.as_str()).collect();
                return Ok(Decision {
                    outcome: "deny".to_string(),
                    rule_id: Some(strictest.id.clone()),
                    reason: format!(
                        "the approver quorums of rules {} cannot all be met: too few approvers are named by every one of them",
                        ids.join(", ")
                    ),
                    timeout_s: None,
                    on_expiry: policy.on_expiry.clone(),
                    approvers: None,
                });
            }
            approvers = Some((quorum, names));
        }
    }
    Ok(Decision {
        outcome: outcome.to_string(),
        rule_id: named.map(|r| r.id.clone()),
        reason,
        timeout_s: timeout,
        on_expiry: policy.on_expiry.clone(),
        approvers,
    })
}
