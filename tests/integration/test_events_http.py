"""``GET /api/events`` over the real local server, read by a raw streaming client.

Each stream is read in its own thread (httpx ``client.stream``), parsed into SSE
blocks (WHATWG HTML §9.2.6) and handed over through a queue, so every wait has a
timeout. Heartbeats run every 0.2 s here, so a closed client is noticed quickly.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vettra.entrypoints.http.routes_events import hub_of

from ..policies import signed_default_with
from .scenarios import READ_PROFILE, SEND_EMAIL

HEARTBEAT_S = 0.2
WITHIN_S = 1.0
PROBLEM = "application/problem+json"


class SseReader:
    """One open stream: blocks parsed into dicts, comments counted, stop on request."""

    def __init__(
        self,
        server: Any,
        token: str,
        *,
        params: dict | None = None,
        last_event_id: str | None = None,
    ):
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        self._client = httpx.Client(base_url=server.url, timeout=httpx.Timeout(5.0, read=10.0))
        self._args = {"headers": headers, "params": params or {}}
        self.blocks: queue.Queue[dict[str, Any]] = queue.Queue()
        self.comments = 0
        self.ended = threading.Event()
        self._opened = threading.Event()
        self._stop = threading.Event()
        self.status = 0
        self.headers: httpx.Headers | None = None
        self.body = b""
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._opened.wait(5), "no answer within 5 s"

    def _run(self) -> None:
        try:
            with self._client.stream("GET", "/api/events", **self._args) as r:
                self.status, self.headers = r.status_code, r.headers
                if r.status_code != 200:
                    self.body = r.read()
                    return
                self._opened.set()
                block: dict[str, Any] = {}
                for line in r.iter_lines():
                    if self._stop.is_set():
                        return
                    if line == "":
                        if block:
                            self.blocks.put(block)
                        block = {}
                    elif line.startswith(":"):
                        self.comments += 1
                    else:
                        name, _, value = line.partition(":")
                        block[name] = value[1:] if value.startswith(" ") else value
        except httpx.HTTPError:
            pass
        finally:
            self._opened.set()
            self.ended.set()

    def next(self, timeout: float = WITHIN_S, *, event: str | None = "action") -> dict[str, Any]:
        """The next block (skipping id-only blocks); its data decoded."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                block = self.blocks.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {event} event within {timeout} s") from None
            if "data" not in block:
                continue
            block["data"] = json.loads(block["data"])
            if event is None or block.get("event") == event:
                return block

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        time.sleep(seconds)
        out = []
        while not self.blocks.empty():
            out.append(self.blocks.get_nowait())
        return out

    def close(self) -> None:
        self._stop.set()
        self.ended.wait(5)
        self._client.close()


@pytest.fixture
def streams(server) -> Iterator[Any]:
    server.runtime.deps.settings.update(events_heartbeat_s=HEARTBEAT_S, events_linger_s=0.3)
    opened: list[SseReader] = []

    def open_stream(
        role: str = "approver", sub: str = "alice", user: str | None = None, **kw: Any
    ) -> SseReader:
        reader = SseReader(server, server.token(role, sub, user), **kw)
        opened.append(reader)
        return reader

    yield open_stream
    for reader in opened:
        reader.close()


def _wait_until(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _bus_handlers(server: Any, topic: str = "actions") -> int:
    # the in-process bus keeps its subscriptions by topic; nothing else exposes the count
    return len(server.runtime.deps.bus._subs.get(topic, ()))


def test_owner_sees_created_then_decided(server, streams, agent, alice) -> None:
    stream = streams()
    assert stream.status == 200
    assert stream.headers["content-type"] == "text/event-stream"
    assert stream.headers["cache-control"] == "no-store"
    assert stream.headers["x-accel-buffering"] == "no"
    started = time.monotonic()
    aid = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    created = stream.next()
    assert time.monotonic() - started < WITHIN_S
    assert created["data"] == {
        "type": "action.created",
        "action_id": aid,
        "status": "pending",
        "tenant": "default",
        "user": "alice",
        "risk_level": "MEDIUM",
        "tool": "gmail.send_message",
    }
    assert (
        alice.post(
            "/api/actions/approve", json={"action_id": aid, "decision": "approve"}
        ).status_code
        == 200
    )
    decided = stream.next()
    assert decided["data"]["type"] == "action.decided" and decided["data"]["status"] == "approved"
    assert int(decided["id"]) == int(created["id"]) + 1
    assert "arguments" not in json.dumps(decided["data"]) and "bob@example.com" not in json.dumps(
        created
    )


def test_heartbeat_comments_keep_the_stream_alive(streams) -> None:
    stream = streams()
    assert _wait_until(lambda: stream.comments >= 2, timeout=3)


def test_another_user_never_sees_alices_actions(server, streams, agent, alice) -> None:
    bobs, alices = streams(sub="bob"), streams()
    aid = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    alice.post("/api/actions/approve", json={"action_id": aid, "decision": "deny"})
    assert alices.next()["data"]["type"] == "action.created"
    assert alices.next()["data"]["type"] == "action.decided"
    assert [b for b in bobs.drain(0.5) if "data" in b] == []
    with server.client("agent", "agent-2", "bob") as bobs_agent:
        bobs_agent.post("/api/actions/intercept", json=SEND_EMAIL)
    assert bobs.next()["data"]["user"] == "bob"
    assert [b for b in alices.drain(0.3) if "data" in b] == []


def test_admin_may_stream_its_own(streams) -> None:
    assert streams(role="admin", sub="root-admin").status == 200


def test_agent_is_forbidden_and_no_token_is_401(server) -> None:
    with server.client("agent", "agent-1", "alice") as agent:
        r = agent.get("/api/events")
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    with httpx.Client(base_url=server.url) as anon:
        r = anon.get("/api/events")
        assert r.status_code == 401 and r.headers["content-type"] == PROBLEM


def test_types_filter_and_unknown_types_are_400(streams, agent, alice) -> None:
    decided_only = streams(params={"types": "action.decided"})
    aid = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    alice.post("/api/actions/approve", json={"action_id": aid, "decision": "approve"})
    assert decided_only.next()["data"]["type"] == "action.decided"
    for bad in ("action.deleted", "action.created,", "", "action.vote"):
        r = alice.get("/api/events", params={"types": bad})
        assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, bad


def test_low_actions_are_streamed_as_created_and_allowed(streams, agent) -> None:
    stream = streams()
    agent.post("/api/actions/intercept", json=READ_PROFILE)
    event = stream.next()["data"]
    assert (event["type"], event["status"], event["risk_level"]) == (
        "action.created",
        "allowed",
        "LOW",
    )


def test_reconnect_with_last_event_id_replays_what_was_missed(streams, agent, alice) -> None:
    first = streams()
    aid = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    seen = first.next()
    first.close()
    alice.post("/api/actions/approve", json={"action_id": aid, "decision": "approve"})
    later = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    again = streams(last_event_id=seen["id"])
    replayed = [again.next(), again.next()]
    assert [(e["data"]["type"], e["data"]["action_id"]) for e in replayed] == [
        ("action.decided", aid),
        ("action.created", later),
    ]
    assert [int(e["id"]) for e in replayed] == [int(seen["id"]) + 1, int(seen["id"]) + 2]
    agent.post("/api/actions/intercept", json=SEND_EMAIL)
    assert int(again.next()["id"]) == int(seen["id"]) + 3  # then live, no gap, no repeat


def test_fresh_stream_sends_its_resume_point(streams, agent) -> None:
    stream = streams()
    first = stream.blocks.get(timeout=WITHIN_S)
    assert set(first) == {"retry", "id"}
    stream.close()
    agent.post("/api/actions/intercept", json=SEND_EMAIL)
    resumed = streams(last_event_id=first["id"])
    assert resumed.next()["data"]["type"] == "action.created"


@pytest.mark.parametrize("last_event_id", ["1", "not-a-number", "99999999999999999999"])
def test_unknown_or_too_old_last_event_id_gets_a_reset(streams, agent, last_event_id) -> None:
    stream = streams(last_event_id=last_event_id)
    reset = stream.next(event="reset")
    assert reset["data"] == {
        "type": "reset",
        "reason": "last-event-id-unknown",
        "refetch": "/api/actions/pending",
    }
    agent.post("/api/actions/intercept", json=SEND_EMAIL)
    assert int(stream.next()["id"]) == int(reset["id"]) + 1  # and the stream goes on


def test_evicted_last_event_id_gets_a_reset(server, streams, agent) -> None:
    server.runtime.deps.settings["events_ring_size"] = 2  # read when the hub is made
    first = streams()
    agent.post("/api/actions/intercept", json=SEND_EMAIL)
    seen = first.next()
    first.close()
    for _ in range(3):
        agent.post("/api/actions/intercept", json=SEND_EMAIL)
    assert (
        streams(last_event_id=seen["id"]).next(event="reset")["data"]["reason"]
        == "last-event-id-unknown"
    )


def test_disconnect_releases_the_subscription(server, streams, agent) -> None:
    before = _bus_handlers(server)
    opened = [streams(), streams(sub="bob"), streams(params={"types": "action.created"})]
    hub = hub_of(server.runtime.deps)
    assert hub.stream_count() == 3 and _bus_handlers(server) == before + 1  # one hub subscription
    for stream in opened:
        stream.close()
    assert _wait_until(lambda: hub.stream_count() == 0), hub.stream_count()
    agent.post("/api/actions/intercept", json=SEND_EMAIL)  # publishing to no one is fine
    assert _wait_until(lambda: _bus_handlers(server) == before), (
        "the hub still listens after the linger"
    )
    assert not hub.listening


def test_eleventh_concurrent_stream_is_429(server, streams) -> None:
    ten = [streams() for _ in range(10)]
    assert all(s.status == 200 for s in ten)
    eleventh = streams()
    assert eleventh.status == 429 and eleventh.headers["content-type"] == PROBLEM
    problem = json.loads(eleventh.body)
    assert problem["status"] == 429 and int(eleventh.headers["retry-after"]) > 0
    assert streams(sub="bob").status == 200  # the cap is per user
    ten[0].close()
    assert _wait_until(lambda: hub_of(server.runtime.deps).stream_count("default", "alice") == 9)
    assert streams().status == 200


def test_named_quorum_approvers_receive_the_actions_they_decide(
    server, streams, agent, admin
) -> None:
    rules = [
        {
            "id": "two-maintainers",
            "effect": "require_approval",
            "tools": ["github.create_issue"],
            "approvers": {"quorum": 2, "of": ["carol", "dave"]},
            "reason": "issues need two maintainers",
        }
    ]
    envelope = signed_default_with(server.runtime.deps.keys.policy_signing_key(), rules)
    assert admin.post("/api/policy", json=envelope).status_code == 200
    carols, bobs = streams(sub="carol"), streams(sub="bob")
    aid = agent.post(
        "/api/actions/intercept",
        json={"tool": "github.create_issue", "arguments": {"repo": "acme/api", "title": "t"}},
    ).json()["action_id"]
    seen = carols.next()["data"]
    assert (seen["action_id"], seen["user"], seen["type"]) == (aid, "alice", "action.created")
    assert [b for b in bobs.drain(0.4) if "data" in b] == []
    # dave's vote leaves it pending: carol's and alice's streams hear of it, bob's not
    owner = streams(sub="alice")
    with server.client("approver", "dave") as dave:
        r = dave.post("/api/actions/approve", json={"action_id": aid, "decision": "approve"})
        assert r.status_code == 200 and r.json()["status"] == "pending", r.text
        again = dave.post("/api/actions/approve", json={"action_id": aid, "decision": "approve"})
        assert again.status_code == 200, again.text  # a repeat counts once: no event
    for reader in (carols, owner):
        voted = reader.next()["data"]
        assert (voted["action_id"], voted["type"], voted["status"]) == (
            aid,
            "action.voted",
            "pending",
        )
    with server.client("approver", "carol") as carol:
        r = carol.post("/api/actions/approve", json={"action_id": aid, "decision": "approve"})
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text
    assert carols.next()["data"]["type"] == "action.decided"  # nothing in between
    assert [b for b in bobs.drain(0.4) if "data" in b] == []
