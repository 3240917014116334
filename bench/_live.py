"""What the live-server benches share: start ``vettra dev`` from this checkout (or another
tree's ``shared/``), mint its tokens, and a lean keep-alive HTTP/1.1 client (http.client,
Nagle off), so the numbers are the server's and not a heavyweight client's."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

BOOT_TIMEOUT_S = 120  # a home of 1M entries may be backfilled at open


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(
    home: Path,
    env_extra: dict[str, str] | None = None,
    *,
    source: str | None = None,
    log_level: str = "ERROR",
) -> tuple[subprocess.Popen, str]:
    """``vettra dev`` on ``home``; ``source``: another tree's ``shared/`` to run instead."""
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    if source:
        env["PYTHONPATH"] = source
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vettra.cli",
            "dev",
            "--home",
            str(home),
            "--port",
            str(port),
            "--log-level",
            log_level,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("vettra dev did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


def mint(home: Path, role: str, sub: str, user: str | None = None) -> str:
    args = [
        sys.executable,
        "-m",
        "vettra.cli",
        "token",
        "--home",
        str(home),
        "--role",
        role,
        "--sub",
        sub,
    ]
    out = subprocess.run(
        args + (["--user", user] if user else []), capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


class Client:
    """Keep-alive HTTP/1.1 over http.client with TCP_NODELAY; reconnects once when the
    server has closed an idle connection."""

    def __init__(self, url: str, token: str):
        host, port = url.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._connect()

    def _connect(self) -> None:
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self, method: str, path: str, body: bytes | None = None) -> int:
        return self.exchange(method, path, body)[0]

    def exchange(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        """``(status, body)`` of one request."""
        # The server closes a keep-alive connection idle past its timeout (5 s): reconnect once.
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=self.headers)
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()
                if attempt == 2:
                    raise
                self._connect()
        raise AssertionError("unreachable")

    def intercept(self, body: bytes) -> int:
        return self.call("POST", "/api/actions/intercept", body)
