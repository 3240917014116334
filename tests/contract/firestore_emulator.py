"""The official Firestore emulator for the contract tests: one per test session.

Google ships it as the Debian package ``google-cloud-cli-firestore-emulator``
(a Java 17 program, shipped with the Google Cloud CLI on some machines). The fixture finds its
launcher with ``dpkg -L``, starts it on a free 127.0.0.1 port, waits until
``GET /`` answers ``Ok`` (about 2.5 s), hands each test a client on a project
of its own, empties that project afterwards with the emulator's DELETE
endpoint, and stops the emulator at the end of the session. The DELETE reset
does not give memory back, which is why a session starts a fresh emulator
rather than reusing a running one.

Anything missing (the package, Java, the client library) skips the tests that
need it, loudly: ``pytest.skip("Firestore emulator unavailable: <reason>")``.
"""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .emulator_process import (
    HTTP_TIMEOUT_S,
    EmulatorProcess,
    built_with_env,
    for_session,
    start_packaged,
)

PACKAGE = "google-cloud-cli-firestore-emulator"
LAUNCHER_NAME = "cloud_firestore_emulator"
_ENV_HOST = "FIRESTORE_EMULATOR_HOST"


@dataclass
class FirestoreEmulator(EmulatorProcess):
    """``host`` ("127.0.0.1:PORT") is the value for FIRESTORE_EMULATOR_HOST."""

    def client(self, project: str) -> Any:
        """A sync client on ``project`` talking to this emulator (anonymous credentials)."""
        from google.cloud import firestore

        return built_with_env(_ENV_HOST, self.host, lambda: firestore.Client(project=project))

    def reset(self, project: str) -> None:
        """Delete every document of ``project`` (the emulator's DELETE endpoint)."""
        url = f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents"
        request = urllib.request.Request(url, method="DELETE")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
            answer.read()


def start_emulator() -> FirestoreEmulator:
    """``cloud_firestore_emulator start`` (Java 17) on a free port."""
    return start_packaged(
        FirestoreEmulator,
        PACKAGE,
        LAUNCHER_NAME,
        override_env="VETTRA_FIRESTORE_EMULATOR",
        subcommand=["start"],
        name="firestore",
    )


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    """One fresh emulator per test session."""
    yield from for_session("Firestore", start_emulator, "google.cloud.firestore")


@dataclass
class FirestoreProject:
    """One test's own project on the shared emulator, and a client on it."""

    emulator: FirestoreEmulator
    project: str
    client: Any


@pytest.fixture
def firestore_project(firestore_emulator: FirestoreEmulator) -> Iterator[FirestoreProject]:
    """A project no other test uses, emptied afterwards."""
    project = f"vettra-{uuid.uuid4().hex[:12]}"
    client = firestore_emulator.client(project)
    yield FirestoreProject(firestore_emulator, project, client)
    client.close()
    firestore_emulator.reset(project)
