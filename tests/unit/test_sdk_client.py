"""vettra.sdk's client logic at its one side-effect seam (``httpx.MockTransport``).

The live-server behaviour (LOW runs, MEDIUM waits for the approver, denials carry the
reason) is in tests/e2e/sdk/; here is what a live server cannot be made to do on cue:
drop connections, time out, answer 503, digest other arguments.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import json
import threading
import time
from typing import Any

import httpx
import pytest

from vettra import __version__
from vettra.domain.canonical import sha256_digest
from vettra.sdk import (
    ActionDenied,
    ActionExpired,
    ApprovalPending,
    AsyncClient,
    AuthenticationFailed,
    Client,
    Conflict,
    Credential,
    CredentialConflict,
    CredentialNotPermitted,
    CredentialRefused,
    CredentialUnavailable,
    DigestMismatch,
    InvalidRequest,
    PermissionDenied,
    StepUpPending,
    VettraUnavailable,
    protect,
)

URL = "http://vettra.test"
TOKEN = "tok-abc"


def action(status: str, arguments: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "action_id": "act_1",
        "status": status,
        "tool": extra.pop("tool", "gmail.send_message"),
        "args_digest": sha256_digest(arguments),
        "risk": {"score": 50, "level": "MEDIUM", "factors": {}, "reasons": ["r"]},
        "step_up_required": False,
        "expires_at": None,
        "reason": None,
        **extra,
    }


class Recorder:
    """A scripted server: each handler answers one request in turn; requests are kept."""

    def __init__(self, *answers: Any):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        status, body = answer
        return httpx.Response(status, json=body)

    def client(self, **kw: Any) -> Client:
        return Client(URL, TOKEN, transport=httpx.MockTransport(self), **kw)


ARGS = {"to": "bob@example.com", "subject": "hi", "body": "hello"}


def test_every_request_names_the_sdk_and_carries_the_token():
    rec = Recorder((201, action("allowed", ARGS)))
    with rec.client() as client:
        client.authorize("gmail.send_message", ARGS)
    (request,) = rec.requests
    assert request.headers["user-agent"] == f"vettra-sdk-python/{__version__}"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["idempotency-key"].startswith("vsdk-")
    body = json.loads(request.content)
    assert body == {"tool": "gmail.send_message", "arguments": ARGS, "timeout_s": 300}


def test_long_poll_read_timeout_covers_the_hold_and_the_deadline_is_sent():
    rec = Recorder(
        (201, action("pending", ARGS)),
        (200, action("approved", ARGS)),
    )
    with rec.client(timeout=4.0, decision_timeout_s=30) as client:
        client.authorize("gmail.send_message", ARGS)
    intercept, poll = rec.requests
    assert json.loads(intercept.content)["timeout_s"] == 30
    assert intercept.extensions["timeout"]["read"] == 4.0
    # the server may hold the answer up to `wait`; the read timeout is on top of it
    wait = int(poll.url.params["wait"])
    assert 30 <= wait <= 32
    assert poll.extensions["timeout"]["read"] == 4.0 + wait


def test_a_resent_intercept_carries_the_same_idempotency_key():
    rec = Recorder(
        httpx.ReadTimeout("slow"),
        (503, {"title": "busy"}),
        (201, action("allowed", ARGS)),
    )
    with rec.client() as client:
        client.authorize("gmail.send_message", ARGS)
    keys = {r.headers["idempotency-key"] for r in rec.requests}
    assert len(rec.requests) == 3 and len(keys) == 1


def test_unreachable_vettra_never_runs_the_tool():
    ran: list[str] = []
    rec = Recorder(*[httpx.ConnectError("refused")] * 3)

    with rec.client(retries=2) as client:

        @protect(client)
        def gmail_send_message(to: str, subject: str, body: str) -> str:
            ran.append(to)
            return "sent"

        with pytest.raises(VettraUnavailable, match="ConnectError"):
            gmail_send_message(**ARGS)
    assert ran == [] and len(rec.requests) == 3


def test_on_unavailable_deny_turns_it_into_a_denial_never_a_run():
    rec = Recorder(httpx.ConnectError("refused"))
    with rec.client(retries=0, on_unavailable="deny") as client:
        with pytest.raises(ActionDenied) as caught:
            client.authorize("gmail.send_message", ARGS)
    assert "unavailable" in (caught.value.reason or "")


def test_on_unavailable_has_no_allow_setting():
    with pytest.raises(ValueError, match="'raise' or 'deny'"):
        Client(URL, TOKEN, on_unavailable="allow")  # type: ignore[arg-type]


def test_a_500_fails_closed_at_once():
    rec = Recorder((500, {"title": "boom"}))
    with rec.client() as client, pytest.raises(VettraUnavailable, match="HTTP 500"):
        client.authorize("gmail.send_message", ARGS)
    assert len(rec.requests) == 1


def test_problem_answers_become_typed_errors():
    rec = Recorder(
        (401, {"title": "Unauthenticated", "detail": "token expired"}),
        (422, {"detail": "bad", "errors": [{"field": "tool", "message": "required"}]}),
    )
    with rec.client() as client:
        with pytest.raises(AuthenticationFailed, match="token expired"):
            client.intercept("gmail.send_message", ARGS)
        with pytest.raises(InvalidRequest) as caught:
            client.intercept("gmail.send_message", ARGS)
    assert caught.value.errors == [{"field": "tool", "message": "required"}]
    assert "tool: required" in str(caught.value)


def test_a_credential_release_is_not_resent_once_it_may_have_arrived():
    rec = Recorder((201, action("allowed", ARGS)), httpx.ReadTimeout("lost answer"))
    ran: list[Credential] = []
    with rec.client() as client:

        @protect(client)
        def gmail_send_message(to: str, subject: str, body: str, credential: Credential) -> None:
            ran.append(credential)

        with pytest.raises(CredentialUnavailable, match="was allowed"):
            gmail_send_message(**ARGS)
    assert ran == [] and len(rec.requests) == 2
    assert json.loads(rec.requests[1].content) == {"args_digest": sha256_digest(ARGS)}


def test_a_credential_release_is_retried_when_the_connection_never_opened():
    token = {"access_token": "ya29.secret", "token_type": "Bearer", "expires_at": None,
             "scope": "gmail.send", "connection": "google-oauth2", "receipt": "r"}  # fmt: skip
    rec = Recorder((201, action("allowed", ARGS)), httpx.ConnectError("refused"), (200, token))
    with rec.client() as client:
        auth = client.authorize("gmail.send_message", ARGS, want_credential=True)
    assert auth.credential is not None and auth.credential.access_token == "ya29.secret"
    assert "ya29" not in repr(auth.credential)


def test_other_digested_arguments_stop_the_call():
    served = action("allowed", {"to": "mallory@evil.example"})
    rec = Recorder((201, served))
    with rec.client() as client, pytest.raises(DigestMismatch):
        client.authorize("gmail.send_message", ARGS)


def test_arguments_changed_while_pending_do_not_run():
    recipients = ["bob@example.com"]
    ran: list[list[str]] = []

    def approve_after_tampering(request: httpx.Request) -> httpx.Response:
        recipients.append("mallory@evil.example")  # another thread, while the approver looks
        return httpx.Response(200, json=action("approved", {"to": ["bob@example.com"]}))

    rec = Recorder((201, action("pending", {"to": ["bob@example.com"]})), approve_after_tampering)
    with rec.client() as client:

        @protect(client)
        def gmail_send_message(to: list[str]) -> None:
            ran.append(to)

        with pytest.raises(DigestMismatch, match="changed after approval"):
            gmail_send_message(to=recipients)
    assert ran == []


@pytest.mark.parametrize(
    ("status", "extra", "error"),
    [
        ("denied", {"reason": "not this week"}, ActionDenied),
        ("expired", {}, ActionExpired),
        ("pending", {}, ApprovalPending),
        ("pending", {"step_up_required": True}, StepUpPending),
    ],
)
def test_blocked_outcomes_raise_typed_errors(status, extra, error):
    rec = Recorder((201, action(status, ARGS, **extra)))
    with rec.client() as client, pytest.raises(error) as caught:
        client.authorize("gmail.send_message", ARGS, wait=False)
    assert caught.value.action_id == "act_1"
    assert caught.value.reason == extra.get("reason")
    if error is ApprovalPending:
        assert not isinstance(caught.value, StepUpPending)


def test_a_server_that_ignores_wait_is_not_busy_polled():
    served = action("pending", ARGS)
    rec = Recorder(*[(200, served)] * 50)
    started = time.monotonic()
    with rec.client(decision_timeout_s=1) as client, pytest.raises(ApprovalPending):
        client.authorize("gmail.send_message", ARGS)
    elapsed = time.monotonic() - started
    polls = len(rec.requests) - 1
    # the deadline is 1 s + the 2 s expiry grace; at most one poll per 0.25 s
    assert 2.5 < elapsed < 6 and polls <= elapsed / 0.25 + 1


def test_protect_binds_arguments_by_name_and_passes_credential_only_where_accepted():
    token = {"access_token": "t0k", "token_type": "Bearer", "expires_at": None,
             "scope": None, "connection": "github", "receipt": None}  # fmt: skip
    repo_args = {"repo": "acme/api", "private": True}
    rec = Recorder(
        (201, action("allowed", repo_args, tool="github.create_repo")),
        (200, token),
        (201, action("allowed", {"login": "octo"}, tool="github.get_user")),
    )
    seen: dict[str, Any] = {}
    with rec.client() as client:

        @protect(client)
        def github_create_repo(repo: str, private: bool = True, *, credential: Credential) -> str:
            seen["credential"] = credential
            return repo

        @protect(client)
        def github_get_user(login: str) -> str:
            return login

        assert github_create_repo("acme/api") == "acme/api"
        assert github_get_user("octo") == "octo"
        # frameworks that read signatures never see `credential`
        import inspect

        assert list(inspect.signature(github_create_repo).parameters) == ["repo", "private"]
        assert "credential" not in github_create_repo.__annotations__
        assert github_create_repo.vettra_tool == "github.create_repo"  # type: ignore[attr-defined]
        with pytest.raises(TypeError, match="released by Vettra"):
            github_create_repo("x", credential="forged")  # type: ignore[call-arg]
    assert seen["credential"].connection == "github"
    # defaults are part of what is approved; only the credential-taking tool redeemed one
    assert json.loads(rec.requests[0].content)["arguments"] == repo_args
    assert [r.url.path for r in rec.requests] == [
        "/api/actions/intercept",
        "/api/actions/act_1/credential",
        "/api/actions/intercept",
    ]


def test_protect_refuses_what_cannot_be_shown_to_an_approver():
    with Recorder().client() as client:

        @protect(client, tool="custom.run")
        def run(*commands: str) -> None: ...

        with pytest.raises(TypeError, match="pass tool arguments by name"):
            run("rm -rf /")
        with pytest.raises(ValueError, match="maps|must be"):
            protect(client, tool="Not A Tool")(lambda: None)
        with pytest.raises(TypeError, match="async functions"):
            protect(AsyncClient(URL, TOKEN), tool="custom.sync")(lambda: None)


def test_non_json_arguments_are_refused_before_anything_is_sent():
    rec = Recorder()
    with rec.client() as client, pytest.raises(TypeError, match="JSON values"):
        client.authorize("custom.run", {"when": object()})
    assert rec.requests == []


def test_async_client_and_protect():
    answers = Recorder((201, action("pending", ARGS)), (200, action("approved", ARGS)))
    calls: list[str] = []

    async def main() -> str:
        async with AsyncClient(URL, TOKEN, transport=httpx.MockTransport(answers)) as client:

            @protect(client)
            async def gmail_send_message(to: str, subject: str, body: str) -> str:
                calls.append(threading.current_thread().name)
                return f"sent to {to}"

            return await gmail_send_message(**ARGS)

    assert asyncio.run(main()) == "sent to bob@example.com"
    assert len(calls) == 1 and answers.requests[1].url.params["wait"]


def test_a_sync_client_guards_an_async_function_from_a_worker_thread():
    rec = Recorder((201, action("allowed", ARGS)))
    with rec.client() as client:

        @protect(client)
        async def gmail_send_message(to: str, subject: str, body: str) -> str:
            return to

        assert asyncio.run(gmail_send_message(**ARGS)) == "bob@example.com"


def refused(refusal: str, detail: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    """The server's own problem document for a refusal (domain.credentials), so the SDK is
    tested against what the release really answers."""
    from vettra.domain.credentials import CredentialRefused as ServerRefusal

    err = ServerRefusal(refusal, detail, extra=extra)
    return err.status, err.problem()


@pytest.mark.parametrize(
    ("answer", "status_class", "refusal_class"),
    [
        (refused("not-permitted", "alice has not granted", connection="google-oauth2",
                 missing_scopes=["https://www.googleapis.com/auth/gmail.send"]),
         PermissionDenied, CredentialNotPermitted),
        (refused("already-released", "released before"), Conflict, CredentialConflict),
        (refused("args-mismatch", "other arguments"), Conflict, CredentialConflict),
        (refused("not-linked", "link it", connection="github"), Conflict, CredentialConflict),
    ],
)  # fmt: skip
def test_a_refused_release_keeps_its_status_class_and_says_which_rule(
    answer: tuple[int, dict[str, Any]], status_class: type, refusal_class: type
):
    status, problem = answer
    rec = Recorder((status, problem))
    with rec.client() as client, pytest.raises(CredentialRefused) as caught:
        client.redeem_credential("act_1", sha256_digest(ARGS))
    err = caught.value
    assert isinstance(err, status_class) and isinstance(err, refusal_class)
    assert err.status == status and err.refusal == problem["refusal"]
    assert err.connection == problem.get("connection")
    assert err.missing_scopes == problem.get("missing_scopes", [])
    assert problem["detail"] in str(err)


def test_a_refusal_by_role_is_a_plain_permission_denied():
    # the approver's token on the agents' endpoint: 403 Forbidden, no credential rule
    from vettra.domain.errors import Forbidden

    problem = Forbidden("agent tokens only").problem()
    rec = Recorder((403, problem))
    with rec.client() as client, pytest.raises(PermissionDenied) as caught:
        client.redeem_credential("act_1", sha256_digest(ARGS))
    assert not isinstance(caught.value, CredentialRefused) and caught.value.refusal is None


def test_an_approved_call_without_the_users_grant_never_runs_and_names_the_connection():
    answer = refused(
        "not-permitted",
        "user alice has not granted agent a1 the connection google-oauth2",
        connection="google-oauth2",
        missing_scopes=["https://www.googleapis.com/auth/gmail.send"],
    )
    rec = Recorder((201, action("approved", ARGS)), answer)
    ran: list[Credential] = []
    with rec.client() as client:

        @protect(client)
        def gmail_send_message(to: str, subject: str, body: str, credential: Credential) -> None:
            ran.append(credential)

        with pytest.raises(CredentialUnavailable) as caught:
            gmail_send_message(**ARGS)
    assert ran == [] and len(rec.requests) == 2  # a refusal is not resent
    err = caught.value
    assert err.refusal == "not-permitted" and err.connection == "google-oauth2"
    assert err.missing_scopes == ["https://www.googleapis.com/auth/gmail.send"]
    assert "has not granted" in str(err) and err.action is not None


def test_a_released_credential_carries_its_action_and_receipt_expiry():
    token = {"action_id": "act_1", "access_token": "ya29.secret", "token_type": "Bearer",
             "expires_at": None, "scope": "https://www.googleapis.com/auth/gmail.send",
             "connection": "google-oauth2", "receipt": "eyJ.r.s",
             "receipt_expires_at": "2026-12-03T18:25:36.000Z"}  # fmt: skip
    rec = Recorder((200, token))
    with rec.client() as client:
        credential = client.redeem_credential("act_1", sha256_digest(ARGS))
    assert credential.action_id == "act_1" and credential.receipt == "eyJ.r.s"
    assert credential.receipt_expires_at == "2026-12-03T18:25:36.000Z"
    assert "eyJ" not in repr(credential) and "ya29" not in repr(credential)


RELEASED = {"access_token": "t0k", "token_type": "Bearer", "expires_at": None,
            "scope": None, "connection": "google-oauth2", "receipt": None}  # fmt: skip


def _every_kind_of_request() -> Recorder:
    """Answers for intercept, the long-poll, the release, the approver's list and decision."""
    return Recorder(
        (201, action("pending", ARGS)),
        (200, action("approved", ARGS)),
        (200, RELEASED),
        (200, {"actions": [action("pending", ARGS)]}),
        (200, action("denied", ARGS, reason="no")),
    )


def test_every_request_of_both_clients_names_the_installed_sdk_version():
    """The User-Agent is the distribution's version (what pip installed), on every call."""
    want = f"vettra-sdk-python/{importlib.metadata.version('vettra')}"
    sync = _every_kind_of_request()
    with sync.client() as client:
        client.authorize("gmail.send_message", ARGS, want_credential=True)
        client.deny(client.pending()[0].action_id, reason="no")

    async_ = _every_kind_of_request()

    async def main() -> None:
        async with AsyncClient(URL, TOKEN, transport=httpx.MockTransport(async_)) as client:
            await client.authorize("gmail.send_message", ARGS, want_credential=True)
            await client.deny((await client.pending())[0].action_id, reason="no")

    asyncio.run(main())
    for rec in (sync, async_):
        paths = [(r.method, r.url.path) for r in rec.requests]
        assert paths == [
            ("POST", "/api/actions/intercept"),
            ("GET", "/api/actions/act_1"),
            ("POST", "/api/actions/act_1/credential"),
            ("GET", "/api/actions/pending"),
            ("POST", "/api/actions/approve"),
        ]
        assert {r.headers["user-agent"] for r in rec.requests} == {want}


def test_timeouts_are_the_clients_on_every_phase_of_both_clients():
    """connect, write and pool are ``timeout``; read adds only a long-poll's hold."""
    sync = _every_kind_of_request()
    with sync.client(timeout=2.5, decision_timeout_s=40) as client:
        client.authorize("gmail.send_message", ARGS, want_credential=True)
    async_ = Recorder((201, action("allowed", ARGS)))

    async def main() -> None:
        transport = httpx.MockTransport(async_)
        async with AsyncClient(URL, TOKEN, transport=transport, timeout=2.5,
                               decision_timeout_s=40) as client:  # fmt: skip
            await client.authorize("gmail.send_message", ARGS)

    asyncio.run(main())
    for request in sync.requests[:3] + async_.requests:
        timeout = request.extensions["timeout"]
        assert (timeout["connect"], timeout["write"], timeout["pool"]) == (2.5, 2.5, 2.5)
        hold = int(request.url.params.get("wait", 0))
        assert timeout["read"] == 2.5 + hold
    # the decision deadline is what both clients ask the server to expire the action at
    assert json.loads(sync.requests[0].content)["timeout_s"] == 40
    assert json.loads(async_.requests[0].content)["timeout_s"] == 40


@pytest.mark.parametrize(
    "options",
    [
        {"timeout": 0},
        {"timeout": -1.0},
        {"decision_timeout_s": 0},
        {"decision_timeout_s": -5},
        {"retries": -1},
    ],
)
def test_a_timeout_or_deadline_that_cannot_be_met_is_refused_at_construction(options):
    for make in (Client, AsyncClient):
        with pytest.raises(ValueError, match="must be"):
            make(URL, TOKEN, **options)


def test_no_decision_deadline_sends_none_and_waits_for_the_servers():
    rec = Recorder((201, action("allowed", ARGS)))
    with rec.client(decision_timeout_s=None) as client:
        client.authorize("gmail.send_message", ARGS)
    assert "timeout_s" not in json.loads(rec.requests[0].content)


def test_a_per_call_deadline_overrides_the_clients():
    rec = Recorder((201, action("allowed", ARGS)))
    with rec.client(decision_timeout_s=300) as client:
        client.authorize("gmail.send_message", ARGS, decision_timeout_s=12)
    assert json.loads(rec.requests[0].content)["timeout_s"] == 12
