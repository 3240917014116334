"""One live ``vettra dev`` for the SDK and framework tests, and an approver that decides.

The server is the real CLI in a subprocess on a temporary home (tests/e2e/conftest.py's
DevServer); tokens come from ``vettra token`` for that home. Agents talk to it directly
when it publishes the credential release, else through the clearly marked stand-in of
credential_standin.py (a warning in the test summary says so).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from vettra.sdk import Action, AsyncClient, Client

from ..conftest import DevServer, mint_many
from .credential_standin import CredentialStandIn, credential_endpoint_present

AGENT, USER = "sdk-agent", "alice"
PENDING_POLL_S = 0.05
DECIDE_TIMEOUT_S = 30.0


@dataclass
class LiveVettra:
    url: str  # where agents connect
    server: DevServer
    agent_token: str
    approver_token: str
    standin: CredentialStandIn | None
    clients: list[Any] = field(default_factory=list)

    def agent(self, **kw: Any) -> Client:
        client = Client(self.url, self.agent_token, **kw)
        self.clients.append(client)
        return client

    def async_agent(self, **kw: Any) -> AsyncClient:
        return AsyncClient(self.url, self.agent_token, **kw)

    def approver(self) -> Client:
        client = Client(self.url, self.approver_token)
        self.clients.append(client)
        return client

    def released(self, action_id: str) -> dict[str, Any] | None:
        """What the stand-in released for the action (None with the real endpoint)."""
        return self.standin.released.get(action_id) if self.standin else None


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveVettra]:
    root = tmp_path_factory.mktemp("sdk")
    server = DevServer(root / "home", root / "dev.log").start()
    tokens = mint_many(
        server.home,
        {"agent": ("agent", AGENT, USER), "approver": ("approver", USER)},
    )
    standin = None
    url = server.url
    try:
        if not credential_endpoint_present(server.url, tokens["agent"]):
            warnings.warn(
                "vettra dev has no POST /api/actions/{id}/credential in this tree: the SDK "
                "tests use the stand-in of tests/e2e/sdk/credential_standin.py for it",
                stacklevel=1,
            )
            standin = CredentialStandIn(server.url).__enter__()
            url = standin.url
        env = LiveVettra(url, server, tokens["agent"], tokens["approver"], standin)
        yield env
        for client in env.clients:
            client.close()
    finally:
        if standin is not None:
            standin.__exit__(None, None, None)
        code, _ = server.terminate()
        assert code == 0, server.log()


class Approver:
    """The user, deciding through the API as the dashboard would: waits for a matching
    pending action, then approves or denies it (with a reason)."""

    def __init__(self, live: LiveVettra):
        self.client = live.approver()
        self.pool = ThreadPoolExecutor(max_workers=4)
        self.seen: list[Action] = []

    def later(
        self, match: Callable[[Action], bool], decision: str, reason: str | None = None
    ) -> Future[Action]:
        return self.pool.submit(self._decide, match, decision, reason)

    def _decide(self, match: Callable[[Action], bool], decision: str, reason: str | None) -> Action:
        deadline = time.monotonic() + DECIDE_TIMEOUT_S
        while time.monotonic() < deadline:
            for action in self.client.pending():
                if match(action):
                    self.seen.append(action)
                    if decision == "approve":
                        return self.client.approve(action.action_id, reason=reason)
                    return self.client.deny(action.action_id, reason=reason)
            time.sleep(PENDING_POLL_S)
        raise AssertionError("no matching action became pending")

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def approver(live: LiveVettra) -> Iterator[Approver]:
    approver = Approver(live)
    yield approver
    approver.close()


def marked(marker: str) -> Callable[[Action], bool]:
    """Matches the pending action whose arguments carry ``marker`` (tests share a server)."""
    return lambda action: marker in str(action.raw.get("arguments"))
