"""The action bundle: plain and framework bodies of POST /api/actions/intercept."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.action_bundle import (
    FRAMEWORKS,
    MAX_ARGUMENTS_BYTES,
    MAX_CONTEXT_BYTES,
    ActionBundle,
    parse_bundle,
)
from vettra.domain.canonical import MAX_SAFE_INTEGER, canonical_json, sha256_digest
from vettra.domain.errors import MalformedRequest, ValidationFailed

SEND = {"to": "a@b.com", "subject": "Quarterly numbers", "body": "See attached."}
PLAIN = {
    "tool": "gmail.send_message",
    "arguments": SEND,
    "framework": "plain",
    "session_id": "ses_01HZX-a_b",
    "resource": "mailbox:me",
    "context": {"reason": "asked"},
    "timeout_s": 300,
}


def fields_of(body) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        parse_bundle(body)
    assert all(e.message for e in info.value.errors)
    return sorted(e.field for e in info.value.errors)


def message_for(body, field: str) -> str:
    with pytest.raises(ValidationFailed) as info:
        parse_bundle(body)
    return next(e.message for e in info.value.errors if e.field == field)


def test_plain_bundle_full():
    bundle = parse_bundle(PLAIN)
    assert bundle == ActionBundle(
        tool="gmail.send_message",
        service="gmail",
        operation="send_message",
        arguments=SEND,
        framework="plain",
        session_id="ses_01HZX-a_b",
        resource="mailbox:me",
        context={"reason": "asked"},
        timeout_s=300,
        call_id=None,
        args_digest=sha256_digest(SEND),
    )
    assert bundle.args_digest.startswith("sha256:") and len(bundle.args_digest) == 71


def test_plain_bundle_minimal_defaults():
    bundle = parse_bundle({"tool": "github.merge_pull_request", "arguments": {}})
    assert (
        bundle.framework,
        bundle.session_id,
        bundle.resource,
        bundle.context,
        bundle.timeout_s,
        bundle.call_id,
    ) == ("plain", None, None, {}, None, None)
    assert bundle.operation == "merge_pull_request"


def test_a_tool_has_exactly_one_service_and_one_operation():
    # one dot only: no glob `*` can then span an operation it was not written for
    assert fields_of({"tool": "gdrive.files.share", "arguments": {}}) == ["tool"]
    assert fields_of({"tool": "github.get_x.delete_repository", "arguments": {}}) == ["tool"]
    bundle = parse_bundle({"tool": "gdrive.files_share", "arguments": {}})
    assert (bundle.service, bundle.operation) == ("gdrive", "files_share")


def test_mcp_server_is_kept_as_a_claim():
    bundle = parse_bundle({"framework": "mcp", "name": "create_issue", "server": "github"})
    assert (bundle.tool, bundle.server) == ("github.create_issue", "github")
    assert parse_bundle({"tool": "github.create_issue", "arguments": {}}).server is None


def test_as_dict_is_json_ready_with_api_names():
    out = parse_bundle(PLAIN).as_dict()
    assert json.loads(json.dumps(out)) == out
    assert set(out) == {
        "tool",
        "service",
        "operation",
        "arguments",
        "framework",
        "session_id",
        "resource",
        "context",
        "timeout_s",
        "call_id",
        "args_digest",
        "server",
        "annotations",
    }


def test_bundle_does_not_alias_the_body():
    body = {"tool": "a.b", "arguments": {"list": [1]}}
    bundle = parse_bundle(body)
    body["arguments"]["list"].append(2)
    assert bundle.arguments == {"list": [1]}
    assert bundle.args_digest == sha256_digest({"list": [1]})


def test_framework_label_on_a_plain_bundle_is_kept():
    """docs/api.md's own example: a plain bundle that says it came from OpenAI."""
    bundle = parse_bundle({**PLAIN, "framework": "openai"})
    assert (bundle.tool, bundle.framework, bundle.call_id) == ("gmail.send_message", "openai", None)


OPENAI_CALL = {
    "id": "call_9",
    "type": "function",
    "function": {"name": "gmail_send_message", "arguments": json.dumps(SEND)},
}
ENVELOPE = {
    "session_id": "ses_abc",
    "resource": "mailbox:me",
    "context": {"run": 7},
    "timeout_s": 60,
}


@pytest.mark.parametrize(
    "framework, raw, tool, call_id",
    [
        ("openai", OPENAI_CALL, "gmail.send_message", "call_9"),
        (
            "openai",
            {
                "type": "function_call",
                "call_id": "call_r",
                "name": "gmail_send_message",
                "arguments": json.dumps(SEND),
            },
            "gmail.send_message",
            "call_r",
        ),
        (
            "anthropic",
            {"type": "tool_use", "id": "toolu_1", "name": "gmail_send_message", "input": SEND},
            "gmail.send_message",
            "toolu_1",
        ),
        (
            "langchain",
            {"name": "gmail_send_message", "args": SEND, "id": "lc_1", "type": "tool_call"},
            "gmail.send_message",
            "lc_1",
        ),
        (
            "mcp",
            {"name": "send_message", "arguments": SEND, "server": "gmail"},
            "gmail.send_message",
            None,
        ),
    ],
)
@pytest.mark.parametrize("nested", [False, True], ids=["top-level", "under-tool_call"])
def test_framework_shapes_with_envelope(framework, raw, tool, call_id, nested):
    body = {"framework": framework, **ENVELOPE}
    body.update({"tool_call": raw} if nested else raw)
    bundle = parse_bundle(body)
    assert (bundle.tool, bundle.framework, bundle.call_id) == (tool, framework, call_id)
    assert bundle.arguments == SEND and bundle.args_digest == sha256_digest(SEND)
    assert (bundle.session_id, bundle.resource, bundle.context, bundle.timeout_s) == (
        "ses_abc",
        "mailbox:me",
        {"run": 7},
        60,
    )


def test_same_call_in_every_framework_has_the_same_digest():
    digests = {
        parse_bundle({"framework": f, **raw}).args_digest
        for f, raw in [
            ("openai", OPENAI_CALL),
            ("anthropic", {"name": "x", "input": SEND}),
            ("langchain", {"name": "x", "args": SEND}),
            ("mcp", {"name": "x", "arguments": SEND}),
        ]
    }
    assert digests == {parse_bundle(PLAIN).args_digest}


def test_framework_errors_are_prefixed_when_nested():
    bad = {"type": "function", "function": {"name": "x", "arguments": "{oops"}}
    assert fields_of({"framework": "openai", "tool_call": bad}) == ["tool_call.function.arguments"]
    assert fields_of({"framework": "openai", **bad}) == ["function.arguments"]
    assert fields_of({"framework": "anthropic", "tool_call": []}) == ["tool_call"]


def test_unknown_keys_beside_tool_call_are_refused():
    body = {"framework": "mcp", "tool_call": {"name": "x"}, "extra": 1}
    assert fields_of(body) == ["extra"]


def test_framework_arguments_are_checked_like_plain_ones():
    big = {"name": "x", "input": {"blob": "x" * MAX_ARGUMENTS_BYTES}}
    assert fields_of({"framework": "anthropic", **big}) == ["input"]
    nul = {"name": "x", "args": {"a": ["\x00"]}}
    assert fields_of({"framework": "langchain", "tool_call": nul}) == ["tool_call.args.a[0]"]
    escaped_nul = {"name": "x", "arguments": '{"a": "\\u0000"}'}
    assert fields_of({"framework": "openai", "function": escaped_nul}) == ["function.arguments.a"]
    assert fields_of({"framework": "mcp", "name": "x", "arguments": {"k": float("nan")}}) == [
        "arguments.k"
    ]


def test_all_problems_are_reported_at_once():
    body = {
        "tool": "Gmail.Send",
        "arguments": [],
        "framework": "plain",
        "session_id": "s",
        "resource": 5,
        "context": "c",
        "timeout_s": 0,
        "colour": "red",
    }
    assert fields_of(body) == [
        "arguments",
        "colour",
        "context",
        "resource",
        "session_id",
        "timeout_s",
        "tool",
    ]


@pytest.mark.parametrize(
    "body, field, fragment",
    [
        ([], "$", "expected object, found array"),
        ("tool", "$", "expected object, found string"),
        (None, "$", "expected object, found null"),
        ({"arguments": {}}, "tool", "required"),
        ({"tool": "a.b"}, "arguments", "required"),
        ({"tool": 3, "arguments": {}}, "tool", "expected string, found integer"),
        ({"tool": "Gmail.send", "arguments": {}}, "tool", "lowercase"),
        ({"tool": "gmail_send", "arguments": {}}, "tool", "<service>.<operation>"),
        ({"tool": "gmail.", "arguments": {}}, "tool", "<service>.<operation>"),
        ({"tool": "a." + "b" * 127, "arguments": {}}, "tool", "at most 128"),
        ({"tool": "a.b\x00", "arguments": {}}, "tool", "NUL"),
        ({"tool": "a.b", "arguments": [1]}, "arguments", "expected object, found array"),
        ({"tool": "a.b", "arguments": "{}"}, "arguments", "expected object, found string"),
        ({"tool": "a.b", "arguments": {"x": "y" * MAX_ARGUMENTS_BYTES}}, "arguments", "at most"),
        ({"tool": "a.b", "arguments": {"x": "a\x00"}}, "arguments.x", "NUL"),
        ({"tool": "a.b", "arguments": {"k\x00": 1}}, "arguments", "key"),
        ({"tool": "a.b", "arguments": {"n": float("inf")}}, "arguments.n", "finite"),
        ({"tool": "a.b", "arguments": {"n": MAX_SAFE_INTEGER + 1}}, "arguments.n", "range"),
        ({"tool": "a.b", "arguments": {"s": "\ud800"}}, "arguments.s", "surrogate"),
        ({"tool": "a.b", "arguments": {"x": {1, 2}}}, "arguments.x", "JSON value"),
        (
            {"tool": "a.b", "arguments": {}, "framework": "crewai"},
            "framework",
            "expected one of plain, openai, anthropic, langchain, mcp",
        ),
        ({"tool": "a.b", "arguments": {}, "framework": None}, "framework", "found null"),
        ({"tool": "a.b", "arguments": {}, "session_id": "abc"}, "session_id", "ses_"),
        ({"tool": "a.b", "arguments": {}, "session_id": "ses_"}, "session_id", "ses_"),
        ({"tool": "a.b", "arguments": {}, "session_id": "ses_" + "a" * 65}, "session_id", "ses_"),
        ({"tool": "a.b", "arguments": {}, "session_id": "ses_a b"}, "session_id", "ses_"),
        ({"tool": "a.b", "arguments": {}, "session_id": 12}, "session_id", "found integer"),
        ({"tool": "a.b", "arguments": {}, "resource": "r" * 513}, "resource", "at most 512"),
        ({"tool": "a.b", "arguments": {}, "resource": ["r"]}, "resource", "found array"),
        ({"tool": "a.b", "arguments": {}, "resource": "r\x00"}, "resource", "NUL"),
        ({"tool": "a.b", "arguments": {}, "context": []}, "context", "expected object"),
        (
            {"tool": "a.b", "arguments": {}, "context": {"c": "x" * MAX_CONTEXT_BYTES}},
            "context",
            "at most 8192",
        ),
        ({"tool": "a.b", "arguments": {}, "timeout_s": True}, "timeout_s", "found boolean"),
        ({"tool": "a.b", "arguments": {}, "timeout_s": 30.0}, "timeout_s", "found number"),
        ({"tool": "a.b", "arguments": {}, "timeout_s": "30"}, "timeout_s", "found string"),
        ({"tool": "a.b", "arguments": {}, "timeout_s": 0}, "timeout_s", "between 1 and 86400"),
        ({"tool": "a.b", "arguments": {}, "timeout_s": 86401}, "timeout_s", "between 1 and 86400"),
        ({"tool": "a.b", "arguments": {}, "call_id": "c"}, "call_id", "unknown field"),
    ],
)
def test_malformed_fields(body, field, fragment):
    assert fragment in message_for(body, field)


@pytest.mark.parametrize("timeout_s", [1, 86_400])
def test_timeout_bounds_are_inclusive(timeout_s):
    assert (
        parse_bundle({"tool": "a.b", "arguments": {}, "timeout_s": timeout_s}).timeout_s
        == timeout_s
    )


def test_size_limits_are_on_the_canonical_form():
    padding = MAX_ARGUMENTS_BYTES - len(canonical_json({"x": ""}))
    assert parse_bundle({"tool": "a.b", "arguments": {"x": "y" * padding}})
    assert fields_of({"tool": "a.b", "arguments": {"x": "y" * (padding + 1)}}) == ["arguments"]


def test_unknown_framework_still_reports_plain_fields():
    assert fields_of({"framework": "crewai", "tool": "X", "arguments": {}}) == ["framework", "tool"]


# --- properties -----------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=15,
)
field_values = {
    "tool": st.sampled_from(["gmail.send", "Gmail.send", "x", "", "a.b\x00"]) | json_values,
    "arguments": st.dictionaries(st.text(max_size=5), json_values, max_size=4) | json_values,
    "framework": st.sampled_from(FRAMEWORKS + ("other",)) | json_values,
    "session_id": st.sampled_from(["ses_1", "ses_", "x"]) | json_values,
    "resource": st.text(max_size=20) | json_values,
    "context": st.dictionaries(st.text(max_size=5), json_values, max_size=3) | json_values,
    "timeout_s": st.integers(-5, 90_000) | json_values,
    "tool_call": json_values,
    "name": json_values,
    "input": json_values,
    "args": json_values,
    "function": st.fixed_dictionaries(
        {"name": st.text(max_size=8), "arguments": st.text(max_size=12)}
    )
    | json_values,
}
random_bundles = st.lists(st.sampled_from(sorted(field_values)), unique=True).flatmap(
    lambda keys: st.fixed_dictionaries({k: field_values[k] for k in keys})
)
VALID_BODIES = [
    PLAIN,
    {"framework": "openai", **OPENAI_CALL, **ENVELOPE},
    {"framework": "anthropic", "tool_call": {"name": "x", "input": SEND}},
    {"framework": "mcp", "name": "send", "arguments": SEND, "server": "gmail"},
]


def _mutate(base: dict, changes: dict, dropped: list[str]) -> dict:
    body = {k: v for k, v in base.items() if k not in dropped}
    body.update(changes)
    return body


# valid bodies with zero to two fields replaced and some dropped: reaches the success path
near_bundles = st.builds(
    _mutate,
    st.sampled_from(VALID_BODIES),
    st.lists(st.sampled_from(sorted(field_values)), unique=True, max_size=2).flatmap(
        lambda keys: st.fixed_dictionaries({k: field_values[k] for k in keys})
    ),
    st.lists(st.sampled_from(sorted(field_values)), max_size=2),
)


@given(json_values | random_bundles | near_bundles)
@settings(max_examples=400)
def test_parse_bundle_raises_only_validation_errors(body):
    try:
        bundle = parse_bundle(body)
    except (ValidationFailed, MalformedRequest) as exc:
        assert isinstance(exc, ValidationFailed) and exc.errors
    else:
        assert bundle.args_digest == sha256_digest(bundle.arguments)
        json.dumps(bundle.as_dict(), allow_nan=False)


safe_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10
)
safe_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | safe_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(safe_text, inner, max_size=4),
    max_leaves=20,
)


def _reordered(value, rnd: random.Random):
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: _reordered(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [_reordered(v, rnd) for v in value]
    return value


@given(st.dictionaries(safe_text, safe_values, max_size=6), st.randoms(use_true_random=False))
def test_args_digest_ignores_key_order(arguments, rnd):
    first = parse_bundle({"tool": "a.b", "arguments": arguments})
    second = parse_bundle({"arguments": _reordered(arguments, rnd), "tool": "a.b"})
    assert first.args_digest == second.args_digest
    via_openai = parse_bundle(
        {
            "framework": "openai",
            "function": {"name": "a__b", "arguments": json.dumps(_reordered(arguments, rnd))},
        }
    )
    assert via_openai.args_digest == first.args_digest
