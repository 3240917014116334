"""The official Firebase Auth emulator (npm ``firebase-tools``) for the dashboard's
cloud-mode test.

``make test-deps`` installs firebase-tools from ``tests/auth_emulator/package-lock.json``.
The Auth emulator is a Node program inside firebase-tools (no Java, nothing downloaded);
for a ``demo-*`` project it runs offline. Each start gets a folder of its own holding a
``firebase.json`` that puts the emulator, its hub and its log port on free loopback
ports (firebase-tools' defaults would collide with another run), and is ready when
``GET /`` answers ``{"authEmulator": {"ready": true}}``. Anything missing skips loudly.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..contract.emulator_process import (
    BIND_HOST,
    HTTP_TIMEOUT_S,
    EmulatorProcess,
    EmulatorUnavailable,
    free_port,
    launch,
)

REPO = Path(__file__).resolve().parents[2]
FIREBASE_CLI = REPO / "tests" / "auth_emulator" / "node_modules" / ".bin" / "firebase"
PROJECT = "demo-vettra"  # demo-*: the emulators never reach a real project
START_TIMEOUT_S = 60


@dataclass
class AuthEmulator(EmulatorProcess):
    """``host`` ("127.0.0.1:PORT") is the value for FIREBASE_AUTH_EMULATOR_HOST."""

    workdir: Path | None = None

    @property
    def origin(self) -> str:
        return f"http://{self.host}"

    def accounts(self) -> list[dict]:
        """Every account the emulator holds for PROJECT (its emulator-only REST API)."""
        url = f"{self.origin}/identitytoolkit.googleapis.com/v1/projects/{PROJECT}/accounts:query"
        request = urllib.request.Request(
            url,
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": "Bearer owner"},
        )
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as answer:
            return list(json.loads(answer.read()).get("userInfo", []))

    def stop(self) -> None:
        super().stop()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _ready(emulator: AuthEmulator) -> bool:
    try:
        with urllib.request.urlopen(f"{emulator.origin}/", timeout=HTTP_TIMEOUT_S) as answer:
            return bool(json.loads(answer.read()).get("authEmulator", {}).get("ready"))
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_emulator() -> AuthEmulator:
    node = shutil.which("node")
    if node is None:
        raise EmulatorUnavailable("node not found on PATH (firebase-tools needs Node 20+)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < 20:
        raise EmulatorUnavailable(f"node {version.strip() or '?'} is older than 20")
    if not FIREBASE_CLI.exists():
        raise EmulatorUnavailable(
            f"{FIREBASE_CLI.relative_to(REPO)} is not installed (make test-deps runs npm ci "
            "in tests/auth_emulator)"
        )
    workdir = Path(tempfile.mkdtemp(prefix="vettra-auth-emulator-"))

    def command(port: int) -> list[str]:
        settings = {
            "emulators": {
                "auth": {"host": BIND_HOST, "port": port},
                "hub": {"host": BIND_HOST, "port": free_port()},
                "logging": {"host": BIND_HOST, "port": free_port()},
                "ui": {"enabled": False},
                "singleProjectMode": True,
            }
        }
        (workdir / "firebase.json").write_text(json.dumps(settings))
        return [
            str(FIREBASE_CLI),
            "emulators:start",
            "--only",
            "auth",
            "--project",
            PROJECT,
            "--config",
            str(workdir / "firebase.json"),
        ]

    def make(process: subprocess.Popen[bytes], host: str, log: Path) -> AuthEmulator:
        return AuthEmulator(process, host, log, workdir)

    try:
        return launch(
            make, command, _ready, name="firebase-auth", timeout_s=START_TIMEOUT_S, cwd=workdir
        )
    except EmulatorUnavailable:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def auth_emulator() -> Iterator[AuthEmulator]:
    """The body of a fixture (``yield from`` it): the emulator, or a loud skip."""
    try:
        emulator = start_emulator()
    except EmulatorUnavailable as exc:
        pytest.skip(f"SKIPPED dashboard cloud mode: Firebase Auth emulator unavailable: {exc}")
    try:
        yield emulator
    finally:
        emulator.stop()
