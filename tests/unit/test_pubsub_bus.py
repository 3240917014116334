"""PubSubEventBus with a fake publisher client: local delivery as the in-process bus,
messages encoded as docs/pubsub.md says, and publishing that never blocks or raises.
(The same adapter against the official emulator: tests/contract/test_pubsub_bus.py.)"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from typing import Any

import pytest

from vettra.adapters.memory_bus import InProcessEventBus
from vettra.adapters.pubsub_bus import (
    SEQUENCE_TOPIC,
    PubSubEventBus,
    TopicRoute,
    default_routes,
    encode,
)
from vettra.ports import EventBus

ACTION_EVENT = {
    "type": "action.created",
    "action_id": "act_1",
    "status": "pending",
    "tenant": "default",
    "user": "alice",
    "risk_level": "MEDIUM",
    "tool": "gmail.send_message",
    "approvers": [],
}


class FakePublisher:
    """Stands in for ``pubsub_v1.PublisherClient``: records publishes; answers each at once
    (``result``: a message id or an exception) or, with ``hold``, when released."""

    def __init__(
        self, *, hold: bool = False, fail: BaseException | None = None, failures: int = -1
    ):
        self.hold, self.fail = hold, fail
        self.failures = failures  # how many publishes fail (-1: all, when ``fail`` is set)
        self.published: list[dict[str, Any]] = []
        self.futures: list[Future[str]] = []
        self.resumed: list[tuple[str, str]] = []
        self.stopped = False
        self.raise_on_publish: BaseException | None = None

    def publish(
        self,
        topic: str,
        data: bytes,
        ordering_key: str = "",
        retry: Any = "default",
        timeout: Any = None,
        **attrs: str,
    ) -> Future[str]:
        if self.raise_on_publish is not None:
            raise self.raise_on_publish
        self.published.append(
            {
                "topic": topic,
                "data": data,
                "ordering_key": ordering_key,
                "attrs": attrs,
                "retry": retry,
                "timeout": timeout,
            }
        )
        future: Future[str] = Future()
        self.futures.append(future)
        if not self.hold:
            self._answer(future)
        return future

    def _answer(self, future: Future[str]) -> None:
        if self.fail is not None and self.failures != 0:
            self.failures -= 1
            future.set_exception(self.fail)
        else:
            future.set_result(str(len(self.published)))

    def release(self) -> None:
        for future in self.futures:
            if not future.done():
                self._answer(future)

    def resume_publish(self, topic: str, ordering_key: str) -> None:
        self.resumed.append((topic, ordering_key))

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def fake() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def bus(fake: FakePublisher) -> Iterator[PubSubEventBus]:
    bus = PubSubEventBus("proj", publisher_factory=lambda: fake)
    yield bus
    bus.close(timeout_s=2)


def _wait_for(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.005)


# -- local delivery: the in-process bus's semantics, for both buses -----------------
@pytest.fixture(params=["in-process", "pubsub"])
def any_bus(request: pytest.FixtureRequest) -> Iterator[EventBus]:
    if request.param == "in-process":
        yield InProcessEventBus()
        return
    bus = PubSubEventBus("proj", publisher_factory=FakePublisher)
    yield bus
    bus.close(timeout_s=2)


def test_a_local_subscriber_gets_the_event_before_publish_returns(any_bus: EventBus) -> None:
    seen: list[tuple[str, Mapping[str, Any]]] = []
    any_bus.subscribe("actions", lambda event: seen.append(("actions", event)))
    any_bus.subscribe("action.act_1", lambda event: seen.append(("own", event)))
    any_bus.publish("action.act_1", ACTION_EVENT)
    any_bus.publish("actions", ACTION_EVENT)
    assert seen == [("own", ACTION_EVENT), ("actions", ACTION_EVENT)]


def test_unsubscribe_stops_delivery_and_a_failing_handler_does_not_stop_others(
    any_bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Mapping[str, Any]] = []

    def broken(event: Mapping[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    any_bus.subscribe("actions", broken)
    unsubscribe = any_bus.subscribe("actions", seen.append)
    with caplog.at_level(logging.ERROR, logger="vettra.bus"):
        any_bus.publish("actions", ACTION_EVENT)
    assert seen == [ACTION_EVENT]
    assert "event handler failed" in caplog.text
    unsubscribe()
    any_bus.publish("actions", ACTION_EVENT)
    assert seen == [ACTION_EVENT]


def test_the_wildcard_subscriber_sees_every_topic(any_bus: EventBus) -> None:
    seen: list[Mapping[str, Any]] = []
    any_bus.subscribe("*", seen.append)
    any_bus.publish("action.act_9", {"type": "x"})
    any_bus.publish(SEQUENCE_TOPIC, {"chain": "default"})
    assert seen == [{"type": "x"}, {"chain": "default"}]


# -- what goes to Pub/Sub ------------------------------------------------------------
def test_a_decision_event_becomes_one_message_on_the_events_topic(
    bus: PubSubEventBus, fake: FakePublisher
) -> None:
    bus.publish("action.act_1", ACTION_EVENT)  # per-action topic: local only
    bus.publish("actions", ACTION_EVENT)
    assert bus.flush(5)
    assert len(fake.published) == 1
    message = fake.published[0]
    assert message["topic"] == "projects/proj/topics/vettra-events"
    assert json.loads(message["data"]) == ACTION_EVENT
    assert message["ordering_key"] == ""  # unordered: batched across actions
    attrs = message["attrs"]
    assert set(attrs) == {"event_id", "type", "tenant"}
    assert attrs["type"] == "action.created" and attrs["tenant"] == "default"
    assert attrs["event_id"].startswith("ev_") and len(attrs["event_id"]) == 35
    assert bus.stats.snapshot() == {
        "queued": 1,
        "sent": 1,
        "failed": 0,
        "dropped": 0,
        "last_error": "",
    }


def test_event_ids_are_stable_per_event_and_an_explicit_one_wins() -> None:
    route = default_routes()["actions"]
    same = encode("actions", dict(ACTION_EVENT), route)
    again = encode("actions", dict(reversed(list(ACTION_EVENT.items()))), route)
    decided = encode("actions", {**ACTION_EVENT, "type": "action.decided"}, route)
    assert same.event_id == again.event_id  # key order does not matter
    assert decided.event_id != same.event_id
    explicit = encode("actions", {**ACTION_EVENT, "event_id": "outbox:0001"}, route)
    assert explicit.event_id == "outbox:0001"
    assert "event_id" not in json.loads(explicit.data)


def test_the_sequencer_trigger_is_ordered_by_chain_with_its_own_event_ids(
    bus: PubSubEventBus, fake: FakePublisher
) -> None:
    bus.trigger_sequence("tenant-a", event_id="0190aa")
    bus.trigger_sequence("tenant-a")
    bus.trigger_sequence("tenant-a")
    assert bus.flush(5)
    assert [m["topic"] for m in fake.published] == ["projects/proj/topics/vettra-sequence"] * 3
    assert [json.loads(m["data"]) for m in fake.published] == [{"chain": "tenant-a"}] * 3
    assert {m["ordering_key"] for m in fake.published} == {"tenant-a"}
    ids = [m["attrs"]["event_id"] for m in fake.published]
    assert ids[0] == "0190aa"
    assert len(set(ids)) == 3, "two triggers without an id are two events, not one"


def test_topics_come_from_the_constructor_and_bad_topic_ids_are_refused() -> None:
    fake = FakePublisher()
    bus = PubSubEventBus(
        "proj", events_topic="ev-x", sequence_topic="seq-x", publisher_factory=lambda: fake
    )
    bus.publish("actions", ACTION_EVENT)
    bus.trigger_sequence("c")
    assert bus.close(5)
    assert [m["topic"] for m in fake.published] == [
        "projects/proj/topics/ev-x",
        "projects/proj/topics/seq-x",
    ]
    with pytest.raises(ValueError, match="not a Pub/Sub topic id"):
        TopicRoute("x")
    with pytest.raises(ValueError, match="not a Pub/Sub topic id"):
        PubSubEventBus("proj", events_topic="goog-events")
    with pytest.raises(ValueError, match="project"):
        PubSubEventBus("a/b")


def test_the_client_is_built_on_the_first_routed_event_only() -> None:
    built: list[FakePublisher] = []

    def factory() -> FakePublisher:
        built.append(FakePublisher())
        return built[-1]

    bus = PubSubEventBus("proj", publisher_factory=factory)
    bus.publish("action.act_1", ACTION_EVENT)
    assert built == [] and bus._worker is None  # no thread, no client for local topics
    bus.publish("actions", ACTION_EVENT)
    bus.publish("actions", {**ACTION_EVENT, "status": "approved"})
    assert bus.close(5)
    assert len(built) == 1 and len(built[0].published) == 2 and built[0].stopped


# -- never blocking, never raising -----------------------------------------------------
def test_publish_does_not_wait_for_a_slow_client_and_a_full_queue_drops(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate, entered = threading.Event(), threading.Event()
    fake = FakePublisher()

    def slow_factory() -> FakePublisher:
        entered.set()
        gate.wait(10)  # e.g. credentials discovery hanging
        return fake

    bus = PubSubEventBus("proj", publisher_factory=slow_factory, max_queue=3)
    seen: list[Mapping[str, Any]] = []
    bus.subscribe("actions", seen.append)
    took: list[float] = []

    def timed_publish(n: int) -> None:
        started = time.perf_counter()
        bus.publish("actions", {**ACTION_EVENT, "action_id": f"act_{n}"})
        took.append(time.perf_counter() - started)

    with caplog.at_level(logging.WARNING, logger="vettra.pubsub"):
        timed_publish(0)
        assert entered.wait(5)  # the worker took it and is stuck building the client
        for n in range(1, 10):
            timed_publish(n)
    # the factory blocks for up to 10 s; a publish that waited for it would show
    assert max(took) < 0.2, f"slowest publish took {max(took):.3f}s"
    assert len(seen) == 10  # local subscribers got every one at once
    # the worker holds one message while the factory blocks; three more fit the queue
    assert bus.stats.dropped == 6 and bus.stats.queued == 4
    assert "queue full" in caplog.text
    gate.set()
    assert bus.close(5)
    assert bus.stats.sent == 4 and len(fake.published) == 4


def test_a_client_that_cannot_be_built_drops_and_is_retried_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    attempts: list[float] = []
    fake = FakePublisher()

    def factory() -> FakePublisher:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            raise OSError("no credentials")  # stands in for DefaultCredentialsError
        return fake

    bus = PubSubEventBus("proj", publisher_factory=factory, client_retry_s=0.2)
    with caplog.at_level(logging.ERROR, logger="vettra.pubsub"):
        bus.publish("actions", ACTION_EVENT)  # raises nothing
        assert bus.flush(5)
    assert bus.stats.dropped == 1 and bus.stats.last_error == "OSError"
    assert "could not be created" in caplog.text
    bus.publish("actions", {**ACTION_EVENT, "status": "denied"})  # inside the retry pause
    assert bus.flush(5)
    assert bus.stats.dropped == 2 and len(attempts) == 1
    time.sleep(0.25)
    bus.publish("actions", {**ACTION_EVENT, "status": "approved"})
    assert bus.close(5)
    assert len(attempts) == 2 and bus.stats.sent == 1
    assert json.loads(fake.published[0]["data"])["status"] == "approved"


def test_a_transient_failure_is_tried_again_and_then_sent() -> None:
    from google.api_core import exceptions as api_exceptions

    fake = FakePublisher(fail=api_exceptions.ServiceUnavailable("blip"), failures=2)
    bus = PubSubEventBus("proj", publisher_factory=lambda: fake, retry_initial_s=0.01)
    bus.trigger_sequence("default", event_id="0190aa")
    assert bus.close(5)
    assert bus.stats.sent == 1 and bus.stats.failed == 0
    assert [m["attrs"]["event_id"] for m in fake.published] == ["0190aa"] * 3
    # one RPC per attempt, bounded: the library's own retry is switched off
    assert {(m["retry"], m["timeout"]) for m in fake.published} == {(None, 10.0)}
    assert fake.resumed == [("projects/proj/topics/vettra-sequence", "default")] * 2


def test_a_failed_publish_is_logged_counted_and_resumes_its_ordering_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from google.api_core import exceptions as api_exceptions

    fake = FakePublisher(fail=api_exceptions.ServiceUnavailable("backend down"))
    bus = PubSubEventBus(
        "proj", publisher_factory=lambda: fake, log_interval_s=60, retry_initial_s=0.01
    )
    with caplog.at_level(logging.WARNING, logger="vettra.pubsub"):
        bus.publish("actions", ACTION_EVENT)
        bus.trigger_sequence("default")
        assert bus.flush(5)
    assert bus.stats.failed == 2 and bus.stats.sent == 0
    assert bus.stats.last_error == "ServiceUnavailable"
    assert len(fake.published) == 6, "three attempts each"
    # only the ordered message's key was paused by its failures (decision events are unordered)
    assert fake.resumed == [("projects/proj/topics/vettra-sequence", "default")] * 3
    failures = [r for r in caplog.records if r.getMessage() == "Pub/Sub publish failed"]
    assert len(failures) == 1, "the second failure within the interval is held back"
    assert failures[0].attempts == 3  # type: ignore[attr-defined]
    assert "backend down" not in caplog.text  # the kind of error only, never its message


def test_a_permanent_failure_is_not_tried_again() -> None:
    from google.api_core import exceptions as api_exceptions

    fake = FakePublisher(fail=api_exceptions.PermissionDenied("no role"))
    bus = PubSubEventBus("proj", publisher_factory=lambda: fake, retry_initial_s=0.01)
    bus.publish("actions", ACTION_EVENT)
    assert bus.close(5)
    assert len(fake.published) == 1
    assert bus.stats.failed == 1 and bus.stats.last_error == "PermissionDenied"


def test_a_publish_call_that_raises_is_a_failure_not_an_exception() -> None:
    fake = FakePublisher()
    fake.raise_on_publish = RuntimeError("Cannot publish on a stopped publisher.")
    bus = PubSubEventBus("proj", publisher_factory=lambda: fake)
    bus.trigger_sequence("default")
    assert bus.flush(5)
    assert bus.stats.failed == 1 and bus.stats.last_error == "RuntimeError"
    assert fake.resumed == [("projects/proj/topics/vettra-sequence", "default")]
    fake.raise_on_publish = None
    bus.trigger_sequence("default")
    assert bus.close(5)
    assert bus.stats.sent == 1, "the worker survived the failure"


@pytest.mark.parametrize(
    "topic, event, why",
    [
        ("actions", {**ACTION_EVENT, "arguments": object()}, "not JSON"),
        ("actions", {**ACTION_EVENT, "event_id": "has space"}, "bad event_id"),
        (SEQUENCE_TOPIC, {"event_id": "outbox-1"}, "no ordering key"),
        (SEQUENCE_TOPIC, {"chain": ""}, "empty ordering key"),
        ("actions", {**ACTION_EVENT, "blob": "x" * 1_000_001}, "too large"),
    ],
)
def test_an_event_that_cannot_be_encoded_is_dropped_not_raised(
    topic: str, event: dict[str, Any], why: str, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakePublisher()
    bus = PubSubEventBus("proj", publisher_factory=lambda: fake)
    seen: list[Mapping[str, Any]] = []
    bus.subscribe(topic, seen.append)
    with caplog.at_level(logging.WARNING, logger="vettra.pubsub"):
        bus.publish(topic, event)
    assert seen == [event], why  # local subscribers still get it
    assert bus.stats.dropped == 1 and fake.published == []
    assert "event not publishable" in caplog.text
    bus.close(1)


# -- flushing and closing --------------------------------------------------------------
def test_close_waits_for_unanswered_messages_and_later_events_stay_local() -> None:
    fake = FakePublisher(hold=True)
    bus = PubSubEventBus("proj", publisher_factory=lambda: fake)
    for n in range(50):
        bus.trigger_sequence(f"chain-{n % 3}")
    _wait_for(lambda: len(fake.published) == 50)
    assert not bus.flush(0.05), "nothing answered yet"
    threading.Timer(0.2, fake.release).start()
    assert bus.close(5)
    assert bus.stats.sent == 50 and fake.stopped
    seen: list[Mapping[str, Any]] = []
    bus.subscribe("actions", seen.append)
    bus.publish("actions", ACTION_EVENT)
    assert seen == [ACTION_EVENT] and bus.stats.dropped == 1 and len(fake.published) == 50


def test_close_gives_up_after_its_timeout_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakePublisher(hold=True)
    bus = PubSubEventBus("proj", publisher_factory=lambda: fake)
    bus.trigger_sequence("default")
    _wait_for(lambda: len(fake.published) == 1)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="vettra.pubsub"):
        assert bus.close(0.3) is False
    assert time.monotonic() - started < 2
    assert "closed with messages unanswered" in caplog.text
    fake.release()
