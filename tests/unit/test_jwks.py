"""The shared JWK Set cache (services/jwks.py) against a real HTTP JWK Set endpoint."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from vettra.adapters.clock import FakeClock
from vettra.adapters.oidc_http import fetch_json
from vettra.domain.errors import Unavailable
from vettra.services.jwks import (
    FAILURE_BACKOFF_S,
    STALE_S,
    JwksCache,
    TokenRefused,
    signing_keys,
    verify_signature,
)

from ..idp import JWKS_PATH, FakeIdP


def cache(idp: FakeIdP, clock: FakeClock) -> JwksCache:
    return JwksCache(idp.base + JWKS_PATH, clock, fetch_json)


def test_concurrent_first_uses_share_one_fetch(idp, clock) -> None:
    keys = cache(idp, clock)
    token = idp.token({"sub": "x"})
    results: list[Any] = []
    threads = [
        threading.Thread(target=lambda: results.append(verify_signature(token, keys)))
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [{"sub": "x"}] * 16
    assert idp.jwks_fetches() == 1


def test_the_ttl_refetches(idp, clock) -> None:
    keys = cache(idp, clock)
    verify_signature(idp.token({"a": 1}), keys)
    clock.advance(keys.ttl_s - 1)
    verify_signature(idp.token({"a": 1}), keys)
    assert idp.jwks_fetches() == 1
    clock.advance(1)
    verify_signature(idp.token({"a": 1}), keys)
    assert idp.jwks_fetches() == 2


def test_a_token_without_kid_needs_a_single_fitting_key(idp, clock) -> None:
    from joserfc import jws

    keys = cache(idp, clock)
    no_kid = jws.serialize_compact({"alg": "RS256"}, b'{"a":1}', idp.key, algorithms=["RS256"])
    assert verify_signature(no_kid, keys) == {"a": 1}
    idp.published.append(FakeIdP._rsa("k9"))
    clock.advance(keys.ttl_s)
    with pytest.raises(TokenRefused, match="no RS256 key"):
        verify_signature(no_kid, keys)


def test_private_members_and_foreign_keys_in_a_set_are_ignored(idp) -> None:
    jwk = idp.key.as_dict(private=True)
    found = signing_keys(
        {"keys": [jwk, {"kty": "oct", "k": "c2VjcmV0"}, {"kty": "RSA", "use": "enc"}, "x"]},
        "test",
    )
    assert [k.kid for k in found] == ["k1"]
    assert not found[0].key.is_private
    with pytest.raises(Unavailable, match="not a JWK Set"):
        signing_keys({"keys": "nope"}, "test")


def test_held_keys_serve_only_up_to_the_stale_limit(idp, clock) -> None:
    keys = cache(idp, clock)
    token = idp.token({"a": 1})
    verify_signature(token, keys)
    idp.failing = True
    clock.advance(keys.ttl_s + STALE_S - FAILURE_BACKOFF_S)
    assert verify_signature(token, keys) == {"a": 1}  # fetch failed, held keys used
    clock.advance(FAILURE_BACKOFF_S)
    with pytest.raises(Unavailable):
        verify_signature(token, keys)
