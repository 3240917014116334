"""Shared fixtures: a real runtime on a temporary home, the real HTTP server
(``vettra dev``'s uvicorn stack, in a thread with its own event loop) on an
ephemeral loopback port, tokens minted by that home's identity, and an OpenID provider
on 127.0.0.1 (``idp``); Auth0 Token Vault's token endpoint on 127.0.0.1 (``endpoint``)."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from vettra.bootstrap import Config, Runtime, bootstrap
from vettra.entrypoints.server import Limits, asgi_app, build, loop_factory

from .idp import FakeIdP
from .token_endpoint import TokenEndpoint


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    """An OpenID provider (discovery, JWK Set, signed tokens) on 127.0.0.1."""
    with FakeIdP() as provider:
        yield provider


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    """Auth0's token endpoint (Token Vault's exchange) and authorization server (the
    connect flow's /authorize, code grant and JWK Set) on 127.0.0.1."""
    server = TokenEndpoint()
    yield server
    server.stop()


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
    """``vettra dev``'s server (same protocol class, limits and ASGI app) in a thread."""

    STARTUP_S = 10.0

    def __init__(self, runtime: Runtime, limits: Limits | None = None):
        self.runtime = runtime
        self.limits = limits or Limits()
        self.asgi = asgi_app(runtime.app, self.limits)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        host, port = self.sock.getsockname()[:2]
        self.uvicorn, _ = build(self.asgi, host, port, self.limits)
        self.thread = threading.Thread(
            target=self._serve,
            daemon=True,
            name="test-server",
        )
        self.thread.start()
        deadline = threading.Event()
        for _ in range(int(self.STARTUP_S / 0.01)):
            if self.uvicorn.started:
                break
            deadline.wait(0.01)
        assert self.uvicorn.started, "the server did not start"
        self.address = (host, port)
        self.url = f"http://{host}:{port}"

    def _serve(self) -> None:
        with asyncio.Runner(loop_factory=loop_factory()) as runner:  # vettra dev's loop
            runner.run(self.uvicorn.serve([self.sock]))

    def token(self, role: str, sub: str, user: str | None = None, **kw: Any) -> str:
        return self.runtime.identity.issue(role=role, sub=sub, user=user, **kw)

    def client(self, role: str, sub: str, user: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            timeout=30,
            headers={"Authorization": f"Bearer {self.token(role, sub, user)}"},
        )

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(15)
        self.asgi.close()
        self.sock.close()


@contextmanager
def serving(rt: Runtime) -> Iterator[Server]:
    """``rt`` started and served; afterwards the server stopped and ``rt`` closed."""
    rt.start()
    server = Server(rt)
    try:
        yield server
    finally:
        server.stop()
        rt.close()


def closing_all(clients: dict[str, httpx.Client]) -> Iterator[dict[str, httpx.Client]]:
    """The body of a fixture handing out several clients (``yield from`` it): each one
    closed afterwards."""
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


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
