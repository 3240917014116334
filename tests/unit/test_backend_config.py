"""Choosing the backend at boot (bootstrap.Config) and what refuses to start, with
the one line it says; the sequence target's message decoding. No emulator needed:
everything here fails before a connection or never makes one."""

from __future__ import annotations

import base64
import json
from pathlib import Path

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
