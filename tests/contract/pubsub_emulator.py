"""The official Pub/Sub emulator for the contract tests: one per test session.

Google ships it as the Debian package ``google-cloud-cli-pubsub-emulator`` (a
Java program, shipped with the Google Cloud CLI on some machines). The fixture
finds its launcher (``.../bin/cloud-pubsub-emulator``) with ``dpkg -L``, starts
it on a free 127.0.0.1 port, waits until ``GET /`` answers ``Ok`` (about 2.3 s)
and stops it at the end of the session. The emulator keeps everything in
memory and has no reset endpoint; each test works in a project of its own
(the emulator accepts any project id), so tests never see each other's topics.

Anything missing (the package, Java, the client library) skips the tests that
need it, loudly: ``pytest.skip("Pub/Sub emulator unavailable: <reason>")``.
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

PACKAGE = "google-cloud-cli-pubsub-emulator"
LAUNCHER_SUFFIX = "/bin/cloud-pubsub-emulator"
BIND_HOST = "127.0.0.1"
START_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 5
ENV_HOST = "PUBSUB_EMULATOR_HOST"


class EmulatorUnavailable(RuntimeError):
    """The emulator is not installed, Java is missing, or it did not start."""


def find_launcher() -> Path:
    """The emulator's launcher script, from the Debian package's file list."""
    override = os.environ.get("VETTRA_PUBSUB_EMULATOR")
    if override:
        return Path(override)
    if shutil.which("dpkg") is None:
        raise EmulatorUnavailable(f"dpkg not found, so package {PACKAGE} cannot be located")
    listed = subprocess.run(["dpkg", "-L", PACKAGE], capture_output=True, text=True)
    if listed.returncode != 0:
        raise EmulatorUnavailable(f"package {PACKAGE} is not installed")
    for line in listed.stdout.splitlines():
        if line.endswith(LAUNCHER_SUFFIX) and Path(line).is_file():
            return Path(line)
    raise EmulatorUnavailable(f"package {PACKAGE} lists no {LAUNCHER_SUFFIX}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((BIND_HOST, 0))
        return sock.getsockname()[1]


@dataclass
class PubSubEmulator:
    process: subprocess.Popen
    host: str  # "127.0.0.1:PORT", the value of PUBSUB_EMULATOR_HOST
    log_path: Path

    def clients(self) -> tuple[Any, Any]:
        """``(PublisherClient, SubscriberClient)`` talking to this emulator."""
        from google.cloud import pubsub_v1

        # the clients read the emulator's address from the environment at construction
        previous = os.environ.get(ENV_HOST)
        os.environ[ENV_HOST] = self.host
        try:
            return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        finally:
            if previous is None:
                os.environ.pop(ENV_HOST, None)
            else:
                os.environ[ENV_HOST] = previous

    def stop(self) -> None:
        if self.process.poll() is None:
            # the launcher execs java, but stop the whole process group to be sure
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


def start_emulator() -> PubSubEmulator:
    launcher = find_launcher()
    if shutil.which("java") is None:
        raise EmulatorUnavailable("java not found on PATH (the emulator needs Java)")
    port = _free_port()
    host = f"{BIND_HOST}:{port}"
    fd, log_name = tempfile.mkstemp(prefix="vettra-pubsub-emulator-", suffix=".log")
    log_path = Path(log_name)
    try:
        process = subprocess.Popen(
            [str(launcher), f"--host={BIND_HOST}", f"--port={port}"],
            stdout=fd,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError as exc:
        raise EmulatorUnavailable(f"could not run {launcher}: {exc}") from exc
    finally:
        os.close(fd)
    emulator = PubSubEmulator(process, host, log_path)
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
def pubsub_emulator() -> Iterator[PubSubEmulator]:
    """One fresh emulator per test session."""
    try:
        import google.cloud.pubsub_v1  # noqa: F401
    except ImportError as exc:
        pytest.skip(
            f"Pub/Sub emulator unavailable: client library missing ({exc}); "
            "install the 'test' extra"
        )
    try:
        emulator = start_emulator()
    except (EmulatorUnavailable, OSError) as exc:
        pytest.skip(f"Pub/Sub emulator unavailable: {exc}")
    yield emulator
    emulator.stop()


@dataclass
class PubSubProject:
    """One test's own project on the shared emulator, with clients on it."""

    emulator: PubSubEmulator
    project: str
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
    yield PubSubProject(pubsub_emulator, f"vettra-{uuid.uuid4().hex[:12]}", publisher, subscriber)
    subscriber.close()
    publisher.stop()
