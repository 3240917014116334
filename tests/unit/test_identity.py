"""Locally signed identities: what is accepted and what answers 401."""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc import jwt

from vettra.adapters.clock import FakeClock
from vettra.adapters.local_identity import ALGORITHM, LocalIdentity
from vettra.adapters.local_keys import LocalKeyStore
from vettra.domain.errors import Unauthenticated


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def identity(tmp_path: Path, clock: FakeClock) -> LocalIdentity:
    return LocalIdentity(LocalKeyStore(tmp_path).identity_signing_key(), clock)


def test_agent_token_names_its_user(identity: LocalIdentity) -> None:
    p = identity.authenticate(identity.issue(role="agent", sub="bot", user="alice"))
    assert (p.role, p.sub, p.user, p.tenant) == ("agent", "bot", "alice", "default")


def test_approver_is_its_own_user(identity: LocalIdentity) -> None:
    p = identity.authenticate(identity.issue(role="approver", sub="alice", user="mallory"))
    assert p.user == "alice"


def test_agent_token_needs_a_user(identity: LocalIdentity) -> None:
    with pytest.raises(ValueError, match="--user"):
        identity.issue(role="agent", sub="bot")


def test_expired_token_is_refused_even_if_cached(identity: LocalIdentity, clock: FakeClock) -> None:
    token = identity.issue(role="approver", sub="alice", ttl_s=60)
    identity.authenticate(token)
    clock.advance(120)
    with pytest.raises(Unauthenticated, match="expiry"):
        identity.authenticate(token)


def test_token_from_another_home_is_refused(
    tmp_path: Path, clock: FakeClock, identity: LocalIdentity
) -> None:
    other = LocalIdentity(LocalKeyStore(tmp_path / "other").identity_signing_key(), clock)
    with pytest.raises(Unauthenticated):
        identity.authenticate(other.issue(role="admin", sub="eve"))


def test_wrong_audience_is_refused(
    tmp_path: Path, identity: LocalIdentity, clock: FakeClock
) -> None:
    key = identity._key
    now = int(clock.now().timestamp())
    token = jwt.encode(
        {"alg": ALGORITHM},
        {
            "iss": "vettra-local",
            "aud": "someone-else",
            "sub": "a",
            "role": "admin",
            "user": "a",
            "exp": now + 60,
        },
        key,
        algorithms=[ALGORITHM],
    )
    with pytest.raises(Unauthenticated, match="audience"):
        identity.authenticate(token)


def test_unsigned_and_garbage_tokens_are_refused(identity: LocalIdentity) -> None:
    good = identity.issue(role="admin", sub="a")
    header, payload, _sig = good.split(".")
    for bad in [
        "",
        "x",
        "a.b.c",
        f"{header}.{payload}.",
        good[:-4] + "AAAA",
        "eyJhbGciOiJub25lIn0." + payload + ".",
    ]:
        with pytest.raises(Unauthenticated):
            identity.authenticate(bad)


def test_token_keys_are_private_files(tmp_path: Path) -> None:
    keys = LocalKeyStore(tmp_path)
    keys.identity_signing_key()
    keys.audit_hmac_key()
    for f in (tmp_path / "keys").iterdir():
        if f.is_file():
            assert f.stat().st_mode & 0o077 == 0, f"{f.name} is readable by others"
