"""Cloud identity over the real local server: sign-in (Auth0 ID token → Firebase custom
token) and Cloud Tasks' Google OIDC token on POST /api/tasks/expire.

The runtime is the embedded default; what bootstrap builds in the cloud (docs/identity.md)
is wired in here the same way: the Auth0 tenant and Google's JWK Set are
:class:`tests.idp.FakeIdP` servers on 127.0.0.1, and the Firebase service account is an RSA
key generated here, so firebase-admin signs custom tokens offline and the test verifies
them with its public half.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jwt
from joserfc.jwk import RSAKey

from vettra.adapters import auth0_identity
from vettra.adapters.firebase_tokens import FirebaseCustomTokens
from vettra.adapters.google_oidc import GoogleOidcIdentity
from vettra.adapters.local_identity import ISSUER as LOCAL_ISSUER
from vettra.services.rate_limit import RateLimitSettings
from vettra.services.sign_in import SignInService

from ..fakes import RecordingScheduler
from ..idp import JWKS_PATH, FakeIdP
from .scenarios import SEND_EMAIL

PATH = "/api/auth/firebase-token"
CLIENT = "dashboard-spa"
API = "https://api.vettra.test"
TASKS_URL = "https://europe-west1-demo.cloudfunctions.net/expire"
INVOKER = "vettra-tasks@demo.iam.gserviceaccount.com"
FIREBASE_AUDIENCE = (
    "https://identitytoolkit.googleapis.com/google.identity.identitytoolkit.v1.IdentityToolkit"
)
PROBLEM = "application/problem+json"


class ServiceAccount:
    """A Firebase service-account key made at test time (never a real project's)."""

    def __init__(self) -> None:
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = self.private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        self.email = "firebase-adminsdk@demo-vettra.iam.gserviceaccount.com"
        self.info = {
            "type": "service_account",
            "project_id": "demo-vettra",
            "private_key_id": "test-key-1",
            "private_key": pem,
            "client_email": self.email,
            "client_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
        }

    def verify(self, token: str) -> dict[str, Any]:
        public = RSAKey.import_key(self.private.public_key())
        decoded = jwt.decode(token, public, algorithms=["RS256"])
        assert decoded.header["kid"] == "test-key-1"
        return decoded.claims


@pytest.fixture
def auth0(idp: FakeIdP) -> FakeIdP:
    """The Auth0 tenant (tests/conftest.py's provider)."""
    return idp


@pytest.fixture
def google() -> Iterator[FakeIdP]:
    """Google's token issuer, beside Auth0."""
    with FakeIdP() as provider:
        yield provider


def wire_sign_in(runtime: Any, auth0: FakeIdP, account: ServiceAccount, **limits: Any) -> Any:
    """What bootstrap does when VETTRA_AUTH0_ISSUER and VETTRA_AUTH0_CLIENT_ID are set."""
    clock = runtime.deps.clock
    settings = auth0_identity.Auth0Settings(
        issuer=auth0.issuer, audience=API, client_id=CLIENT, jwks_url=auth0.base + JWKS_PATH
    )
    minter = FirebaseCustomTokens(credential_info=account.info)
    runtime.deps.sign_in = SignInService(
        auth0_identity.Auth0IdTokens(
            settings, clock, auth0_identity.https_jwks(settings.keys_url, clock)
        ),
        minter,
        clock,
        limits=RateLimitSettings(**limits) if limits else None,
    )
    return minter


@pytest.fixture
def account() -> ServiceAccount:
    return ServiceAccount()


@pytest.fixture
def signed_in(runtime: Any, auth0: FakeIdP, account: ServiceAccount) -> Iterator[None]:
    minter = wire_sign_in(runtime, auth0, account)
    yield
    minter.close()


def id_token(auth0: FakeIdP, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": auth0.issuer,
        "aud": CLIENT,
        "sub": "auth0|alice",
        "iat": now,
        "exp": now + 600,
        "nonce": "n",
        **changes,
    }
    return auth0.token({k: v for k, v in claims.items() if v is not None})


def post(server: Any, body: Any = None, **kw: Any) -> httpx.Response:
    return httpx.post(server.url + PATH, json=body, timeout=30, **kw)


def problem(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    return r.json()


# -- sign-in -------------------------------------------------------------------------------------


def test_an_id_token_buys_a_firebase_token_for_that_approver(
    server, auth0, account, signed_in
) -> None:
    r = post(server, {"id_token": id_token(auth0)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["uid"], body["vettra_role"], body["tenant"], body["expires_in"]) == (
        "auth0|alice",
        "approver",
        "default",
        3600,
    )
    claims = account.verify(body["firebase_token"])
    assert claims["uid"] == "auth0|alice"
    assert claims["claims"] == {"vettra_role": "approver", "tenant": "default"}
    assert claims["aud"] == FIREBASE_AUDIENCE
    assert claims["iss"] == claims["sub"] == account.email
    assert 0 < claims["exp"] - claims["iat"] <= 3600


def test_no_token_reaches_a_log_line(server, auth0, signed_in, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    good, bad = id_token(auth0), id_token(auth0, aud="elsewhere")
    minted = post(server, {"id_token": good}).json()["firebase_token"]
    assert post(server, {"id_token": bad}).status_code == 401
    logged = [f"{r.getMessage()} {vars(r)}" for r in caplog.records]
    assert any("/api/auth/firebase-token 401" in line for line in logged)
    for secret in (good, bad, minted, good.split(".")[2]):
        assert not any(secret in line for line in logged)


def test_admins_and_tenants_come_from_the_id_token(server, auth0, account, signed_in) -> None:
    token = id_token(
        auth0,
        sub="auth0|root",
        **{auth0_identity.ROLES_CLAIM: ["admin"], auth0_identity.TENANT_CLAIM: "acme"},
    )
    body = post(server, {"id_token": token}).json()
    claims = account.verify(body["firebase_token"])
    assert claims["claims"] == {"vettra_role": "admin", "tenant": "acme"}


@pytest.mark.parametrize(
    "changes, want",
    [
        ({"aud": API}, "bad audience"),  # an access token is not a sign-in
        ({"iss": "https://evil.auth0.com/"}, "bad issuer"),
        ({"exp": int(time.time()) - 120}, "bad expiry"),
    ],
)
def test_refused_id_tokens_are_401(server, auth0, signed_in, changes, want) -> None:
    doc = problem(post(server, {"id_token": id_token(auth0, **changes)}), 401)
    assert want in doc["detail"]


def test_a_token_from_another_issuers_key_is_401(server, auth0, signed_in) -> None:
    forged = auth0.token(
        {"iss": auth0.issuer, "aud": CLIENT, "sub": "auth0|eve", "iat": 1, "exp": 2**31},
        key=FakeIdP._rsa("k1"),  # the tenant's kid, another key
    )
    assert "signature" in problem(post(server, {"id_token": forged}), 401)["detail"]


@pytest.mark.parametrize(
    "kwargs, status",
    [
        ({"json": {}}, 422),
        ({"json": {"id_token": ""}}, 422),
        ({"json": {"id_token": 7}}, 422),
        ({"json": {"id_token": "a.b.c", "extra": 1}}, 422),
        ({"json": {"id_token": "x" * 9000}}, 422),
        ({"content": b"{", "headers": {"Content-Type": "application/json"}}, 400),
        ({"content": b'{"id_token":"a"}', "headers": {"Content-Type": "text/plain"}}, 415),
        (
            {
                "content": b'{"id_token":"' + b"a" * 300_000 + b'"}',
                "headers": {"Content-Type": "application/json"},
            },
            413,
        ),
    ],
    ids=["empty", "blank", "number", "extra", "long", "syntax", "media-type", "too-large"],
)
def test_bad_bodies_are_4xx_problems(server, signed_in, kwargs, status) -> None:
    r = httpx.post(server.url + PATH, timeout=30, **kwargs)
    problem(r, status)


def test_it_needs_no_bearer_and_ignores_one(server, auth0, signed_in) -> None:
    r = post(server, {"id_token": id_token(auth0)}, headers={"Authorization": "Bearer junk"})
    assert r.status_code == 200
    r = httpx.get(server.url + PATH, timeout=30)
    assert problem(r, 405) and r.headers["allow"] == "POST"


def test_sign_ins_are_rate_limited_per_person(server, runtime, auth0, account) -> None:
    minter = wire_sign_in(runtime, auth0, account, rate_per_s=0.01, burst=2)
    try:
        token = id_token(auth0)
        assert [post(server, {"id_token": token}).status_code for _ in range(2)] == [200, 200]
        r = post(server, {"id_token": token})
        doc = problem(r, 429)
        assert int(r.headers["retry-after"]) >= 1 and "sign-ins" in doc["detail"]
        other = post(server, {"id_token": id_token(auth0, sub="auth0|bob")})
        assert other.status_code == 200  # per person
    finally:
        minter.close()


def test_without_auth0_it_is_a_404_problem_not_a_500(server) -> None:
    doc = problem(post(server, {"id_token": "a.b.c"}), 404)
    assert doc["type"].endswith("/not-configured") and "VETTRA_AUTH0_CLIENT_ID" in doc["detail"]


def test_auth0_down_is_503(server, runtime, auth0, account) -> None:
    minter = wire_sign_in(runtime, auth0, account)
    try:
        auth0.failing = True
        doc = problem(post(server, {"id_token": id_token(auth0)}), 503)
        assert "500" in doc["detail"]
    finally:
        minter.close()


# -- agents' Auth0 access tokens and Cloud Tasks' OIDC tokens on the same server ---------------


@pytest.fixture
def cloud_identity(server: Any, auth0: FakeIdP, google: FakeIdP) -> Iterator[Any]:
    """The app's identity as bootstrap builds it in the cloud, local tokens kept (dev)."""
    clock = server.runtime.deps.clock
    settings = auth0_identity.Auth0Settings(
        issuer=auth0.issuer, audience=API, jwks_url=auth0.base + JWKS_PATH
    )
    tasks = GoogleOidcIdentity(
        audience=TASKS_URL,
        invoker_email=INVOKER,
        clock=clock,
        keys=auth0_identity.https_jwks(google.base + JWKS_PATH, clock),
    )
    local = server.runtime.app.identity
    combined = auth0_identity.IssuerIdentity(
        {
            settings.issuer: auth0_identity.Auth0AccessTokens(
                settings, clock, auth0_identity.https_jwks(settings.keys_url, clock)
            ),
            **{iss: tasks for iss in tasks.issuers()},
            LOCAL_ISSUER: local,
        }
    )
    server.runtime.app.identity = combined
    yield combined
    server.runtime.app.identity = local


def google_token(google: FakeIdP, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": TASKS_URL,
        "sub": "1234",
        "email": INVOKER,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
        **changes,
    }
    return google.token(claims)


def test_an_auth0_agent_intercepts_and_its_user_decides(server, auth0, cloud_identity) -> None:
    now = int(time.time())
    agent = auth0.token(
        {
            "iss": auth0.issuer,
            "aud": API,
            "sub": "agent-client@clients",
            "iat": now,
            "exp": now + 600,
            "scope": "vettra:agent",
            auth0_identity.USER_CLAIM: "auth0|alice",
        }
    )
    r = httpx.post(
        server.url + "/api/actions/intercept",
        json=SEND_EMAIL,
        headers={"Authorization": f"Bearer {agent}"},
        timeout=30,
    )
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    approver = auth0.token(
        {
            "iss": auth0.issuer,
            "aud": API,
            "sub": "auth0|alice",
            "iat": now,
            "exp": now + 600,
            "scope": "openid vettra:approve",
        }
    )
    decided = httpx.post(
        server.url + "/api/actions/approve",
        json={"action_id": r.json()["action_id"], "decision": "approve"},
        headers={"Authorization": f"Bearer {approver}"},
        timeout=30,
    )
    assert decided.status_code == 200 and decided.json()["status"] == "approved", decided.text


def test_cloud_tasks_oidc_token_fires_the_timer(
    server, google, cloud_identity, monkeypatch
) -> None:
    monkeypatch.setattr(server.runtime.deps, "scheduler", RecordingScheduler())
    r = httpx.post(
        server.url + "/api/tasks/expire",
        json={"kind": "expire", "action_id": "act_missing"},
        headers={"Authorization": f"Bearer {google_token(google)}"},
        timeout=30,
    )
    assert (r.status_code, r.json()) == (200, {"result": "missing"})


@pytest.mark.parametrize(
    "changes, status",
    [
        ({"email": "attacker@gmail.com"}, 401),
        ({"aud": "https://elsewhere/expire"}, 401),
        ({"email_verified": False}, 401),
    ],
)
def test_other_google_tokens_cannot_fire_timers(
    server, google, cloud_identity, changes, status
) -> None:
    r = httpx.post(
        server.url + "/api/tasks/expire",
        json={"kind": "expire", "action_id": "act_missing"},
        headers={"Authorization": f"Bearer {google_token(google, **changes)}"},
        timeout=30,
    )
    problem(r, status)


def test_the_invokers_token_reaches_no_other_endpoint(server, google, cloud_identity) -> None:
    r = httpx.get(
        server.url + "/api/actions/pending",
        headers={"Authorization": f"Bearer {google_token(google)}"},
        timeout=30,
    )
    problem(r, 403)


def test_the_local_scheduler_token_still_works(server, cloud_identity, monkeypatch) -> None:
    monkeypatch.setattr(server.runtime.deps, "scheduler", RecordingScheduler())
    with server.client("system", "scheduler", "system") as system:
        r = system.post("/api/tasks/expire", json={"kind": "expire", "action_id": "act_x"})
    assert (r.status_code, r.json()) == (200, {"result": "missing"})


def test_google_keys_down_is_503_so_the_task_is_retried(server, google, cloud_identity) -> None:
    google.failing = True
    r = httpx.post(
        server.url + "/api/tasks/expire",
        json={"kind": "expire", "action_id": "act_missing"},
        headers={"Authorization": f"Bearer {google_token(google)}"},
        timeout=30,
    )
    problem(r, 503)
