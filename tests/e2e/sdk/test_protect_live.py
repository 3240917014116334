"""``@protect`` and the clients against a live ``vettra dev``: the write-up's scenarios."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from vettra.domain.canonical import sha256_digest
from vettra.sdk import (
    ActionDenied,
    ActionExpired,
    Client,
    Credential,
    CredentialRefused,
    CredentialUnavailable,
    InvalidRequest,
    PermissionDenied,
    StepUpPending,
    VettraUnavailable,
    protect,
)

from ...integration import scenarios
from ..conftest import free_port, mint
from .conftest import USER, Approver, LiveVettra, marked, verify_receipt

pytestmark = pytest.mark.e2e


def test_a_low_tool_runs_at_once_without_a_credential_it_did_not_ask_for(live: LiveVettra):
    client = live.agent()
    calls: list[str] = []
    uses_before = {pid: g["uses"] for pid, g in live.grants().items()}

    @protect(client)
    def user_get_profile() -> dict[str, str]:
        calls.append("ran")
        return {"name": "Alice"}

    started = time.monotonic()
    assert user_get_profile() == {"name": "Alice"}
    assert calls == ["ran"] and time.monotonic() - started < 5
    # nothing was redeemed: the function has no `credential` parameter (and the catalogue
    # names no connection for user.get_profile), so no grant was used
    assert {pid: g["uses"] for pid, g in live.grants().items()} == uses_before


def test_a_medium_tool_waits_for_the_approver_then_runs_with_the_credential(
    live: LiveVettra, approver: Approver
):
    client = live.agent()
    marker = uuid.uuid4().hex
    received: list[Credential] = []

    @protect(client)
    def gmail_send_message(to: str, subject: str, body: str, credential: Credential) -> str:
        received.append(credential)
        return f"sent {subject}"

    decided = approver.later(marked(marker), "approve")
    result = gmail_send_message(to="bob@example.com", subject=marker, body="See attached.")
    assert result == f"sent {marker}"
    action = decided.result(timeout=5)
    assert action.status == "approved" and action.risk.level == "MEDIUM"
    (credential,) = received
    # the function got the token the user stored for Gmail, narrowed to what the tool needs
    assert credential.access_token == live.provider_tokens["google-oauth2"]
    assert credential.token_type == "Bearer" and credential.connection == "google-oauth2"
    assert credential.scope == "https://www.googleapis.com/auth/gmail.send"
    assert credential.action_id == action.action_id and credential.receipt
    # the receipt vouches for exactly this action and these arguments, with the public key
    claims = verify_receipt(
        credential.receipt, live, {"to": "bob@example.com", "subject": marker,
                                   "body": "See attached."},
    )  # fmt: skip
    assert claims["action_id"] == action.action_id and claims["sub"] == "sdk-agent"
    assert claims["decision"] == "approved" and claims["tool"] == "gmail.send_message"
    # released once: a second redemption of the same action is refused, saying why
    with pytest.raises(CredentialRefused) as again:
        client.redeem_credential(action.action_id, action.args_digest or "")
    assert again.value.status == 409 and again.value.refusal == "already-released"
    # and only ever to the agent that submitted it: the approving user's token is refused
    # by role (403, no `refusal`), before any rule of the release
    with pytest.raises(PermissionDenied) as wrong_role:
        live.approver().redeem_credential(action.action_id, action.args_digest or "")
    assert wrong_role.value.status == 403 and wrong_role.value.refusal is None


def test_a_credential_is_released_only_for_the_approved_digest(
    live: LiveVettra, approver: Approver
):
    client = live.agent()
    marker = uuid.uuid4().hex
    approver.later(marked(marker), "approve")
    auth = client.authorize(
        "gmail.send_message", {"to": "bob@example.com", "subject": marker, "body": "x"}
    )
    other = sha256_digest({"to": "mallory@evil.example", "subject": marker, "body": "x"})
    with pytest.raises(CredentialRefused) as caught:
        client.redeem_credential(auth.action.action_id, other)
    assert caught.value.status == 409 and caught.value.refusal == "args-mismatch"
    # the refusal consumed nothing: the approved digest still redeems, once
    released = client.redeem_credential(auth.action.action_id, auth.action.args_digest or "")
    assert released.access_token == live.provider_tokens["google-oauth2"]


def test_without_the_users_grant_nothing_is_released(live: LiveVettra, approver: Approver):
    """Deny by default: an agent the user granted nothing gets the real 403 `not-permitted`,
    as a CredentialUnavailable naming the connection, and the function never runs."""
    sub = f"ungranted-{uuid.uuid4().hex[:8]}"
    client = Client(live.url, mint(live.server.home, "agent", sub, USER))
    live.clients.append(client)
    ran: list[str] = []

    @protect(client)
    def gmail_send_message(to: str, subject: str, body: str, credential: Credential) -> None:
        ran.append(to)

    approver.later(lambda action: action.raw.get("agent") == sub, "approve")
    with pytest.raises(CredentialUnavailable) as caught:
        gmail_send_message(to="bob@example.com", subject="no grant", body="x")
    assert ran == []
    err = caught.value
    assert err.refusal == "not-permitted" and err.connection == "google-oauth2"
    assert err.action is not None and err.action.status == "approved"
    cause = err.__cause__
    assert isinstance(cause, CredentialRefused) and cause.status == 403
    assert "POST /api/inventory/permissions" in str(err)


def test_a_denial_surfaces_the_approvers_reason(live: LiveVettra, approver: Approver):
    client = live.agent()
    marker = uuid.uuid4().hex
    ran: list[str] = []

    @protect(client)
    def gmail_send_message(to: str, subject: str, body: str) -> None:
        ran.append(to)

    approver.later(marked(marker), "deny", reason=f"not this week {marker}")
    with pytest.raises(ActionDenied) as caught:
        gmail_send_message(to="bob@example.com", subject=marker, body="x")
    assert caught.value.reason == f"not this week {marker}"
    assert ran == []


def test_a_policy_denial_carries_the_policys_reason(live: LiveVettra):
    client = live.agent()
    with pytest.raises(ActionDenied) as caught:
        client.authorize(scenarios.GRANT_ADMIN["tool"], scenarios.GRANT_ADMIN["arguments"])
    assert "admin" in (caught.value.reason or "")
    assert caught.value.action is not None and caught.value.action.risk.level == "HIGH"


def test_high_risk_needs_step_up_and_says_so(live: LiveVettra):
    client = live.agent()
    with pytest.raises(StepUpPending) as caught:
        client.authorize(
            scenarios.DELETE_REPO["tool"], scenarios.DELETE_REPO["arguments"], wait=False
        )
    assert caught.value.action is not None and caught.value.action.step_up_required


def test_nobody_deciding_expires_at_the_sdks_deadline(live: LiveVettra):
    client = live.agent(decision_timeout_s=1)
    marker = uuid.uuid4().hex
    started = time.monotonic()
    with pytest.raises(ActionExpired):
        client.authorize(
            "gmail.send_message", {"to": "bob@example.com", "subject": marker, "body": "x"}
        )
    # the server was asked to expire it at the deadline; the long-poll heard it at once
    assert time.monotonic() - started < 1 + 2 + 1.5


def test_the_async_client_waits_for_the_approver_too(live: LiveVettra, approver: Approver):
    marker = uuid.uuid4().hex

    async def main() -> str:
        async with live.async_agent() as client:

            @protect(client)
            async def gmail_send_message(to: str, subject: str, credential: Credential) -> str:
                assert credential.access_token
                return f"sent {subject}"

            return await gmail_send_message(to="bob@example.com", subject=marker)

    decided = approver.later(marked(marker), "approve")
    assert asyncio.run(main()) == f"sent {marker}"
    assert decided.result(timeout=5).status == "approved"


def test_bad_arguments_are_a_clear_refusal_and_nothing_runs(live: LiveVettra):
    client = live.agent()
    with pytest.raises(InvalidRequest) as caught:
        client.authorize("gmail.send_message", {"to": "a\x00b"})
    assert caught.value.status == 422 and caught.value.errors


def test_a_stopped_server_fails_closed():
    client = Client(f"http://127.0.0.1:{free_port()}", "token", retries=1, timeout=2)
    ran: list[str] = []

    @protect(client)
    def user_get_profile() -> None:
        ran.append("ran")

    with pytest.raises(VettraUnavailable):
        user_get_profile()
    assert ran == []
    client.close()
