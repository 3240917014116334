"""Framework adapters: raw tool-call shapes, copied from each framework's documentation
(tests/vectors/frameworks: the shapes each adapter takes, refuses, and refuses as ambiguous)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vettra.domain.errors import ValidationFailed
from vettra.domain.frameworks import (
    ADAPTERS,
    KNOWN_SERVICES,
    TOOL_PATTERN,
    ToolCall,
    from_anthropic,
    from_openai,
    map_tool_name,
    tool_problem,
)

VECTORS = Path(__file__).parents[1] / "vectors" / "frameworks"


def _cases(name: str, expected: str) -> list[Any]:
    """tests/vectors/frameworks/NAME.json: each case's adapter (by framework), raw shape and
    ``expected`` (a ToolCall's fields, or the field paths the errors name), with its id."""
    return [
        pytest.param(ADAPTERS[case["framework"]], case["raw"], case[expected], id=case["id"])
        for case in json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    ]


@pytest.mark.parametrize("adapter, raw, want", _cases("valid", "want"))
def test_valid_shapes(adapter, raw, want):
    assert adapter(raw) == ToolCall(**want)


@pytest.mark.parametrize("adapter, raw, fields", _cases("invalid", "fields"))
def test_invalid_shapes_name_every_field(adapter, raw, fields):
    with pytest.raises(ValidationFailed) as info:
        adapter(raw)
    assert sorted(e.field for e in info.value.errors) == sorted(fields)
    assert all(e.message for e in info.value.errors)


def test_bad_json_arguments_message_says_what_was_wrong():
    with pytest.raises(ValidationFailed) as info:
        from_openai({"type": "function", "function": {"name": "x", "arguments": '{"a": '}})
    (error,) = info.value.errors
    assert error.field == "function.arguments" and "not valid JSON" in error.message


def test_wrong_type_message_says_expected_and_found():
    with pytest.raises(ValidationFailed) as info:
        from_anthropic({"name": "x", "input": []})
    assert info.value.errors[0].message == "expected object, found array"


@pytest.mark.parametrize(
    "name, want",
    [
        ("gmail.send_message", "gmail.send_message"),
        ("Gmail.Send_Message", "gmail.send_message"),
        ("github__create_issue", "github.create_issue"),
        ("mcp__github__create_issue", "github.create_issue"),
        ("a__b__c", "a.b.c"),  # mapped, then refused by tool_problem (two dots)
        ("gmail_send_message", "gmail.send_message"),
        ("GCAL_create_event", "gcal.create_event"),
        ("gdrive_share_file", "gdrive.share_file"),
        ("drive_share_file", "drive.share_file"),
        ("user_delete", "user.delete"),
        ("users_list", "custom.users_list"),
        ("iam_grant-role", "iam.grant-role"),
        ("send-email", "custom.send-email"),
        ("gmail", "custom.gmail"),
        ("gmail_", "custom.gmail_"),
        ("get_weather", "custom.get_weather"),
    ],
)
def test_map_tool_name(name, want):
    assert map_tool_name(name) == want


def test_extra_services_extend_the_mapping():
    assert map_tool_name("jira_create", KNOWN_SERVICES + ("jira",)) == "jira.create"
    assert map_tool_name("jira_create") == "custom.jira_create"


def test_known_services_are_valid_service_names():
    assert all(TOOL_PATTERN.fullmatch(f"{s}.op") for s in KNOWN_SERVICES)


@pytest.mark.parametrize(
    "tool, fragment",
    [
        ("Gmail.send", "lowercase"),
        ("gmail", "<service>.<operation>"),
        (".send", "<service>"),
        ("gmail.", "<service>"),
        ("a." + "b" * 127, "at most 128"),
        ("1a.b", "<service>"),
        ("a.b\n", "<service>"),
        ("github.get_x.delete_repository", "exactly one service"),
        ("gdrive.files.share", "'gdrive.files_share'"),
    ],
)
def test_tool_problem(tool, fragment):
    assert fragment in tool_problem(tool)


@pytest.mark.parametrize(
    "tool", ["gmail.send_message", "a.b", "my-svc.do_thing-2", "a.b" + "c" * 125]
)
def test_tool_problem_accepts(tool):
    assert tool_problem(tool) is None


raw_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(
                [
                    "id",
                    "type",
                    "name",
                    "function",
                    "arguments",
                    "input",
                    "args",
                    "call_id",
                    "server",
                    "_meta",
                    "x",
                ]
            )
            | st.text(max_size=4),
            inner,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@given(st.sampled_from(sorted(ADAPTERS)), raw_values)
def test_adapters_raise_only_validation_failed(framework, raw):
    try:
        call = ADAPTERS[framework](raw)
    except ValidationFailed as exc:
        assert exc.errors
    else:
        assert tool_problem(call.tool) is None and isinstance(call.arguments, dict)


# --------------------------------------------------------------------------- one identity


@pytest.mark.parametrize("adapter, raw, fields", _cases("ambiguous", "fields"))
def test_a_call_that_names_its_tool_two_ways_is_refused(adapter, raw, fields):
    with pytest.raises(ValidationFailed) as info:
        adapter(raw)
    assert sorted({e.field for e in info.value.errors}) == fields


def test_dotted_names_beyond_one_dot_are_refused_after_mapping():
    with pytest.raises(ValidationFailed) as info:
        from_anthropic({"name": "github__get_x__delete_repository", "input": {}})
    assert "exactly one service and one operation" in info.value.errors[0].message
