"""RFC 9112 framing over a raw socket: every malformed request gets a status line
(4xx or 505) and a problem document, never a dropped connection or a traceback;
the server keeps serving. Number headers with non-ASCII digits ('²', '١') are 400.
"""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest

HOST = b"Host: 127.0.0.1\r\n"


def exchange(server, payload: bytes, timeout: float = 5.0) -> bytes:
    """Send ``payload``, read until the server closes or a whole answer arrived."""
    with socket.create_connection(server.address, timeout=timeout) as s:
        s.sendall(payload)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
    return data


def status_of(reply: bytes) -> int:
    line = reply.split(b"\r\n", 1)[0]
    assert line.startswith(b"HTTP/1.1 "), f"no status line: {reply[:120]!r}"
    return int(line.split()[1])


def problem_of(reply: bytes) -> dict:
    head, _, body = reply.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower(), head
    return json.loads(body)


FRAMING = [
    ("space-before-colon", b"GET /health HTTP/1.1\r\n" + HOST + b"Content-Type : x\r\n\r\n", 400),
    ("missing-host-1.1", b"GET /health HTTP/1.1\r\n\r\n", 400),
    ("two-hosts", b"GET /health HTTP/1.1\r\n" + HOST + b"Host: other\r\n\r\n", 400),
    (
        "conflicting-content-length",
        b"POST /api/actions/intercept HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        400,
    ),
    (
        "content-length-list",
        b"POST /api/actions/intercept HTTP/1.1\r\n" + HOST + b"Content-Length: 1, 2\r\n\r\nab",
        400,
    ),
    (
        "identical-content-lengths",
        b"POST /api/actions/intercept HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
        400,
    ),
    (
        "identical-content-length-list",
        b"POST /api/actions/intercept HTTP/1.1\r\n" + HOST + b"Content-Length: 5, 5\r\n\r\nhello",
        400,
    ),
    (
        "non-numeric-content-length",
        b"POST /api/actions/intercept HTTP/1.1\r\n" + HOST + b"Content-Length: ten\r\n\r\n",
        400,
    ),
    (
        "negative-content-length",
        b"POST /api/actions/intercept HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n\r\n",
        400,
    ),
    (
        "superscript-content-length",
        b"POST /api/actions/intercept HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n",
        400,
    ),
    (
        "superscript-content-length-utf8",
        "POST /api/actions/intercept HTTP/1.1\r\nHost: x\r\nContent-Length: ²\r\n\r\n".encode(),
        400,
    ),
    (
        "arabic-indic-content-length",
        "POST /api/actions/intercept HTTP/1.1\r\nHost: x\r\nContent-Length: ١\r\n\r\n".encode(),
        400,
    ),
    (
        "content-length-with-transfer-encoding",
        b"POST /api/actions/intercept HTTP/1.1\r\n"
        + HOST
        + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n",
        400,
    ),
    (
        "unknown-transfer-coding",
        b"POST /api/actions/intercept HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n",
        501,
    ),
    (
        "transfer-coding-before-chunked",
        b"POST /api/actions/intercept HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    (
        "bad-chunk-size-after-the-head",
        b"POST /api/actions/intercept HTTP/1.1\r\n"
        + HOST
        + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    ("nul-in-name", b"GET /health HTTP/1.1\r\n" + HOST + b"X-\x00Foo: a\r\n\r\n", 400),
    ("control-in-name", b"GET /health HTTP/1.1\r\n" + HOST + b"X-\x07Foo: a\r\n\r\n", 400),
    ("whitespace-before-first-header", b"GET /health HTTP/1.1\r\n Host: 127.0.0.1\r\n\r\n", 400),
    ("no-version", b"GET /health\r\n\r\n", 400),
    ("http-2.0-on-1.1-wire", b"GET /health HTTP/2.0\r\n" + HOST + b"\r\n", 505),
    ("http-1.2", b"GET /health HTTP/1.2\r\n" + HOST + b"\r\n", 505),
    (
        "head-over-the-limit",
        b"GET /health HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 20_000 + b"\r\n\r\n",
        431,
    ),
    (
        "two-authorizations",
        b"GET /health HTTP/1.1\r\n" + HOST + b"Authorization: a\r\nAuthorization: b\r\n\r\n",
        400,
    ),
    ("garbage", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40 + b"\r\n\r\n", 400),
]


@pytest.mark.parametrize("payload, status", [c[1:] for c in FRAMING], ids=[c[0] for c in FRAMING])
def test_bad_framing_gets_a_status_line_and_a_problem(server, payload, status) -> None:
    reply = exchange(server, payload)
    assert status_of(reply) == status, reply[:300]
    problem = problem_of(reply)
    assert problem["status"] == status and problem["detail"]
    # every problem answer carries its trace id, in the body and the header
    head = reply.partition(b"\r\n\r\n")[0].lower()
    assert len(problem["trace_id"]) == 32
    assert b"x-trace-id: " + problem["trace_id"].encode() in head
    assert httpx.get(server.url + "/health").status_code == 200


def test_a_head_over_the_limit_is_431_while_it_arrives(server) -> None:
    """A head that never ends is refused once its bytes pass --max-header-bytes
    (16 KiB), not buffered while it grows."""
    with socket.create_connection(server.address, timeout=5) as s:
        s.sendall(b"GET /health HTTP/1.1\r\n" + HOST)
        reply = b""
        for i in range(40):  # 40 x 1 KiB headers, never the blank line
            try:
                s.sendall(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1024))
            except (BrokenPipeError, ConnectionResetError):
                break
        while chunk := s.recv(65536):
            reply += chunk
            if b"}" in reply:
                break
    assert status_of(reply) == 431, reply[:300]
    assert problem_of(reply)["status"] == 431


def test_bad_chunk_while_the_app_waits_for_the_body_is_400(server, caplog) -> None:
    """The head reached the app, which waits for the body; a malformed chunk then
    gets the 400 (the app's own answer is not sent after it), never a traceback."""
    token = server.token("agent", "agent-1", "alice").encode()
    with socket.create_connection(server.address, timeout=5) as s:
        s.sendall(
            b"POST /api/actions/intercept HTTP/1.1\r\n"
            + HOST
            + b"Authorization: Bearer "
            + token
            + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        time.sleep(0.3)
        s.sendall(b"zz\r\n{}\r\n0\r\n\r\n")
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    assert status_of(reply) == 400, reply[:300]
    assert problem_of(reply)["status"] == 400
    head, _, body = reply.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    assert len(body) == length, "a second answer followed the 400"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


def test_a_bad_request_pipelined_after_a_good_one_is_refused_after_its_answer(server) -> None:
    """The first request is answered in full, then the malformed one gets its 400 and
    the connection closes (llhttp parses ahead of the answers; the refusal waits)."""
    payload = (
        b"GET /health HTTP/1.1\r\n" + HOST + b"\r\n"
        b"GET /health HTTP/1.1\r\n" + HOST + b"Content-Type : x\r\n\r\n"
    )
    with socket.create_connection(server.address, timeout=5) as s:
        s.sendall(payload)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    first, _, rest = reply.partition(b"\r\n\r\n")
    assert status_of(first) == 200, reply[:300]
    length = int(first.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    second = rest[length:]
    assert status_of(second) == 400, reply[:600]
    assert problem_of(second)["status"] == 400


def test_obs_fold_is_refused_never_a_header_of_its_own(server) -> None:
    """RFC 9112 §5.2: a server rejects an obs-fold with 400 (or joins it with a
    space). llhttp rejects it: a folded 'Authorization:' never authenticates."""
    token = server.token("admin", "root").encode()
    payload = (
        b"GET /api/openapi.json HTTP/1.1\r\n"
        + HOST
        + b"X-Note: a\r\n Authorization: Bearer "
        + token
        + b"\r\n\r\n"
    )
    reply = exchange(server, payload)
    assert status_of(reply) == 400, reply[:300]
    assert "whitespace" in problem_of(reply)["detail"]
    unfolded = (
        b"GET /api/openapi.json HTTP/1.1\r\n"
        + HOST
        + b"Authorization: Bearer "
        + token
        + b"\r\n\r\n"
    )
    assert status_of(exchange(server, unfolded)) == 200


# Header bytes are latin-1 (RFC 9110 §5.5): b"\xb2" is '²', which str.isdigit() accepts
# and int() refuses; the Arabic-Indic digit arrives as its UTF-8 bytes.
@pytest.mark.parametrize(
    "value",
    [b"\xb2", b"1\xb9", "١".encode(), b"1e3", b"-1", b"0x10", b"9" * 30],
    ids=[
        "superscript-two",
        "one-superscript-one",
        "arabic-indic",
        "exp",
        "negative",
        "hex",
        "huge",
    ],
)
def test_cloud_tasks_retry_count_must_be_ascii_digits(server, value) -> None:
    token = server.token("system", "scheduler", "system").encode()
    body = b'{"kind": "expire", "action_id": "act_none"}'
    payload = (
        b"POST /api/tasks/expire HTTP/1.1\r\n" + HOST + b"Authorization: Bearer " + token + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n"
        % len(body)
        + b"X-CloudTasks-TaskRetryCount: "
        + value
        + b"\r\n\r\n"
        + body
    )
    reply = exchange(server, payload)
    assert status_of(reply) == 400, reply[:300]
    assert "TaskRetryCount" in problem_of(reply)["detail"]


def test_cloud_tasks_retry_count_in_ascii_is_accepted(server) -> None:
    with server.client("system", "scheduler", "system") as system:
        r = system.post(
            "/api/tasks/expire",
            json={"kind": "expire", "action_id": "act_none"},
            headers={"X-CloudTasks-TaskRetryCount": "3"},
        )
    assert r.status_code == 200 and r.json()["result"] == "missing"


def _chunked_intercept(server, chunks: bytes, extra_headers: bytes = b"") -> bytes:
    """A raw intercept by agent-1 whose body is ``chunks`` (chunked encoding)."""
    token = server.token("agent", "agent-1", "alice").encode()
    return (
        b"POST /api/actions/intercept HTTP/1.1\r\n"
        + HOST
        + b"Authorization: Bearer "
        + token
        + b"\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        + extra_headers
        + b"\r\n"
        + chunks
    )


def test_chunked_body_over_the_limit_is_413_while_it_streams(server) -> None:
    chunk = b"10000\r\n" + b"a" * 0x10000 + b"\r\n"
    payload = _chunked_intercept(server, chunk * 5 + b"0\r\n\r\n")
    reply = exchange(server, payload)
    assert status_of(reply) == 413
    assert b"connection: close" in reply.partition(b"\r\n\r\n")[0].lower()


def test_small_chunked_body_is_served(server) -> None:
    body = b'{"tool": "user.get_profile", "arguments": {}}'
    chunks = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    payload = _chunked_intercept(server, chunks, b"Connection: close\r\n")
    assert status_of(exchange(server, payload)) == 201
