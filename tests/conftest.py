"""Shared fixtures: a real runtime on a temporary home, a real HTTP server on an
ephemeral loopback port, and tokens minted by that home's identity."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from vettra.bootstrap import Config, Runtime, bootstrap
from vettra.entrypoints.local_server import LocalServer


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def runtime(home: Path) -> Iterator[Runtime]:
    rt = bootstrap(Config(home=home))
    rt.start()
    yield rt
    rt.close()


class Server:
    def __init__(self, runtime: Runtime):
        self.runtime = runtime
        self.httpd = LocalServer(runtime.app, "127.0.0.1", 0)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = self.httpd.url

    def token(self, role: str, sub: str, user: str | None = None, **kw: Any) -> str:
        return self.runtime.identity.issue(role=role, sub=sub, user=user, **kw)

    def client(self, role: str, sub: str, user: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {self.token(role, sub, user)}"})

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(runtime: Runtime) -> Iterator[Server]:
    srv = Server(runtime)
    yield srv
    srv.stop()


@pytest.fixture
def agent(server: Server) -> Iterator[httpx.Client]:
    with server.client("agent", "agent-1", "alice") as c:
        yield c


@pytest.fixture
def alice(server: Server) -> Iterator[httpx.Client]:
    with server.client("approver", "alice") as c:
        yield c


@pytest.fixture
def bob(server: Server) -> Iterator[httpx.Client]:
    with server.client("approver", "bob") as c:
        yield c


@pytest.fixture
def admin(server: Server) -> Iterator[httpx.Client]:
    with server.client("admin", "root-admin") as c:
        yield c
