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
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .emulator_process import (
    HTTP_TIMEOUT_S,
    EmulatorProcess,
    EmulatorProject,
    PackagedEmulator,
    built_with_env,
    fresh_project_id,
)

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


#: ``cloud_firestore_emulator start`` (Java 17)
EMULATOR = PackagedEmulator(
    "Firestore",
    package="google-cloud-cli-firestore-emulator",
    launcher_name="cloud_firestore_emulator",
    client_modules=("google.cloud.firestore",),
    subcommand=("start",),
)


firestore_emulator = EMULATOR.session_fixture(FirestoreEmulator)


@dataclass
class FirestoreProject(EmulatorProject[FirestoreEmulator]):
    """With a client on the project."""

    client: Any


@pytest.fixture
def firestore_project(firestore_emulator: FirestoreEmulator) -> Iterator[FirestoreProject]:
    """A project no other test uses, emptied afterwards."""
    project = fresh_project_id()
    client = firestore_emulator.client(project)
    yield FirestoreProject(firestore_emulator, project, client)
    client.close()
    firestore_emulator.reset(project)
