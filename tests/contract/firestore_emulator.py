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

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PACKAGE = "google-cloud-cli-firestore-emulator"
LAUNCHER_NAME = "cloud_firestore_emulator"
BIND_HOST = "127.0.0.1"
START_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 5
_ENV_HOST = "FIRESTORE_EMULATOR_HOST"


class EmulatorUnavailable(RuntimeError):
    """The emulator is not installed, Java is missing, or it did not start."""


def find_launcher() -> Path:
    """The emulator's launcher script, from the Debian package's file list."""
    override = os.environ.get("VETTRA_FIRESTORE_EMULATOR")
    if override:
        return Path(override)
    if shutil.which("dpkg") is None:
        raise EmulatorUnavailable(f"dpkg not found, so package {PACKAGE} cannot be located")
    listed = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True)
    if listed.returncode != 0:
        raise EmulatorUnavailable(f"package {PACKAGE} is not installed")
    for line in listed.stdout.splitlines():
        if line.endswith("/" + LAUNCHER_NAME) and Path(line).is_file():
            return Path(line)
    raise EmulatorUnavailable(f"package {PACKAGE} lists no {LAUNCHER_NAME}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((BIND_HOST, 0))
        return sock.getsockname()[1]


@dataclass
class FirestoreEmulator:
    process: subprocess.Popen
    host: str  # "127.0.0.1:PORT", the value of FIRESTORE_EMULATOR_HOST
    log_path: Path

    def client(self, project: str) -> Any:
        """A sync client on ``project`` talking to this emulator (anonymous credentials)."""
        from google.cloud import firestore

        # the client reads the emulator's address from the environment once, at construction
        previous = os.environ.get(_ENV_HOST)
        os.environ[_ENV_HOST] = self.host
        try:
            return firestore.Client(project=project)
        finally:
            if previous is None:
                os.environ.pop(_ENV_HOST, None)
            else:
                os.environ[_ENV_HOST] = previous

    def reset(self, project: str) -> None:
        """Delete every document of ``project`` (the emulator's DELETE endpoint)."""
        url = f"http://{self.host}/emulator/v1/projects/{project}/databases/(default)/documents"
        request = urllib.request.Request(url, method="DELETE")
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
            answer.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            # the launcher is a shell script running java: stop the whole process group
            try:
                os.killpg(self.process.pid, 15)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        self.log_path.unlink(missing_ok=True)


def _answers_ok(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=HTTP_TIMEOUT_S) as answer:
            return answer.read().strip() == b"Ok"
    except (urllib.error.URLError, OSError):
        return False


def start_emulator() -> FirestoreEmulator:
    launcher = find_launcher()
    if shutil.which("java") is None:
        raise EmulatorUnavailable("java not found on PATH (the emulator needs Java 17)")
    port = _free_port()
    host = f"{BIND_HOST}:{port}"
    fd, log_name = tempfile.mkstemp(prefix="vettra-firestore-emulator-", suffix=".log")
    log_path = Path(log_name)
    try:
        process = subprocess.Popen(
            [str(launcher), "start", f"--host={BIND_HOST}", f"--port={port}"],
            stdout=fd,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise EmulatorUnavailable(f"could not run {launcher}: {exc}") from exc
    finally:
        os.close(fd)
    emulator = FirestoreEmulator(process, host, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if _answers_ok(host):
            return emulator
        if process.poll() is not None:
            tail = " | ".join(log_path.read_text(errors="replace").strip().splitlines()[-3:])
            raise EmulatorUnavailable(f"it exited with {process.returncode}: {tail}")
        time.sleep(0.1)
    emulator.stop()
    raise EmulatorUnavailable(f"GET / did not answer Ok within {START_TIMEOUT_S}s")


@pytest.fixture(scope="session")
def firestore_emulator() -> Iterator[FirestoreEmulator]:
    """One fresh emulator per test session."""
    try:
        import google.cloud.firestore  # noqa: F401
    except ImportError as exc:
        pytest.skip(
            f"Firestore emulator unavailable: client library missing ({exc}); "
            "install the 'test' extra"
        )
    try:
        emulator = start_emulator()
    except (EmulatorUnavailable, OSError) as exc:
        pytest.skip(f"Firestore emulator unavailable: {exc}")
    yield emulator
    emulator.stop()


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
