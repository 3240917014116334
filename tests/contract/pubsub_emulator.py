"""The official Pub/Sub emulator for the contract tests: one per test session.

Google ships it as the Debian package ``google-cloud-cli-pubsub-emulator`` (a
Java program, shipped with the Google Cloud CLI on some machines). The fixture
finds its launcher (``.../bin/cloud-pubsub-emulator``) with ``dpkg -L``, starts
it on a free 127.0.0.1 port, waits until ``GET /`` answers ``Ok`` (about 2.3 s)
and stops it at the end of the session. The emulator keeps everything in
memory and has no reset endpoint; each test works in a project of its own
(the emulator accepts any project id), so tests never see each other's topics.

What is missing (package, Java or client library) turns into a loud skip of the
tests that need it: ``pytest.skip("Pub/Sub emulator unavailable: <reason>")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .emulator_process import (
    EmulatorProcess,
    EmulatorProject,
    PackagedEmulator,
    built_with_env,
    fresh_project_id,
)

ENV_HOST = "PUBSUB_EMULATOR_HOST"


@dataclass
class PubSubEmulator(EmulatorProcess):
    """``host`` ("127.0.0.1:PORT") is the value for PUBSUB_EMULATOR_HOST."""

    def clients(self) -> tuple[Any, Any]:
        """``(PublisherClient, SubscriberClient)`` talking to this emulator."""
        from google.cloud import pubsub_v1

        return built_with_env(
            ENV_HOST,
            self.host,
            lambda: (pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()),
        )


#: ``.../bin/cloud-pubsub-emulator``
EMULATOR = PackagedEmulator(
    "Pub/Sub",
    package="google-cloud-cli-pubsub-emulator",
    launcher_name="cloud-pubsub-emulator",
    client_modules=("google.cloud.pubsub_v1",),
)


pubsub_emulator = EMULATOR.session_fixture(PubSubEmulator)


@dataclass
class PubSubProject(EmulatorProject[PubSubEmulator]):
    """With a publisher and a subscriber (the clients take the project per call)."""

    publisher: Any
    subscriber: Any


@pytest.fixture
def pubsub_project(
    pubsub_emulator: PubSubEmulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PubSubProject]:
    """A project no other test uses; ``PUBSUB_EMULATOR_HOST`` points at the emulator
    meanwhile (for clients the code under test builds itself)."""
    monkeypatch.setenv(ENV_HOST, pubsub_emulator.host)
    publisher, subscriber = pubsub_emulator.clients()
    yield PubSubProject(pubsub_emulator, fresh_project_id(), publisher, subscriber)
    subscriber.close()
    publisher.stop()
