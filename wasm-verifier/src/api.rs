//! The JSON requests the module answers. Every request is an object with an `op`; every
//! answer has `ok`. `ok: false` carries `error`:
//!
//! - `bad-request`: the request itself is malformed (the host's bug);
//! - `raises`: the Python reference raises on this input (it is its answer to give);
//! - `unsupported`: the reference's answer cannot be reproduced here (JSON text nested
//!   near CPython's recursion limit, lone surrogates inside JSON text, a build without
//!   Ed25519). The host asks the reference instead.
//!
//! | op | request | answer |
//! |----|---------|--------|
//! | `info` | | `version`, `unidata`, `confusables`, `ed25519`, `catalogue` |
//! | `configure` | `catalogue` (the catalogue JSON) | |
//! | `canonical` | `text` (untrusted JSON text, read as `loads_strict` does) | `canonical` or `invalid` |
//! | `digest` | `value` | `digest` ("sha256:<hex>" of its canonical form) |
//! | `merkle_hash` | `op` leaf/node, `data` or `left`,`right` (hex) | `hash` |
//! | `merkle_root` | `leaves` (hex data) | `root` |
//! | `verify_inclusion` / `verify_consistency` | as merkle.py, hashes in hex | `valid`, `reason`, `detail` |
//! | `verify_log` | `entries` [{body, hash, mac}] or `lines` (export records), `hmac_keys` {id: hex} or null, `checkpoints` [{size, root, saved?}] | audit_verify.Report + `saved_verified` |
//! | `verify_checkpoint` | `note`, `verifier_key`, `origin`? | `valid`, `origin`, `size`, `root_hash` or `reason` |
//! | `validate_policy` | `policy` | `errors` [{field, message}], `digest` |
//! | `verify_envelope` | `envelope`, `trusted_keys` {keyid: b64url raw key}, `min_version`, `active` {version, digest}? | `valid`, `digest`, `version`, `policy_id` or `detail`, `errors` |
//! | `load_policy` | `policy` (a validated payload) | `digest` |
//! | `assess` | `bundle`, `overrides` | `risk` |
//! | `evaluate` | `policy` or `policy_digest`, `bundle`, `risk` {score, level, category, forced_high}, `agent` | `decision` |
//! | `decide` | `policy` or `policy_digest`, `bundle`, `agent` | `risk`, `decision` |
//! | `text` | `fn` (fold, skeleton, suspicious, lower, casefold, nfkc, nfd, repr, fnmatch, split, strip), `text`, `pattern`? | `result` |

use crate::audit::{self, LogVerifier};
use crate::catalogue::Catalogue;
use crate::conditions::FieldError;
use crate::envelope;
use crate::json::{self, Mode, ParseError, Value};
use crate::merkle;
use crate::policy::{self, Loaded, Policy, RiskFacts};
use crate::risk::{self, Bundle};
use crate::{tables, Fallback};

const MAX_CACHED_POLICIES: usize = 32;

#[derive(Default)]
pub struct State {
    pub catalogue: Option<Catalogue>,
    catalogue_digest: Option<String>,
    policies: Vec<Policy>,
}

enum Failure {
    BadRequest(String),
    Fallback(Fallback),
}

impl From<Fallback> for Failure {
    fn from(f: Fallback) -> Failure {
        Failure::Fallback(f)
    }
}

type Answer = Result<Vec<(&'static str, Value)>, Failure>;

fn bad(msg: &str) -> Failure {
    Failure::BadRequest(msg.to_string())
}

pub fn handle_bytes(state: &mut State, request: &[u8]) -> String {
    match core::str::from_utf8(request) {
        Ok(text) => handle(state, text),
        Err(_) => respond(Err(bad("request is not UTF-8"))),
    }
}

pub fn handle(state: &mut State, request: &str) -> String {
    let req = match json::parse(request, Mode::Request) {
        Ok(v) => v,
        Err(ParseError::Unsupported(m)) => return respond(Err(Failure::Fallback(Fallback::unsupported(&m)))),
        Err(ParseError::Invalid(m)) => return respond(Err(bad(&format!("request is not JSON: {}", m)))),
    };
    let op = req.get("op").and_then(|o| o.as_str()).unwrap_or("");
    let answer = match op {
        "info" => Ok(info(state)),
        "configure" => configure(state, &req),
        "canonical" => canonical(&req),
        "digest" => digest(&req),
        "merkle_hash" => merkle_hash(&req),
        "merkle_root" => merkle_root(&req),
        "verify_inclusion" => Ok(merkle_answer(merkle::verify_inclusion(&req))),
        "verify_consistency" => Ok(merkle_answer(merkle::verify_consistency(&req))),
        "verify_log" => verify_log(&req),
        "verify_checkpoint" => verify_checkpoint(&req),
        "validate_policy" => validate_policy(&req),
        "verify_envelope" => verify_envelope(&req),
        "load_policy" => load_policy(state, &req),
        "assess" => assess(state, &req),
        "evaluate" => evaluate(state, &req),
        "decide" => decide(state, &req),
        "text" => text(&req),
        _ => Err(bad(&format!("unknown op {}", crate::pystr::repr_str(op)))),
    };
    respond(answer)
}

fn respond(answer: Answer) -> String {
    let value = match answer {
        Ok(mut members) => {
            members.insert(0, ("ok", Value::Bool(true)));
            json::obj(members)
        }
        Err(Failure::BadRequest(m)) => json::obj(vec![
            ("ok", Value::Bool(false)),
            ("error", Value::str("bad-request")),
            ("detail", Value::Str(m)),
        ]),
        Err(Failure::Fallback(f)) => json::obj(vec![
            ("ok", Value::Bool(false)),
            ("error", Value::str(f.kind)),
            ("detail", Value::Str(f.detail)),
        ]),
    };
    json::compact(&value)
}

fn info(state: &State) -> Vec<(&'static str, Value)> {
    vec![
        ("version", Value::str(env!("CARGO_PKG_VERSION"))),
        ("unidata", Value::str(tables::UNIDATA_VERSION)),
        ("confusables", Value::str(tables::CONFUSABLES_VERSION)),
        ("ed25519", Value::Bool(envelope::HAS_ED25519)),
        ("catalogue", json::opt_str(state.catalogue_digest.as_deref())),
    ]
}

fn configure(state: &mut State, req: &Value) -> Answer {
    let data = req.get("catalogue").ok_or_else(|| bad("configure needs a catalogue"))?;
    let catalogue = Catalogue::from_value(data).map_err(|e| bad(&e))?;
    let digest = json::canonical(data).map_err(|e| bad(&e.0))?;
    state.catalogue = Some(catalogue);
    state.catalogue_digest = Some(format!("sha256:{}", crate::hex(&crate::sha256(digest.as_bytes()))));
    state.policies.clear();
    Ok(vec![("catalogue", json::opt_str(state.catalogue_digest.as_deref()))])
}

fn canonical(req: &Value) -> Answer {
    let text = req.get("text").and_then(|t| t.as_str()).ok_or_else(|| bad("canonical needs text"))?;
    match json::parse(text, Mode::Strict) {
        Ok(v) => match json::canonical(&v) {
            Ok(c) => Ok(vec![("valid", Value::Bool(true)), ("canonical", Value::Str(c))]),
            Err(e) => Ok(vec![("valid", Value::Bool(false)), ("detail", Value::Str(e.0))]),
        },
        Err(e) => Ok(vec![("valid", Value::Bool(false)), ("detail", Value::str(e.message()))]),
    }
}

fn digest(req: &Value) -> Answer {
    let value = req.get("value").ok_or_else(|| bad("digest needs a value"))?;
    let text = json::canonical(value).map_err(|e| Fallback::raises(&e.0))?;
    Ok(vec![("digest", Value::Str(format!("sha256:{}", crate::hex(&crate::sha256(text.as_bytes())))))])
}

fn hex_field(req: &Value, key: &str) -> Result<Vec<u8>, Failure> {
    req.get(key)
        .and_then(|v| v.as_str())
        .and_then(crate::unhex)
        .ok_or_else(|| bad(&format!("{} must be hex", key)))
}

fn merkle_hash(req: &Value) -> Answer {
    let h = match req.get("kind").and_then(|k| k.as_str()) {
        Some("leaf") => merkle::leaf_hash(&hex_field(req, "data")?),
        Some("node") => {
            let (l, r) = (hex_field(req, "left")?, hex_field(req, "right")?);
            let mut data = vec![1u8];
            data.extend_from_slice(&l);
            data.extend_from_slice(&r);
            crate::sha256(&data)
        }
        _ => return Err(bad("merkle_hash needs kind leaf or node")),
    };
    Ok(vec![("hash", Value::Str(crate::hex(&h)))])
}

fn merkle_root(req: &Value) -> Answer {
    let leaves = req.get("leaves").and_then(|l| l.as_array()).ok_or_else(|| bad("merkle_root needs leaves"))?;
    let data: Vec<Vec<u8>> = leaves
        .iter()
        .map(|l| l.as_str().and_then(crate::unhex).ok_or_else(|| bad("leaves must be hex")))
        .collect::<Result<_, _>>()?;
    Ok(vec![("root", Value::Str(crate::hex(&merkle::root_of_leaves(&data))))])
}

fn merkle_answer(result: Result<(), merkle::MerkleError>) -> Vec<(&'static str, Value)> {
    match result {
        Ok(()) => vec![("valid", Value::Bool(true))],
        Err(e) => vec![
            ("valid", Value::Bool(false)),
            ("reason", Value::str(e.reason)),
            ("detail", Value::Str(format!("{}: {}", e.reason, e.detail))),
        ],
    }
}

fn verify_log(req: &Value) -> Answer {
    let hmac_keys = match req.get("hmac_keys") {
        None | Some(Value::Null) => None,
        Some(Value::Object(keys)) => Some(
            keys.iter()
                .map(|(id, k)| {
                    k.as_str()
                        .and_then(crate::unhex)
                        .map(|key| (id.clone(), key))
                        .ok_or_else(|| bad("hmac_keys must map key ids to hex"))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Some(_) => return Err(bad("hmac_keys must be an object or null")),
    };
    let mut checkpoints = Vec::new();
    for cp in req.get("checkpoints").and_then(|c| c.as_array()).map(|a| a.as_slice()).unwrap_or(&[]) {
        let size = cp.get("size").and_then(|s| s.as_int()).filter(|s| *s >= 0).ok_or_else(|| bad("checkpoint size"))?;
        let root = hex_field(cp, "root")?;
        if root.len() != 32 {
            return Err(bad("checkpoint root must be 32 bytes"));
        }
        let mut r = [0u8; 32];
        r.copy_from_slice(&root);
        let saved = matches!(cp.get("saved"), Some(Value::Bool(true)));
        checkpoints.push(audit::Checkpoint { size: size as u64, root: r, saved });
    }
    let mut verifier = LogVerifier::new(hmac_keys, checkpoints);
    if let Some(lines) = req.get("lines").and_then(|l| l.as_array()) {
        for line in lines {
            let text = line.as_str().ok_or_else(|| bad("lines must be strings"))?;
            match audit::split_export_line(text.as_bytes()) {
                Ok((body, h, m)) => {
                    if !verifier.add(body, &h, &m) {
                        break;
                    }
                }
                Err(reason) => {
                    let seq = verifier.count + 1;
                    verifier.failure =
                        Some(json::obj(vec![("seq", Value::Int(seq as i128)), ("reason", Value::Str(reason))]));
                    break;
                }
            }
        }
    } else {
        let entries = req.get("entries").and_then(|e| e.as_array()).ok_or_else(|| bad("verify_log needs entries or lines"))?;
        for e in entries {
            let field = |k: &str| e.get(k).and_then(|v| v.as_str()).ok_or_else(|| bad("entries need body, hash and mac strings"));
            if !verifier.add(field("body")?.as_bytes(), field("hash")?, field("mac")?) {
                break;
            }
        }
    }
    match verifier.finish() {
        Value::Object(members) => {
            Ok(members.into_iter().map(|(k, v)| (report_key(&k), v)).collect())
        }
        _ => Err(bad("internal: report")),
    }
}

fn report_key(k: &str) -> &'static str {
    match k {
        "valid" => "valid",
        "length" => "length",
        "first_invalid" => "first_invalid",
        "head_hash" => "head_hash",
        "root_hash" => "root_hash",
        "checkpoints_verified" => "checkpoints_verified",
        "hmac_checked" => "hmac_checked",
        "uncovered" => "uncovered",
        _ => "saved_verified",
    }
}

fn verify_checkpoint(req: &Value) -> Answer {
    let raw;
    let note = match (req.get("note").and_then(|n| n.as_str()), req.get("note_hex").and_then(|n| n.as_str())) {
        (Some(n), _) => n,
        (None, Some(h)) => {
            raw = crate::unhex(h).ok_or_else(|| bad("note_hex must be hex"))?;
            match crate::checkpoint::note_text(&raw) {
                Ok(t) => t,
                Err(reason) => return Ok(vec![("valid", Value::Bool(false)), ("reason", Value::Str(reason))]),
            }
        }
        _ => return Err(bad("verify_checkpoint needs a note or note_hex")),
    };
    let key = req.get("verifier_key").and_then(|n| n.as_str()).ok_or_else(|| bad("verify_checkpoint needs a verifier_key"))?;
    let origin = req.get("origin").and_then(|o| o.as_str());
    match crate::checkpoint::verify_checkpoint(note, key, origin)? {
        Ok(cp) => Ok(vec![
            ("valid", Value::Bool(true)),
            ("origin", Value::Str(cp.origin)),
            ("size", Value::Int(cp.size as i128)),
            ("root_hash", Value::Str(crate::hex(&cp.root))),
            ("extensions", Value::Array(cp.extensions.into_iter().map(Value::Str).collect())),
        ]),
        Err(reason) => Ok(vec![("valid", Value::Bool(false)), ("reason", Value::Str(reason))]),
    }
}

fn errors_value(errors: &[FieldError]) -> Value {
    Value::Array(errors.iter().map(|e| e.to_value()).collect())
}

fn validate_policy(req: &Value) -> Answer {
    let payload = req.get("policy").ok_or_else(|| bad("validate_policy needs a policy"))?;
    let errors = policy::validate_payload(payload)?;
    let mut out = vec![("errors", errors_value(&errors))];
    if errors.is_empty() {
        let text = json::canonical(payload).map_err(|e| Fallback::raises(&e.0))?;
        out.push(("digest", Value::Str(format!("sha256:{}", crate::hex(&crate::sha256(text.as_bytes()))))));
    }
    Ok(out)
}

fn verify_envelope(req: &Value) -> Answer {
    let env = req.get("envelope").ok_or_else(|| bad("verify_envelope needs an envelope"))?;
    let mut trusted = Vec::new();
    if let Some(keys) = req.get("trusted_keys").and_then(|k| k.as_object()) {
        for (id, k) in keys {
            let raw = k
                .as_str()
                .and_then(|s| envelope::b64url_decode(s).ok())
                .ok_or_else(|| bad("trusted_keys must map key ids to unpadded base64url keys"))?;
            trusted.push((id.clone(), raw));
        }
    }
    let min_version = req.get("min_version").and_then(|m| m.as_int()).unwrap_or(0);
    let active = match req.get("active") {
        Some(Value::Object(_)) => {
            let a = req.get("active").unwrap_or(&Value::Null);
            Some(envelope::Active {
                version: a.get("version").and_then(|v| v.as_int()).ok_or_else(|| bad("active.version"))?,
                digest: a.get("digest").and_then(|d| d.as_str()).ok_or_else(|| bad("active.digest"))?.to_string(),
            })
        }
        _ => None,
    };
    match envelope::verify_bundle(env, &trusted, min_version, active.as_ref())? {
        Ok(p) => Ok(vec![
            ("valid", Value::Bool(true)),
            ("policy_id", Value::Str(p.policy_id.clone())),
            ("version", Value::Int(p.version)),
            ("digest", Value::Str(p.digest.clone())),
        ]),
        Err(r) => Ok(vec![
            ("valid", Value::Bool(false)),
            ("detail", Value::Str(r.detail)),
            ("errors", errors_value(&r.errors)),
        ]),
    }
}

impl State {
    fn policy_index(&mut self, req: &Value) -> Result<usize, Failure> {
        if let Some(payload) = req.get("policy") {
            return self.load(payload);
        }
        let digest = req.get("policy_digest").and_then(|d| d.as_str()).ok_or_else(|| bad("needs policy or policy_digest"))?;
        match self.policies.iter().position(|p| p.digest == digest) {
            Some(i) => Ok(i),
            None => Err(Failure::Fallback(Fallback { kind: "unknown-policy", detail: digest.to_string() })),
        }
    }

    fn load(&mut self, payload: &Value) -> Result<usize, Failure> {
        match Policy::from_payload(payload)? {
            Loaded::Rejected(errors) => {
                let shown: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
                Err(Failure::Fallback(Fallback::raises(&format!("policy payload is invalid: {}", shown.join("; ")))))
            }
            Loaded::Policy(p) => {
                if let Some(i) = self.policies.iter().position(|q| q.digest == p.digest) {
                    return Ok(i);
                }
                if self.policies.len() >= MAX_CACHED_POLICIES {
                    self.policies.remove(0);
                }
                self.policies.push(p);
                Ok(self.policies.len() - 1)
            }
        }
    }

    fn catalogue(&self) -> Result<&Catalogue, Failure> {
        self.catalogue.as_ref().ok_or_else(|| bad("configure the catalogue first"))
    }
}

fn load_policy(state: &mut State, req: &Value) -> Answer {
    let payload = req.get("policy").ok_or_else(|| bad("load_policy needs a policy"))?;
    let i = state.load(payload)?;
    Ok(vec![("digest", Value::Str(state.policies[i].digest.clone()))])
}

fn bundle_of(req: &Value) -> Result<Bundle, Failure> {
    Bundle::from_value(req.get("bundle").ok_or_else(|| bad("needs a bundle"))?).map_err(|e| bad(&e))
}

fn agent_of(req: &Value) -> Result<Option<&str>, Failure> {
    match req.get("agent") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(bad("agent must be a string or null")),
    }
}

fn assess(state: &mut State, req: &Value) -> Answer {
    let bundle = bundle_of(req)?;
    let overrides = req.get("overrides").and_then(|o| o.as_array()).cloned().unwrap_or_default();
    let risk = risk::assess(&bundle, state.catalogue()?, &overrides)?;
    Ok(vec![("risk", risk.to_value())])
}

fn evaluate(state: &mut State, req: &Value) -> Answer {
    let bundle = bundle_of(req)?;
    let r = req.get("risk").ok_or_else(|| bad("evaluate needs risk facts"))?;
    let facts = RiskFacts {
        score: r.get("score").and_then(|s| s.as_int()).ok_or_else(|| bad("risk.score"))?,
        level: r.get("level").and_then(|s| s.as_str()).ok_or_else(|| bad("risk.level"))?.to_string(),
        category: r.get("category").and_then(|s| s.as_str()).ok_or_else(|| bad("risk.category"))?.to_string(),
        forced_high: matches!(r.get("forced_high"), Some(Value::Bool(true))),
    };
    let agent = agent_of(req)?;
    let i = state.policy_index(req)?;
    let decision = policy::evaluate(&state.policies[i], &bundle, &facts, agent)?;
    Ok(vec![("decision", decision.to_value())])
}

fn decide(state: &mut State, req: &Value) -> Answer {
    let bundle = bundle_of(req)?;
    let agent = agent_of(req)?;
    let i = state.policy_index(req)?;
    let p = &state.policies[i];
    let catalogue = state.catalogue.as_ref().ok_or_else(|| bad("configure the catalogue first"))?;
    let risk = risk::assess(&bundle, catalogue, &p.overrides)?;
    let facts = RiskFacts {
        score: risk.score,
        level: risk.level.clone(),
        category: risk.category.clone(),
        forced_high: risk.forced_high,
    };
    let decision = policy::evaluate(p, &bundle, &facts, agent)?;
    Ok(vec![("risk", risk.to_value()), ("decision", decision.to_value())])
}

/// The text primitives one by one (the differential tests compare each with CPython).
fn text(req: &Value) -> Answer {
    use crate::{glob, pystr, textfold, unicode};
    let t = req.get("text").and_then(|t| t.as_str()).ok_or_else(|| bad("text needs text"))?;
    let result = match req.get("fn").and_then(|f| f.as_str()).unwrap_or("") {
        "fold" => Value::Str(textfold::fold(t)),
        "skeleton" => Value::Str(textfold::skeleton(t)),
        "suspicious" => json::opt_str(textfold::is_suspicious(t).as_deref()),
        "lower" => Value::Str(pystr::lower(t)),
        "casefold" => Value::Str(pystr::casefold(t)),
        "nfkc" => Value::Str(unicode::nfkc(t)),
        "nfd" => Value::Str(unicode::nfd(t)),
        "repr" => Value::Str(pystr::repr_str(t)),
        "split" => Value::Array(pystr::split_ws(t).into_iter().map(Value::str).collect()),
        "strip" => Value::str(pystr::strip_ws(t)),
        "fnmatch" => {
            let pattern = req.get("pattern").and_then(|p| p.as_str()).unwrap_or("");
            match glob::fnmatch(t, pattern) {
                Ok(m) => Value::Bool(m),
                Err(e) => return Err(Failure::Fallback(Fallback::raises(&e.0))),
            }
        }
        "texts" => {
            let value = json::parse(t, Mode::Request).map_err(|e| bad(e.message()))?;
            let mut out = Vec::new();
            let keys: Option<Vec<glob::Glob>> = match req.get("keys").and_then(|k| k.as_array()) {
                Some(ks) => Some(
                    ks.iter()
                        .map(|k| glob::Glob::compile(&textfold::skeleton(k.as_str().unwrap_or(""))))
                        .collect::<Result<_, _>>()
                        .map_err(|e| Failure::Fallback(Fallback::raises(&e.0)))?,
                ),
                None => None,
            };
            textfold::texts(&value, keys.as_deref(), |s| {
                out.push(Value::str(s));
                false
            })
            .map_err(|u| Failure::Fallback(Fallback::unsupported(&u.0)))?;
            Value::Array(out)
        }
        other => return Err(bad(&format!("unknown text fn {}", crate::pystr::repr_str(other)))),
    };
    Ok(vec![("result", result)])
}
