"""Choosing the backend at boot (bootstrap.Config) and what refuses to start, with
the one line it says; the sequence target's message decoding. No emulator needed:
everything here fails before a connection or never makes one."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from vettra.bootstrap import (
    FIRESTORE,
    LOCAL,
    BackendUnavailable,
    CloudSettings,
    Config,
    _queue_parts,
    bootstrap,
)
from vettra.entrypoints.functions import BadSequenceMessage, sequence_chain


def test_the_backend_and_project_come_from_the_environment() -> None:
    assert Config.from_env({}).backend == LOCAL
    config = Config.from_env(
        {
            "VETTRA_BACKEND": "firestore",
            "GOOGLE_CLOUD_PROJECT": "from-google",
            "VETTRA_SECRETS_DIR": "/secrets",
            "VETTRA_TASKS_QUEUE": "projects/p/locations/l/queues/q",
            "VETTRA_SEQUENCE_TOPIC": "seq-topic",
        }
    )
    assert (config.backend, config.project) == (FIRESTORE, "from-google")
    assert config.secrets_dir == Path("/secrets") and config.mode == FIRESTORE
    assert config.cloud.tasks and not config.cloud.pubsub
    assert (config.cloud.sequence_topic, config.cloud.events_topic) == (
        "seq-topic",
        "vettra-events",
    )
    # VETTRA_PROJECT wins; VETTRA_MODE is the backend's older name
    config = Config.from_env(
        {"VETTRA_MODE": "firestore", "VETTRA_PROJECT": "mine", "GOOGLE_CLOUD_PROJECT": "other"}
    )
    assert (config.backend, config.project) == (FIRESTORE, "mine")
    assert CloudSettings.from_env({"PUBSUB_EMULATOR_HOST": "127.0.0.1:1"}).pubsub
    assert CloudSettings.from_env({"CLOUD_TASKS_EMULATOR_HOST": "127.0.0.1:1"}).tasks


def test_an_unknown_backend_is_refused(tmp_path) -> None:
    with pytest.raises(
        ValueError, match="backend 'mongo' is not available; use one of local, firestore"
    ):
        bootstrap(Config(backend="mongo", home=tmp_path))


def test_firestore_without_a_project_says_how_to_name_one(tmp_path) -> None:
    with pytest.raises(BackendUnavailable, match="needs a project id: pass --project ID"):
        bootstrap(Config(backend=FIRESTORE, home=tmp_path / "home"))
    assert not (tmp_path / "home").exists()  # refused before anything was written


def test_firestore_without_emulator_or_credentials_says_what_to_set(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing.json"))
    config = Config(backend=FIRESTORE, home=tmp_path / "home", project="p")
    with pytest.raises(BackendUnavailable, match="no Google Cloud credentials and no emulator"):
        bootstrap(config)


def test_a_malformed_queue_name_is_one_line() -> None:
    config = Config(backend=FIRESTORE, project="p", cloud=CloudSettings(tasks_queue="q1"))
    with pytest.raises(BackendUnavailable, match="must be projects/P/locations/L/queues/Q"):
        _queue_parts(config)
    named = Config(cloud=CloudSettings(tasks_queue="projects/a/locations/b/queues/c"))
    assert _queue_parts(named) == ("a", "b", "c")
    emulator_default = Config(project="p", cloud=CloudSettings(tasks_emulator_host="h:1"))
    assert _queue_parts(emulator_default) == ("p", "us-central1", "vettra-expire")


def test_an_unknown_sequencer_choice_is_refused_before_connecting(tmp_path) -> None:
    config = Config(
        backend=FIRESTORE, home=tmp_path, project="p", cloud=CloudSettings(sequencer="cron")
    )
    with pytest.raises(
        BackendUnavailable, match="VETTRA_SEQUENCER must be one of in-process, external"
    ):
        bootstrap(config)


def _pushed(payload: object) -> dict:
    raw = base64.b64encode(json.dumps(payload).encode()).decode()
    return {"message": {"data": raw, "messageId": "1"}, "subscription": "s"}


def test_a_sequence_message_names_its_chain() -> None:
    assert sequence_chain(_pushed({"chain": "default"})) == "default"
    assert sequence_chain(_pushed({"chain": "acme", "extra": 1})) == "acme"


@pytest.mark.parametrize(
    "data, why",
    [
        (None, "expected a Pub/Sub message with base64 data"),
        ({"message": {}}, "expected a Pub/Sub message with base64 data"),
        ({"message": {"data": "%%%"}}, "not base64 of a JSON object"),
        ({"message": {"data": base64.b64encode(b"{").decode()}}, "not base64 of a JSON object"),
        (_pushed([1, 2]), "expected {'chain'"),
        (_pushed({"chain": ""}), "expected {'chain'"),
        (_pushed({"chain": 7}), "expected {'chain'"),
        (_pushed({"chain": "x" * 501}), "expected {'chain'"),
    ],
)
def test_a_poison_sequence_message_is_refused_with_why(data, why) -> None:
    with pytest.raises(BadSequenceMessage, match=why.replace("{", r"\{").replace("(", r"\(")):
        sequence_chain(data)


# -- identity and keys as bootstrap wires them (docs/identity.md) ----------------------------

AUTH0 = "https://tenant.example.auth0.com/"


def _wire(monkeypatch, env: dict[str, str], *, host: str = "server", key: bool = True):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from vettra.adapters.clock import SystemClock
    from vettra.bootstrap import _identity

    for name in ("VETTRA_AUTH0_ISSUER", "VETTRA_AUTH0_AUDIENCE", "VETTRA_AUTH0_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Config.from_env(env)
    config.host = host
    deps = SimpleNamespace(sign_in=None)
    identity = _identity(config, Ed25519PrivateKey.generate() if key else None, SystemClock(), deps)
    return identity, deps


def test_without_a_cloud_issuer_only_local_tokens_are_accepted(monkeypatch) -> None:
    from vettra.adapters.local_identity import LocalIdentity

    identity, deps = _wire(monkeypatch, {})
    assert isinstance(identity, LocalIdentity) and deps.sign_in is None


def test_vettra_dev_accepts_auth0_tokens_beside_its_own(monkeypatch) -> None:
    from vettra.adapters.auth0_identity import IssuerIdentity

    identity, deps = _wire(
        monkeypatch,
        {"VETTRA_AUTH0_ISSUER": AUTH0, "VETTRA_AUTH0_AUDIENCE": "https://api.vettra.test"},
    )
    assert isinstance(identity, IssuerIdentity)
    assert set(identity.by_issuer) == {AUTH0, "vettra-local"}
    token = identity.issue(role="approver", sub="alice")  # vettra token still works
    assert identity.authenticate(token).user == "alice"
    assert deps.sign_in is None  # no client id: no dashboard sign-in


def test_a_function_with_a_cloud_issuer_takes_no_local_tokens(monkeypatch) -> None:
    identity, deps = _wire(
        monkeypatch,
        {
            "VETTRA_AUTH0_ISSUER": AUTH0,
            "VETTRA_AUTH0_CLIENT_ID": "spa-client",
            "VETTRA_TASKS_INVOKER": "tasks@p.iam.gserviceaccount.com",
            "VETTRA_TASKS_URL": "https://expire.example.run.app",
        },
        host="functions",
    )
    assert "vettra-local" not in identity.by_issuer
    assert {"https://accounts.google.com", "accounts.google.com"} <= set(identity.by_issuer)
    assert AUTH0 not in identity.by_issuer  # no audience: no agent access tokens
    assert deps.sign_in is not None  # the client id enables the sign-in exchange


@pytest.mark.parametrize(
    "env, key, why",
    [
        ({}, False, "no identity is configured for these keys"),
        ({"VETTRA_AUTH0_ISSUER": AUTH0}, True, "neither VETTRA_AUTH0_AUDIENCE"),
        (
            {"VETTRA_AUTH0_ISSUER": "http://tenant.example/", "VETTRA_AUTH0_AUDIENCE": "a"},
            True,
            "https",
        ),
        ({"VETTRA_TASKS_INVOKER": "tasks@p.iam.gserviceaccount.com"}, True, "VETTRA_TASKS_URL"),
    ],
)
def test_a_half_configured_identity_is_one_line(monkeypatch, env, key, why) -> None:
    with pytest.raises(BackendUnavailable, match=why):
        _wire(monkeypatch, env, host="functions", key=key)


def test_secret_files_are_the_keys_when_mounted(tmp_path) -> None:
    from vettra.adapters.secret_keys import fresh_secret_files, write_secret_files
    from vettra.bootstrap import _cloud_keys

    write_secret_files(tmp_path / "secrets", fresh_secret_files())
    keys, identity_key, name = _cloud_keys(Config(secrets_dir=tmp_path / "secrets"))
    assert name == "secret-files" and identity_key is None  # never a local token signer
    assert keys.audit_hmac_key()[1] and not (tmp_path / "home").exists()
    (tmp_path / "secrets" / "audit-hmac-key").write_text("{not json")
    with pytest.raises(BackendUnavailable, match="audit-hmac-key"):
        _cloud_keys(Config(secrets_dir=tmp_path / "secrets"))
