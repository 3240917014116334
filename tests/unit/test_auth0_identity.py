"""Auth0 access and ID tokens (adapters/auth0_identity.py) against a real JWK Set endpoint.

The tenant is :class:`tests.idp.FakeIdP`: a JWK Set served over HTTP on 127.0.0.1 from a
thread, RSA and EC keys generated here, tokens signed with joserfc. The JWK Set is
fetched with the production fetch (httpx); time is a FakeClock. Every refusal is asserted
on the error it gives (status and what it says) and on what it must not say.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from vettra.adapters.auth0_identity import (
    ROLES_CLAIM,
    TENANT_CLAIM,
    USER_CLAIM,
    Auth0AccessTokens,
    Auth0IdTokens,
    Auth0Settings,
    IssuerIdentity,
    https_jwks,
)
from vettra.adapters.clock import FakeClock
from vettra.adapters.local_identity import LocalIdentity
from vettra.adapters.local_keys import LocalKeyStore
from vettra.domain.errors import Forbidden, Unauthenticated, Unavailable
from vettra.domain.identity import Principal
from vettra.services.jwks import MISS_REFETCH_S

from ..idp import JWKS_PATH, FakeIdP, b64, closed_port_url, hs256_with_public_key, unsigned

API = "https://api.vettra.test"
CLIENT = "dashboard-spa"


def settings(idp: FakeIdP) -> Auth0Settings:
    return Auth0Settings(
        issuer=idp.issuer, audience=API, client_id=CLIENT, jwks_url=idp.base + JWKS_PATH
    )


@pytest.fixture
def access(idp: FakeIdP, clock: FakeClock) -> Auth0AccessTokens:
    s = settings(idp)
    return Auth0AccessTokens(s, clock, https_jwks(s.keys_url, clock))


@pytest.fixture
def ids(idp: FakeIdP, clock: FakeClock) -> Auth0IdTokens:
    s = settings(idp)
    return Auth0IdTokens(s, clock, https_jwks(s.keys_url, clock))


def _token(
    idp: FakeIdP, clock: FakeClock, ttl_s: int, claims: dict[str, Any], changes: dict[str, Any]
) -> dict[str, Any]:
    """``iss``, ``iat`` and ``exp`` (``ttl_s`` later) at the clock's now, then ``claims``, then
    ``changes``; a claim changed to None is left out."""
    now = int(clock.now().timestamp())
    token = {"iss": idp.issuer, "iat": now, "exp": now + ttl_s, **claims, **changes}
    return {k: v for k, v in token.items() if v is not None}


def claims(idp: FakeIdP, clock: FakeClock, **changes: Any) -> dict[str, Any]:
    """An agent's client-credentials access token, as Auth0 issues one."""
    agent = {
        "sub": "agent-client@clients",
        "aud": API,
        "scope": "vettra:agent",
        "gty": "client-credentials",
        "azp": "agent-client",
        USER_CLAIM: "alice",
    }
    return _token(idp, clock, 86400, agent, changes)


def id_claims(idp: FakeIdP, clock: FakeClock, **changes: Any) -> dict[str, Any]:
    """The dashboard's ID token, from a sign-in three seconds ago."""
    signed_in = int(clock.now().timestamp()) - 3
    person = {"sub": "auth0|alice", "aud": CLIENT, "nonce": "n-1", "auth_time": signed_in}
    return _token(idp, clock, 36000, person, changes)


def who(p: Principal) -> tuple[str, str, str, str]:
    """``(role, sub, user, tenant)`` of a principal."""
    return p.role, p.sub, p.user, p.tenant


def refused(verifier: Any, token: str, want: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        verifier.authenticate(token)
    assert caught.value.status == 401
    assert want in caught.value.detail, caught.value.detail
    assert token not in caught.value.detail
    return caught.value


# -- accepted ----------------------------------------------------------------------------------


def test_an_agent_token_acts_for_its_user(idp, clock, access) -> None:
    p = access.authenticate(idp.token(claims(idp, clock)))
    assert who(p) == ("agent", "agent-client@clients", "alice", "default")


def test_es256_keys_verify_too(idp, clock, access) -> None:
    idp.key = FakeIdP._ec("ec-1")
    idp.published.append(idp.key)
    p = access.authenticate(idp.token(claims(idp, clock)))
    assert p.role == "agent"


@pytest.mark.parametrize(
    "grant, role",
    [
        ({"scope": "openid vettra:approve"}, "approver"),
        ({"scope": "vettra:admin"}, "admin"),
        ({"scope": "vettra:approve vettra:admin"}, "admin"),
        ({"scope": None, "permissions": ["vettra:approve"]}, "approver"),  # Auth0 RBAC
    ],
)
def test_people_are_their_own_user_and_the_role_follows_the_grant(
    idp, clock, access, grant, role
) -> None:
    token = idp.token(claims(idp, clock, sub="auth0|bob", **{USER_CLAIM: "mallory"}, **grant))
    p = access.authenticate(token)
    assert (p.role, p.sub, p.user) == (role, "auth0|bob", "auth0|bob")


def test_the_tenant_comes_from_its_claim(idp, clock, access) -> None:
    p = access.authenticate(idp.token(claims(idp, clock, **{TENANT_CLAIM: "acme"})))
    assert p.tenant == "acme"


def test_an_audience_list_containing_the_api_is_accepted(idp, clock, access) -> None:
    token = idp.token(claims(idp, clock, aud=[API, idp.issuer + "userinfo"]))
    assert access.authenticate(token).role == "agent"


# -- refused -----------------------------------------------------------------------------------


def test_expired_is_refused_after_the_leeway_only(idp, clock, access) -> None:
    now = int(clock.now().timestamp())
    token = idp.token(claims(idp, clock, iat=now - 100, exp=now - 10))
    assert access.authenticate(token).role == "agent"  # within the 30 s leeway
    clock.advance(30)
    refused(access, token, "bad expiry")


@pytest.mark.parametrize(
    "changes, want",
    [
        ({"iss": "https://evil.auth0.com/"}, "bad issuer"),
        ({"iss": None}, "iss"),
        ({"aud": "https://other-api"}, "bad audience"),
        ({"aud": CLIENT}, "bad audience"),  # an ID token's audience is not the API
        ({"aud": None}, "aud"),
        ({"exp": None}, "exp"),
        ({"iat": None}, "iat"),
        ({"sub": None}, "sub"),
        ({"exp": 2**40}, "bad expiry"),  # absurdly far: refused unread
        ({"exp": 1e12}, "bad expiry"),  # not a whole second
        ({"exp": "tomorrow"}, "bad expiry"),
        ({"nbf": 2_000_000_000}, "not-before"),
        ({"iat": 2_000_000_000}, "issued-at"),
        ({USER_CLAIM: None}, USER_CLAIM),
        ({USER_CLAIM: ""}, USER_CLAIM),
        ({USER_CLAIM: "x" * 129}, USER_CLAIM),
        ({TENANT_CLAIM: 7}, TENANT_CLAIM),
        ({"sub": "\ud800"}, "not valid Unicode"),
    ],
    ids=lambda v: str(v)[:40],
)
def test_bad_claims_are_refused_saying_which(idp, clock, access, changes, want) -> None:
    refused(access, idp.token(claims(idp, clock, **changes)), want)


def test_no_vettra_grant_is_403_insufficient_scope(idp, clock, access) -> None:
    token = idp.token(claims(idp, clock, scope="openid profile read:things"))
    with pytest.raises(Forbidden) as caught:
        access.authenticate(token)
    assert "vettra:agent" in caught.value.detail
    assert 'error="insufficient_scope"' in caught.value.headers["WWW-Authenticate"]


def test_an_agent_that_could_decide_is_refused(idp, clock, access) -> None:
    with pytest.raises(Forbidden, match="may not decide its own calls"):
        access.authenticate(idp.token(claims(idp, clock, scope="vettra:agent vettra:approve")))


def test_alg_none_and_hs256_with_the_public_key_are_refused(idp, clock, access) -> None:
    c = claims(idp, clock)
    refused(access, unsigned({"alg": "none", "kid": "k1"}, c), "alg must be one of RS256, ES256")
    refused(access, hs256_with_public_key(idp, c), "alg must be one of RS256, ES256")
    refused(access, unsigned({"kid": "k1"}, c), "alg must be one of")


def test_a_tampered_payload_or_signature_is_refused(idp, clock, access) -> None:
    token = idp.token(claims(idp, clock))
    head, _, sig = token.split(".")
    admin_payload = b64(json.dumps(claims(idp, clock, scope="vettra:admin")).encode())
    refused(access, f"{head}.{admin_payload}.{sig}", "signature")
    flipped = sig[:-4] + ("AAAA" if sig[-4:] != "AAAA" else "BBBB")
    refused(access, f"{head}.{token.split('.')[1]}.{flipped}", "signature")


def test_a_key_of_another_algorithm_family_is_not_used(idp, clock, access) -> None:
    """ES256 in the header while the kid names an RSA key: no key fits, nothing verifies."""
    ec = FakeIdP._ec("k1")  # same kid as the published RSA key
    refused(access, idp.token(claims(idp, clock), key=ec, alg="ES256"), "no ES256 key")


@pytest.mark.parametrize("garbage", ["", "abc", "a.b", "a.b.c.d", "x" * 9000, "..."])
def test_garbage_is_refused(access, garbage) -> None:
    with pytest.raises(Unauthenticated):
        access.authenticate(garbage)


def test_refusals_log_nothing_of_the_token(idp, clock, access, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    token = idp.token(claims(idp, clock, iss="https://evil/", **{USER_CLAIM: "secret-user-123"}))
    err = refused(access, token, "bad issuer")
    assert "secret-user-123" not in err.detail and "evil" not in err.detail
    assert all(token not in r.getMessage() for r in caplog.records)


# -- keys: rotation, floods of made-up kids, the endpoint down -----------------------------------


def test_an_unknown_kid_refetches_once_and_rotation_is_picked_up(idp, clock, access) -> None:
    access.authenticate(idp.token(claims(idp, clock)))
    assert idp.jwks_fetches() == 1
    idp.rotate("k2")
    assert access.authenticate(idp.token(claims(idp, clock))).role == "agent"
    assert idp.jwks_fetches() == 2


def test_a_flood_of_made_up_kids_costs_one_fetch_per_interval(idp, clock, access) -> None:
    access.authenticate(idp.token(claims(idp, clock)))
    rogue = [FakeIdP._rsa(f"rogue-{i}") for i in range(3)]
    for i in range(60):
        refused(access, idp.token(claims(idp, clock), key=rogue[i % 3]), "no RS256 key")
    assert idp.jwks_fetches() == 2  # the first made-up kid refetched; the rest waited
    clock.advance(MISS_REFETCH_S)
    refused(access, idp.token(claims(idp, clock), key=rogue[0]), "no RS256 key")
    assert idp.jwks_fetches() == 3


def test_jwks_endpoint_down_is_unavailable_not_a_crash(idp, clock) -> None:
    s = Auth0Settings(issuer=idp.issuer, audience=API, jwks_url=closed_port_url() + "jwks.json")
    verifier = Auth0AccessTokens(s, clock, https_jwks(s.keys_url, clock))
    with pytest.raises(Unavailable) as caught:
        verifier.authenticate(idp.token(claims(idp, clock)))
    assert caught.value.status == 503


def test_jwks_answering_500_is_unavailable_then_served_from_held_keys(idp, clock, access) -> None:
    token = idp.token(claims(idp, clock))
    idp.failing = True
    with pytest.raises(Unavailable, match="500"):
        access.authenticate(token)
    with pytest.raises(Unavailable, match="not tried again"):  # backoff: no second fetch
        access.authenticate(token)
    assert idp.requests.count(JWKS_PATH) == 1
    idp.failing = False
    clock.advance(10)
    assert access.authenticate(token).role == "agent"
    # past the TTL the issuer fails again: the keys held keep verifying meanwhile
    clock.advance(access.keys.ttl_s)
    idp.failing = True
    assert access.authenticate(idp.token(claims(idp, clock))).role == "agent"


# -- ID tokens (dashboard sign-in) -----------------------------------------------------------------


def test_an_id_token_makes_an_approver_of_its_subject(idp, clock, ids) -> None:
    p = ids.authenticate(idp.token(id_claims(idp, clock)))
    assert who(p) == ("approver", "auth0|alice", "auth0|alice", "default")
    assert p.auth_time == int(clock.now().timestamp()) - 3


def test_the_roles_claim_makes_an_admin(idp, clock, ids) -> None:
    p = ids.authenticate(idp.token(id_claims(idp, clock, **{ROLES_CLAIM: ["admin"]})))
    assert p.role == "admin"
    p = ids.authenticate(idp.token(id_claims(idp, clock, **{ROLES_CLAIM: "admin"})))
    assert p.role == "approver"  # a string is not the documented list


@pytest.mark.parametrize(
    "changes, want",
    [
        ({"aud": API}, "bad audience"),  # an access token is not a sign-in
        ({"aud": [CLIENT, "other"]}, "azp"),  # several audiences need azp = us
        ({"aud": [CLIENT, "other"], "azp": "other"}, "azp"),
        ({"azp": "other"}, "azp"),
        ({"iss": "https://evil.auth0.com/"}, "bad issuer"),
    ],
)
def test_id_token_refusals(idp, clock, ids, changes, want) -> None:
    refused(ids, idp.token(id_claims(idp, clock, **changes)), want)


def test_an_id_token_is_no_access_token(idp, clock, access) -> None:
    refused(access, idp.token(id_claims(idp, clock)), "bad audience")


# -- settings and several issuers ----------------------------------------------------------------


def test_settings_from_env_and_their_checks() -> None:
    assert Auth0Settings.from_env({}) is None
    s = Auth0Settings.from_env(
        {"VETTRA_AUTH0_ISSUER": "https://t.eu.auth0.com", "VETTRA_AUTH0_AUDIENCE": API}
    )
    assert s is not None and s.issuer == "https://t.eu.auth0.com/"
    assert s.keys_url == "https://t.eu.auth0.com/.well-known/jwks.json"
    with pytest.raises(ValueError, match="https"):
        Auth0Settings(issuer="http://t.auth0.com/", audience=API)
    with pytest.raises(ValueError, match="VETTRA_AUTH0_AUDIENCE"):
        Auth0Settings(issuer="https://t.auth0.com/")
    with pytest.raises(ValueError, match="VETTRA_AUTH0_JWKS_URL"):
        Auth0Settings(issuer="https://t.auth0.com/", audience=API, jwks_url="ftp://x/")


def test_issuer_identity_routes_by_issuer_and_refuses_strangers(
    idp, clock, access, tmp_path
) -> None:
    local = LocalIdentity(LocalKeyStore(tmp_path).identity_signing_key(), clock)
    both = IssuerIdentity({idp.issuer: access, "vettra-local": local})
    assert both.authenticate(idp.token(claims(idp, clock))).sub == "agent-client@clients"
    dev = both.issue(role="approver", sub="carol")
    assert both.authenticate(dev).sub == "carol"
    refused(both, idp.token(claims(idp, clock, iss="https://stranger/")), "not issued by")
    refused(both, "not-a-jwt", "not issued by")
    # naming the local issuer in an Auth0-signed token only reaches a verifier that refuses
    with pytest.raises(Unauthenticated):
        both.authenticate(idp.token(claims(idp, clock, iss="vettra-local")))
    with pytest.raises(ValueError, match="local development tokens are off"):
        IssuerIdentity({idp.issuer: access}).issue(role="admin", sub="x")
