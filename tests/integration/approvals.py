"""What an approver does over HTTP, for the tests that need it done on the way to what they
check: enrol a TOTP factor, step up, decide an action, pre-authorise a session."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp


def totp_code(secret: str, steps: int = 0) -> str:
    """The code for the current step (+ steps): the server accepts one step either side."""
    return pyotp.TOTP(secret).at(time.time() + steps * 30)


def enrol_totp(client: httpx.Client) -> str:
    """Enrol a TOTP factor for ``client``'s user; returns its secret."""
    started = client.post("/api/approvals/stepup/enroll", json={"method": "totp"})
    assert started.status_code == 200, started.text
    body = started.json()
    assert set(body) >= {"secret", "otpauth_uri", "enrollment_id"}
    done = client.post(
        "/api/approvals/stepup/enroll",
        json={
            "method": "totp",
            "enrollment_id": body["enrollment_id"],
            "code": totp_code(body["secret"]),
        },
    )
    assert done.status_code == 200 and done.json()["status"] == "active", done.text
    return body["secret"]


def step_up(
    client: httpx.Client, secret: str, *, action_id: str | None = None, purpose: str | None = None
) -> str:
    """A step-up token for an action or a purpose (``preauth:<session id>``): a fresh
    challenge answered with the next time step's code (enrolling spent this step's)."""
    target = {"action_id": action_id} if action_id is not None else {"purpose": purpose}
    challenge = client.post("/api/approvals/stepup/trigger", json=target)
    assert challenge.status_code == 200, challenge.text
    verified = client.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": challenge.json()["challenge_id"], "code": totp_code(secret, 1)},
    )
    assert verified.status_code == 200, verified.text
    return verified.json()["step_up_token"]


def decide(client: httpx.Client, action_id: str, decision: str, **extra: Any) -> httpx.Response:
    return client.post(
        "/api/actions/approve", json={"action_id": action_id, "decision": decision, **extra}
    )


def pre_authorize(
    client: httpx.Client,
    session_id: str,
    max_level: str = "MEDIUM",
    duration_s: int = 600,
    **extra: Any,
) -> httpx.Response:
    """Pre-authorise ``session_id`` up to ``max_level`` (``extra``: the step-up token)."""
    body = {"session_id": session_id, "max_level": max_level, "duration_s": duration_s}
    return client.post("/api/approvals/sessions/pre-authorize", json={**body, **extra})
