"""tests/vectors/risk/decide.json is still what the Python reference decides (the WASM
verifier is held to these vectors: tests/unit/test_wasm_vectors.py and cargo test)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.wasm_support import reference_answer
from vettra.domain.catalogue import Catalogue
from vettra.domain.policy import Policy

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "risk" / "decide.json"
DOC = json.loads(VECTORS.read_text("utf-8"))


class Bundle:
    def __init__(self, facts: dict[str, Any]):
        self.__dict__.update(facts)


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["desc"] for c in DOC["cases"]])
def test_the_reference_still_decides_so(case: dict[str, Any]) -> None:
    policy = Policy.from_payload(DOC["policies"][case["policy"]])
    want = {"risk": case["risk"], "decision": case["decision"]}
    got = reference_answer(policy, Bundle(case["bundle"]), Catalogue.default(), case["agent"])
    assert got == want, "regenerate with tests/vectors/risk/make_vectors.py if this is intended"


def test_the_vectors_cover_every_level_outcome_and_fallback_path() -> None:
    risks = [c["risk"] for c in DOC["cases"]]
    decisions = [c["decision"] for c in DOC["cases"]]
    assert {r["level"] for r in risks} == {"LOW", "MEDIUM", "HIGH"}
    assert {d["outcome"] for d in decisions} == {
        "allow",
        "deny",
        "require_approval",
        "require_step_up",
    }
    assert any(r["forced_high"] for r in risks) and any(d["approvers"] for d in decisions)
    reasons = "\n".join(line for r in risks for line in r["reasons"])
    for phrase in (
        "may be disguised",
        "mentions 'secret'",
        "set by the policy override",
        "Ignored the action type",
        "Arguments: ",
        "MCP server",
    ):
        assert phrase in reasons, phrase
