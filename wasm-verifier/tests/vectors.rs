//! The shared JSON vectors (../tests/vectors) through the module's request interface,
//! natively: `cargo test` (wasm-verifier/build.sh --test). Every file of every kind the
//! module implements is run; a case is skipped only where this says why.

use std::fs;
use std::path::PathBuf;
use vettra_verifier::api::{handle, State};
use vettra_verifier::json::{self, Mode, Value};

fn repo() -> PathBuf {
    match std::env::var("VETTRA_REPO") {
        Ok(p) => PathBuf::from(p),
        Err(_) => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    }
}

/// A lone surrogate escape in a vector file (a case about notes Rust strings cannot
/// hold) is read as this marker; that case is skipped below.
const LONE_SURROGATE: &str = "<lone surrogate>";

fn read(path: &PathBuf) -> Value {
    read_with(path, false)
}

fn read_with(path: &PathBuf, mark_surrogates: bool) -> Value {
    let mut text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {}", path.display(), e));
    if mark_surrogates {
        text = text.replace("\\ud800", LONE_SURROGATE);
    }
    json::parse(&text, Mode::Request).unwrap_or_else(|e| panic!("{}: {:?}", path.display(), e))
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = fs::read_dir(repo().join("tests/vectors").join(dir))
        .unwrap_or_else(|e| panic!("tests/vectors/{}: {}", dir, e))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().map_or(false, |x| x == "json"))
        .collect();
    out.sort();
    out
}

fn state() -> State {
    let mut s = State::default();
    let catalogue = read(&repo().join("shared/vettra/data/catalogue.json"));
    let answer = call(&mut s, vec![("op", Value::str("configure")), ("catalogue", catalogue)]);
    assert_eq!(answer.get("ok"), Some(&Value::Bool(true)), "{:?}", answer);
    s
}

fn call(s: &mut State, members: Vec<(&str, Value)>) -> Value {
    let text = handle(s, &json::compact(&json::obj(members)));
    json::parse(&text, Mode::Request).expect("the answer is JSON")
}

fn get<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

#[test]
fn canonical_vectors() {
    let mut st = State::default();
    let paths = files("canonical");
    assert!(paths.len() >= 70);
    for path in paths {
        let v = read(&path);
        let answer = call(&mut st, vec![("op", Value::str("canonical")), ("text", get(&v, "input").clone())]);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if get(&v, "want_err") == &Value::Bool(true) {
            assert_eq!(get(&answer, "valid"), &Value::Bool(false), "{}: {:?}", name, answer);
        } else {
            assert_eq!(get(&answer, "canonical"), get(&v, "want"), "{}: {:?}", name, answer);
        }
    }
}

#[test]
fn merkle_vectors() {
    let mut st = State::default();
    let paths = files("merkle");
    assert!(paths.len() >= 60);
    for path in paths {
        let v = read(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match s(get(&v, "kind")) {
            "hash" => {
                let mut req = vec![("op", Value::str("merkle_hash")), ("kind", get(&v, "op").clone())];
                for k in ["data", "left", "right"] {
                    if let Some(x) = v.get(k) {
                        req.push((k, x.clone()));
                    }
                }
                let answer = call(&mut st, req);
                assert_eq!(get(&answer, "hash"), get(&v, "want"), "{}", name);
            }
            "root" => {
                let answer = call(&mut st, vec![("op", Value::str("merkle_root")), ("leaves", get(&v, "leaves").clone())]);
                assert_eq!(get(&answer, "root"), get(&v, "want"), "{}", name);
            }
            kind => {
                let op = if kind == "inclusion" { "verify_inclusion" } else { "verify_consistency" };
                let mut req = vec![("op", Value::str(op))];
                if let Value::Object(members) = &v {
                    for (k, x) in members {
                        if !["op", "kind", "desc", "want_err", "leaves"].contains(&k.as_str()) {
                            req.push((Box::leak(k.clone().into_boxed_str()), x.clone()));
                        }
                    }
                }
                let answer = call(&mut st, req);
                match get(&v, "want_err") {
                    Value::Bool(false) => assert_eq!(get(&answer, "valid"), &Value::Bool(true), "{}: {:?}", name, answer),
                    want => {
                        assert_eq!(get(&answer, "valid"), &Value::Bool(false), "{}", name);
                        assert_eq!(get(&answer, "reason"), want, "{}: {:?}", name, answer);
                    }
                }
            }
        }
    }
}

fn sorted_fields(errors: &Value) -> Value {
    let mut fields: Vec<String> = errors
        .as_array()
        .map(|a| a.iter().map(|e| s(get(e, "field")).to_string()).collect())
        .unwrap_or_default();
    fields.sort();
    fields.dedup();
    Value::Array(fields.into_iter().map(Value::Str).collect())
}

#[test]
fn policy_vectors() {
    let mut st = state();
    let mut counts = (0, 0, 0);
    for path in files("policy") {
        let doc = read(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for case in get(&doc, "cases").as_array().unwrap() {
            let desc = format!("{} / {}", name, s(get(case, "desc")));
            match s(get(&doc, "kind")) {
                "evaluate" => {
                    counts.0 += 1;
                    let answer = call(
                        &mut st,
                        vec![
                            ("op", Value::str("evaluate")),
                            ("policy", get(&doc, "policy").clone()),
                            ("bundle", get(case, "bundle").clone()),
                            ("risk", get(case, "risk").clone()),
                            ("agent", get(case, "agent").clone()),
                        ],
                    );
                    let decision = get(&answer, "decision");
                    let want = get(case, "want");
                    for k in ["outcome", "rule_id", "timeout_s", "on_expiry", "reason"] {
                        if k != "reason" || want.get(k).is_some() {
                            assert_eq!(get(decision, k), get(want, k), "{}: {} in {:?}", desc, k, answer);
                        }
                    }
                }
                "validate" => {
                    counts.1 += 1;
                    let answer = call(&mut st, vec![("op", Value::str("validate_policy")), ("policy", get(case, "policy").clone())]);
                    assert_eq!(sorted_fields(get(&answer, "errors")), *get(case, "want_err"), "{}: {:?}", desc, answer);
                }
                "envelope" => {
                    counts.2 += 1;
                    let mut req = vec![
                        ("op", Value::str("verify_envelope")),
                        ("envelope", get(case, "envelope").clone()),
                        ("trusted_keys", get(&doc, "trusted_keys").clone()),
                        ("min_version", case.get("min_version").cloned().unwrap_or(Value::Int(0))),
                    ];
                    if let Some(active) = case.get("active_payload") {
                        let v = call(&mut st, vec![("op", Value::str("validate_policy")), ("policy", active.clone())]);
                        req.push((
                            "active",
                            json::obj(vec![("version", get(active, "version").clone()), ("digest", get(&v, "digest").clone())]),
                        ));
                    }
                    let answer = call(&mut st, req);
                    match get(case, "want_err") {
                        Value::Null => assert_eq!(get(&answer, "valid"), &Value::Bool(true), "{}: {:?}", desc, answer),
                        want => assert_eq!(&sorted_fields(get(&answer, "errors")), want, "{}: {:?}", desc, answer),
                    }
                }
                other => panic!("{}: unknown kind {}", desc, other),
            }
        }
    }
    assert!(counts.0 >= 150 && counts.1 >= 90 && counts.2 >= 26, "{:?}", counts);
}

/// The differential test's saved disagreements (tests/vectors/differential), if any.
fn saved_disagreements() -> Vec<PathBuf> {
    if repo().join("tests/vectors/differential").is_dir() {
        files("differential")
    } else {
        Vec::new()
    }
}

#[test]
fn risk_vectors() {
    let mut st = state();
    let mut paths = files("risk");
    assert!(!paths.is_empty());
    paths.extend(saved_disagreements());
    let mut n = 0;
    for path in paths {
        let doc = read(&path);
        for case in get(&doc, "cases").as_array().unwrap() {
            n += 1;
            let desc = format!("{} / {}", path.display(), s(get(case, "desc")));
            let policy = get(get(&doc, "policies"), s(get(case, "policy"))).clone();
            let req = vec![
                ("op", Value::str("decide")),
                ("bundle", get(case, "bundle").clone()),
                ("agent", get(case, "agent").clone()),
                ("policy", policy),
            ];
            let answer = call(&mut st, req);
            if case.get("raises").is_some() {
                // the reference raises here: the module must refuse too
                assert_eq!(get(&answer, "ok"), &Value::Bool(false), "{}: {:?}", desc, answer);
                continue;
            }
            assert_eq!(get(&answer, "ok"), &Value::Bool(true), "{}: {:?}", desc, answer);
            let same = |a: &Value, b: &Value| json::canonical(a).unwrap() == json::canonical(b).unwrap();
            assert!(same(get(&answer, "risk"), get(case, "risk")), "{}:\n{}\n{}", desc, json::compact(get(&answer, "risk")), json::compact(get(case, "risk")));
            assert!(same(get(&answer, "decision"), get(case, "decision")), "{}:\n{}\n{}", desc, json::compact(get(&answer, "decision")), json::compact(get(case, "decision")));
        }
    }
    assert!(n >= 50, "{} risk cases", n);
}

#[test]
fn checkpoint_vectors() {
    let mut st = State::default();
    let mut n = 0;
    for path in files("checkpoint") {
        let doc = read_with(&path, true);
        let kind = s(get(&doc, "kind")).to_string();
        for case in get(&doc, "cases").as_array().unwrap() {
            let desc = format!("{} / {}", path.display(), s(get(case, "desc")));
            let want_err = get(case, "want_err");
            if kind == "verifier_key" {
                let got = vettra_verifier::checkpoint::NoteVerifier::parse(s(get(case, "key")));
                match (want_err, got) {
                    (Value::Null, Ok(_)) => {}
                    (Value::Str(w), Err(e)) => assert!(e.contains(w.as_str()), "{}: {}", desc, e),
                    (w, other) => panic!("{}: want {:?}, got {:?}", desc, w, other.err()),
                }
                n += 1;
                continue;
            }
            if kind != "checkpoint" {
                continue; // "note": several verifiers at once (Go's API); the module takes one key
            }
            let key = case.get("verifier_key").or_else(|| doc.get("verifier_key")).cloned().unwrap_or(Value::Null);
            let mut req = vec![("op", Value::str("verify_checkpoint")), ("verifier_key", key)];
            match (case.get("note"), case.get("note_hex")) {
                (Some(note), _) => req.push(("note", note.clone())),
                (None, Some(h)) => req.push(("note_hex", h.clone())),
                _ => panic!("{}: no note", desc),
            }
            if let Some(o) = case.get("origin") {
                req.push(("origin", o.clone()));
            }
            if s(get(case, "note")).contains(LONE_SURROGATE) {
                // hosts encode a note as UTF-8 before it reaches the module: JS and Python
                // both refuse to encode a lone surrogate, so it never arrives
                continue;
            }
            let answer = call(&mut st, req);
            n += 1;
            match want_err {
                Value::Null => {
                    assert_eq!(get(&answer, "valid"), &Value::Bool(true), "{}: {:?}", desc, answer);
                    let want = get(case, "want");
                    assert_eq!(get(&answer, "origin"), get(want, "origin"), "{}", desc);
                    assert_eq!(get(&answer, "size"), get(want, "size"), "{}", desc);
                    assert_eq!(get(&answer, "extensions"), get(want, "extensions"), "{}", desc);
                    let root = vettra_verifier::checkpoint::b64decode(s(get(want, "root_hash")), "root").unwrap();
                    assert_eq!(s(get(&answer, "root_hash")), vettra_verifier::hex(&root), "{}", desc);
                }
                Value::Str(w) => {
                    assert_eq!(get(&answer, "valid"), &Value::Bool(false), "{}: {:?}", desc, answer);
                    assert!(s(get(&answer, "reason")).contains(w.as_str()), "{}: {:?}", desc, answer);
                }
                other => panic!("{}: want_err {:?}", desc, other),
            }
        }
    }
    assert!(n >= 45, "{} checkpoint cases", n);
}

#[test]
fn audit_export_vectors() {
    let mut st = State::default();
    let doc = read(&repo().join("tests/vectors/audit/saved-checkpoints.json"));
    let key = get(&doc, "verifier_key").clone();
    for case in get(&doc, "cases").as_array().unwrap() {
        let desc = s(get(case, "name")).to_string();
        let lines = get(case, "export").as_array().unwrap();
        let mut checkpoints = Vec::new();
        let mut entries = Vec::new();
        let verify = |note: &Value, saved: bool, st: &mut State| {
            let answer = call(st, vec![("op", Value::str("verify_checkpoint")), ("note", note.clone()), ("verifier_key", key.clone())]);
            assert_eq!(get(&answer, "valid"), &Value::Bool(true), "{}: {:?}", desc, answer);
            json::obj(vec![
                ("size", get(&answer, "size").clone()),
                ("root", get(&answer, "root_hash").clone()),
                ("saved", Value::Bool(saved)),
            ])
        };
        for line in &lines[1..] {
            let text = s(line);
            if text.starts_with("{\"checkpoint\":") {
                let parsed = json::parse(text, Mode::Request).unwrap();
                checkpoints.push(verify(get(&parsed, "checkpoint"), false, &mut st));
            } else {
                entries.push(line.clone());
            }
        }
        for note in get(case, "saved").as_array().unwrap() {
            checkpoints.push(verify(note, true, &mut st));
        }
        let answer = call(
            &mut st,
            vec![
                ("op", Value::str("verify_log")),
                ("lines", Value::Array(entries)),
                ("hmac_keys", Value::Null),
                ("checkpoints", Value::Array(checkpoints)),
            ],
        );
        let expected = get(case, "expected");
        assert_eq!(get(&answer, "valid"), get(expected, "valid"), "{}: {:?}", desc, answer);
        if let Some(u) = expected.get("uncovered") {
            assert_eq!(get(&answer, "uncovered"), u, "{}", desc);
        }
        if let Some(seq) = expected.get("seq") {
            let bad = get(&answer, "first_invalid");
            assert_eq!(get(bad, "seq"), seq, "{}: {:?}", desc, answer);
            assert!(s(get(bad, "reason")).starts_with(s(get(expected, "reason_prefix"))), "{}: {:?}", desc, answer);
        }
    }
}
