"""Black-box harness: the real ``vettra`` CLI in subprocesses, driven over HTTP.

Nothing here imports the product. A server is ``vettra dev`` on a free loopback
port and a temporary home; tokens come only from ``vettra token`` run against
the same home, exactly as a user would get them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

BOOT_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0
CLI_TIMEOUT_S = 30.0


def vettra_command() -> list[str]:
    """The ``vettra`` console script next to this interpreter, else ``python -m vettra.cli``."""
    script = Path(sys.executable).with_name("vettra")
    if script.exists() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "vettra.cli"]


def run_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*vettra_command(), *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"vettra {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def mint(home: Path, role: str, sub: str, user: str | None = None, ttl: int | None = None) -> str:
    args = ["token", "--home", str(home), "--role", role, "--sub", sub]
    if user:
        args += ["--user", user]
    if ttl is not None:
        args += ["--ttl", str(ttl)]
    token = run_cli(*args).stdout.strip()
    assert token.count(".") == 2, f"vettra token printed {token!r}"
    return token


def mint_many(home: Path, specs: dict[str, tuple]) -> dict[str, str]:
    """Mint several tokens in parallel subprocesses (each CLI start costs ~0.3 s)."""
    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        futures = {name: pool.submit(mint, home, *spec) for name, spec in specs.items()}
        return {name: f.result() for name, f in futures.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevServer:
    """One ``vettra dev`` process; restartable on the same home and port."""

    def __init__(
        self,
        home: Path,
        log_path: Path,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ):
        self.home = home
        self.args = list(args)  # more `vettra dev` flags (limits, backend)
        self.env = dict(env or {})  # more environment (emulator addresses)
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.boots = 0

    def start(self) -> DevServer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.boots += 1
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                *vettra_command(),
                "dev",
                "--home",
                str(self.home),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "WARNING",
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
        )
        log.close()
        self.wait_healthy()
        return self

    def wait_healthy(self) -> dict:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"vettra dev exited {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(self.url + "/health", timeout=1)
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"vettra dev not healthy after {BOOT_TIMEOUT_S}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; returns (exit code, seconds it took). Fails if it does not exit in time."""
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"vettra dev ignored SIGTERM for {STOP_TIMEOUT_S}s:\n{self.log()}"
            ) from None
        return code, time.monotonic() - started

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=STOP_TIMEOUT_S)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def client(self, token: str | None, **kw) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=kw.pop("timeout", 20), **kw)


@pytest.fixture
def dev_server_factory(tmp_path: Path) -> Iterator:
    """Start ``vettra dev`` processes on fresh homes; SIGTERM them all at teardown."""
    started: list[DevServer] = []

    def factory(name: str = "home", args: Sequence[str] = ()) -> DevServer:
        server = DevServer(tmp_path / name, tmp_path / f"{name}.log", args)
        started.append(server)
        return server.start()

    yield factory
    for server in started:
        if server.running():
            code, took = server.terminate()
            assert code == 0, f"vettra dev exited {code} on SIGTERM:\n{server.log()}"


@pytest.fixture(scope="module")
def emulator() -> Iterator[Any]:
    """A fresh Firestore emulator for each module of the Firestore e2e tests (a long-used
    one slows down: TOOLCHAIN.md); skipped loudly when it cannot run here."""
    from .firestore_harness import start_firestore

    yield from start_firestore()


def entries_of(admin: httpx.Client) -> list[dict]:
    """Every audit entry of the tenant, paging with ``after``."""
    out: list[dict] = []
    after = 0
    while True:
        r = admin.get("/api/audit/entries", params={"after": after, "limit": 1000})
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page["entries"])
        if not page.get("next_after"):
            return out
        after = page["next_after"]


def chain_length(admin: httpx.Client) -> int:
    r = admin.get("/api/audit/verify")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["valid"], report
    return report["length"]


def seqs_are_gap_free(entries: Sequence[dict]) -> bool:
    return [e["seq"] for e in entries] == list(range(1, len(entries) + 1))


# who a load test mints tokens for: an agent acting for alice, alice deciding, an admin auditing
LOAD_CALLERS = {
    "agent": ("agent", "agent-1", "alice"),
    "alice": ("approver", "alice"),
    "admin": ("admin", "root"),
}


class Load:
    """Agents intercepting and one approver deciding against a live server, in threads,
    until :meth:`stop` or the server dies; what was answered survives restarts.

    ``acked`` maps each action id answered with a 2xx to the status answered, ``decided``
    each action the approver's decision was answered 200 for to its new status.
    """

    def __init__(self, server: DevServer, mix: Sequence[dict]):
        self.server = server
        self.mix = mix
        self.acked: dict[str, str] = {}
        self.decided: dict[str, str] = {}
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def start(
        self,
        agent_token: str,
        approver_token: str,
        *,
        agents: int,
        decision: str,
        pending_limit: int,
        spare: Sequence[str] = (),
    ) -> None:
        """``agents`` intercepting threads and one deciding every pending action but
        those in ``spare`` with ``decision``, ``pending_limit`` at a time."""
        self._stop = threading.Event()
        self._workers = [
            threading.Thread(target=self._intercept, args=(agent_token, n)) for n in range(agents)
        ] + [
            threading.Thread(
                target=self._decide, args=(approver_token, decision, pending_limit, set(spare))
            )
        ]
        for t in self._workers:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=10)

    def _intercept(self, token: str, offset: int) -> None:
        with self.server.client(token, timeout=5) as c:
            i = 0
            while not self._stop.is_set():
                try:
                    r = c.post(
                        "/api/actions/intercept", json=self.mix[(offset + i) % len(self.mix)]
                    )
                except httpx.TransportError:
                    return
                i += 1
                if r.status_code in (200, 201):
                    with self.lock:
                        self.acked[r.json()["action_id"]] = r.json()["status"]

    def _decide(self, token: str, decision: str, limit: int, spare: set[str]) -> None:
        status = {"approve": "approved", "deny": "denied"}[decision]
        with self.server.client(token, timeout=5) as c:
            while not self._stop.is_set():
                try:
                    pending = c.get("/api/actions/pending", params={"limit": limit}).json()
                    for a in pending["actions"]:
                        if a["action_id"] in spare:
                            continue
                        r = c.post(
                            "/api/actions/approve",
                            json={"action_id": a["action_id"], "decision": decision},
                        )
                        if r.status_code == 200:
                            with self.lock:
                                self.decided[a["action_id"]] = status
                except (httpx.TransportError, ValueError, KeyError):
                    return


# The dashboard's browser fixtures: tests/e2e/browser.py.
from .browser import browser, dash, web_admin, web_server  # noqa: E402, F401
