"""Running an emulator as a child process for a test session, whichever emulator it is.

Each helper module (``firestore_emulator.py``, ``pubsub_emulator.py``,
``cloud_tasks_emulator.py``) knows how to find its launcher, what command line starts it
and how to tell it is ready (:func:`start_packaged` for Google's own Java emulators); this
module does the rest the same way for all of them: pick a free 127.0.0.1 port, start the launcher in a
session of its own with its output in a temporary log, poll the readiness check until a
deadline, stop the whole process group (a launcher is often a shell script running java),
and turn anything missing into a loud ``pytest.skip("<Name> emulator unavailable: <why>")``.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

BIND_HOST = "127.0.0.1"
STOP_TIMEOUT_S = 10
#: How long a Java emulator may take to answer ``Ok`` (about 2.5 s on an idle machine).
JAVA_START_TIMEOUT_S = 60
HTTP_TIMEOUT_S = 5


class EmulatorUnavailable(RuntimeError):
    """The emulator is not installed, something it needs is missing, or it did not start."""


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS's pick)."""
    with socket.socket() as sock:
        sock.bind((BIND_HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def packaged_launcher(package: str, launcher_name: str, override_env: str) -> Path:
    """A launcher installed by Debian package ``package`` (from ``dpkg -L``), or the path in
    the environment variable ``override_env`` when that is set."""
    override = os.environ.get(override_env)
    if override:
        return Path(override)
    if shutil.which("dpkg") is None:
        raise EmulatorUnavailable(f"dpkg not found, so package {package} cannot be located")
    listed = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True)
    if listed.returncode != 0:
        raise EmulatorUnavailable(f"package {package} is not installed")
    for line in listed.stdout.splitlines():
        if line.endswith("/" + launcher_name) and Path(line).is_file():
            return Path(line)
    raise EmulatorUnavailable(f"package {package} lists no {launcher_name}")


def answers_ok(host: str) -> bool:
    """Whether ``GET http://host/`` answers ``Ok`` (how Google's Java emulators say ready)."""
    try:
        with urllib.request.urlopen(f"http://{host}/", timeout=HTTP_TIMEOUT_S) as answer:
            return bool(answer.read().strip() == b"Ok")
    except (urllib.error.URLError, OSError):
        return False


def built_with_env(variable: str, value: str, build: Callable[[], Any]) -> Any:
    """``build()`` with ``variable=value`` in the environment meanwhile: Google's clients read
    an emulator's address (``FIRESTORE_EMULATOR_HOST``, ``PUBSUB_EMULATOR_HOST``) from the
    environment once, at construction."""
    previous = os.environ.get(variable)
    os.environ[variable] = value
    try:
        return build()
    finally:
        if previous is None:
            os.environ.pop(variable, None)
        else:
            os.environ[variable] = previous


def require_program(program: str, why: str) -> None:
    """Refuse to start when ``program`` is not on PATH (``why`` says what needs it)."""
    if shutil.which(program) is None:
        raise EmulatorUnavailable(f"{program} not found on PATH ({why})")


@dataclass
class EmulatorProcess:
    """A started emulator: its process (leader of its own process group), the
    ``127.0.0.1:PORT`` it listens on, and the log of its output."""

    process: subprocess.Popen[bytes]
    host: str
    log_path: Path

    def log_tail(self, lines: int = 3) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL) and remove the log."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT_S)
        self.log_path.unlink(missing_ok=True)


E = TypeVar("E", bound=EmulatorProcess)


def launch(
    make: Callable[[subprocess.Popen[bytes], str, Path], E],
    command: Callable[[int], Sequence[str | Path]],
    ready: Callable[[E], bool],
    *,
    name: str,
    timeout_s: float,
    poll_s: float = 0.1,
    cwd: Path | None = None,
) -> E:
    """Start ``command(port)`` on a free loopback port and return ``make(process, host, log)``
    once ``ready`` says so; raise :class:`EmulatorUnavailable` (the emulator stopped) when
    it cannot run, exits early, or is not ready within ``timeout_s``."""
    port = free_port()
    fd, log_name = tempfile.mkstemp(prefix=f"vettra-{name}-emulator-", suffix=".log")
    log_path = Path(log_name)
    argv = [str(part) for part in command(port)]
    try:
        process = subprocess.Popen(
            argv,
            stdout=fd,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )
    except OSError as exc:
        log_path.unlink(missing_ok=True)
        raise EmulatorUnavailable(f"could not run {argv[0]}: {exc}") from exc
    finally:
        os.close(fd)
    emulator = make(process, f"{BIND_HOST}:{port}", log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready(emulator):
            return emulator
        if process.poll() is not None:
            tail = emulator.log_tail()
            emulator.stop()
            raise EmulatorUnavailable(f"it exited with {process.returncode}: {tail}")
        time.sleep(poll_s)
    tail = emulator.log_tail()
    emulator.stop()
    raise EmulatorUnavailable(f"not ready within {timeout_s}s (log ends: {tail})")


def start_packaged(
    make: Callable[[subprocess.Popen[bytes], str, Path], E],
    package: str,
    launcher_name: str,
    *,
    override_env: str,
    subcommand: Sequence[str] = (),
    name: str,
    timeout_s: float = JAVA_START_TIMEOUT_S,
) -> E:
    """One of Google's Java emulators from its Debian package: the launcher from
    :func:`packaged_launcher`, Java on PATH, ``launcher [subcommand] --host=… --port=…``,
    ready when ``GET /`` answers ``Ok``."""
    launcher = packaged_launcher(package, launcher_name, override_env)
    require_program("java", f"the {name} emulator is a Java program")
    return launch(
        make,
        lambda port: [launcher, *subcommand, f"--host={BIND_HOST}", f"--port={port}"],
        lambda emulator: answers_ok(emulator.host),
        name=name,
        timeout_s=timeout_s,
    )


@dataclass(frozen=True)
class PackagedEmulator:
    """One of Google's Java emulators from its Debian package, described once: what
    :func:`start_packaged` needs to start it and :func:`for_session` to skip loudly.
    ``VETTRA_<NAME>_EMULATOR`` (:attr:`override_env`) may give the launcher's path on a
    machine without the package."""

    label: str  # "Pub/Sub": how skip reasons name it
    package: str
    launcher_name: str
    client_modules: tuple[str, ...]  # the client libraries a test talks to it with
    subcommand: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``label`` in lower-case letters only ("pubsub"): for log files and variables."""
        return re.sub(r"[^a-z]", "", self.label.lower())

    @property
    def override_env(self) -> str:
        return f"VETTRA_{self.name.upper()}_EMULATOR"

    def start(self, make: Callable[[subprocess.Popen[bytes], str, Path], E]) -> E:
        return start_packaged(
            make,
            self.package,
            self.launcher_name,
            override_env=self.override_env,
            subcommand=self.subcommand,
            name=self.name,
        )

    def session(self, make: Callable[[subprocess.Popen[bytes], str, Path], E]) -> Iterator[E]:
        """The body of its session fixture (``yield from`` it)."""
        yield from for_session(self.label, lambda: self.start(make), *self.client_modules)

    def session_fixture(self, make: Callable[[subprocess.Popen[bytes], str, Path], E]) -> Any:
        """A pytest fixture of one fresh emulator per test session; pytest names it after
        the module attribute it is assigned to."""

        def fixture() -> Iterator[E]:
            yield from self.session(make)

        fixture.__doc__ = f"One fresh {self.label} emulator per test session."
        return pytest.fixture(scope="session")(fixture)


def fresh_project_id() -> str:
    """A project id no other test uses (the emulators keep projects apart)."""
    return f"vettra-{uuid.uuid4().hex[:12]}"


@dataclass
class EmulatorProject(Generic[E]):
    """One test's own project on the session's emulator (subclasses add its clients)."""

    emulator: E
    project: str


def for_session(label: str, start: Callable[[], E], *client_modules: str) -> Iterator[E]:
    """The body of a session fixture (``yield from`` it): skip loudly, naming ``label``'s
    emulator, when a client library is missing or the emulator cannot start; stop it at
    the end of the session."""
    for module in client_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            pytest.skip(
                f"{label} emulator unavailable: client library missing ({exc}); "
                "install the 'test' extra"
            )
    try:
        emulator = start()
    except (EmulatorUnavailable, OSError) as exc:
        pytest.skip(f"{label} emulator unavailable: {exc}")
    try:
        yield emulator
    finally:
        emulator.stop()
