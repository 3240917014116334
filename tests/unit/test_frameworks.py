"""Framework adapters: raw tool-call shapes, copied from each framework's documentation."""

from __future__ import annotations

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
    from_langchain,
    from_mcp,
    from_openai,
    map_tool_name,
    tool_problem,
)

WEATHER = {"location": "Paris, France"}

# (id, adapter, raw shape, expected ToolCall)
VALID = [
    (
        "openai-chat",
        from_openai,
        {
            "id": "call_12345xyz",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"location":"Paris, France"}'},
        },
        ToolCall("custom.get_weather", WEATHER, "call_12345xyz"),
    ),
    (
        "openai-chat-known-service",
        from_openai,
        {
            "id": "call_abc",
            "type": "function",
            "function": {
                "name": "gmail_send_message",
                "arguments": '{"to": "a@b.com", "subject": "Hi", "body": "…"}',
            },
        },
        ToolCall("gmail.send_message", {"to": "a@b.com", "subject": "Hi", "body": "…"}, "call_abc"),
    ),
    (
        "openai-chat-streamed-index",
        from_openai,
        {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "github__create_issue", "arguments": "{}"},
        },
        ToolCall("github.create_issue", {}, "call_1"),
    ),
    (
        "openai-chat-empty-arguments",
        from_openai,
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "slack_list_channels", "arguments": ""},
        },
        ToolCall("slack.list_channels", {}, "call_2"),
    ),
    (
        "openai-responses",
        from_openai,
        {
            "type": "function_call",
            "id": "fc_12345xyz",
            "call_id": "call_12345xyz",
            "name": "get_weather",
            "arguments": '{"location":"Paris, France"}',
            "status": "completed",
        },
        ToolCall("custom.get_weather", WEATHER, "call_12345xyz"),
    ),
    (
        "anthropic-tool-use",
        from_anthropic,
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {"location": "San Francisco, CA", "unit": "celsius"},
        },
        ToolCall(
            "custom.get_weather",
            {"location": "San Francisco, CA", "unit": "celsius"},
            "toolu_01A09q90qw90lq917835lq9",
        ),
    ),
    (
        "anthropic-claude-code-mcp-name",
        from_anthropic,
        {
            "type": "tool_use",
            "id": "toolu_02",
            "name": "mcp__github__create_pull_request",
            "input": {
                "owner": "acme",
                "repo": "api",
                "title": "Fix",
                "head": "fix",
                "base": "main",
            },
        },
        ToolCall(
            "github.create_pull_request",
            {"owner": "acme", "repo": "api", "title": "Fix", "head": "fix", "base": "main"},
            "toolu_02",
        ),
    ),
    (
        "langchain-tool-call",
        from_langchain,
        {"name": "multiply", "args": {"a": 3, "b": 12}, "id": "call_xyz", "type": "tool_call"},
        ToolCall("custom.multiply", {"a": 3, "b": 12}, "call_xyz"),
    ),
    (
        "langchain-null-id",
        from_langchain,
        {"name": "stripe_create_refund", "args": {"charge": "ch_1", "amount": 500}, "id": None},
        ToolCall("stripe.create_refund", {"charge": "ch_1", "amount": 500}, None),
    ),
    (
        "mcp-tools-call",
        from_mcp,
        {
            "name": "get_weather",
            "arguments": {"location": "New York"},
            "_meta": {"progressToken": "abc123"},
        },
        ToolCall("custom.get_weather", {"location": "New York"}, None),
    ),
    (
        "mcp-no-arguments",
        from_mcp,
        {"name": "drive_list_files"},
        ToolCall("drive.list_files", {}, None),
    ),
    (
        "mcp-server-names-service",
        from_mcp,
        {"name": "create_issue", "arguments": {"title": "Bug"}, "server": "GitHub"},
        ToolCall("github.create_issue", {"title": "Bug"}, None, "github"),
    ),
    (
        "mcp-server-prefix-not-doubled",
        from_mcp,
        {"name": "jira_create_ticket", "arguments": {}, "server": "jira"},
        ToolCall("jira.create_ticket", {}, None, "jira"),
    ),
    (
        "mcp-dotted-name-agreeing-with-server",
        from_mcp,
        {"name": "gmail.read_inbox", "server": "gmail"},
        ToolCall("gmail.read_inbox", {}, None, "gmail"),
    ),
]


@pytest.mark.parametrize("adapter, raw, want", [v[1:] for v in VALID], ids=[v[0] for v in VALID])
def test_valid_shapes(adapter, raw, want):
    assert adapter(raw) == want


# (id, adapter, raw shape, field paths expected in the errors)
INVALID = [
    ("openai-not-object", from_openai, ["function"], ["$"]),
    ("openai-missing-function", from_openai, {"id": "c", "type": "function"}, ["function"]),
    (
        "openai-bad-json",
        from_openai,
        {"id": "c", "type": "function", "function": {"name": "x_y", "arguments": '{"a": '}},
        ["function.arguments"],
    ),
    (
        "openai-arguments-not-object",
        from_openai,
        {"type": "function", "function": {"name": "x_y", "arguments": "[1, 2]"}},
        ["function.arguments"],
    ),
    (
        "openai-arguments-parsed-object",
        from_openai,
        {"type": "function", "function": {"name": "x_y", "arguments": {"a": 1}}},
        ["function.arguments"],
    ),
    (
        "openai-arguments-nan",
        from_openai,
        {"type": "function", "function": {"name": "x_y", "arguments": '{"a": NaN}'}},
        ["function.arguments"],
    ),
    (
        "openai-arguments-duplicate-key",
        from_openai,
        {"type": "function", "function": {"name": "x_y", "arguments": '{"a":1,"a":2}'}},
        ["function.arguments"],
    ),
    (
        "openai-wrong-type-and-missing-name",
        from_openai,
        {"id": 7, "type": "tool", "function": {"arguments": "{}"}},
        ["type", "id", "function.name"],
    ),
    (
        "openai-name-nul",
        from_openai,
        {"type": "function", "function": {"name": "a\x00b", "arguments": "{}"}},
        ["function.name"],
    ),
    (
        "openai-responses-missing-arguments",
        from_openai,
        {"type": "function_call", "call_id": "c", "name": "x"},
        ["arguments"],
    ),
    (
        "openai-responses-bad-name",
        from_openai,
        {"type": "function_call", "call_id": 1, "name": "9lives", "arguments": "{}"},
        ["call_id", "name"],
    ),
    (
        "anthropic-missing-input",
        from_anthropic,
        {"type": "tool_use", "id": "toolu_1", "name": "x"},
        ["input"],
    ),
    (
        "anthropic-input-array",
        from_anthropic,
        {"type": "tool_use", "id": "toolu_1", "name": "x", "input": []},
        ["input"],
    ),
    (
        "anthropic-wrong-block",
        from_anthropic,
        {"type": "text", "text": "hello"},
        ["type", "name", "input"],
    ),
    ("langchain-args-string", from_langchain, {"name": "x", "args": "{}"}, ["args"]),
    ("langchain-empty-name", from_langchain, {"name": "", "args": {}}, ["name"]),
    (
        "langchain-bad-type",
        from_langchain,
        {"name": "x", "args": {}, "type": "tool_call_chunk"},
        ["type"],
    ),
    ("mcp-arguments-array", from_mcp, {"name": "x", "arguments": [1]}, ["arguments"]),
    ("mcp-meta-string", from_mcp, {"name": "x", "_meta": "m"}, ["_meta"]),
    ("mcp-bad-server", from_mcp, {"name": "x", "server": "my server!"}, ["server"]),
    ("mcp-missing-name", from_mcp, {"arguments": {}}, ["name"]),
    ("name-too-long", from_anthropic, {"name": "a" * 130, "input": {}}, ["name"]),
    ("name-non-ascii", from_anthropic, {"name": "envoyer_télégramme", "input": {}}, ["name"]),
]


@pytest.mark.parametrize(
    "adapter, raw, fields", [v[1:] for v in INVALID], ids=[v[0] for v in INVALID]
)
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

AMBIGUOUS = [
    # a Responses-style name beside a Chat Completions function: which one would run?
    (
        "openai-name-and-function",
        from_openai,
        {
            "type": "function",
            "name": "user_get_profile",
            "arguments": "{}",
            "function": {"name": "github_delete_repo", "arguments": "{}"},
        },
        ["arguments", "name"],
    ),
    (
        "openai-responses-with-function",
        from_openai,
        {
            "type": "function_call",
            "name": "github_delete_repo",
            "arguments": "{}",
            "function": {"name": "github_delete_repo", "arguments": "{}"},
        },
        ["function"],
    ),
    (
        "openai-same-name-twice",
        from_openai,
        {"name": "user_get_profile", "function": {"name": "user_get_profile", "arguments": "{}"}},
        ["name"],
    ),
    (
        "openai-function-with-input",
        from_openai,
        {"function": {"name": "x", "arguments": "{}", "input": {"repo": "a/b"}}},
        ["function.input"],
    ),
    (
        "openai-chat-with-input",
        from_openai,
        {"function": {"name": "x", "arguments": "{}"}, "input": {"a": 1}},
        ["input"],
    ),
    (
        "anthropic-with-function",
        from_anthropic,
        {
            "type": "tool_use",
            "name": "user_get_profile",
            "input": {},
            "function": {"name": "github_delete_repo", "arguments": "{}"},
        },
        ["function"],
    ),
    (
        "anthropic-with-arguments",
        from_anthropic,
        {"name": "x", "input": {}, "arguments": {"repo": "a/b"}},
        ["arguments"],
    ),
    (
        "langchain-with-tool",
        from_langchain,
        {"name": "x", "args": {}, "tool": "github.delete_repo"},
        ["tool"],
    ),
    ("langchain-with-input", from_langchain, {"name": "x", "args": {}, "input": {}}, ["input"]),
    (
        "mcp-with-function",
        from_mcp,
        {"name": "x", "function": {"name": "github_delete_repo"}},
        ["function"],
    ),
    ("mcp-with-tool-name", from_mcp, {"name": "x", "tool_name": "y"}, ["tool_name"]),
    (
        "mcp-name-disagrees-with-server",
        from_mcp,
        {"name": "gmail.read_inbox", "server": "mail-proxy"},
        ["name"],
    ),
    (
        "mcp-namespaced-name-disagrees-with-server",
        from_mcp,
        {"name": "mcp__github__delete_repo", "server": "slack"},
        ["name"],
    ),
]


@pytest.mark.parametrize(
    "adapter, raw, fields", [v[1:] for v in AMBIGUOUS], ids=[v[0] for v in AMBIGUOUS]
)
def test_a_call_that_names_its_tool_two_ways_is_refused(adapter, raw, fields):
    with pytest.raises(ValidationFailed) as info:
        adapter(raw)
    assert sorted({e.field for e in info.value.errors}) == fields


def test_dotted_names_beyond_one_dot_are_refused_after_mapping():
    with pytest.raises(ValidationFailed) as info:
        from_anthropic({"name": "github__get_x__delete_repository", "input": {}})
    assert "exactly one service and one operation" in info.value.errors[0].message
