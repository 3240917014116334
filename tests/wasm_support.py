"""Shared by the WASM verifier tests: the loaded module (once per session), the Python
reference's answers in the module's JSON shape, and failures saved as vectors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from vettra.domain.canonical import canonical_json
from vettra.domain.policy import Policy
from vettra.services.verifier import ReferenceVerifier

REPO = Path(__file__).resolve().parents[1]
DIFFERENTIAL_VECTORS = REPO / "tests" / "vectors" / "differential"
REFERENCE = ReferenceVerifier()


def load_wasm_verifier() -> Any:
    """The shipped module, loaded and self-tested, or a failure naming what is missing."""
    from vettra.adapters import wasm_verifier

    try:
        return wasm_verifier.load()
    except wasm_verifier.ModuleRefused as exc:
        pytest.fail(f"the shipped WASM verifier does not load: {exc}")


def reference_answer(policy: Policy, bundle: Any, catalogue: Any, agent: str | None) -> Any:
    """``{"risk": …, "decision": …}`` as the module answers ``decide``, or ``("raises", …)``."""
    from vettra.adapters.wasm_verifier import decide_answer

    try:
        risk, decision = REFERENCE.decide(policy, bundle, catalogue, agent)
    except Exception as exc:  # noqa: BLE001 - the reference raising is an answer too
        return ("raises", f"{type(exc).__name__}: {exc}")
    return decide_answer(risk, decision)


def agrees(want: Any, answer: dict[str, Any]) -> bool:
    """Byte-identical JSON of score, level, factors, reasons, decision; or both refuse."""
    if isinstance(want, tuple):
        return not answer.get("ok") and answer.get("error") in ("raises", "unsupported")
    if not answer.get("ok"):
        return answer.get("error") == "unsupported"  # the bridge then asks the reference
    got = {"risk": answer["risk"], "decision": answer["decision"]}
    return canonical_json(got) == canonical_json(want)


def save_vector(
    payload: dict[str, Any], facts: dict[str, Any], agent: str | None, want: Any, got: Any
) -> Path:
    """Write a disagreement as a new vector (tests/vectors/differential/), named by content."""
    case: dict[str, Any] = {
        "desc": "found by the differential test",
        "policy": "p",
        "bundle": facts,
        "agent": agent,
    }
    if isinstance(want, tuple):
        case["raises"] = want[1]
    else:
        case.update(want)
    case["module_answered"] = got
    doc = {
        "format": "vettra.risk-vectors/v1",
        "kind": "decide",
        "desc": "A case where the WASM verifier and the Python reference disagreed "
        "(tests/unit/test_wasm_differential.py); 'risk'/'decision' are the reference's.",
        "policies": {"p": payload},
        "cases": [case],
    }
    text = json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    DIFFERENTIAL_VECTORS.mkdir(parents=True, exist_ok=True)
    path = DIFFERENTIAL_VECTORS / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    path.write_text(text, encoding="utf-8")
    return path
