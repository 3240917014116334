"""Connecting an account from the dashboard, over the real server and a real local
authorization server (tests/token_endpoint.py: /authorize, the authorization code grant
with PKCE and client authentication, an RS256 ID token and its JWK Set, and Token
Vault's exchange). A "browser" (httpx, no bearer, following nothing by itself) goes
from the authorize URL Vettra answers to Auth0, back to the callback, and to the
dashboard; then the refresh token the callback captured is exchanged by a real release.

Covered: the happy path end to end (connect → intercept → approve → credential); a
replayed state, an expired one, another user's login, a code injected under another
state (PKCE), access_denied, ID tokens with a wrong nonce, audience or subject; the
refusals change nothing and are audited; no code or refresh token in any log line,
answer, redirect or audit entry.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from vettra.adapters.clock import FakeClock
from vettra.bootstrap import Config, account_linker, bootstrap

from ..conftest import Server, closing_all, serving
from ..token_endpoint import TokenEndpoint
from .scenarios import SEND_EMAIL

GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"
GOOGLE = "google-oauth2"
CALLBACK = "/api/vault/callback"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))  # ID tokens carry real times


@pytest.fixture
def srv(tmp_path: Path, endpoint: TokenEndpoint, clock: FakeClock, monkeypatch) -> Iterator[Server]:
    for name, value in endpoint.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("VETTRA_VAULT_REDIRECT_URI", raising=False)
    rt = bootstrap(Config(home=tmp_path / "home"), clock=clock)
    with serving(rt) as server:
        # as `vettra dev` does: the redirect URI is this server's own callback
        rt.config.public_url = server.url
        rt.deps.vault_link = account_linker(rt.config, clock, rt.deps.vaults)
        endpoint.callbacks.append(server.url + CALLBACK)
        yield server


@pytest.fixture
def clients(srv: Server) -> Iterator[dict[str, httpx.Client]]:
    yield from closing_all(
        {
            "agent": srv.client("agent", "agent-1", "alice"),
            "alice": srv.client("approver", "alice"),
            "bob": srv.client("approver", "bob"),
            "browser": httpx.Client(timeout=30),  # no bearer: what follows Auth0's redirects
        }
    )


def _grant(c: dict[str, httpx.Client], scopes: list[str], who: str = "alice") -> None:
    r = c[who].post(
        "/api/inventory/permissions",
        json={"agent": "agent-1", "connection": GOOGLE, "scopes": scopes},
    )
    assert r.status_code == 201, r.text


def _authorize(c: dict[str, httpx.Client], who: str = "alice", **body: Any) -> dict[str, Any]:
    r = c[who].post(f"/api/vault/connections/{GOOGLE}/authorize", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def _to_callback(c: dict[str, httpx.Client], started: dict[str, Any]) -> str:
    """The browser at Auth0: the redirect back to Vettra's callback (with code or error)."""
    r = c["browser"].get(started["authorize_url"])
    assert r.status_code == 302, r.text
    return r.headers["location"]


def _callback(c: dict[str, httpx.Client], url: str) -> dict[str, list[str]]:
    """The browser at the callback: the outcome in the dashboard URL it is sent to."""
    r = c["browser"].get(url)
    assert r.status_code == 303, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["referrer-policy"] == "no-referrer"
    location = r.headers["location"]
    assert location.startswith("/#/connections?")
    return parse_qs(location.split("?", 1)[1])


def _connect(c: dict[str, httpx.Client], **body: Any) -> dict[str, list[str]]:
    return _callback(c, _to_callback(c, _authorize(c, **body)))


def _links(c: dict[str, httpx.Client], who: str = "alice") -> dict[str, Any]:
    r = c[who].get("/api/vault/connections")
    assert r.status_code == 200, r.text
    return {e["connection"]: e["link"] for e in r.json()["connections"]}


def _trail(c: dict[str, httpx.Client], kind: str, who: str = "alice") -> list[dict[str, Any]]:
    r = c[who].get("/api/audit/entries", params={"limit": 100})
    assert r.status_code == 200, r.text
    return [e for e in r.json()["entries"] if e["type"] == kind]


def _code_grants(endpoint: TokenEndpoint) -> list[dict[str, str]]:
    return [r for r in endpoint.requests if r.get("grant_type") == "authorization_code"]


def test_connect_then_release_a_credential_end_to_end(srv, clients, endpoint) -> None:
    _grant(clients, [GMAIL_SEND])
    started = _authorize(clients)
    assert started["scopes"] == [GMAIL_SEND] and started["connection"] == GOOGLE
    assert started["redirect_uri"] == srv.url + CALLBACK
    outcome = _callback(clients, _to_callback(clients, started))
    assert outcome == {"connected": [GOOGLE]}
    # the /authorize request is Auth0's, checked by the endpoint as it went
    assert endpoint.violations == []
    [asked] = endpoint.authorizations
    assert asked["connection"] == GOOGLE and asked["connection_scope"] == GMAIL_SEND
    assert asked["scope"] == "openid offline_access" and asked["response_type"] == "code"
    assert asked["code_challenge_method"] == "S256" and len(asked["code_challenge"]) == 43
    assert (asked["access_type"], asked["prompt"]) == ("offline", "consent")
    assert asked["redirect_uri"] == srv.url + CALLBACK
    [redeemed] = _code_grants(endpoint)
    assert redeemed["client_id"] == endpoint.client_id and 43 <= len(redeemed["code_verifier"])
    link = _links(clients)[GOOGLE]
    assert link["kind"] == "refresh_token" and link["scope"] == [GMAIL_SEND]
    [linked] = _trail(clients, "vault.linked")
    assert linked["user"] == "alice" and linked["actor"] == "approver:alice"
    assert linked["data"]["connection"] == GOOGLE and linked["data"]["scopes"] == [GMAIL_SEND]
    # an agent's approved action is redeemed with the refresh token the callback stored
    r = clients["agent"].post("/api/actions/intercept", json=SEND_EMAIL)
    action = r.json()
    assert action["status"] == "pending", r.text
    r = clients["alice"].post(
        "/api/actions/approve", json={"action_id": action["action_id"], "decision": "approve"}
    )
    assert r.status_code == 200, r.text
    r = clients["agent"].post(
        f"/api/actions/{action['action_id']}/credential",
        json={"args_digest": action["args_digest"]},
    )
    assert r.status_code == 200, r.text
    assert r.json()["access_token"].startswith("ya29.PLANTED-connected-")
    assert r.json()["scope"] == GMAIL_SEND
    exchange = endpoint.requests[-1]
    [refresh] = [i["refresh_token"] for i in endpoint.issued if "refresh_token" in i]
    assert exchange["grant_type"].endswith("federated-connection-access-token")
    assert exchange["subject_token"] == refresh and exchange["connection"] == GOOGLE
    assert endpoint.violations == []


def test_a_replayed_state_is_refused_and_changes_nothing(srv, clients, endpoint) -> None:
    _grant(clients, [GMAIL_SEND])
    callback = _to_callback(clients, _authorize(clients))
    assert _callback(clients, callback) == {"connected": [GOOGLE]}
    before = _links(clients)[GOOGLE]
    assert _callback(clients, callback) == {"connect_error": ["invalid-state"]}
    assert _links(clients)[GOOGLE] == before
    assert len(_code_grants(endpoint)) == 1  # the code was never sent again
    assert endpoint.violations == []


def test_an_expired_state_is_refused_before_the_code_is_redeemed(
    srv, clients, endpoint, clock
) -> None:
    _grant(clients, [GMAIL_SEND])
    started = _authorize(clients)
    callback = _to_callback(clients, started)
    clock.advance(601)
    assert _callback(clients, callback) == {
        "connect_error": ["expired-state"],
        "connection": [GOOGLE],
    }
    assert _links(clients)[GOOGLE] is None and _code_grants(endpoint) == []
    [refused] = _trail(clients, "vault.link_refused")
    assert refused["data"]["refusal"] == "expired-state" and refused["user"] == "alice"


@pytest.mark.parametrize(
    ("login", "why"),
    [(("bob", None), "another user"), (("alice", "other-tenant"), "another tenant")],
)
def test_a_login_as_another_user_stores_nothing(srv, clients, endpoint, login, why) -> None:
    _grant(clients, [GMAIL_SEND])
    endpoint.login = login
    outcome = _connect(clients)
    assert outcome == {"connect_error": ["wrong-user"], "connection": [GOOGLE]}, why
    assert _links(clients)[GOOGLE] is None and _links(clients, "bob")[GOOGLE] is None
    [refused] = _trail(clients, "vault.link_refused")
    assert refused["data"]["refusal"] == "wrong-user"


def test_a_code_injected_under_another_state_fails_pkce(srv, clients, endpoint) -> None:
    """Bob's browser carries a code of Alice's flow with Bob's own state: the code is
    bound to Alice's challenge, the verifier Vettra sends is Bob's state's."""
    _grant(clients, [GMAIL_SEND])
    _grant(clients, [GMAIL_SEND], who="bob")
    alices = parse_qs(urlsplit(_to_callback(clients, _authorize(clients))).query)
    endpoint.login = ("bob", None)
    bobs = parse_qs(urlsplit(_to_callback(clients, _authorize(clients, who="bob"))).query)
    injected = f"{srv.url}{CALLBACK}?code={alices['code'][0]}&state={bobs['state'][0]}"
    assert _callback(clients, injected) == {
        "connect_error": ["token-endpoint"],
        "connection": [GOOGLE],
    }
    assert _links(clients, "bob")[GOOGLE] is None and _links(clients)[GOOGLE] is None
    [refused] = _trail(clients, "vault.link_refused", who="bob")
    assert "error invalid_grant" in refused["data"]["why"]
    assert _trail(clients, "vault.link_refused") == []  # alice's flow was never finished


def test_access_denied_at_auth0_is_refused_and_audited(srv, clients, endpoint) -> None:
    _grant(clients, [GMAIL_SEND])
    endpoint.consent = False
    assert _connect(clients) == {"connect_error": ["access-denied"], "connection": [GOOGLE]}
    assert _links(clients)[GOOGLE] is None and _code_grants(endpoint) == []
    [refused] = _trail(clients, "vault.link_refused")
    assert refused["data"]["refusal"] == "access-denied"


@pytest.mark.parametrize(
    ("changes", "outcome"),
    [
        ({"nonce": "not-the-states-nonce"}, "id-token"),
        ({"nonce": None}, "id-token"),
        ({"aud": "another-client"}, "id-token"),
        ({"iss": "https://evil.example/"}, "id-token"),
        ({"exp": 1_000_000}, "id-token"),
        ({"sub": "mallory"}, "wrong-user"),
    ],
)
def test_an_id_token_that_does_not_fit_is_refused(srv, clients, endpoint, changes, outcome) -> None:
    _grant(clients, [GMAIL_SEND])
    endpoint.id_token_changes = changes
    assert _connect(clients) == {"connect_error": [outcome], "connection": [GOOGLE]}
    assert _links(clients)[GOOGLE] is None


def test_a_failing_token_endpoint_is_refused(srv, clients, endpoint) -> None:
    _grant(clients, [GMAIL_SEND])
    callback = _to_callback(clients, _authorize(clients))
    endpoint.fail_next([503])
    assert _callback(clients, callback) == {
        "connect_error": ["token-endpoint"],
        "connection": [GOOGLE],
    }
    assert _links(clients)[GOOGLE] is None


def test_authorize_refuses_what_it_cannot_start(srv, clients) -> None:
    c = clients
    r = c["alice"].post(f"/api/vault/connections/{GOOGLE}/authorize", json={})
    assert r.status_code == 422 and "grant an agent" in r.json()["detail"]  # no scopes
    r = c["alice"].post("/api/vault/connections/nope/authorize", json={"scopes": ["x"]})
    assert r.status_code == 404
    r = c["alice"].post(f"/api/vault/connections/{GOOGLE}/authorize", json={"scopes": "x"})
    assert r.status_code == 422
    r = c["agent"].post(f"/api/vault/connections/{GOOGLE}/authorize", json={"scopes": ["x"]})
    assert r.status_code == 403
    r = c["browser"].post(f"{srv.url}/api/vault/connections/{GOOGLE}/authorize", json={})
    assert r.status_code == 401
    assert c["browser"].get(f"{srv.url}/api/vault/connections").status_code == 401
    # the callback without a state, or with one never made
    assert _callback(c, f"{srv.url}{CALLBACK}?code=abc") == {"connect_error": ["invalid-state"]}
    made_up = "A" * 43
    assert _callback(c, f"{srv.url}{CALLBACK}?state={made_up}&code=x") == {
        "connect_error": ["invalid-state"]
    }
    # explicit scopes need no grant; an unconfigured deployment says so
    assert _authorize(c, scopes=[GMAIL_SEND])["scopes"] == [GMAIL_SEND]
    srv.runtime.deps.vault_link = None
    r = c["alice"].post(f"/api/vault/connections/{GOOGLE}/authorize", json={"scopes": ["x"]})
    assert r.status_code == 404 and r.json()["type"].endswith("/not-configured")
    assert c["alice"].get("/api/vault/connections").json()["connect"] is False


def test_no_code_or_refresh_token_is_logged_answered_or_audited(
    srv, clients, endpoint, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    _grant(clients, [GMAIL_SEND])
    answers: list[str] = []
    # a good connection, a replay, an injected code, a denial and a bad ID token
    callback = _to_callback(clients, _authorize(clients))
    for _ in range(2):
        answers.append(clients["browser"].get(callback).headers["location"])
    endpoint.id_token_changes = {"nonce": "wrong"}
    answers.append(
        clients["browser"].get(_to_callback(clients, _authorize(clients))).headers["location"]
    )
    endpoint.id_token_changes = {}
    endpoint.consent = False
    answers.append(
        clients["browser"].get(_to_callback(clients, _authorize(clients))).headers["location"]
    )
    answers.append(clients["alice"].get("/api/vault/connections").text)
    answers.append(clients["alice"].get("/api/audit/entries", params={"limit": 100}).text)
    secrets = [v for issued in endpoint.issued for v in issued.values()]
    assert len(secrets) >= 4  # codes and refresh tokens were handed out
    # the server's records (its request threads, and Vettra's own loggers); the test's
    # browser logs its own requests (httpx, in this thread), codes in their URLs
    mine = threading.get_ident()
    server_records = [r for r in caplog.records if r.name.startswith("vettra") or r.thread != mine]
    assert any("vault" in r.getMessage() for r in server_records)
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in server_records)
    for secret in secrets + [endpoint.client_secret]:
        assert secret not in logged, "a secret reached the log"
        for answer in answers:
            assert secret not in answer, "a secret reached an answer"
