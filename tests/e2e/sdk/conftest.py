"""One live ``vettra dev`` for the SDK and framework tests, set up as a user would, and an
approver that decides.

The server is the real CLI in a subprocess on a temporary home (tests/e2e/conftest.py's
DevServer); tokens come from ``vettra token`` for that home. Credentials are the real
release (``POST /api/actions/{id}/credential``, docs/credentials.md), prepared the way
the README tells a user to: the user's provider tokens go into the home's local vault
with ``vettra vault put`` (a subprocess; the tokens are generated here, per run), and
the user grants each agent the connections through ``POST /api/inventory/permissions``
with the approver's token.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from vettra.sdk import Action, AsyncClient, Client

from ..conftest import DevServer, mint_many, run_cli

AGENT, USER = "sdk-agent", "alice"
PENDING_POLL_S = 0.05
DECIDE_TIMEOUT_S = 30.0
TOKEN_TTL_S = 3600
#: What the tests' tools need (the catalogue's ``credential_need``): Gmail's send, read,
#: modify and delete, and Slack's post. The user stores one token per connection carrying
#: these scopes and grants them to each agent.
CONNECTIONS: dict[str, tuple[str, ...]] = {
    "google-oauth2": (
        "https://www.googleapis.com/auth/gmail.send",
        "https://www.googleapis.com/auth/gmail.readonly",
        "https://www.googleapis.com/auth/gmail.modify",
    ),
    "sign-in-with-slack": ("chat:write",),
}


@dataclass
class LiveVettra:
    url: str
    server: DevServer
    agent_token: str
    approver_token: str
    #: connection -> the provider access token the user stored for it (what a release hands out)
    provider_tokens: dict[str, str]
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

    def user_api(self) -> httpx.Client:
        """The user's own HTTP calls (the approver token), as the dashboard makes them."""
        return self.server.client(self.approver_token)

    def grant(self, agent: str) -> None:
        """The user grants ``agent`` every connection the tests' tools need."""
        with self.user_api() as user:
            for connection, scopes in CONNECTIONS.items():
                answer = user.post(
                    "/api/inventory/permissions",
                    json={"agent": agent, "connection": connection, "scopes": list(scopes)},
                )
                assert answer.status_code == 201, answer.text

    def grants(self) -> dict[str, dict[str, Any]]:
        """The user's grants by permission id (``uses`` counts releases under each)."""
        with self.user_api() as user:
            answer = user.get("/api/inventory/permissions")
        assert answer.status_code == 200, answer.text
        return {g["permission_id"]: g for g in answer.json()["permissions"]}


def store_provider_tokens(home: Path, scratch: Path) -> dict[str, str]:
    """``vettra vault put`` for each connection, from a token file deleted afterwards."""
    tokens: dict[str, str] = {}
    for connection, scopes in CONNECTIONS.items():
        token = f"test-{connection}-" + secrets.token_urlsafe(24)
        token_file = scratch / f"{connection}.token"
        token_file.write_text(token + "\n")
        try:
            out = run_cli(
                "vault", "put", "--home", str(home), "--user", USER,
                "--connection", connection, "--token-file", str(token_file),
                "--scope", " ".join(scopes), "--expires-in", str(TOKEN_TTL_S),
            )  # fmt: skip
        finally:
            token_file.unlink()
        assert f"stored {USER}'s {connection} token in the local vault" in out.stdout
        assert token not in out.stdout + out.stderr
        tokens[connection] = token
    return tokens


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveVettra]:
    root = tmp_path_factory.mktemp("sdk")
    server = DevServer(root / "home", root / "dev.log").start()
    try:
        tokens = mint_many(
            server.home,
            {"agent": ("agent", AGENT, USER), "approver": ("approver", USER)},
        )
        provider_tokens = store_provider_tokens(server.home, root)
        env = LiveVettra(server.url, server, tokens["agent"], tokens["approver"], provider_tokens)
        env.grant(AGENT)
        yield env
        for client in env.clients:
            client.close()
    finally:
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

    def approve_one_deny_one(self) -> tuple[str, str]:
        """Markers (ok, no) of two e-mails to Bob: the user approves the one whose subject
        is ``ok`` and denies the other with :func:`leave_reason` (see :func:`two_emails`)."""
        ok, no = f"ok-{uuid.uuid4().hex}", f"no-{uuid.uuid4().hex}"
        self.later(marked(ok), "approve")
        self.later(marked(no), "deny", reason=leave_reason(no))
        return ok, no

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def leave_reason(marker: str) -> str:
    return f"Bob is on leave ({marker})"


def two_emails(ok: str, no: str) -> list[dict[str, str]]:
    """The arguments of the two e-mails :meth:`Approver.approve_one_deny_one` decides."""
    return [{"to": "bob@example.com", "subject": subject, "body": "Q3"} for subject in (ok, no)]


@pytest.fixture
def approver(live: LiveVettra) -> Iterator[Approver]:
    approver = Approver(live)
    yield approver
    approver.close()


def marked(marker: str) -> Callable[[Action], bool]:
    """Matches the pending action whose arguments carry ``marker`` (tests share a server)."""
    return lambda action: marker in str(action.raw.get("arguments"))


def verify_receipt(receipt: str, live: LiveVettra, arguments: dict[str, Any]) -> dict[str, Any]:
    """What a downstream executor does: check the receipt with only the server's published
    public key, and that it vouches for exactly ``arguments`` (docs/credentials.md)."""
    from datetime import UTC, datetime

    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    from vettra.domain import receipts

    with live.user_api() as user:
        published = user.get("/api/receipts/public-key")
    assert published.status_code == 200, published.text
    key = load_pem_public_key(published.json()["public_key_pem"].encode())
    return receipts.verify(receipt, [key], now=datetime.now(UTC), arguments=arguments)
