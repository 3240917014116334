"""Structured logs: Cloud Logging fields, one line per request, and no secrets."""

from __future__ import annotations

import io
import json
import logging

import httpx

from vettra import logs


def test_request_logs_are_json_with_trace_and_no_secrets(server, agent, alice) -> None:
    stream = io.StringIO()
    logs.configure("INFO", stream)
    try:
        token = agent.headers["authorization"].split()[1]
        trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        agent.post(
            "/api/actions/intercept",
            json={"tool": "user.get_profile", "arguments": {}},
            headers={"traceparent": f"00-{trace}-00f067aa0ba902b7-01"},
        )
        agent.post(
            "/api/actions/intercept", content=b"{bad", headers={"Content-Type": "application/json"}
        )
        httpx.get(
            server.url + "/api/actions/pending", headers={"Authorization": f"Bearer {token}x"}
        )
        logging.getLogger("vettra.test").warning("leaked? Bearer %s", token)
    finally:
        logs.configure("WARNING")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) >= 4
    for line in lines:
        assert {"severity", "message", "time"} <= set(line)
    requests = [line for line in lines if "httpRequest" in line]
    assert requests[0]["logging.googleapis.com/trace"] == trace
    assert (
        requests[0]["httpRequest"]["status"] == 201 and requests[0]["principal"] == "agent:agent-1"
    )
    assert {r["severity"] for r in requests[1:]} == {"WARNING"}
    text = stream.getvalue()
    keys = server.runtime.deps.keys
    secrets = [token, keys.audit_hmac_key()[1].hex()]
    assert not any(secret in text for secret in secrets)
    assert "[redacted]" in text


def test_responses_never_carry_keys(server, agent, admin) -> None:
    keys = server.runtime.deps.keys
    hmac_hex = keys.audit_hmac_key()[1].hex()
    agent.post("/api/actions/intercept", json={"tool": "user.get_profile", "arguments": {}})
    bodies = [
        admin.get(p).text
        for p in ("/api/audit/entries", "/api/audit/verify", "/api/policy", "/api/openapi.json")
    ]
    bodies.append(httpx.get(server.url + "/health").text)
    assert not any(hmac_hex in b for b in bodies)
