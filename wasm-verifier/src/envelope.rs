//! policy_envelope.py's `verify_bundle`: envelope shape, then Ed25519 signatures over
//! `"vettra.policy.v1\n" || canonical_json(payload)`, then the schema, then anti-rollback.
//! Built without the `ed25519` feature, a bundle cannot be verified (only digested).

use crate::base64::{self, URL_SAFE as B64URL};
use crate::conditions::FieldError;
use crate::json::{self, Value};
use crate::policy::{Loaded, Policy};
use crate::pystr;
use crate::Fallback;

pub const SIGNING_CONTEXT: &[u8] = b"vettra.policy.v1\n";
const MAX_SIGNATURES: usize = 8;

pub struct Rejected {
    pub detail: String,
    pub errors: Vec<FieldError>,
}

fn reject(detail: &str, field: &str, message: &str) -> Rejected {
    Rejected { detail: detail.to_string(), errors: vec![FieldError::new(field, message)] }
}

pub fn b64url_encode(data: &[u8]) -> String {
    base64::encode(data, B64URL, false)
}

/// Strict unpadded base64url: one spelling per byte string (policy_envelope.b64url_decode).
pub fn b64url_decode(text: &str) -> Result<Vec<u8>, String> {
    if !text.bytes().all(|c| B64URL.contains(&c)) || text.len() % 4 == 1 {
        return Err("not unpadded base64url".into());
    }
    let out = base64::decode(text.as_bytes(), B64URL);
    if b64url_encode(&out) != text {
        return Err("non-canonical base64url".into());
    }
    Ok(out)
}

fn check_shape(envelope: &Value) -> Result<(), Rejected> {
    let obj = match envelope.as_object() {
        Some(o) => o,
        None => {
            return Err(reject(
                "policy bundle is not a JSON object",
                "$",
                &format!("expected an object, found {}", envelope.type_name()),
            ))
        }
    };
    let mut errors = Vec::new();
    let mut unknown: Vec<&String> =
        obj.iter().map(|(k, _)| k).filter(|k| *k != "payload" && *k != "signatures").collect();
    unknown.sort();
    for k in unknown {
        errors.push(FieldError::new(k, "unknown field"));
    }
    for k in ["payload", "signatures"] {
        if envelope.get(k).is_none() {
            errors.push(FieldError::new(k, "required field is missing"));
        }
    }
    if let Some(p) = envelope.get("payload") {
        if !p.is_object() {
            errors.push(FieldError::new("payload", "expected an object"));
        }
    }
    if let Some(sigs) = envelope.get("signatures") {
        match sigs {
            Value::Array(list) if !list.is_empty() => {
                if list.len() > MAX_SIGNATURES {
                    errors.push(FieldError::new(
                        "signatures",
                        &format!("more than {} signatures", MAX_SIGNATURES),
                    ));
                } else {
                    for (i, sig) in list.iter().enumerate() {
                        let where_ = format!("signatures[{}]", i);
                        let keys_ok = sig.as_object().map_or(false, |m| {
                            m.len() == 3 && ["keyid", "alg", "sig"].iter().all(|k| sig.get(k).is_some())
                        });
                        if !keys_ok {
                            errors.push(FieldError::new(&where_, "expected exactly {keyid, alg, sig}"));
                        } else if !["keyid", "alg", "sig"].iter().all(|k| matches!(sig.get(k), Some(Value::Str(_)))) {
                            errors.push(FieldError::new(&where_, "keyid, alg and sig must be strings"));
                        } else if sig.get("alg").and_then(|a| a.as_str()) != Some("Ed25519") {
                            errors.push(FieldError::new(
                                &format!("{}.alg", where_),
                                &format!(
                                    "expected 'Ed25519', found {}",
                                    pystr::repr(sig.get("alg").unwrap_or(&Value::Null))
                                ),
                            ));
                        }
                    }
                    // key ids compared as str() of whatever they are
                    let ids: Vec<String> = list
                        .iter()
                        .filter(|s| s.is_object())
                        .map(|s| pystr::str_of(s.get("keyid").unwrap_or(&Value::Null)))
                        .collect();
                    let mut distinct = ids.clone();
                    distinct.sort();
                    distinct.dedup();
                    if distinct.len() != ids.len() {
                        errors.push(FieldError::new("signatures", "a key id appears more than once"));
                    }
                }
            }
            _ => errors.push(FieldError::new("signatures", "unsigned: expected at least one signature")),
        }
    }
    if !errors.is_empty() {
        return Err(Rejected { detail: "policy bundle envelope is malformed".into(), errors });
    }
    Ok(())
}

#[cfg(feature = "ed25519")]
fn ed25519_verify(public: &[u8; 32], signature: &[u8; 64], message: &[u8]) -> bool {
    use ed25519_dalek::{Signature, Verifier, VerifyingKey};
    match VerifyingKey::from_bytes(public) {
        Ok(key) => key.verify(message, &Signature::from_bytes(signature)).is_ok(),
        Err(_) => false,
    }
}

pub const HAS_ED25519: bool = cfg!(feature = "ed25519");

/// Verify one Ed25519 signature (public key and signature raw bytes).
pub fn verify_signature(public: &[u8], signature: &[u8], message: &[u8]) -> Result<bool, Fallback> {
    #[cfg(feature = "ed25519")]
    {
        if public.len() != 32 || signature.len() != 64 {
            return Ok(false);
        }
        let mut pk = [0u8; 32];
        pk.copy_from_slice(public);
        let mut sig = [0u8; 64];
        sig.copy_from_slice(signature);
        Ok(ed25519_verify(&pk, &sig, message))
    }
    #[cfg(not(feature = "ed25519"))]
    {
        let _ = (public, signature, message);
        Err(Fallback::unsupported("built without Ed25519"))
    }
}

fn check_signatures(envelope: &Value, trusted: &[(String, Vec<u8>)]) -> Result<Result<(), Rejected>, Fallback> {
    let payload = envelope.get("payload").unwrap_or(&Value::Null);
    let canonical = match json::canonical(payload) {
        Ok(c) => c,
        Err(e) => return Ok(Err(reject("policy payload is not canonical JSON", "payload", &e.0))),
    };
    let mut message = SIGNING_CONTEXT.to_vec();
    message.extend_from_slice(canonical.as_bytes());
    let sigs = envelope.get("signatures").and_then(|s| s.as_array()).map(|a| a.as_slice()).unwrap_or(&[]);
    let mut count = 0;
    for (i, sig) in sigs.iter().enumerate() {
        let keyid = sig.get("keyid").and_then(|k| k.as_str()).unwrap_or("");
        let key = match trusted.iter().find(|(id, _)| id == keyid) {
            Some((_, k)) => k,
            None => continue,
        };
        let raw = match b64url_decode(sig.get("sig").and_then(|s| s.as_str()).unwrap_or("")) {
            Ok(r) => r,
            Err(e) => {
                return Ok(Err(reject(
                    "policy signature is not base64url",
                    &format!("signatures[{}].sig", i),
                    &e,
                )))
            }
        };
        if raw.len() != 64 {
            return Ok(Err(reject(
                "policy signature has the wrong length",
                &format!("signatures[{}].sig", i),
                &format!("expected 64 bytes, found {}", raw.len()),
            )));
        }
        if !verify_signature(key, &raw, &message)? {
            return Ok(Err(reject(
                "policy signature does not verify: the payload was altered or signed by another key",
                &format!("signatures[{}].sig", i),
                &format!("Ed25519 verification failed for {}", keyid),
            )));
        }
        count += 1;
    }
    if count == 0 {
        let mut ids: Vec<&str> = trusted.iter().map(|(id, _)| id.as_str()).collect();
        ids.sort_unstable();
        let shown: Vec<String> = ids.iter().map(|i| pystr::repr_str(i)).collect();
        let found: Vec<String> =
            sigs.iter().map(|s| pystr::str_of(s.get("keyid").unwrap_or(&Value::Null))).collect();
        return Ok(Err(reject(
            "policy bundle is not signed by a trusted key",
            "signatures",
            &format!("expected one of [{}], found {}", shown.join(", "), found.join(", ")),
        )));
    }
    Ok(Ok(()))
}

pub struct Active {
    pub version: i128,
    pub digest: String,
}

/// `verify_bundle`; Ok(Ok(policy)) or Ok(Err(rejection)).
pub fn verify_bundle(
    envelope: &Value,
    trusted: &[(String, Vec<u8>)],
    min_version: i128,
    active: Option<&Active>,
) -> Result<Result<Policy, Rejected>, Fallback> {
    if let Err(r) = check_shape(envelope) {
        return Ok(Err(r));
    }
    if let Err(r) = check_signatures(envelope, trusted)? {
        return Ok(Err(r));
    }
    let payload = envelope.get("payload").unwrap_or(&Value::Null);
    let policy = match Policy::from_payload(payload)? {
        Loaded::Policy(p) => p,
        Loaded::Rejected(errors) => {
            let count = errors.len();
            return Ok(Err(Rejected {
                detail: format!("policy payload is invalid ({} problem(s))", count),
                errors: errors
                    .into_iter()
                    .map(|e| FieldError {
                        field: if e.field == "$" { "payload".to_string() } else { format!("payload.{}", e.field) },
                        message: e.message,
                    })
                    .collect(),
            }));
        }
    };
    if policy.version < min_version {
        return Ok(Err(reject(
            "policy downgrade refused",
            "payload.version",
            &format!("expected at least {}, found {}", min_version, policy.version),
        )));
    }
    if let Some(a) = active {
        if policy.version < a.version {
            return Ok(Err(reject(
                "policy downgrade refused",
                "payload.version",
                &format!("expected at least {} (active), found {}", a.version, policy.version),
            )));
        }
        if policy.version == a.version && policy.digest != a.digest {
            return Ok(Err(reject(
                "policy version reused for a different payload",
                "payload.version",
                &format!(
                    "version {} is active with digest {}, this payload has {}; bump the version",
                    policy.version, a.digest, policy.digest
                ),
            )));
        }
    }
    Ok(Ok(policy))
}
