"""Credential release through the ports, on every store: SQLite, the in-memory fake and
Firestore on the official emulator (skipped loudly when absent).

The release service runs as the server runs it: intercept and decide through the action
services, grants through the inventory, secrets stored sealed through the vault service,
the exchange with the local vault or with Auth0 Token Vault on a real local token endpoint
(tests/token_endpoint.py), the receipt checked with only the public key. Every refusal
the issue lists is tried, and each is found in the audit chain without the secret.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from vettra.adapters.auth0_token_vault import Auth0TokenVault
from vettra.adapters.clock import FakeClock
from vettra.adapters.local_vault import LocalVault, token_record
from vettra.domain import receipts
from vettra.domain.canonical import sha256_digest
from vettra.domain.credentials import (
    ACCESS_TOKEN,
    REFRESH_TOKEN,
    CredentialRefused,
    CredentialSettings,
    NotLinked,
)
from vettra.domain.errors import Contention, NotConfigured, NotFound, Unavailable
from vettra.domain.identity import DEFAULT_TENANT, Principal
from vettra.services import actions, contention, credentials, inventory, sessions, vault
from vettra.services.deps import Deps

from ..fakes import recording_deps
from ..races import race, refuse_commits
from ..token_endpoint import TokenEndpoint
from ..vault_support import store_token
from .test_store_contract import ADAPTERS, settle

AGENT = Principal(tenant=DEFAULT_TENANT, role="agent", sub="agent-1", user="alice")
OTHER_AGENT = Principal(tenant=DEFAULT_TENANT, role="agent", sub="agent-2", user="alice")
BOBS_AGENT = Principal(tenant=DEFAULT_TENANT, role="agent", sub="agent-1", user="bob")
ALICE = Principal(tenant=DEFAULT_TENANT, role="approver", sub="alice", user="alice")
GMAIL = "https://www.googleapis.com/auth/"
READ = {"tool": "gmail.list_messages", "arguments": {"q": "from:boss"}}  # LOW: allowed
SEND = {"tool": "gmail.send_message", "arguments": {"to": "bob@example.com", "subject": "hi"}}
REFRESH = "v1.PLANTED-refresh-contract-51d2"
GOOGLE = "ya29.PLANTED-google-contract-88aa"
CONTENDERS = 8  # redemptions of one action at once


@pytest.fixture(params=ADAPTERS)
def deps(request, tmp_path: Path, endpoint: TokenEndpoint) -> Iterator[Deps]:
    from vettra.adapters.local_keys import LocalKeyStore

    store = request.param(tmp_path, request)
    keys, clock = LocalKeyStore(tmp_path / "keys-home"), FakeClock()
    settings = endpoint.vault_settings(max_backoff_s=0.02)
    built = recording_deps(store, keys, clock)
    built.policies.ensure_default(DEFAULT_TENANT)
    built.vaults = {ACCESS_TOKEN: LocalVault(), REFRESH_TOKEN: Auth0TokenVault(settings, clock)}
    built.credentials = CredentialSettings(window_s=300, receipt_ttl_s=120)
    yield built
    store.close()


def _grant(deps: Deps, connection: str = "google-oauth2", scopes: list[str] | None = None) -> str:
    view = inventory.grant(
        deps,
        ALICE,
        {
            "agent": "agent-1",
            "connection": connection,
            "scopes": scopes or [GMAIL + "gmail.readonly", GMAIL + "gmail.send"],
        },
    )
    return view["permission_id"]


def _put(deps: Deps, user: str = "alice", scope: list[str] | None = None, **kw: Any) -> None:
    scope = scope or [GMAIL + "gmail.readonly", GMAIL + "gmail.send"]
    store_token(deps, "google-oauth2", token_record(GOOGLE, scope=scope, **kw), user=user)


def _link(deps: Deps, endpoint: TokenEndpoint | None, scope: str | None = None) -> None:
    """Alice's Auth0 refresh token stored; ``endpoint``: Auth0 links it to her Google account."""
    if endpoint is not None:
        endpoint.link(REFRESH, "google-oauth2", GOOGLE, scope=scope or f"openid {GMAIL}gmail.send")
    store_token(deps, "google-oauth2", REFRESH, kind=REFRESH_TOKEN)


def _allowed(deps: Deps, bundle: dict = READ, principal: Principal = AGENT) -> Any:
    action = actions.intercept(deps, principal, bundle).action
    assert action.status == "allowed", action.status
    return action


def _approved(deps: Deps, **extra: Any) -> Any:
    action = actions.intercept(deps, AGENT, {**SEND, **extra}).action
    assert action.status == "pending"
    actions.decide(deps, ALICE, action.id, "approve")
    return action


def _redeem(deps: Deps, action: Any, principal: Principal = AGENT, **body: Any) -> dict:
    return credentials.release(
        deps, principal, action.id, {"args_digest": action.args_digest, **body}
    )


def _refused(deps: Deps, action_id: str, principal: Principal = AGENT, **body: Any) -> Any:
    body.setdefault("args_digest", "sha256:" + "0" * 64)
    with pytest.raises((CredentialRefused, NotFound)) as caught:
        credentials.release(deps, principal, action_id, body)
    return caught.value


def _entries(deps: Deps, kind: str) -> list[Any]:
    settle(deps.store, DEFAULT_TENANT)
    return [e for e in deps.store.audit_log.entries(DEFAULT_TENANT) if e.type == kind]


def _no_secret_in_the_chain(deps: Deps) -> None:
    settle(deps.store, DEFAULT_TENANT)
    text = json.dumps([e.body() for e in deps.store.audit_log.entries(DEFAULT_TENANT)])
    assert GOOGLE not in text and REFRESH not in text


# -- the happy paths ---------------------------------------------------------------------


def test_an_allowed_read_releases_the_local_vaults_token_once(deps: Deps) -> None:
    _grant(deps)
    _put(deps)
    action = _allowed(deps)
    answer = _redeem(deps, action)
    assert answer["access_token"] == GOOGLE and answer["token_type"] == "Bearer"
    assert answer["connection"] == "google-oauth2"
    assert answer["scope"] == GMAIL + "gmail.readonly"  # narrowed to the tool's need
    claims = receipts.verify(
        answer["receipt"],
        [deps.keys.receipt_signing_key().public_key()],
        now=deps.clock.now(),
        audience="gmail.list_messages",
        arguments=READ["arguments"],
    )
    assert claims["action_id"] == action.id and claims["args_digest"] == action.args_digest
    assert claims["sub"] == "agent-1" and claims["decision"] == "allowed"
    again = _refused(deps, action.id, args_digest=action.args_digest)
    assert (again.status, again.refusal) == (409, "already-released")
    [released] = _entries(deps, "credential.released")
    assert released.action_id == action.id and released.data["scope_checked"] is True
    assert released.data["receipt"]["jti"] == claims["jti"]
    [refused] = _entries(deps, "credential.refused")
    assert refused.data["refusal"] == "already-released" and refused.action_id == action.id
    listed = inventory.list_permissions(deps, ALICE)["permissions"]
    assert listed[0]["uses"] == 1 and listed[0]["last_used_at"] is not None
    _no_secret_in_the_chain(deps)


def test_an_approved_send_goes_through_auth0_token_vault(deps: Deps, endpoint) -> None:
    _grant(deps)
    _link(deps, endpoint)
    action = _approved(deps)
    answer = _redeem(deps, action, audience="mailer-1")
    assert answer["access_token"] == GOOGLE and answer["scope"] == GMAIL + "gmail.send"
    assert answer["expires_at"] == "2026-01-01T01:00:00.000Z"  # FakeClock + Auth0's expires_in
    assert endpoint.violations == [] and len(endpoint.requests) == 1
    assert endpoint.requests[0]["subject_token"] == REFRESH
    assert endpoint.requests[0]["connection"] == "google-oauth2"
    claims = receipts.verify(
        answer["receipt"],
        deps.keys.receipt_public_keys(),
        now=deps.clock.now(),
        audience="mailer-1",
        arguments=SEND["arguments"],
    )
    assert claims["decision"] == "approved" and claims["decided_by"] == "approver:alice"
    with pytest.raises(Exception, match="not the approved args_digest"):
        receipts.verify(
            answer["receipt"],
            deps.keys.receipt_public_keys(),
            now=deps.clock.now(),
            arguments={**SEND["arguments"], "to": "mallory@example.com"},
        )
    _no_secret_in_the_chain(deps)


# -- refusals: every one audited -------------------------------------------------------------


def test_pending_denied_and_expired_actions_release_nothing(deps: Deps) -> None:
    _grant(deps)
    _put(deps)
    pending = actions.intercept(deps, AGENT, SEND).action
    denied = actions.intercept(deps, AGENT, SEND).action
    actions.decide(deps, ALICE, denied.id, "deny")
    expiring = actions.intercept(deps, AGENT, {**SEND, "timeout_s": 30}).action
    got = {}
    for name, action in (("pending", pending), ("denied", denied)):
        got[name] = _refused(deps, action.id, args_digest=action.args_digest)
    deps.clock.advance(31)
    got["expired"] = _refused(deps, expiring.id, args_digest=expiring.args_digest)
    assert {k: (v.status, v.refusal) for k, v in got.items()} == {
        "pending": (409, "pending"),
        "denied": (409, "denied"),
        "expired": (409, "expired"),
    }
    assert got["expired"].extra["action_status"] == "expired"
    assert sorted(e.data["refusal"] for e in _entries(deps, "credential.refused")) == [
        "denied",
        "expired",
        "pending",
    ]
    assert _entries(deps, "credential.released") == []


def test_a_foreign_action_is_404_and_audited_without_its_id(deps: Deps) -> None:
    _grant(deps)
    _put(deps)
    action = _allowed(deps)
    for stranger in (OTHER_AGENT, BOBS_AGENT):
        refused = _refused(deps, action.id, principal=stranger, args_digest=action.args_digest)
        assert refused.status == 404
    assert _refused(deps, "act_missing").status == 404
    entries = _entries(deps, "credential.refused")
    assert [e.action_id for e in entries] == [None, None, None]
    assert [e.data["requested_action_id"] for e in entries] == [action.id, action.id, "act_missing"]
    assert [e.user for e in entries] == ["alice", "bob", "alice"]  # the caller's own user
    _redeem(deps, action)  # the owner's agent still can: a refusal consumed nothing


def test_late_and_altered_releases_are_refused(deps: Deps) -> None:
    _grant(deps)
    _put(deps)
    late, also_late = _allowed(deps), _allowed(deps)
    deps.clock.advance(301)
    assert _refused(deps, late.id, args_digest=late.args_digest).refusal == "window-closed"
    fresh = _allowed(deps)
    other = sha256_digest({**READ["arguments"], "q": "from:anyone"})
    assert _refused(deps, fresh.id, args_digest=other).refusal == "args-mismatch"
    assert _redeem(deps, fresh)["access_token"] == GOOGLE  # refusals consumed nothing
    assert _refused(deps, also_late.id, args_digest=other).refusal == "window-closed"  # first rule


def test_revoking_the_permission_or_the_session_blocks_what_is_not_yet_released(deps) -> None:
    pid = _grant(deps)
    _put(deps)
    session = sessions.create(deps, AGENT, {})
    in_session = _allowed(deps, {**READ, "session_id": session["session_id"]})
    plain = _allowed(deps)
    sessions.revoke(deps, ALICE, session["session_id"])
    refused = _refused(deps, in_session.id, args_digest=in_session.args_digest)
    assert refused.refusal == "session-ended"
    inventory.revoke(deps, ALICE, pid)
    refused = _refused(deps, plain.id, args_digest=plain.args_digest)
    assert (refused.status, refused.refusal) == (403, "not-permitted")
    _grant(deps)  # granted again: the same action is released now
    assert _redeem(deps, plain)["access_token"] == GOOGLE


def test_a_grant_must_name_the_connection_and_every_needed_scope(deps: Deps) -> None:
    _put(deps)
    action = _allowed(deps)
    refused = _refused(deps, action.id, args_digest=action.args_digest)
    assert (refused.status, refused.refusal) == (403, "not-permitted")
    assert refused.extra["connection"] == "google-oauth2"
    _grant(deps, scopes=[GMAIL + "gmail.send"])
    refused = _refused(deps, action.id, args_digest=action.args_digest)
    assert refused.extra["missing_scopes"] == [GMAIL + "gmail.readonly"]
    _grant(deps, connection="github", scopes=["repo"])  # another connection does not count
    assert _refused(deps, action.id, args_digest=action.args_digest).refusal == "not-permitted"


def test_nothing_linked_is_a_4xx_naming_the_connection(deps: Deps, endpoint) -> None:
    _grant(deps)
    action = _allowed(deps)
    refused = _refused(deps, action.id, args_digest=action.args_digest)
    assert isinstance(refused, NotLinked) and refused.status == 409
    assert refused.extra["connection"] == "google-oauth2" and "google-oauth2" in refused.detail
    # linked in Auth0 to GitHub only: Token Vault answers 401 for google-oauth2
    endpoint.link(REFRESH, "github", "gho_x", scope="repo")
    _link(deps, None)
    refused = _refused(deps, action.id, args_digest=action.args_digest)
    assert refused.refusal == "not-linked" and "HTTP 401" in refused.detail
    assert [e.data["connection"] for e in _entries(deps, "credential.refused")] == [
        "google-oauth2",
        "google-oauth2",
    ]


def test_a_token_without_the_needed_scope_or_expired_is_refused(deps: Deps, endpoint) -> None:
    _grant(deps)
    _link(deps, endpoint, scope="openid email")
    action = _approved(deps)
    refused = _refused(deps, action.id, args_digest=action.args_digest)
    assert refused.refusal == "insufficient-scope"
    assert refused.extra["missing_scopes"] == [GMAIL + "gmail.send"]
    # the full Gmail scope includes gmail.send (the scope book's includes)
    endpoint.state.accounts.clear()
    endpoint.link(REFRESH, "google-oauth2", GOOGLE, scope="https://mail.google.com/")
    assert _redeem(deps, action)["scope"] == GMAIL + "gmail.send"
    _put(deps, expires_at=deps.clock.now() - timedelta(seconds=1))
    stale = _allowed(deps)
    assert _refused(deps, stale.id, args_digest=stale.args_digest).refusal == "token-expired"


def test_a_tool_the_catalogue_gives_no_credential_releases_nothing(deps: Deps) -> None:
    action = _allowed(deps, {"tool": "user.get_profile", "arguments": {}})
    assert _refused(deps, action.id, args_digest=action.args_digest).refusal == "no-credential"


def test_a_refresh_token_without_auth0_configured_is_not_configured(deps: Deps, endpoint) -> None:
    _grant(deps)
    _link(deps, endpoint)
    deps.vaults = {ACCESS_TOKEN: LocalVault()}
    action = _allowed(deps)
    with pytest.raises(NotConfigured, match="VETTRA_AUTH0_CLIENT_SECRET"):
        _redeem(deps, action)
    assert endpoint.requests == []
    assert _entries(deps, "credential.refused")[0].data["refusal"] == "not-configured"


# -- races --------------------------------------------------------------------------------------


class _RevokingVault(LocalVault):
    """Revokes the grant while the exchange is under way (as a user could, mid-flight)."""

    def __init__(self, deps: Deps, pid: str):
        self.deps, self.pid = deps, pid

    def exchange(self, subject: str, connection: str, *, login_hint: str | None = None) -> Any:
        inventory.revoke(self.deps, ALICE, self.pid)
        return super().exchange(subject, connection)


def test_a_revocation_during_the_exchange_wins(deps: Deps) -> None:
    pid = _grant(deps)
    _put(deps)
    deps.vaults = {ACCESS_TOKEN: _RevokingVault(deps, pid)}
    action = _allowed(deps)
    refused = _refused(deps, action.id, args_digest=action.args_digest)
    assert refused.refusal == "not-permitted"
    with deps.store.unit_of_work(readonly=True) as uow:
        assert uow.docs.get(credentials.RELEASES, action.id) is None
    assert _entries(deps, "credential.released") == []


def _contended(deps: Deps, monkeypatch: pytest.MonkeyPatch, times: int) -> tuple[Any, list[int]]:
    """An allowed action whose credential is ready, and then the next ``times`` commits
    refused as Firestore refuses a transaction under contention when *nobody* won."""
    _grant(deps)
    _put(deps)
    action = _allowed(deps)
    aborted = Contention("the store aborted the transaction under contention (Aborted)")
    return action, refuse_commits(deps.store, monkeypatch, times, aborted)


def test_a_release_aborted_under_contention_is_tried_again_not_called_released(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    action, left = _contended(deps, monkeypatch, contention.ATTEMPTS - 1)
    released = _redeem(deps, action)
    assert left == [0] and released["access_token"] == GOOGLE
    assert len(_entries(deps, "credential.released")) == 1
    assert _refused(deps, action.id, args_digest=action.args_digest).refusal == "already-released"


def test_a_release_the_store_keeps_refusing_is_503_and_releases_nothing(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    action, left = _contended(deps, monkeypatch, contention.ATTEMPTS)
    with pytest.raises(Unavailable, match="nothing was written"):
        _redeem(deps, action)
    assert left == [0]
    with deps.store.unit_of_work(readonly=True) as uow:
        assert uow.docs.get(credentials.RELEASES, action.id) is None
    assert _entries(deps, "credential.released") == []
    (outage,) = _entries(deps, "credential.refused")  # the outage is on the record
    assert outage.data["refusal"] == "unavailable" and outage.data["status"] == 503
    assert _redeem(deps, action)["access_token"] == GOOGLE  # nothing was used up


def test_concurrent_redemptions_release_exactly_once(deps: Deps) -> None:
    _grant(deps)
    _put(deps)
    action = _allowed(deps)
    results = race([lambda: _redeem(deps, action)] * CONTENDERS)
    released = [r for r in results if isinstance(r, dict)]
    assert len(results) == CONTENDERS and len(released) == 1, results
    # every loser is told the truth: another released it (Firestore aborts some of these
    # transactions under contention; those are tried again, never called released)
    losers = [r for r in results if not isinstance(r, dict)]
    assert all(isinstance(r, CredentialRefused) for r in losers), losers
    assert {r.refusal for r in losers} == {"already-released"}
    assert len(_entries(deps, "credential.released")) == 1


# -- connecting an account (services.vault_link): the state is single-use on every store --


def _linker(deps: Deps, endpoint: TokenEndpoint) -> Any:
    from vettra.adapters.auth0_connect import CALLBACK_PATH, Auth0AccountLinker, LinkSettings
    from vettra.adapters.auth0_identity import https_jwks
    from vettra.adapters.clock import SystemClock

    redirect = "http://127.0.0.1:9" + CALLBACK_PATH  # never followed: the test is the browser
    endpoint.callbacks.append(redirect)
    settings = LinkSettings(
        issuer=endpoint.issuer,
        client_id=endpoint.client_id,
        client_secret=endpoint.client_secret,
        redirect_uri=redirect,
    )
    # the endpoint's ID tokens carry real times; the deps' clock is a fake one
    clock = SystemClock()
    return Auth0AccountLinker(
        settings, clock, https_jwks(endpoint.issuer + ".well-known/jwks.json", clock)
    )


def _at_auth0(started: dict[str, Any]) -> dict[str, str]:
    """The browser at the endpoint's /authorize: the callback's query (code, state)."""
    from urllib.parse import parse_qsl, urlsplit

    import httpx

    r = httpx.get(started["authorize_url"], follow_redirects=False)
    assert r.status_code == 302, r.text
    return dict(parse_qsl(urlsplit(r.headers["location"]).query))


def test_a_connect_state_is_consumed_once_under_a_race(deps: Deps, endpoint) -> None:
    from vettra.services import vault_link

    deps.vault_link = _linker(deps, endpoint)
    started = vault_link.start(deps, ALICE, "google-oauth2", {"scopes": [GMAIL + "gmail.send"]})
    back = _at_auth0(started)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def finish() -> None:
        barrier.wait()
        results.append(vault_link.finish(deps, state=back["state"], code=back["code"], error=None))

    threads = [threading.Thread(target=finish) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(results) == sorted(
        ["/#/connections?connected=google-oauth2"]
        + ["/#/connections?connect_error=invalid-state"] * 3
    )
    grants = [r for r in endpoint.requests if r.get("grant_type") == "authorization_code"]
    assert len(grants) == 1 and endpoint.violations == []
    [link] = vault.list_links(deps.store, DEFAULT_TENANT, "alice")
    assert link["kind"] == REFRESH_TOKEN and link["scope"] == [GMAIL + "gmail.send"]
    assert len(_entries(deps, "vault.linked")) == 1
    # what was stored opens to the refresh token Auth0 issued, and Token Vault takes it
    [issued] = [i["refresh_token"] for i in endpoint.issued if "refresh_token" in i]
    with deps.store.unit_of_work(readonly=True) as uow:
        doc = vault.stored(uow, DEFAULT_TENANT, "alice", "google-oauth2")
    assert doc is not None and vault.open_secret(deps.keys, doc) == issued
    token = deps.vaults[REFRESH_TOKEN].exchange(issued, "google-oauth2")
    assert token.access_token.startswith("ya29.PLANTED-connected-")
    text = json.dumps([e.body() for e in deps.store.audit_log.entries(DEFAULT_TENANT)])
    assert issued not in text and back["code"] not in text


def test_connect_states_expire_and_are_bounded_per_user(deps: Deps, endpoint) -> None:
    from vettra.domain.errors import Conflict
    from vettra.services import retention, vault_link

    deps.vault_link = _linker(deps, endpoint)
    body = {"scopes": [GMAIL + "gmail.readonly"]}
    started = [vault_link.start(deps, ALICE, "google-oauth2", body) for _ in range(10)]
    with pytest.raises(Conflict):
        vault_link.start(deps, ALICE, "google-oauth2", body)
    back = _at_auth0(started[0])
    deps.clock.advance(vault_link.STATE_TTL_S + 1)
    gone = vault_link.finish(deps, state=back["state"], code=back["code"], error=None)
    assert gone == "/#/connections?connect_error=expired-state&connection=google-oauth2"
    assert [r for r in endpoint.requests if r.get("grant_type") == "authorization_code"] == []
    [refused] = _entries(deps, "vault.link_refused")
    assert refused.data["refusal"] == "expired-state"
    assert vault_link.STATES in {r.collection for r in retention.doc_rules(300)}
    with deps.store.unit_of_work() as uow:  # what the sweeper does for this rule
        swept = uow.docs.sweep(vault_link.STATES, "expires_at", deps.clock.now(), 100)
        uow.commit()
    assert swept == 9  # the other nine, past their expiry
    vault_link.start(deps, ALICE, "google-oauth2", body)  # room again
    assert vault.list_links(deps.store, DEFAULT_TENANT, "alice") == []
