"""The Cloud Functions targets, built by functions-framework from functions/main.py.

Each test builds the real ASGI app for a target (``functions_framework.aio.create_asgi_app``,
what ``functions-framework --asgi`` serves), points it at a temporary home
(VETTRA_HOME, VETTRA_MODE=local), and talks to it with Starlette's test client;
tokens come from that home's local identity.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from functions_framework.aio import create_asgi_app
from starlette.testclient import TestClient

import vettra.entrypoints.functions as functions_entry
from vettra.adapters.clock import SystemClock
from vettra.adapters.local_identity import LocalIdentity
from vettra.adapters.local_keys import LocalKeyStore
from vettra.adapters.secret_keys import AUDIT_HMAC
from vettra.logs import TRACE_FIELD

from .. import function_targets
from .scenarios import EXPECTED, SEND_EMAIL

SOURCE = Path(__file__).resolve().parents[2] / "functions" / "main.py"
PROBLEM = "application/problem+json"
SCENARIO_IDS = ["read-profile", "send-email", "delete-repo", "charge-500", "grant-admin"]
# functions-framework records the target in os.environ; keep that inside each test
_FRAMEWORK_ENV = ("FUNCTION_TARGET", "FUNCTION_SIGNATURE_TYPE", "FUNCTION_TRIGGER_TYPE")


@pytest.fixture
def fn_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "fn-home"
    monkeypatch.setenv("VETTRA_HOME", str(home))
    monkeypatch.setenv("VETTRA_MODE", "local")
    monkeypatch.setenv("VETTRA_LOG_LEVEL", "WARNING")
    for name in _FRAMEWORK_ENV:
        monkeypatch.setenv(name, "")
    functions_entry.reset()  # a fresh lazy runtime per test
    yield home
    functions_entry.reset()


def _client(target: str) -> Any:
    return TestClient(
        create_asgi_app(target=target, source=str(SOURCE)), base_url="http://testserver"
    )


def _token(home: Path, role: str, sub: str, user: str | None = None) -> dict[str, str]:
    keys = LocalKeyStore(home)
    token = LocalIdentity(keys.identity_signing_key(), SystemClock()).issue(
        role=role, sub=sub, user=user
    )
    return {"Authorization": f"Bearer {token}"}


def _problem(r: Any, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == PROBLEM
    doc = r.json()
    assert {"type", "title", "status", "detail"} <= set(doc) and doc["status"] == status
    return doc


def test_no_runtime_is_built_at_import_or_app_creation(fn_home) -> None:
    _client("intercept")
    assert functions_entry._runtime is None


def test_a_runtime_that_cannot_be_built_is_503_with_retry_after_and_one_log_line(
    fn_home, tmp_path, monkeypatch, capsys
) -> None:
    # a mounted secret that does not parse (16 bytes where the audit key has 32): the
    # build fails before Firestore is dialled, as it does in the cloud
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    secret = base64.b64encode(b"sixteen-byte-key").decode()
    (secrets_dir / AUDIT_HMAC).write_text(json.dumps({"current": "k1", "keys": {"k1": secret}}))
    monkeypatch.setenv("VETTRA_BACKEND", "firestore")
    monkeypatch.setenv("VETTRA_PROJECT", "demo-vettra")
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", "127.0.0.1:9")
    monkeypatch.setenv("VETTRA_SECRETS_DIR", str(secrets_dir))
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        **_token(fn_home, "agent", "agent-1", "alice"),
        "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
    }
    capsys.readouterr()
    r = _client("intercept").post("/api/actions/intercept", json=SEND_EMAIL, headers=headers)
    doc = _problem(r, 503)
    assert r.headers["Retry-After"] == "5" and doc["retry_after"] == 5
    assert doc["trace_id"] == r.headers["X-Trace-Id"] == trace
    assert AUDIT_HMAC not in r.text and secret not in r.text  # the cause is for the log
    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    ours = [line for line in lines if line.get("logger", "").startswith("vettra")]
    assert len(ours) == 1, err
    assert ours[0]["severity"] == "ERROR" and ours[0][TRACE_FIELD] == trace
    assert "503" in ours[0]["message"] and AUDIT_HMAC in ours[0]["message"]
    assert "stack_trace" not in ours[0] and "Traceback" not in err and secret not in err
    assert functions_entry._runtime is None

    # the cause removed, the next request builds the runtime and is served
    monkeypatch.delenv("VETTRA_SECRETS_DIR")
    monkeypatch.setenv("VETTRA_BACKEND", "local")
    r = _client("intercept").post("/api/actions/intercept", json=SEND_EMAIL, headers=headers)
    assert r.status_code == 201, r.text


def test_every_target_answers_in_asgi_mode(fn_home) -> None:
    targets = [name for name, kind in function_targets.targets(SOURCE).items() if kind == "http"]
    assert len(targets) == 10, targets
    paths = {
        "health": "/health",
        "intercept": "/api/actions/intercept",
        "approve": "/api/actions/approve",
        "actions": "/api/actions/pending",
        "audit": "/api/audit/verify",
        "policy": "/api/policy",
        "expire": "/api/tasks/expire",
        "approvals": "/api/approvals/sessions",
        "auth": "/api/auth/firebase-token",
        "vault": "/api/inventory/permissions",
    }
    admin = _token(fn_home, "admin", "root")
    for target in targets:
        r = _client(target).get(paths[target], headers=admin)
        # an answer from the app itself: a status it documents, problem+json when an error
        assert r.status_code in (200, 403, 405), (target, r.status_code, r.text)
        assert "x-trace-id" in r.headers, target


def test_health_target(fn_home) -> None:
    r = _client("health").get("/health")
    assert r.status_code == 200
    body = r.json()
    assert (
        body["status"] == "ok"
        and body["store"] == "sqlite"
        and body["verifier"] in ("wasm", "python")
    )
    assert (fn_home / "vettra.db").exists()  # VETTRA_HOME was honoured


@pytest.mark.parametrize("bundle, status, level, step_up", EXPECTED, ids=SCENARIO_IDS)
def test_intercept_target_decides_the_scenarios(fn_home, bundle, status, level, step_up) -> None:
    client = _client("intercept")
    r = client.post(
        "/api/actions/intercept", json=bundle, headers=_token(fn_home, "agent", "agent-1", "alice")
    )
    assert r.status_code in (200, 201), r.text
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert (body["status"], body["risk"]["level"], body["step_up_required"]) == (
        status,
        level,
        step_up,
    )
    if status == "denied":
        assert body["reason"]


def test_targets_share_one_state(fn_home) -> None:
    agent = _token(fn_home, "agent", "agent-1", "alice")
    alice = _token(fn_home, "approver", "alice")
    aid = (
        _client("intercept")
        .post("/api/actions/intercept", json=SEND_EMAIL, headers=agent)
        .json()["action_id"]
    )
    pending = _client("actions").get("/api/actions/pending", headers=alice).json()["actions"]
    assert [a["action_id"] for a in pending] == [aid]
    decided = _client("approve").post(
        "/api/actions/approve", json={"action_id": aid, "decision": "approve"}, headers=alice
    )
    assert decided.status_code == 200 and decided.json()["status"] == "approved"
    trail = _client("audit").get(f"/api/audit/action/{aid}", headers=alice).json()["entries"]
    assert [e["type"] for e in trail] == ["action.intercepted", "action.approved"]


@pytest.mark.parametrize(
    "target, method, path",
    [
        ("actions", "POST", "/api/actions/intercept"),
        ("intercept", "POST", "/api/actions/approve"),
        ("intercept", "GET", "/api/audit/verify"),
        ("audit", "GET", "/api/actions/pending"),
        ("health", "GET", "/api/policy"),
        ("policy", "GET", "/health"),
    ],
)
def test_route_of_another_group_is_404(fn_home, target, method, path) -> None:
    headers = _token(fn_home, "admin", "root")
    r = _client(target).request(
        method, path, json=SEND_EMAIL if method == "POST" else None, headers=headers
    )
    doc = _problem(r, 404)
    assert target in doc["detail"]


def test_unknown_path_is_404_problem(fn_home) -> None:
    _problem(
        _client("actions").get("/api/nothing-here", headers=_token(fn_home, "admin", "root")), 404
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic YTpi"}],
    ids=["none", "garbage", "basic"],
)
def test_no_valid_token_is_401(fn_home, headers) -> None:
    r = _client("intercept").post("/api/actions/intercept", json=SEND_EMAIL, headers=headers)
    _problem(r, 401)
    assert r.headers["WWW-Authenticate"].startswith("Bearer")  # RFC 6750 §3


def test_token_of_another_home_is_401(fn_home, tmp_path) -> None:
    foreign = _token(tmp_path / "elsewhere", "agent", "agent-1", "alice")
    _problem(
        _client("intercept").post("/api/actions/intercept", json=SEND_EMAIL, headers=foreign), 401
    )


def test_bad_input_through_a_target(fn_home) -> None:
    client, agent = _client("intercept"), _token(fn_home, "agent", "agent-1", "alice")
    big = b'{"tool": "gmail.send_message", "arguments": {"x": "' + b"a" * (300 * 1024) + b'"}}'
    as_json, as_text = (
        {**agent, "Content-Type": "application/json"},
        {**agent, "Content-Type": "text/plain"},
    )
    _problem(client.post("/api/actions/intercept", content=big, headers=as_json), 413)
    _problem(client.post("/api/actions/intercept", content=b"{", headers=as_json), 400)
    _problem(client.post("/api/actions/intercept", content=b"{}", headers=as_text), 415)
    doc = _problem(
        client.post(
            "/api/actions/intercept",
            json={"tool": "gmail.send_message", "arguments": {}, "framework": "skynet"},
            headers=agent,
        ),
        422,
    )
    assert [e["field"] for e in doc["errors"]] == ["framework"]


def test_functions_framework_cli_serves_a_target_in_asgi_mode(fn_home, tmp_path) -> None:
    """``functions-framework --asgi --source functions/main.py --target intercept`` answers."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import httpx

    cli = Path(sys.executable).with_name("functions-framework")
    if not cli.exists():
        pytest.skip("functions-framework is not installed: pip install -e '.[server,test]'")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "VETTRA_HOME": str(fn_home),
        "VETTRA_MODE": "local",
        "VETTRA_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(SOURCE.parents[1] / "shared"),
    }
    for name in _FRAMEWORK_ENV:
        env.pop(name, None)
    log = open(tmp_path / "ff.log", "wb")
    proc = subprocess.Popen(
        [
            str(cli),
            "--asgi",
            "--source",
            str(SOURCE),
            "--target",
            "intercept",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        agent = _token(fn_home, "agent", "agent-1", "alice")
        deadline = time.monotonic() + 30
        r = None
        while time.monotonic() < deadline:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/api/actions/intercept",
                    json=SEND_EMAIL,
                    headers=agent,
                    timeout=5,
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r is not None, (tmp_path / "ff.log").read_text()
        assert r.status_code == 201 and r.json()["status"] == "pending", r.text
        other = httpx.get(f"http://127.0.0.1:{port}/api/audit/verify", headers=agent, timeout=5)
        assert other.status_code == 404 and other.headers["content-type"] == PROBLEM
        # Two identical Content-Length: uvicorn (http=auto) parses with llhttp here too,
        # which refuses them before the app (its own text/plain 400, not problem+json).
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(
                b"POST /api/actions/intercept HTTP/1.1\r\nHost: x\r\n"
                b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello"
            )
            assert raw.recv(4096).startswith(b"HTTP/1.1 400 ")
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
