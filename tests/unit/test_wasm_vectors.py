"""Every shared vector through the shipped module (the same files wasm-verifier's
``cargo test`` reads natively): canonical JSON, Merkle proofs, policy evaluation,
validation and envelopes, whole decisions (tests/vectors/risk and the differential
test's saved disagreements), checkpoint notes and offline audit-export verification."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.wasm_support import DIFFERENTIAL_VECTORS, load_wasm_verifier
from vettra.domain.canonical import canonical_json

VECTORS = Path(__file__).resolve().parents[1] / "vectors"


@pytest.fixture(scope="module")
def module() -> Any:
    return load_wasm_verifier().module


def _load(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def _named(directory: str) -> list[Any]:
    return [pytest.param(p, id=p.stem) for p in sorted((VECTORS / directory).glob("*.json"))]


@pytest.mark.parametrize("path", _named("canonical"))
def test_canonical_vector(module: Any, path: Path) -> None:
    v = _load(path)
    answer = module.request({"op": "canonical", "text": v["input"]})
    if v.get("want_err"):
        assert answer["valid"] is False, answer
    else:
        assert answer["canonical"] == v["want"]


@pytest.mark.parametrize("path", _named("merkle"))
def test_merkle_vector(module: Any, path: Path) -> None:
    v = _load(path)
    if v["kind"] == "hash":
        fields = {k: v[k] for k in ("data", "left", "right") if k in v}
        assert module.request({"op": "merkle_hash", "kind": v["op"], **fields})["hash"] == v["want"]
        return
    if v["kind"] == "root":
        assert module.request({"op": "merkle_root", "leaves": v["leaves"]})["root"] == v["want"]
        return
    skip = {"desc", "kind", "want_err", "leaves"}
    answer = module.request(
        {"op": f"verify_{v['kind']}", **{k: x for k, x in v.items() if k not in skip}}
    )
    if v["want_err"] is False:
        assert answer["valid"] is True, answer
    else:
        assert (answer["valid"], answer["reason"]) == (False, v["want_err"]), answer


def _policy_cases() -> list[Any]:
    out = []
    for path in sorted((VECTORS / "policy").glob("*.json")):
        doc = _load(path)
        for i, case in enumerate(doc["cases"]):
            out.append(pytest.param(doc, case, id=f"{path.stem}-{i}"))
    return out


def _fields(errors: list[dict[str, str]]) -> list[str]:
    return sorted({e["field"] for e in errors})


@pytest.mark.parametrize("doc, case", _policy_cases())
def test_policy_vector(module: Any, doc: dict[str, Any], case: dict[str, Any]) -> None:
    if doc["kind"] == "evaluate":
        answer = module.request(
            {
                "op": "evaluate",
                "policy": doc["policy"],
                "bundle": case["bundle"],
                "risk": case["risk"],
                "agent": case.get("agent"),
            }
        )
        got = answer["decision"]
        assert {k: got[k] for k in case["want"]} == case["want"]
    elif doc["kind"] == "validate":
        answer = module.request({"op": "validate_policy", "policy": case["policy"]})
        assert _fields(answer["errors"]) == case["want_err"]
    else:
        request: dict[str, Any] = {
            "op": "verify_envelope",
            "envelope": case["envelope"],
            "trusted_keys": doc["trusted_keys"],
            "min_version": case.get("min_version", 0),
        }
        if "active_payload" in case:
            digest = module.request({"op": "validate_policy", "policy": case["active_payload"]})[
                "digest"
            ]
            request["active"] = {"version": case["active_payload"]["version"], "digest": digest}
        answer = module.request(request)
        if case["want_err"] is None:
            assert answer["valid"] is True, answer
        else:
            assert _fields(answer["errors"]) == case["want_err"], answer


def _decide_cases() -> list[Any]:
    out = []
    paths = sorted((VECTORS / "risk").glob("*.json")) + sorted(DIFFERENTIAL_VECTORS.glob("*.json"))
    for path in paths:
        doc = _load(path)
        for i, case in enumerate(doc["cases"]):
            out.append(pytest.param(doc, case, id=f"{path.parent.name}-{path.stem}-{i}"))
    return out


@pytest.mark.parametrize("doc, case", _decide_cases())
def test_decide_vector(module: Any, doc: dict[str, Any], case: dict[str, Any]) -> None:
    answer = module.request(
        {
            "op": "decide",
            "policy": doc["policies"][case["policy"]],
            "bundle": case["bundle"],
            "agent": case["agent"],
        }
    )
    if "raises" in case:
        assert not answer["ok"] and answer["error"] in ("raises", "unsupported"), answer
        return
    assert answer["ok"], answer
    got = {"risk": answer["risk"], "decision": answer["decision"]}
    assert canonical_json(got) == canonical_json(
        {"risk": case["risk"], "decision": case["decision"]}
    )


def _checkpoint_cases() -> list[Any]:
    out = []
    for path in sorted((VECTORS / "checkpoint").glob("*.json")):
        doc = _load(path)
        if doc["kind"] != "checkpoint":
            continue  # "note" (several verifiers at once) and "verifier_key": cargo test
        for i, case in enumerate(doc["cases"]):
            out.append(pytest.param(doc, case, id=f"{path.stem}-{i}"))
    return out


@pytest.mark.parametrize("doc, case", _checkpoint_cases())
def test_checkpoint_vector(module: Any, doc: dict[str, Any], case: dict[str, Any]) -> None:
    request: dict[str, Any] = {
        "op": "verify_checkpoint",
        "verifier_key": case.get("verifier_key", doc.get("verifier_key")),
    }
    if "note_hex" in case:
        request["note_hex"] = case["note_hex"]
    else:
        try:
            case["note"].encode("utf-8")
        except UnicodeEncodeError:
            pytest.skip("a lone surrogate cannot be encoded for the module (nor by a browser)")
        request["note"] = case["note"]
    if "origin" in case:
        request["origin"] = case["origin"]
    answer = module.request(request)
    if case["want_err"] is None:
        want = case["want"]
        assert answer["valid"] is True, answer
        assert (answer["origin"], answer["size"], answer["extensions"]) == (
            want["origin"],
            want["size"],
            want["extensions"],
        )
        assert answer["root_hash"] == base64.b64decode(want["root_hash"]).hex()
    else:
        assert answer["valid"] is False and case["want_err"] in answer["reason"], answer


def _audit_cases() -> list[Any]:
    doc = _load(VECTORS / "audit" / "saved-checkpoints.json")
    return [pytest.param(doc, case, id=case["name"][:40]) for case in doc["cases"]]


@pytest.mark.parametrize("doc, case", _audit_cases())
def test_audit_export_vector(module: Any, doc: dict[str, Any], case: dict[str, Any]) -> None:
    def checkpoint(note: str, saved: bool) -> dict[str, Any]:
        answer = module.request(
            {"op": "verify_checkpoint", "note": note, "verifier_key": doc["verifier_key"]}
        )
        assert answer["valid"], answer
        return {"size": answer["size"], "root": answer["root_hash"], "saved": saved}

    checkpoints, lines = [], []
    for line in case["export"][1:]:
        if line.startswith('{"checkpoint":'):
            checkpoints.append(checkpoint(json.loads(line)["checkpoint"], False))
        else:
            lines.append(line)
    checkpoints += [checkpoint(note, True) for note in case["saved"]]
    report = module.request(
        {"op": "verify_log", "lines": lines, "hmac_keys": None, "checkpoints": checkpoints}
    )
    expected = case["expected"]
    assert report["valid"] is expected["valid"], report
    if "uncovered" in expected:
        assert report["uncovered"] == expected["uncovered"]
    if "seq" in expected:
        assert report["first_invalid"]["seq"] == expected["seq"]
        assert report["first_invalid"]["reason"].startswith(expected["reason_prefix"])
