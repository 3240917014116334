"""The two token vaults: Auth0 Token Vault against a real local token endpoint that checks
every parameter as Auth0 documents the exchange (tests/token_endpoint.py), and the local
vault's stored records; the sealed storage of what users link."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest

from vettra.adapters.auth0_token_vault import (
    GRANT_TYPE,
    REQUESTED_TOKEN_TYPE,
    SUBJECT_TOKEN_TYPE,
    Auth0TokenVault,
    TokenVaultSettings,
)
from vettra.adapters.clock import FakeClock
from vettra.adapters.local_keys import LocalKeyStore
from vettra.adapters.local_vault import LocalVault, token_record
from vettra.domain.credentials import ACCESS_TOKEN, REFRESH_TOKEN, NotLinked, secret_context
from vettra.domain.errors import Unavailable
from vettra.services import vault

from ..fakes import FakeStore
from ..idp import closed_port_url
from ..token_endpoint import TokenEndpoint

REFRESH = "auth0-refresh-PLANTED-9f2c"
GOOGLE_TOKEN = "ya29.PLANTED-google-access-4411"
GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"


def _vault(endpoint: TokenEndpoint, clock: FakeClock, **changes) -> Auth0TokenVault:
    settings = TokenVaultSettings(
        token_url=endpoint.token_url,
        client_id=endpoint.client_id,
        client_secret=endpoint.client_secret,
        **{"backoff_s": 0.01, "max_backoff_s": 0.05, **changes},
    )
    return Auth0TokenVault(settings, clock)


def test_the_exchange_sends_exactly_auth0s_documented_parameters(endpoint) -> None:
    clock = FakeClock()
    endpoint.link(REFRESH, "google-oauth2", GOOGLE_TOKEN, scope=f"openid {GMAIL_SEND}")
    token = _vault(endpoint, clock).exchange(REFRESH, "google-oauth2")
    assert token.access_token == GOOGLE_TOKEN and token.token_type == "Bearer"
    assert token.scope == ("openid", GMAIL_SEND)
    assert token.expires_at == clock.now() + timedelta(seconds=3600)
    assert endpoint.requests == [
        {
            "grant_type": GRANT_TYPE,
            "client_id": endpoint.client_id,
            "client_secret": endpoint.client_secret,
            "subject_token_type": SUBJECT_TOKEN_TYPE,
            "subject_token": REFRESH,
            "requested_token_type": REQUESTED_TOKEN_TYPE,
            "connection": "google-oauth2",
        }
    ]
    assert endpoint.violations == []
    assert GOOGLE_TOKEN not in repr(token)


def test_login_hint_picks_one_of_several_accounts(endpoint) -> None:
    endpoint.link(REFRESH, "google-oauth2", "ya29.work", scope=GMAIL_SEND, login_hint="work-id")
    endpoint.link(REFRESH, "google-oauth2", "ya29.home", scope=GMAIL_SEND, login_hint="home-id")
    vault_ = _vault(endpoint, FakeClock())
    assert vault_.exchange(REFRESH, "google-oauth2", login_hint="home-id").access_token == (
        "ya29.home"
    )
    assert endpoint.requests[-1]["login_hint"] == "home-id" and endpoint.violations == []
    with pytest.raises(NotLinked):
        vault_.exchange(REFRESH, "google-oauth2", login_hint="nobody")


def test_no_scope_in_the_answer_means_unknown_not_none(endpoint) -> None:
    endpoint.link(REFRESH, "github", "gho_planted", scope=None)
    assert _vault(endpoint, FakeClock()).exchange(REFRESH, "github").scope is None


def test_no_identity_on_the_connection_is_a_4xx_naming_it(endpoint) -> None:
    endpoint.link(REFRESH, "google-oauth2", GOOGLE_TOKEN, scope=GMAIL_SEND)
    with pytest.raises(NotLinked) as caught:
        _vault(endpoint, FakeClock()).exchange(REFRESH, "github")
    problem = caught.value.problem()
    assert caught.value.status == 409 and problem["refusal"] == "not-linked"
    assert problem["connection"] == "github" and "github" in problem["detail"]
    assert REFRESH not in json.dumps(problem) and endpoint.client_secret not in json.dumps(problem)
    assert len(endpoint.requests) == 1  # a refusal is not retried


def test_a_revoked_refresh_token_is_not_linked_too(endpoint) -> None:
    with pytest.raises(NotLinked, match="google-oauth2.*invalid_grant"):
        _vault(endpoint, FakeClock()).exchange("revoked-refresh", "google-oauth2")


def test_a_wrong_client_secret_is_a_503_about_the_deployment(endpoint) -> None:
    endpoint.link(REFRESH, "google-oauth2", GOOGLE_TOKEN, scope=GMAIL_SEND)
    settings = TokenVaultSettings(
        token_url=endpoint.token_url, client_id=endpoint.client_id, client_secret="wrong-secret"
    )
    with pytest.raises(Unavailable, match="access_denied.*Token Vault grant") as caught:
        Auth0TokenVault(settings, FakeClock()).exchange(REFRESH, "google-oauth2")
    assert "wrong-secret" not in caught.value.detail and REFRESH not in caught.value.detail


def test_429_and_5xx_are_retried_with_backoff_then_succeed(endpoint) -> None:
    endpoint.link(REFRESH, "google-oauth2", GOOGLE_TOKEN, scope=GMAIL_SEND)
    endpoint.fail_next([429, 502])
    vault_ = _vault(endpoint, FakeClock())
    assert vault_.exchange(REFRESH, "google-oauth2").access_token == GOOGLE_TOKEN
    assert len(endpoint.requests) == 3 and vault_.exchanges == 3
    assert endpoint.requests[0] == endpoint.requests[2]  # the same request, again


def test_a_retry_after_is_honoured_up_to_the_cap(endpoint) -> None:
    endpoint.link(REFRESH, "google-oauth2", GOOGLE_TOKEN, scope=GMAIL_SEND)
    endpoint.fail_next([429], retry_after=1)
    vault_ = _vault(endpoint, FakeClock(), backoff_s=0.01, max_backoff_s=1.5)
    started = time.monotonic()
    vault_.exchange(REFRESH, "google-oauth2")
    assert 0.9 <= time.monotonic() - started < 1.5
    endpoint.fail_next([429], retry_after=30)  # more than the cap: the cap wins
    started = time.monotonic()
    _vault(endpoint, FakeClock(), backoff_s=0.01, max_backoff_s=0.2).exchange(
        REFRESH, "google-oauth2"
    )
    assert time.monotonic() - started < 0.6


def test_a_vault_that_keeps_failing_is_503_after_the_attempts(endpoint) -> None:
    endpoint.fail_next([503, 503, 503, 503], retry_after=2)
    with pytest.raises(Unavailable, match="after 3 attempt") as caught:
        _vault(endpoint, FakeClock()).exchange(REFRESH, "google-oauth2")
    assert caught.value.status == 503 and caught.value.headers["Retry-After"] == "2"
    assert len(endpoint.requests) == 3


def test_an_unreachable_vault_is_503() -> None:
    settings = TokenVaultSettings(
        token_url=closed_port_url() + "oauth/token",
        client_id="c",
        client_secret="s",
        backoff_s=0.01,
        max_backoff_s=0.02,
    )
    with pytest.raises(Unavailable, match="ConnectError"):
        Auth0TokenVault(settings, FakeClock()).exchange(REFRESH, "github")


def test_settings_come_from_the_environment_and_hide_the_secret(endpoint) -> None:
    env = endpoint.env()
    settings = TokenVaultSettings.from_env(env)
    assert settings is not None and settings.token_url == endpoint.token_url
    assert endpoint.client_secret not in repr(settings)
    for missing in ("VETTRA_AUTH0_ISSUER", "VETTRA_AUTH0_CLIENT_SECRET"):  # Token Vault off
        assert TokenVaultSettings.from_env({k: v for k, v in env.items() if k != missing}) is None
    with pytest.raises(ValueError, match="VETTRA_AUTH0_CLIENT_ID"):  # an issuer alone is wrong
        TokenVaultSettings.from_env({"VETTRA_AUTH0_ISSUER": endpoint.issuer})
    # sign-in with a public SPA client, the exchange with a confidential one
    split = TokenVaultSettings.from_env({**env, "VETTRA_AUTH0_VAULT_CLIENT_ID": "backend-app"})
    assert split is not None and split.client_id == "backend-app"
    with pytest.raises(ValueError, match="https"):
        TokenVaultSettings.from_env({**env, "VETTRA_AUTH0_ISSUER": "http://auth0.example.com/"})


# -- the local vault -------------------------------------------------------------------------


def test_the_local_vault_returns_the_stored_record() -> None:
    clock = FakeClock()
    record = token_record(
        GOOGLE_TOKEN, scope=[GMAIL_SEND], expires_at=clock.now() + timedelta(hours=1)
    )
    token = LocalVault().exchange(record, "google-oauth2")
    assert (token.access_token, token.scope) == (GOOGLE_TOKEN, (GMAIL_SEND,))
    assert token.expires_at == clock.now() + timedelta(hours=1)
    assert LocalVault().exchange(token_record("t"), "github").scope is None
    with pytest.raises(NotLinked, match="vettra vault put"):
        LocalVault().exchange("not json", "github")
    with pytest.raises(ValueError, match="whitespace"):
        token_record("two words")


# -- sealed storage ----------------------------------------------------------------------------


def test_stored_secrets_are_sealed_and_bound_to_where_they_are(tmp_path: Path) -> None:
    keys, clock = LocalKeyStore(tmp_path), FakeClock()
    store = FakeStore(keys)
    shown = vault.store_secret(
        store,
        keys,
        clock.now(),
        tenant="default",
        user="alice",
        connection="google-oauth2",
        kind=REFRESH_TOKEN,
        secret=REFRESH,
        login_hint="alice-google-id",
    )
    assert shown["kind"] == REFRESH_TOKEN and "sealed" not in shown and REFRESH not in str(shown)
    with store.unit_of_work(readonly=True) as uow:
        doc = vault.stored(uow, "default", "alice", "google-oauth2")
        assert vault.stored(uow, "default", "bob", "google-oauth2") is None
    assert doc is not None and REFRESH not in json.dumps(doc)
    assert vault.open_secret(keys, doc) == REFRESH
    # the sealed value moved to bob's document, or relabelled, does not open
    with pytest.raises(ValueError, match="does not open"):
        vault.open_secret(keys, {**doc, "user": "bob"})
    with pytest.raises(ValueError, match="does not open"):
        vault.open_secret(keys, {**doc, "kind": ACCESS_TOKEN})
    assert secret_context("a:b", "c", "x", "k") != secret_context("a", "b:c", "x", "k")
    assert [v["connection"] for v in vault.list_links(store, "default", "alice")] == [
        "google-oauth2"
    ]
    assert vault.remove(store, "default", "alice", "google-oauth2") is True
    assert vault.remove(store, "default", "alice", "google-oauth2") is False
    assert vault.list_links(store, "default", "alice") == []


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"connection": "google oauth2"}, "connection must be"),
        ({"connection": "-x"}, "connection must be"),
        ({"user": ""}, "user must be"),
        ({"kind": "password"}, "kind must be"),
        ({"secret": ""}, "1..16384 bytes"),
        ({"login_hint": "a\nb"}, "login_hint"),
    ],
)
def test_bad_names_are_refused_and_store_nothing(tmp_path: Path, changes, message) -> None:
    keys = LocalKeyStore(tmp_path)
    store = FakeStore(keys)
    args = {
        "tenant": "default",
        "user": "alice",
        "connection": "github",
        "kind": ACCESS_TOKEN,
        "secret": "gho_x",
        **changes,
    }
    with pytest.raises(ValueError, match=message):
        vault.store_secret(store, keys, FakeClock().now(), **args)
    assert store.committed == 0


def test_bootstrap_reads_the_mounted_client_secret_in_the_cloud(
    endpoint, tmp_path: Path, monkeypatch
) -> None:
    from vettra.bootstrap import Config, credential_vaults

    monkeypatch.setenv("VETTRA_AUTH0_ISSUER", endpoint.issuer)
    monkeypatch.setenv("VETTRA_AUTH0_CLIENT_ID", endpoint.client_id)
    monkeypatch.delenv("VETTRA_AUTH0_CLIENT_SECRET", raising=False)
    secrets_dir = tmp_path / "secrets"
    vaults, _ = credential_vaults(Config(secrets_dir=secrets_dir), FakeClock())
    assert set(vaults) == {ACCESS_TOKEN}  # no secret mounted: the local vault only
    (secrets_dir / "auth0-client-secret").mkdir(parents=True)
    (secrets_dir / "auth0-client-secret" / "auth0-client-secret").write_text(
        endpoint.client_secret + "\n"
    )
    vaults, settings = credential_vaults(
        Config(secrets_dir=secrets_dir, extra={"credential_window_s": 60}), FakeClock()
    )
    assert set(vaults) == {ACCESS_TOKEN, REFRESH_TOKEN} and settings.window_s == 60
    endpoint.link(REFRESH, "github", "gho_x", scope="repo")
    assert vaults[REFRESH_TOKEN].exchange(REFRESH, "github").access_token == "gho_x"
