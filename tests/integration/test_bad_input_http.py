"""Malformed and hostile input: always a clear 4xx problem+json, never a 5xx,
and nothing written (the audit chain length does not move)."""

from __future__ import annotations

import socket

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PROBLEM = "application/problem+json"


def _chain_length(admin) -> int:
    return admin.get("/api/audit/verify").json()["length"]


JSON = "application/json"
SEND = b'{"tool": "gmail.send_message", "arguments": {}}'
# 400: not a JSON document Vettra reads (empty, truncated, NaN, duplicate keys, lone
# surrogates, unsafe integers, not UTF-8, too deep)
MALFORMED_BODIES = [
    b"",
    b"{",
    b'{"tool": "gmail.send_message", "arguments": {"a": NaN}}',
    b'{"tool": "a.b", "tool": "c.d", "arguments": {}}',
    b'{"tool": "gmail.send_message", "arguments": {"x": "\\ud800"}}',
    b'{"tool": "gmail.send_message", "arguments": {"n": 123456789012345678901234567890}}',
    b"\xff\xfe{}",
    b"[" * 5000 + b"]" * 5000,
    b'{"tool": "gmail.send_message", "arguments": ' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}",
]
# 422: JSON, but not an action bundle
INVALID_BUNDLES = [
    b"[]",
    b"null",
    b'{"tool": "gmail.send_message"}',
    b'{"tool": 5, "arguments": {}}',
    b'{"tool": "gmail.send_message", "arguments": []}',
    b'{"tool": "no-dot", "arguments": {}}',
    b'{"tool": "gmail.send_message", "arguments": {}, "framework": "skynet"}',
    b'{"tool": "gmail.send_message", "arguments": {}, "timeout_s": "soon"}',
    b'{"tool": "gmail.send_message", "arguments": {}, "timeout_s": 0}',
    b'{"tool": "gmail.send_message", "arguments": {}, "surprise": 1}',
    b'{"framework": "openai", "type": "function", "function": {"name": "gmail_send_message", "arguments": "{oops"}}',
]
BAD_BODIES = (
    [(body, JSON, 400) for body in MALFORMED_BODIES]
    + [(body, JSON, 422) for body in INVALID_BUNDLES]
    + [(SEND, ctype, 415) for ctype in ("text/plain", "")]  # a good body, not said to be JSON
)


@pytest.mark.parametrize("body, ctype, status", BAD_BODIES, ids=range(len(BAD_BODIES)))
def test_bad_intercept_bodies(agent, admin, body, ctype, status) -> None:
    before = _chain_length(admin)
    headers = {"Content-Type": ctype} if ctype else {}
    r = agent.post("/api/actions/intercept", content=body, headers=headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert {"type", "title", "status", "detail"} <= set(problem) and problem["status"] == status
    if status == 422:
        assert problem["errors"] and all({"field", "message"} <= set(e) for e in problem["errors"])
    assert _chain_length(admin) == before


def test_validation_names_the_field(agent) -> None:
    r = agent.post(
        "/api/actions/intercept",
        json={"tool": "gmail.send_message", "arguments": {}, "timeout_s": True},
    )
    assert [e["field"] for e in r.json()["errors"]] == ["timeout_s"]


def test_oversized_body_is_413_without_reading_it(server, agent, admin) -> None:
    before = _chain_length(admin)
    big = b'{"tool": "gmail.send_message", "arguments": {"x": "' + b"a" * (300 * 1024) + b'"}}'
    r = agent.post(
        "/api/actions/intercept", content=big, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM
    assert _chain_length(admin) == before


def test_bad_approve_bodies(agent, alice) -> None:
    aid = agent.post(
        "/api/actions/intercept", json={"tool": "gmail.send_message", "arguments": {"to": "x@y.z"}}
    ).json()["action_id"]
    for body, status in [
        ({"action_id": aid}, 422),
        ({"action_id": aid, "decision": "maybe"}, 422),
        ({"action_id": aid, "decision": "approve", "extra": 1}, 422),
        ({"action_id": "../../etc", "decision": "approve"}, 422),
        ({"action_id": "act_nope", "decision": "approve"}, 404),
    ]:
        r = alice.post("/api/actions/approve", json=body)
        assert r.status_code == status, (body, r.text)
    assert alice.get(f"/api/actions/{aid}").json()["status"] == "pending"


def test_bad_queries(agent, alice) -> None:
    aid = agent.post(
        "/api/actions/intercept", json={"tool": "user.get_profile", "arguments": {}}
    ).json()["action_id"]
    for params in (
        {"wait": "x"},
        {"wait": "-1"},
        {"wait": "100000"},
        [("wait", "1"), ("wait", "2")],
    ):
        assert agent.get(f"/api/actions/{aid}", params=params).status_code == 400
    for params in ({"limit": "0"}, {"after": "abc"}, {"action_id": "a/b"}):
        assert alice.get("/api/audit/entries", params=params).status_code == 400


def test_unknown_routes_and_methods(agent) -> None:
    assert agent.get("/api/nothing-here").status_code == 404
    r = agent.delete("/api/actions/intercept")
    assert r.status_code == 405 and "POST" in r.headers["allow"]


@pytest.mark.parametrize(
    "payload, status",
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"POST /api/actions/intercept HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (
            b"POST /api/actions/intercept HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            401,
        ),
        (b"\x00\x01\x02" * 100 + b"\r\n\r\n", 400),
    ],
    ids=["garbage-line", "non-numeric-length", "empty-chunked-no-token", "control-bytes"],
)
def test_raw_socket_garbage_is_answered_and_the_server_lives(server, payload, status) -> None:
    with socket.create_connection(server.address, timeout=5) as s:
        s.sendall(payload)
        reply = s.recv(4096)
    assert reply.split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 %d " % status), reply[:200]
    assert httpx.get(server.url + "/health").status_code == 200


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=10), children, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_5xx(agent, value) -> None:
    r = agent.post("/api/actions/intercept", json=value)
    assert r.status_code < 500, r.text


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.fixed_dictionaries(
        {
            "tool": st.text(max_size=40),
            "arguments": st.dictionaries(
                st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3
            ),
        },
        optional={
            "framework": st.sampled_from(["plain", "openai", "anthropic", "langchain", "mcp", "x"]),
            "timeout_s": st.integers(-5, 100000) | st.booleans(),
            "session_id": st.text(max_size=10),
            "context": st.integers()
            | st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
        },
    )
)
def test_bundle_shaped_fuzz_never_5xx(agent, value) -> None:
    r = agent.post("/api/actions/intercept", json=value)
    assert r.status_code < 500, r.text
    assert r.status_code in (200, 201, 400, 409, 413, 415, 422)
