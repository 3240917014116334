"""The relaying bus (vettra.services.relay_bus) and the event hub's idempotence: over a
shared store a live stream also sees actions other processes write, each change once."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from vettra.adapters.memory_bus import InProcessEventBus
from vettra.domain.actions import APPROVED, DENIED, PENDING, Action
from vettra.ports import ActionChanges
from vettra.services.action_events import (
    ACTION_CREATED,
    ACTION_DECIDED,
    ACTIONS_TOPIC,
    action_topic,
    publish_action,
)
from vettra.services.event_streams import EventHub
from vettra.services.relay_bus import RelayingBus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeChanges(ActionChanges):
    """Stands in for the Firestore listener: the test plays other processes' writes."""

    def __init__(self) -> None:
        self.handler: Callable[[Action], None] | None = None
        self.opened = self.closed = 0

    def watch(self, handler: Callable[[Action], None]) -> Callable[[], None]:
        self.handler, self.opened = handler, self.opened + 1

        def stop() -> None:
            self.handler, self.closed = None, self.closed + 1

        return stop

    def write(self, action: Action) -> None:
        assert self.handler is not None, "nobody watches"
        self.handler(action)


def _action(status: str = PENDING, user: str = "alice") -> Action:
    return Action(
        id="act_1",
        tenant="default",
        user=user,
        agent="bot",
        tool="gmail.send_message",
        arguments={"to": "a@b.c", "body": "secret words"},
        args_digest="sha256:" + "0" * 64,
        framework="plain",
        risk={"score": 30, "level": "MEDIUM"},
        status=status,
        step_up_required=False,
        created_at=T0,
    )


def test_the_store_is_watched_only_while_someone_listens_to_the_actions_topic() -> None:
    changes = FakeChanges()
    bus = RelayingBus(InProcessEventBus(), changes)
    off_topic = bus.subscribe(action_topic("act_1"), lambda e: None)
    assert changes.opened == 0 and not bus.watching  # a long-poll re-reads instead
    first = bus.subscribe(ACTIONS_TOPIC, lambda e: None)
    second = bus.subscribe(ACTIONS_TOPIC, lambda e: None)
    assert changes.opened == 1 and bus.watching
    first()
    first()  # idempotent: the count is not decremented twice
    assert changes.closed == 0
    second()
    assert changes.closed == 1 and not bus.watching
    off_topic()


def test_a_relayed_change_is_published_as_the_service_would() -> None:
    changes = FakeChanges()
    bus = RelayingBus(InProcessEventBus(), changes)
    got: list[dict] = []
    woken: list[dict] = []
    stop = bus.subscribe(ACTIONS_TOPIC, lambda e: got.append(dict(e)))
    bus.subscribe(action_topic("act_1"), lambda e: woken.append(dict(e)))
    pending = _action()
    changes.write(pending)
    changes.write(pending.decide(APPROVED, by="user:alice", at=T0, reason=None))
    assert [(e["type"], e["status"]) for e in got] == [
        ("action.created", "pending"),
        ("action.decided", "approved"),
    ]
    assert "arguments" not in got[0] and got[0]["user"] == "alice"
    assert [e["status"] for e in woken] == ["pending", "approved"]  # the long-poll wakes too
    stop()


def test_the_hub_delivers_a_change_once_however_often_it_arrives() -> None:
    changes = FakeChanges()
    inner = InProcessEventBus()
    bus = RelayingBus(inner, changes)
    hub = EventHub(bus)
    opening = hub.open("default", "alice")
    pending = _action()
    denied = pending.decide(DENIED, by="user:alice", at=T0, reason="no")
    publish_action(inner, ACTION_CREATED, pending)  # this process's own publish
    changes.write(pending)  # ... and the listener seeing the same write
    changes.write(pending)  # a later write that left it pending (a vote)
    publish_action(inner, ACTION_DECIDED, denied)
    changes.write(denied)
    seen = []
    while (event := opening.subscription.poll()) is not None:
        seen.append((event.data["type"], event.data["status"]))
    assert seen == [("action.created", "pending"), ("action.decided", "denied")]
    hub.close(opening.subscription)
