"""The Cloud Tasks OIDC check (adapters/google_oidc.py): Google-signed tokens of the invoker.

Google's JWK Set is played by :class:`tests.idp.FakeIdP` on 127.0.0.1 (the URL is the
injected seam); the tokens carry Google's real issuer and the claims Cloud Tasks' OIDC
tokens carry (https://cloud.google.com/tasks/docs/creating-http-target-tasks#token).
"""

from __future__ import annotations

from typing import Any

import pytest

from vettra.adapters.auth0_identity import https_jwks
from vettra.adapters.clock import FakeClock
from vettra.adapters.google_oidc import GOOGLE_ISSUERS, GoogleOidcIdentity
from vettra.domain.errors import Unauthenticated, Unavailable

from ..idp import JWKS_PATH, FakeIdP, closed_port_url, hs256_with_public_key

TASKS_URL = "https://europe-west1-demo.cloudfunctions.net/expire"
INVOKER = "vettra-tasks@demo.iam.gserviceaccount.com"


@pytest.fixture
def google(idp: FakeIdP) -> FakeIdP:
    """Google's JWK Set, played by the local identity provider."""
    return idp


@pytest.fixture
def check(google: FakeIdP, clock: FakeClock) -> GoogleOidcIdentity:
    return GoogleOidcIdentity(
        audience=TASKS_URL,
        invoker_email=INVOKER,
        clock=clock,
        keys=https_jwks(google.base + JWKS_PATH, clock),
    )


def task_claims(clock: FakeClock, **changes: Any) -> dict[str, Any]:
    now = int(clock.now().timestamp())
    base: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "aud": TASKS_URL,
        "azp": "1234567890",
        "sub": "1234567890",
        "email": INVOKER,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def test_the_invokers_token_is_the_system_principal(google, clock, check) -> None:
    for iss in GOOGLE_ISSUERS:
        p = check.authenticate(google.token(task_claims(clock, iss=iss)))
        assert (p.role, p.sub, p.user, p.actor) == (
            "system",
            "scheduler",
            "system",
            "system:scheduler",
        )


def test_the_email_compares_without_case(google, clock, check) -> None:
    token = google.token(task_claims(clock, email=INVOKER.upper()))
    assert check.authenticate(token).role == "system"


@pytest.mark.parametrize(
    "changes, want",
    [
        ({"email": "someone@gmail.com"}, "invoker"),
        ({"email": None}, "invoker"),
        ({"email_verified": False}, "email_verified"),
        ({"email_verified": "true"}, "email_verified"),
        ({"email_verified": None}, "email_verified"),
        ({"aud": "https://elsewhere.example/expire"}, "bad audience"),
        ({"aud": TASKS_URL + "/"}, "bad audience"),
        ({"iss": "https://accounts.google.com.evil"}, "bad issuer"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"exp": 4_000_000_000}, "bad expiry"),  # Google's live an hour: far is refused
    ],
    ids=lambda v: str(v)[:40],
)
def test_anything_else_is_refused(google, clock, check, changes, want) -> None:
    token = google.token(task_claims(clock, **changes))
    with pytest.raises(Unauthenticated) as caught:
        check.authenticate(token)
    assert want in caught.value.detail and INVOKER not in caught.value.detail


def test_an_expired_token_is_refused(google, clock, check) -> None:
    token = google.token(task_claims(clock))
    clock.advance(3600 + 31)
    with pytest.raises(Unauthenticated, match="bad expiry"):
        check.authenticate(token)


def test_a_token_signed_by_another_key_or_forged_is_refused(google, clock, check) -> None:
    with pytest.raises(Unauthenticated, match="no RS256 key"):
        check.authenticate(google.token(task_claims(clock), key=FakeIdP._rsa("other")))
    with pytest.raises(Unauthenticated, match="alg must be"):
        check.authenticate(hs256_with_public_key(google, task_claims(clock)))


def test_googles_keys_unreachable_is_503_so_cloud_tasks_retries(google, clock) -> None:
    down = GoogleOidcIdentity(
        audience=TASKS_URL,
        invoker_email=INVOKER,
        clock=clock,
        keys=https_jwks(closed_port_url() + "oauth2/v3/certs", clock),
    )
    with pytest.raises(Unavailable) as caught:
        down.authenticate(google.token(task_claims(clock)))
    assert caught.value.status == 503


def test_it_needs_an_audience_and_an_invoker(clock) -> None:
    keys = https_jwks("https://www.googleapis.com/oauth2/v3/certs", clock)
    with pytest.raises(ValueError, match="VETTRA_TASKS_INVOKER"):
        GoogleOidcIdentity(audience=TASKS_URL, invoker_email="", clock=clock, keys=keys)
    with pytest.raises(ValueError, match="VETTRA_TASKS_URL"):
        GoogleOidcIdentity(audience="", invoker_email=INVOKER, clock=clock, keys=keys)
