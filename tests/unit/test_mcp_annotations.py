"""MCP tool annotations in an intercept: kept as hints, never digested, only ever raising risk."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vettra.domain.action_bundle import parse_bundle
from vettra.domain.errors import ValidationFailed
from vettra.domain.frameworks import MCP_HINTS
from vettra.domain.risk import assess


def mcp(name: str, annotations: object = None, **arguments: object) -> dict:
    call: dict = {"name": name, "arguments": arguments, "server": "gmail"}
    if annotations is not None:
        call["annotations"] = annotations
    return {"framework": "mcp", "tool_call": call}


def test_boolean_hints_are_kept_and_the_rest_ignored():
    bundle = parse_bundle(
        mcp("modify_labels", {"title": "Labels", "destructiveHint": True, "futureHint": 3})
    )
    assert bundle.annotations == {"destructiveHint": True}
    assert parse_bundle(mcp("modify_labels")).annotations is None


def test_hints_are_not_part_of_the_digest():
    plain = parse_bundle(mcp("modify_labels", None, id="m1"))
    hinted = parse_bundle(mcp("modify_labels", {"destructiveHint": True}, id="m1"))
    assert plain.args_digest == hinted.args_digest


@pytest.mark.parametrize(
    ("annotations", "field", "message"),
    [
        ({"destructiveHint": "yes"}, "tool_call.annotations.destructiveHint", "expected boolean"),
        (["destructiveHint"], "tool_call.annotations", "expected object, found array"),
    ],
)
def test_malformed_annotations_are_a_field_error(annotations, field, message):
    with pytest.raises(ValidationFailed) as caught:
        parse_bundle(mcp("modify_labels", annotations))
    assert [(e.field, message in e.message) for e in caught.value.errors] == [(field, True)]


def test_destructive_raises_a_medium_write_to_high():
    before = assess(parse_bundle(mcp("modify_labels")))
    after = assess(parse_bundle(mcp("modify_labels", {"destructiveHint": True})))
    assert (before.level, before.score) == ("MEDIUM", 25)
    assert (after.level, after.score) == ("HIGH", 55)
    assert after.choices["action_type"] == "delete"
    assert any("destructiveHint: true" in r and "claim" in r for r in after.reasons)


def test_not_read_only_raises_a_read():
    before = assess(parse_bundle(mcp("get_profile")))
    after = assess(parse_bundle(mcp("get_profile", {"readOnlyHint": False})))
    assert before.level == "LOW" and after.choices["action_type"] == "write"
    assert after.score == before.score + 20


def test_reassuring_hints_lower_nothing():
    plain = assess(parse_bundle(mcp("send_message", to="bob@example.com")))
    calmed = assess(
        parse_bundle(
            mcp(
                "send_message",
                {"readOnlyHint": True, "destructiveHint": False},
                to="bob@example.com",
            )
        )
    )
    assert calmed.score == plain.score and calmed.level == plain.level == "MEDIUM"


@given(
    name=st.sampled_from(["get_profile", "send_message", "modify_labels", "delete_message", "x"]),
    hints=st.dictionaries(st.sampled_from(MCP_HINTS), st.booleans()),
)
def test_hints_never_lower_a_score(name, hints):
    plain = assess(parse_bundle(mcp(name)))
    hinted = assess(parse_bundle(mcp(name, hints)))
    assert hinted.score >= plain.score
    for factor, points in plain.factors.items():
        assert hinted.factors[factor] >= points
