"""What an approver does over HTTP, for the tests that need it done on the way to what they
check: enrol a TOTP factor, step up, decide an action, pre-authorise a session."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp

from vettra.domain.stepup import TOTP_PERIOD_S, totp

#: A code is sent only when its time step has this long left, so the server (which takes
#: its current step and one either side, each step once) judges it in the step it was made.
TOTP_MARGIN_S = 2.0


def totp_code(secret: str, steps: int = 0) -> str:
    """The code for the current step (+ steps): the server accepts one step either side."""
    return pyotp.TOTP(secret).at(time.time() + steps * 30)


class TotpDevice:
    """An authenticator app that never repeats a step: each :meth:`code` is of a step the
    server accepts now and that no earlier code of this device used (the server refuses a
    step used before, so two codes of one step would fail by the clock)."""

    def __init__(self, secret: str):
        self.secret = secret
        self.used: set[int] = set()

    def code(self) -> str:
        while True:
            left = TOTP_PERIOD_S - time.time() % TOTP_PERIOD_S
            if left < TOTP_MARGIN_S:  # too near the edge: the server may be a step on
                time.sleep(left + 0.01)
            current = int(time.time() // TOTP_PERIOD_S)
            fresh = [s for s in (current, current + 1, current - 1) if s not in self.used]
            if fresh:
                self.used.add(fresh[0])
                return totp(self.secret).generate_otp(fresh[0])
            time.sleep(TOTP_PERIOD_S - time.time() % TOTP_PERIOD_S + 0.01)  # all three spent


def enrol_totp(client: httpx.Client) -> str:
    """Enrol a TOTP factor for ``client``'s user; returns its secret."""
    return enrol_totp_device(client).secret


def enrol_totp_device(client: httpx.Client) -> TotpDevice:
    """Enrol a TOTP factor for ``client``'s user; returns the device, its step spent."""
    started = client.post("/api/approvals/stepup/enroll", json={"method": "totp"})
    assert started.status_code == 200, started.text
    body = started.json()
    assert set(body) >= {"secret", "otpauth_uri", "enrollment_id"}
    device = TotpDevice(body["secret"])
    done = client.post(
        "/api/approvals/stepup/enroll",
        json={"method": "totp", "enrollment_id": body["enrollment_id"], "code": device.code()},
    )
    assert done.status_code == 200 and done.json()["status"] == "active", done.text
    return device


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
