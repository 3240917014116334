"""A Cloud Tasks emulator for the contract tests, in a virtualenv of its own.

Google ships no Cloud Tasks emulator. PyPI ``gcloud-tasks-emulator`` implements
CreateQueue/CreateTask/RunTask and delivers HTTP tasks at their schedule_time
with the ``X-CloudTasks-*`` headers; it does NOT implement task-name
de-duplication, DeleteTask, GetTask, OIDC tokens or retry backoff
(PyPI `gcloud-tasks-emulator`). It needs ``protobuf<5``, which clashes with our venv, so it runs
from its own venv under ``.cache/`` (created on first use; pip from PyPI).

Its gRPC server listens on ``[::]`` whatever host it is given; the launcher
below replaces ``APIThread.run`` so it binds 127.0.0.1 only, on the free port it is
given, and prints a line once it listens (``emulator_process`` starts, waits and stops it).

Anything that prevents a start skips the tests that need it, loudly:
``pytest.skip("Cloud Tasks emulator unavailable: <reason>")``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .emulator_process import BIND_HOST, EmulatorProcess, EmulatorUnavailable, for_session, launch

REPO = Path(__file__).resolve().parents[2]
VENV = Path(
    os.environ.get(
        "VETTRA_CLOUD_TASKS_EMULATOR_VENV", REPO / ".cache" / "cloud-tasks-emulator-venv"
    )
)
REQUIREMENT = "gcloud-tasks-emulator==0.6.2"
PROJECT = "vettra-test"
LOCATION = "us-central1"
MAX_RETRIES = 2  # the emulator retries failed deliveries without backoff
INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 30
_READY_LINE = "VETTRA-EMULATOR-LISTENING "

LAUNCHER = f'''
"""Start gcloud-tasks-emulator bound to {BIND_HOST} only (written by the Vettra test harness)."""
import logging, sys
from concurrent import futures
import grpc
from gcloud_tasks_emulator import server as emulator

def _run_on_loopback(self):
    self._httpd = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    emulator.add_CloudTasksServicer_to_server(emulator.Greeter(self._state), self._httpd)
    port = self._httpd.add_insecure_port("{BIND_HOST}:%d" % self._port)
    self._httpd.start()
    print("{_READY_LINE}%d" % port, flush=True)

emulator.APIThread.run = _run_on_loopback
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
port, max_retries = int(sys.argv[1]), int(sys.argv[2])
emulator.create_server("{BIND_HOST}", port, "{BIND_HOST}", 80, [], max_retries).run()
'''


def emulator_python() -> Path:
    """The venv's interpreter, creating the venv on first use (serialised by a file lock)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".vettra-installed"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / f"{VENV.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists() and stamp.read_text() == REQUIREMENT and python.exists():
            return python
        base = shutil.which("python3") or sys.executable
        steps = [
            [base, "-m", "venv", "--clear", str(VENV)],
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                REQUIREMENT,
            ],
        ]
        for step in steps:
            try:
                done = subprocess.run(
                    step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise EmulatorUnavailable(f"{' '.join(step[:4])} failed: {exc}") from exc
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
                raise EmulatorUnavailable(
                    f"{' '.join(step[:4])} exited {done.returncode}: {' | '.join(tail)}"
                )
        stamp.write_text(REQUIREMENT)
    return python


@dataclass
class CloudTasksEmulator(EmulatorProcess):
    """``host`` ("127.0.0.1:PORT") is its gRPC address."""

    _client: Any = None

    @property
    def client(self) -> Any:
        """A CloudTasksClient speaking plain gRPC to the emulator (no credentials)."""
        if self._client is None:
            import grpc
            from google.cloud.tasks_v2 import CloudTasksClient
            from google.cloud.tasks_v2.services.cloud_tasks.transports import (
                CloudTasksGrpcTransport,
            )

            channel = grpc.insecure_channel(self.host)
            self._client = CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))
        return self._client

    def create_queue(self) -> str:
        """A fresh queue (one per test keeps deliveries apart); returns its id."""
        queue = f"q-{uuid.uuid4().hex[:12]}"
        parent = f"projects/{PROJECT}/locations/{LOCATION}"
        self.client.create_queue(
            parent=parent, queue={"name": f"{parent}/queues/{queue}"}, timeout=10
        )
        return queue

    def delete_queue(self, queue: str) -> None:
        self.client.delete_queue(
            name=f"projects/{PROJECT}/locations/{LOCATION}/queues/{queue}", timeout=10
        )


def start_emulator() -> CloudTasksEmulator:
    python = emulator_python()
    launcher = VENV / "vettra_launch_emulator.py"
    launcher.write_text(LAUNCHER)
    return launch(
        CloudTasksEmulator,
        lambda port: [python, "-u", launcher, str(port), str(MAX_RETRIES)],
        lambda emulator: _READY_LINE in emulator.log_path.read_text(errors="replace"),
        name="cloud-tasks",
        timeout_s=START_TIMEOUT_S,
        poll_s=0.05,
    )


@pytest.fixture(scope="session")
def cloud_tasks_emulator() -> Iterator[CloudTasksEmulator]:
    """One emulator per test session; tests take a fresh queue each."""
    yield from for_session("Cloud Tasks", start_emulator, "google.cloud.tasks_v2", "grpc")
