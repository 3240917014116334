"""The event hub behind ``GET /api/events``: bounds, replay, overflow, idle release."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from vettra.adapters.memory_bus import InProcessEventBus
from vettra.domain.errors import TooManyRequests
from vettra.entrypoints.http.app import Context
from vettra.entrypoints.http.routes_events import EventStream
from vettra.services.event_streams import ACTIONS_TOPIC, EventHub, HubLimits

BASE_US = 1_000_000


def _event(n: int, user: str = "alice", kind: str = "action.created", **extra: object) -> dict:
    return {
        "type": kind,
        "action_id": f"act_{n}",
        "status": "pending",
        "tenant": "default",
        "user": user,
        "risk_level": "MEDIUM",
        "tool": "gmail.send_message",
        **extra,
    }


def _hub(bus: InProcessEventBus, **limits: Any) -> EventHub:
    clock = itertools.count(BASE_US, 1_000_000)
    return EventHub(bus, HubLimits(**limits), now_us=lambda: next(clock))


def test_slow_consumer_is_dropped_with_a_reset_not_grown() -> None:
    async def scenario() -> None:
        bus = InProcessEventBus()
        hub = _hub(bus, queue_size=3)
        opening = hub.open("default", "alice")
        stream = EventStream(hub, opening, 0.01, Context.inline())
        assert (await stream.__anext__()).startswith(b"retry: ")
        for n in range(10):  # nobody reads: the fourth event does not fit
            bus.publish(ACTIONS_TOPIC, _event(n))
        assert hub.stream_count() == 0  # dropped at once, the backlog freed
        reset = await stream.__anext__()
        assert b"event: reset\n" in reset and b'"reason":"overflow"' in reset
        assert reset.startswith(
            f"id: {BASE_US + 4}\n".encode()
        )  # resume from the one that did not fit
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()
        await stream.aclose()

    asyncio.run(scenario())


def test_a_stream_ends_when_the_server_stops() -> None:
    async def scenario() -> None:
        hub = _hub(InProcessEventBus())
        ctx = Context.inline()
        stream = EventStream(hub, hub.open("default", "alice"), 30.0, ctx)
        await stream.__anext__()
        waiting = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0.05)
        ctx.stopping.set()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, 1.0)  # not after the 30 s heartbeat
        await stream.aclose()
        assert hub.stream_count() == 0

    asyncio.run(scenario())


def test_published_secrets_and_unknown_types_never_reach_a_stream() -> None:
    bus = InProcessEventBus()
    hub = _hub(bus)
    opening = hub.open("default", "alice")
    bus.publish(ACTIONS_TOPIC, _event(1, arguments={"to": "x@y"}, token="s3cret"))
    bus.publish(ACTIONS_TOPIC, _event(2, kind="action.deleted"))
    first = opening.subscription.next(0.01)
    assert first is not None and "arguments" not in first.data and "token" not in first.data
    assert opening.subscription.next(0.01) is None


def test_each_quorum_vote_reaches_the_owner_and_every_named_approver_once() -> None:
    bus = InProcessEventBus()
    hub = _hub(bus)
    owner, bob, eve = (hub.open("default", u) for u in ("alice", "bob", "eve"))
    named = {"approvers": ["alice", "bob", "carol"]}
    bus.publish(ACTIONS_TOPIC, _event(1, kind="action.voted", approvals=["alice"], **named))
    bus.publish(ACTIONS_TOPIC, _event(1, kind="action.voted", approvals=["alice"], **named))
    bus.publish(ACTIONS_TOPIC, _event(1, kind="action.voted", approvals=["alice", "bob"], **named))
    for opening in (owner, bob):
        got = [opening.subscription.next(0.01) for _ in range(3)]
        assert [g and g.data["type"] for g in got] == ["action.voted", "action.voted", None]
        assert got[0] is not None and set(got[0].data) == {
            "type", "action_id", "status", "tenant", "user", "risk_level", "tool"
        }  # fmt: skip
    assert eve.subscription.next(0.01) is None  # not named, not the owner


def test_streams_per_user_are_capped() -> None:
    hub = _hub(InProcessEventBus(), max_streams=2)
    hub.open("default", "alice"), hub.open("default", "alice")
    with pytest.raises(TooManyRequests) as caught:
        hub.open("default", "alice")
    assert caught.value.status == 429 and "Retry-After" in caught.value.headers
    hub.open("other-tenant", "alice")  # a different user key


def test_replay_is_bounded_by_the_ring() -> None:
    bus = InProcessEventBus()
    hub = _hub(bus, ring_size=3)
    live = hub.open("default", "alice")
    for n in range(5):
        bus.publish(ACTIONS_TOPIC, _event(n))
    ids = [BASE_US + n for n in range(1, 6)]
    assert [e.id for e in hub.open("default", "alice", last_event_id=str(ids[1])).replay] == ids[2:]
    assert hub.open("default", "alice", last_event_id=str(ids[0])).reset  # ids[1] fell off the ring
    assert not hub.open("default", "alice", last_event_id=str(ids[-1])).replay
    assert hub.open("default", "bob", last_event_id=str(ids[1])).reset  # not bob's id space
    hub.close(live.subscription)


def test_idle_hub_unsubscribes_and_forgets() -> None:
    bus = InProcessEventBus()
    hub = _hub(bus, linger_s=0.0)
    opening = hub.open("default", "alice")
    bus.publish(ACTIONS_TOPIC, _event(1))
    hub.close(opening.subscription)
    hub.close(opening.subscription)  # idempotent
    import time

    deadline = time.monotonic() + 2
    while hub.listening and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not hub.listening and not bus._subs
    again = hub.open("default", "alice", last_event_id=str(BASE_US + 1))
    assert again.reset and again.cursor > BASE_US + 1  # a new id space: the old id is unknown
