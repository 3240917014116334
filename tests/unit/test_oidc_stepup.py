"""OIDC ID token step-up (OpenID Connect Core §3.1.3.7, RFC 9470): keys and validation.

The identity provider is real HTTP: :class:`~tests.idp.FakeIdP` serves discovery and a
JWK Set from ``http.server`` on 127.0.0.1 in a thread and signs ID tokens with keys made
at test time (joserfc over ``cryptography``). Time is a FakeClock. The refusal cases are a
table (``desc``, claim changes, ``want``) and every failing row is reported.
"""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey

from vettra.adapters.clock import FakeClock
from vettra.adapters.oidc_http import fetch_json
from vettra.domain import stepup as rules
from vettra.domain.errors import StepUpRequired, Unavailable
from vettra.domain.stepup import Binding, StepUpSettings
from vettra.services.jwks import MISS_REFETCH_S
from vettra.services.oidc_stepup import JWKS_TTL_S, MFA_ACR, IdTokenVerifier

from ..idp import (
    AUDIENCE,
    DISCOVERY_PATH,
    JWKS_PATH,
    FakeIdP,
    b64,
    closed_port_url,
    hs256_with_public_key,
    unsigned,
)

__all__ = ["AUDIENCE", "MFA_ACR", "FakeIdP", "hs256_with_public_key", "unsigned"]

# -- fixtures ----------------------------------------------------------------------------------


def verifier(idp: FakeIdP, clock: FakeClock, **extra: Any) -> IdTokenVerifier:
    settings = StepUpSettings.from_sources(
        {"oidc_issuer": idp.issuer, "oidc_audience": AUDIENCE, **extra}, {}
    )
    return IdTokenVerifier(settings, clock, fetch_json)


NONCE = rules.oidc_nonce("stc_1", Binding.for_action("act_1", "sha256:aa"))


# -- settings and the nonce ----------------------------------------------------------------------


def test_settings_from_extra_and_environment() -> None:
    assert not StepUpSettings.from_sources({}, {}).oidc_enabled
    env = {
        "VETTRA_OIDC_ISSUER": "https://t.auth0.com/",
        "VETTRA_OIDC_AUDIENCE": "spa",
        "VETTRA_OIDC_JWKS_URI": "https://t.auth0.com/.well-known/jwks.json",
    }
    s = StepUpSettings.from_sources({}, env)
    assert (s.oidc_issuer, s.oidc_audience, s.oidc_jwks_uri, s.oidc_enabled) == (
        "https://t.auth0.com/",
        "spa",
        "https://t.auth0.com/.well-known/jwks.json",
        True,
    )
    assert StepUpSettings.from_sources({"oidc_audience": "other"}, env).oidc_audience == "other"
    with pytest.raises(ValueError, match="oidc_audience"):
        StepUpSettings.from_sources({"oidc_issuer": "https://t.auth0.com/"}, {})


def test_nonce_is_bound_to_challenge_and_action_like_the_webauthn_challenge() -> None:
    a, b = Binding.for_action("act_1", "sha256:aa"), Binding.for_action("act_2", "sha256:aa")
    assert rules.oidc_nonce("stc_1", a) == NONCE
    others = {
        rules.oidc_nonce("stc_2", a),
        rules.oidc_nonce("stc_1", b),
        rules.oidc_nonce("stc_1", Binding.for_action("act_1", "sha256:bb")),
        rules.oidc_nonce("stc_1", Binding.for_purpose("preauth:ses_1")),
        b64(rules.webauthn_challenge("stc_1", a)),
    }
    assert NONCE not in others and len(others) == 5
    assert len(NONCE) == 43 and "=" not in NONCE


# -- validation ----------------------------------------------------------------------------------


def test_a_valid_id_token_proves_mfa_for_its_subject(idp, clock) -> None:
    v = verifier(idp, clock)
    proof = v.validate(idp.id_token(NONCE, now=clock.now().timestamp()), sub="alice")
    assert (proof.sub, proof.amr, proof.nonce) == ("alice", ("pwd", "mfa"), NONCE)
    proof.check_challenge(NONCE, clock.now())
    with pytest.raises(StepUpRequired, match="nonce"):
        proof.check_challenge(
            rules.oidc_nonce("stc_2", Binding.for_purpose("generic")), clock.now()
        )
    clock.advance(120)
    with pytest.raises(StepUpRequired, match="before this challenge"):
        proof.check_challenge(NONCE, clock.now())


def test_acr_alone_shows_mfa_and_es256_keys_verify(idp, clock) -> None:
    ec = ECKey.generate_key("P-256", parameters={"kid": "ec1", "alg": "ES256"})
    idp.published = [idp.key, ec]
    v = verifier(idp, clock)
    now = clock.now().timestamp()
    proof = v.validate(
        idp.id_token(NONCE, key=ec, alg="ES256", now=now, amr=None, acr=MFA_ACR), sub="alice"
    )
    assert proof.amr == ("mfa",) and proof.acr == MFA_ACR


def test_replay_id_is_the_jti_else_the_token_hash(idp, clock) -> None:
    v = verifier(idp, clock)
    now = clock.now().timestamp()
    same_jti = [
        v.validate(idp.id_token(NONCE, now=now, jti="j-1", auth_time=int(now) - s), sub="alice")
        for s in (1, 2)
    ]
    assert same_jti[0].replay_id == same_jti[1].replay_id
    no_jti = [
        v.validate(idp.id_token(NONCE, now=now, jti=None, auth_time=int(now) - s), sub="alice")
        for s in (1, 2)
    ]
    assert no_jti[0].replay_id != no_jti[1].replay_id != same_jti[0].replay_id


REFUSALS: list[dict[str, Any]] = [
    {"desc": "wrong issuer", "claims": {"iss": "https://evil.example/"}, "want": "iss must be"},
    {"desc": "wrong audience", "claims": {"aud": "other-client"}, "want": "aud must contain"},
    {
        "desc": "several audiences, no azp",
        "claims": {"aud": [AUDIENCE, "api"]},
        "want": "azp must be",
    },
    {"desc": "azp of another client", "claims": {"azp": "other-client"}, "want": "azp must be"},
    {"desc": "expired", "claims": {"exp": -10}, "want": "expired"},
    {"desc": "issued in the future", "claims": {"iat": 3600}, "want": "issued in the future"},
    {"desc": "no exp", "claims": {"exp": None}, "want": "'exp' must be a number"},
    {"desc": "no nonce", "claims": {"nonce": None}, "want": "no nonce"},
    {
        "desc": "another user",
        "claims": {"sub": "bob"},
        "want": "sub must be the approver's 'alice'",
    },
    {"desc": "no auth_time", "claims": {"auth_time": None}, "want": "no auth_time"},
    {"desc": "stale auth_time", "claims": {"auth_time": -400}, "want": "more than max_age 300 s"},
    {"desc": "auth_time in the future", "claims": {"auth_time": 3600}, "want": "in the future"},
    {"desc": "password only", "claims": {"amr": ["pwd"]}, "want": "no multi-factor login"},
    {
        "desc": "single-factor acr",
        "claims": {"amr": None, "acr": "urn:single"},
        "want": "no multi-factor",
    },
]
_TIMES = ("exp", "iat", "auth_time")


def test_refusals_say_what_was_expected(idp, clock) -> None:
    v = verifier(idp, clock)
    now = int(clock.now().timestamp())
    failures = []
    for case in REFUSALS:
        changes = {
            k: (now + val if k in _TIMES and isinstance(val, int) else val)
            for k, val in case["claims"].items()
        }
        try:
            v.validate(idp.id_token(NONCE, now=now, **changes), sub="alice")
            failures.append(f"{case['desc']}: accepted")
        except StepUpRequired as exc:
            if case["want"] not in exc.detail:
                failures.append(f"{case['desc']}: {exc.detail!r} lacks {case['want']!r}")
    assert not failures, "\n".join(failures)


def test_alg_none_hmac_key_confusion_and_foreign_keys_are_refused(idp, clock) -> None:
    v = verifier(idp, clock)
    claims = idp.claims(NONCE, now=clock.now().timestamp())
    forged = {
        "alg none": unsigned({"alg": "none", "kid": "k1"}, claims),
        "HS256 keyed with the public key": hs256_with_public_key(idp, claims),
        "unknown kid": idp.id_token(NONCE, key=FakeIdP._rsa("rogue"), now=clock.now().timestamp()),
        "known kid, other key": idp.id_token(
            NONCE, key=FakeIdP._rsa("k1"), now=clock.now().timestamp()
        ),
        "not a JWS": "abc.def",
    }
    wants = {
        "alg none": "alg must be one of RS256, ES256, found 'none'",
        "HS256 keyed with the public key": "found 'HS256'",
        "unknown kid": "no RS256 key with kid 'rogue'",
        "known kid, other key": "signature",
        "not a JWS": "3 parts",
    }
    failures = []
    for desc, token in forged.items():
        try:
            v.validate(token, sub="alice")
            failures.append(f"{desc}: accepted")
        except StepUpRequired as exc:
            if wants[desc] not in exc.detail or token in exc.detail:
                failures.append(f"{desc}: {exc.detail!r}")
    assert not failures, "\n".join(failures)


def test_a_header_alg_that_is_not_a_string_is_refused_not_a_crash(idp, clock) -> None:
    """A JSON array or object as ``alg`` is unhashable: it must be refused like any other alg."""
    v = verifier(idp, clock)
    claims = idp.claims(NONCE, now=clock.now().timestamp())
    for alg in ([], ["RS256"], {"RS256": 1}, 256, None):
        with pytest.raises(StepUpRequired, match="alg must be one of RS256, ES256, found "):
            v.validate(unsigned({"alg": alg, "kid": "k1"}, claims), sub="alice")


# -- the issuer's keys -----------------------------------------------------------------------------


def test_keys_are_discovered_cached_and_refreshed_after_the_ttl(idp, clock) -> None:
    v = verifier(idp, clock)
    for _ in range(3):
        v.validate(idp.id_token(NONCE, now=clock.now().timestamp()), sub="alice")
    assert idp.requests == [DISCOVERY_PATH, JWKS_PATH]
    clock.advance(JWKS_TTL_S)
    v.validate(idp.id_token(NONCE, now=clock.now().timestamp()), sub="alice")
    assert idp.requests == [DISCOVERY_PATH, JWKS_PATH, JWKS_PATH]


def test_a_rotated_key_is_picked_up_after_one_refresh(idp, clock) -> None:
    v = verifier(idp, clock)
    v.validate(idp.id_token(NONCE, now=clock.now().timestamp()), sub="alice")
    idp.rotate("k2")
    v.validate(idp.id_token(NONCE, now=clock.now().timestamp()), sub="alice")
    assert idp.jwks_fetches() == 2
    rogue = FakeIdP._rsa("k3")
    with pytest.raises(StepUpRequired, match="kid 'k3'"):  # within MISS_REFETCH_S: no fetch
        v.validate(idp.id_token(NONCE, key=rogue, now=clock.now().timestamp()), sub="alice")
    assert idp.jwks_fetches() == 2
    clock.advance(MISS_REFETCH_S)
    with pytest.raises(StepUpRequired, match="kid 'k3'"):  # unknown: one refresh per token, no more
        v.validate(idp.id_token(NONCE, key=rogue, now=clock.now().timestamp()), sub="alice")
    assert idp.jwks_fetches() == 3


def test_a_configured_jwks_uri_skips_discovery(idp, clock) -> None:
    v = verifier(idp, clock, oidc_jwks_uri=idp.base + JWKS_PATH)
    v.validate(idp.id_token(NONCE, now=clock.now().timestamp()), sub="alice")
    assert idp.requests == [JWKS_PATH]


def test_an_unreachable_or_failing_issuer_is_unavailable(idp, clock) -> None:
    token = idp.id_token(NONCE, now=clock.now().timestamp())
    down = IdTokenVerifier(
        StepUpSettings(oidc_issuer=closed_port_url(), oidc_audience=AUDIENCE), clock, fetch_json
    )
    with pytest.raises(Unavailable, match="did not answer"):
        down.validate(token, sub="alice")
    idp.failing = True
    with pytest.raises(Unavailable, match="answered 500"):
        verifier(idp, clock).validate(token, sub="alice")


def test_discovery_must_name_the_configured_issuer(idp, clock) -> None:
    other = IdTokenVerifier(
        StepUpSettings(oidc_issuer=idp.base, oidc_audience=AUDIENCE),
        clock,  # no slash
        fetch_json,
    )
    with pytest.raises(Unavailable, match="names issuer"):
        other.validate(idp.id_token(NONCE, now=clock.now().timestamp()), sub="alice")
