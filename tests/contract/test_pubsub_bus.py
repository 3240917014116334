"""The Pub/Sub event bus and its consumer against the official Pub/Sub emulator
(pubsub_emulator.py; skipped loudly when it is absent).

* publish → local subscribers at once, Pub/Sub subscribers soon, with the
  ``event_id`` / ``type`` / ``tenant`` attributes and the ordering key;
* sequencer triggers keep their order per chain (ordering key = chain);
* a nacked delivery is redelivered, reaches the handler again, and the idempotent
  consumer runs each event id to success once; a duplicate publish of the same
  event id runs once;
* a poison message (a handler that always raises, or no ``event_id``) lands on
  ``<topic>-dlq`` after max_delivery_attempts (the emulator honours dead-letter
  policies: checked here, not assumed);
* publish failures (missing topic, unreachable service) never raise into the caller;
* ``close()`` sends what was queued;
* the push path: a push subscription → functions-framework's CloudEvent target →
  the consumer, redelivered after an error answer;
* the Firestore-backed processed-id record (Firestore emulator too).
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vettra.adapters.pubsub_admin import Topology, ensure_topology
from vettra.adapters.pubsub_bus import PubSubEventBus, TopicRoute
from vettra.adapters.pubsub_consumer import (
    ClaimState,
    Delivery,
    FirestoreProcessedEvents,
    InMemoryProcessedEvents,
    Outcome,
    ProcessedEvents,
    PubSubConsumer,
)

from .firestore_emulator import FirestoreProject
from .pubsub_emulator import ENV_HOST, PubSubProject

WAIT_S = 30.0
EVENTS = "vettra-events"
SEQUENCE = "vettra-sequence"


def action_event(action_id: str, kind: str = "action.created", **more: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "action_id": action_id,
        "status": "pending" if kind == "action.created" else "approved",
        "tenant": "default",
        "user": "alice",
        "risk_level": "LOW",
        "tool": "calendar.create_event",
        "approvers": [],
        **more,
    }


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def topology(ps: PubSubProject, topic: str, **options: Any) -> Topology:
    # zero backoff: a nacked message comes back at once (production keeps 10 s .. 600 s)
    options.setdefault("min_backoff_s", 0)
    options.setdefault("max_backoff_s", 0)
    return ensure_topology(
        ps.project, topic, publisher=ps.publisher, subscriber=ps.subscriber, **options
    )


def pull(ps: PubSubProject, subscription: str, count: int) -> list[Any]:
    """Pull and ack until ``count`` messages arrived (ReceivedMessage objects)."""
    got: list[Any] = []
    deadline = time.monotonic() + WAIT_S
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} messages arrived"
        answer = ps.subscriber.pull(
            request={"subscription": subscription, "max_messages": 100}, timeout=10
        )
        if answer.received_messages:
            ps.subscriber.acknowledge(
                request={
                    "subscription": subscription,
                    "ack_ids": [m.ack_id for m in answer.received_messages],
                }
            )
            got.extend(answer.received_messages)
    return got


class Streaming:
    """A consumer on a streaming pull (the library's ``subscribe``), stopped on exit."""

    def __init__(self, ps: PubSubProject, subscription: str, consumer: PubSubConsumer):
        self.consumer = consumer
        self.future = ps.subscriber.subscribe(subscription, callback=consumer.on_message)

    def __enter__(self) -> PubSubConsumer:
        return self.consumer

    def __exit__(self, *exc: object) -> None:
        self.future.cancel()
        try:
            self.future.result(timeout=10)
        except Exception:  # noqa: BLE001 - cancellation surfaces as an error here
            pass


@pytest.fixture
def bus(pubsub_project: PubSubProject) -> Iterator[PubSubEventBus]:
    """The adapter with its default client (built lazily; PUBSUB_EMULATOR_HOST is set)."""
    bus = PubSubEventBus(pubsub_project.project)
    yield bus
    bus.close()


# -- publish and receive ---------------------------------------------------------------
def test_topology_has_the_dead_letter_and_ordering_settings(
    pubsub_project: PubSubProject,
) -> None:
    topo = topology(pubsub_project, EVENTS, max_delivery_attempts=7)
    assert topo.dead_letter_topic.endswith("/topics/vettra-events-dlq")
    assert topo.subscription.endswith("/subscriptions/vettra-events-sub")
    sub = pubsub_project.subscriber.get_subscription(subscription=topo.subscription)
    assert sub.dead_letter_policy.dead_letter_topic == topo.dead_letter_topic
    assert sub.dead_letter_policy.max_delivery_attempts == 7
    assert sub.enable_message_ordering and sub.topic == topo.topic
    dlq = pubsub_project.subscriber.get_subscription(subscription=topo.dead_letter_subscription)
    assert dlq.topic == topo.dead_letter_topic
    assert topology(pubsub_project, EVENTS) == topo  # idempotent


def test_events_reach_local_subscribers_at_once_and_pubsub_soon(
    pubsub_project: PubSubProject, bus: PubSubEventBus
) -> None:
    topo = topology(pubsub_project, EVENTS)
    local: list[Any] = []
    bus.subscribe("actions", local.append)
    event = action_event("act_1")
    bus.publish("action.act_1", event)  # the per-action topic stays in this process
    bus.publish("actions", event)
    assert local == [event]
    assert bus.flush(WAIT_S)
    [received] = pull(pubsub_project, topo.subscription, 1)
    message = received.message
    assert json.loads(message.data) == event
    assert dict(message.attributes) == {
        "event_id": message.attributes["event_id"],
        "type": "action.created",
        "tenant": "default",
    }
    assert message.attributes["event_id"].startswith("ev_")
    assert message.ordering_key == ""
    assert bus.stats.sent == 1 and bus.stats.failed == 0


def test_sequencer_triggers_arrive_in_order_per_chain(
    pubsub_project: PubSubProject, bus: PubSubEventBus
) -> None:
    topo = topology(pubsub_project, SEQUENCE)
    seen: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def handler(d: Delivery) -> None:
        time.sleep(random.uniform(0, 0.005))  # concurrent callbacks would interleave
        with lock:
            seen.append((d.data["chain"], d.event_id, d.ordering_key))

    chains = ["tenant-a", "tenant-b", "tenant-c"]
    per_chain = 15
    for n in range(per_chain):
        for chain in chains:
            bus.trigger_sequence(chain, event_id=f"{chain}.{n:03d}")
    consumer = PubSubConsumer(handler, InMemoryProcessedEvents())
    with Streaming(pubsub_project, topo.subscription, consumer):
        wait_until(lambda: len(seen) == per_chain * len(chains), "every trigger")
    for chain in chains:
        ids = [event_id for c, event_id, _ in seen if c == chain]
        assert ids == [f"{chain}.{n:03d}" for n in range(per_chain)], chain
    assert {(c, key) for c, _, key in seen} == {(c, c) for c in chains}


# -- redelivery and idempotency ----------------------------------------------------------
def test_a_nacked_event_is_redelivered_and_runs_to_success_once(
    pubsub_project: PubSubProject, bus: PubSubEventBus
) -> None:
    topo = topology(pubsub_project, EVENTS)
    calls: Counter[str] = Counter()
    successes: Counter[str] = Counter()
    attempts: dict[str, list[int | None]] = {}

    def fails_first_time(d: Delivery) -> None:
        calls[d.event_id] += 1
        attempts.setdefault(d.event_id, []).append(d.delivery_attempt)
        if calls[d.event_id] == 1:
            raise RuntimeError("first delivery fails")
        successes[d.event_id] += 1

    events = [action_event(f"act_{n}") for n in range(3)]
    consumer = PubSubConsumer(fails_first_time, InMemoryProcessedEvents())
    with Streaming(pubsub_project, topo.subscription, consumer):
        for event in events:
            bus.publish("actions", event)
        wait_until(lambda: len(successes) == 3, "each event handled after its redelivery")
        assert all(count == 2 for count in calls.values()), calls
        assert all(a == [1, 2] for a in attempts.values()), attempts  # Pub/Sub's count
        # the same events published again (same event ids): acked, not run again
        for event in events:
            bus.publish("actions", event)
        wait_until(lambda: consumer.counts[Outcome.DUPLICATE] == 3, "the duplicates")
    assert successes == Counter({event_id: 1 for event_id in calls})
    assert sum(calls.values()) == 6
    assert consumer.counts[Outcome.FAILED] == 3 and consumer.counts[Outcome.HANDLED] == 3


def test_two_messages_with_one_event_id_run_the_handler_once(
    pubsub_project: PubSubProject, bus: PubSubEventBus
) -> None:
    topo = topology(pubsub_project, SEQUENCE)
    runs: list[str] = []
    bus.trigger_sequence("default", event_id="outbox-0190aa")
    bus.trigger_sequence("default", event_id="outbox-0190aa")  # e.g. a retried trigger
    bus.trigger_sequence("default", event_id="outbox-0190ab")
    consumer = PubSubConsumer(lambda d: runs.append(d.event_id), InMemoryProcessedEvents())
    with Streaming(pubsub_project, topo.subscription, consumer):
        wait_until(
            lambda: consumer.counts[Outcome.HANDLED] + consumer.counts[Outcome.DUPLICATE] == 3,
            "all three deliveries",
        )
    assert runs == ["outbox-0190aa", "outbox-0190ab"]
    assert consumer.counts[Outcome.DUPLICATE] == 1


# -- dead letters -------------------------------------------------------------------------
#: Seen with emulator 0.8.20 (dlq probes while writing this test): on a subscription with
#: message ordering enabled, the emulator stops delivering a message after
#: max_delivery_attempts but never republishes it to the dead-letter topic (it vanishes).
#: Google Cloud dead-letters ordered subscriptions too (docs/pubsub.md §Dead letters).
EMULATOR_ORDERED_DLQ = (
    "Pub/Sub emulator does not dead-letter on ordered subscriptions: the poison message "
    "vanished after {attempts} deliveries without reaching {dlq}; dead-lettering itself is "
    "tested on an unordered subscription (test_a_poison_message_lands_on_the_dead_letter_topic)"
)


def _drain_until_dead(
    ps: PubSubProject, topo: Topology, consumer: PubSubConsumer, want: int, timeout_s: float
) -> list[Any]:
    """Pull the subscription through ``consumer`` and collect dead letters until ``want`` arrive
    (or ``timeout_s`` passes: then whatever arrived)."""
    dead: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(dead) < want and time.monotonic() < deadline:
        consumer.pull(ps.subscriber, topo.subscription, timeout_s=0.5)
        dead.extend(pull_some(ps, topo.dead_letter_subscription))
    return dead


def pull_some(ps: PubSubProject, subscription: str) -> list[Any]:
    """One short pull (acking what came); the emulator answers an empty one with DEADLINE_EXCEEDED."""
    from google.api_core import exceptions as api_exceptions

    try:
        answer = ps.subscriber.pull(
            request={"subscription": subscription, "max_messages": 10}, timeout=0.5
        )
    except api_exceptions.DeadlineExceeded:
        return []
    if answer.received_messages:
        ps.subscriber.acknowledge(
            request={
                "subscription": subscription,
                "ack_ids": [m.ack_id for m in answer.received_messages],
            }
        )
    return list(answer.received_messages)


def _poison_handler(calls: Counter[str]) -> Callable[[Delivery], None]:
    def handler(d: Delivery) -> None:
        calls[d.data["chain"]] += 1
        if d.data["chain"] == "poison":
            raise ValueError("this event can never be handled")

    return handler


def test_a_poison_message_lands_on_the_dead_letter_topic(
    pubsub_project: PubSubProject, bus: PubSubEventBus
) -> None:
    """After max_delivery_attempts nacks Pub/Sub republishes to ``<topic>-dlq`` with
    CloudPubSubDeadLetter* attributes (the emulator does this on unordered subscriptions)."""
    topo = topology(pubsub_project, SEQUENCE, max_delivery_attempts=5, ordering=False)
    calls: Counter[str] = Counter()
    bus.trigger_sequence("poison", event_id="poison-1")
    bus.trigger_sequence("healthy", event_id="healthy-1")
    assert bus.flush(WAIT_S)
    # a message that is not ours at all: no event_id, data not JSON
    pubsub_project.publisher.publish(topo.topic, b"\x00garbage").result(10)
    consumer = PubSubConsumer(_poison_handler(calls), InMemoryProcessedEvents())
    dead = _drain_until_dead(pubsub_project, topo, consumer, 2, WAIT_S)
    by_data = {m.message.data: m.message for m in dead}
    assert set(by_data) == {b'{"chain":"poison"}', b"\x00garbage"}
    poison = by_data[b'{"chain":"poison"}']
    assert poison.attributes["event_id"] == "poison-1"
    assert poison.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
    assert poison.attributes["CloudPubSubDeadLetterSourceSubscription"] == "vettra-sequence-sub"
    assert calls == Counter({"poison": 5, "healthy": 1})
    assert consumer.counts[Outcome.POISON] == 5 and consumer.counts[Outcome.FAILED] == 5
    assert consumer.counts[Outcome.HANDLED] == 1


def test_a_poison_message_on_an_ordered_subscription_is_dead_lettered(
    pubsub_project: PubSubProject, bus: PubSubEventBus
) -> None:
    """The production shape (ordering on). Skips, naming the emulator's gap, when the
    message is dropped instead of dead-lettered; passes once an emulator honours it."""
    topo = topology(pubsub_project, SEQUENCE, max_delivery_attempts=5, ordering=True)
    calls: Counter[str] = Counter()
    bus.trigger_sequence("poison", event_id="poison-1")
    assert bus.flush(WAIT_S)
    consumer = PubSubConsumer(_poison_handler(calls), InMemoryProcessedEvents())
    deadline = time.monotonic() + WAIT_S
    while calls["poison"] < 5:
        assert time.monotonic() < deadline, f"only {calls['poison']} deliveries"
        consumer.pull(pubsub_project.subscriber, topo.subscription, timeout_s=0.5)
    # an unordered subscription dead-letters within ~1 s of the last nack (measured)
    dead = _drain_until_dead(pubsub_project, topo, consumer, 1, 3.0)
    assert calls["poison"] == 5, "Pub/Sub stops after max_delivery_attempts either way"
    if not dead:
        pytest.skip(EMULATOR_ORDERED_DLQ.format(attempts=5, dlq=topo.dead_letter_topic))
    assert dead[0].message.attributes["event_id"] == "poison-1"


# -- failures never reach the caller -------------------------------------------------------
def test_publishing_to_a_missing_topic_is_logged_not_raised(
    pubsub_project: PubSubProject, caplog: pytest.LogCaptureFixture
) -> None:
    bus = PubSubEventBus(pubsub_project.project, routes={"actions": TopicRoute("no-such-topic")})
    local: list[Any] = []
    bus.subscribe("actions", local.append)
    with caplog.at_level("WARNING", logger="vettra.pubsub"):
        bus.publish("actions", action_event("act_1"))
        assert bus.close(WAIT_S)
    assert local == [action_event("act_1")]
    assert bus.stats.failed == 1 and bus.stats.last_error == "NotFound"
    assert "Pub/Sub publish failed" in caplog.text


def test_an_unreachable_pubsub_is_logged_not_raised(
    pubsub_project: PubSubProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv(ENV_HOST, f"127.0.0.1:{closed}")
    bus = PubSubEventBus(pubsub_project.project, publish_timeout_s=2)
    started = time.perf_counter()
    bus.publish("actions", action_event("act_1"))
    bus.trigger_sequence("default")
    assert time.perf_counter() - started < 0.5
    assert bus.close(WAIT_S)
    assert bus.stats.failed == 2 and bus.stats.sent == 0, bus.stats


def test_close_sends_everything_queued(
    pubsub_project: PubSubProject, capsys: pytest.CaptureFixture[str]
) -> None:
    topo = topology(pubsub_project, EVENTS)
    bus = PubSubEventBus(pubsub_project.project)
    count = 300
    latencies = []
    for n in range(count):
        started = time.perf_counter()
        bus.publish("actions", action_event(f"act_{n}"))
        latencies.append(time.perf_counter() - started)
    started = time.perf_counter()
    assert bus.close(WAIT_S)
    closing = time.perf_counter() - started
    ids = {m.message.attributes["event_id"] for m in pull(pubsub_project, topo.subscription, count)}
    assert len(ids) == count and bus.stats.sent == count
    with capsys.disabled():
        print(
            f"\n[pubsub] publish() of {count} events: p50 "
            f"{statistics.median(latencies) * 1e6:.0f} µs, max {max(latencies) * 1e3:.1f} ms "
            f"(first one starts the worker); close() flushed in {closing:.2f} s"
        )


# -- the push path: Pub/Sub → functions-framework CloudEvent target → consumer ----------------
@pytest.fixture
def push_function() -> Iterator[tuple[str, Any]]:
    """functions-framework's WSGI app for pubsub_push_function.py, on a loopback port."""
    import sys

    import functions_framework
    from werkzeug.serving import make_server

    source = Path(__file__).with_name("pubsub_push_function.py")
    app = functions_framework.create_app("receive", str(source), "cloudevent")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/", sys.modules["pubsub_push_function"]
    finally:
        server.shutdown()
        thread.join(5)


def test_a_push_subscription_into_a_cloud_event_target_is_redelivered_after_an_error(
    pubsub_project: PubSubProject, bus: PubSubEventBus, push_function: tuple[str, Any]
) -> None:
    url, module = push_function
    calls: Counter[str] = Counter()

    def fails_first_time(d: Delivery) -> None:
        calls[d.event_id] += 1
        if calls[d.event_id] == 1:
            raise RuntimeError("first delivery fails")

    consumer = PubSubConsumer(fails_first_time, InMemoryProcessedEvents())
    module.CONSUMER = consumer
    # the emulator's push retries wait ~1-3 s whatever the backoff says
    topo = topology(pubsub_project, SEQUENCE, push_endpoint=url, min_backoff_s=1, max_backoff_s=1)
    bus.trigger_sequence("default", event_id="push-1")
    bus.trigger_sequence("default", event_id="push-1")  # a duplicate: acked, not run
    wait_until(
        lambda: consumer.counts[Outcome.HANDLED] == 1 and consumer.counts[Outcome.DUPLICATE] >= 1,
        "the redelivered push and its duplicate",
    )
    assert calls == Counter({"push-1": 2})
    assert consumer.counts[Outcome.FAILED] == 1
    assert topo.subscription.endswith("vettra-sequence-sub")


# -- the Firestore-backed record -------------------------------------------------------------
def _record(
    firestore_project: FirestoreProject, consumer: str, now: list[float]
) -> ProcessedEvents:
    return FirestoreProcessedEvents(firestore_project.client, consumer, clock=lambda: now[0])


def test_the_firestore_record_claims_once_and_takes_over_expired_claims(
    firestore_project: FirestoreProject,
) -> None:
    now = [1_000_000.0]
    record = _record(firestore_project, "sequencer", now)
    first = record.claim("0190aa", lease_s=30)
    assert first.state is ClaimState.NEW
    assert record.claim("0190aa", lease_s=30).state is ClaimState.BUSY
    now[0] += 31  # the first holder died: its lease ran out
    second = record.claim("0190aa", lease_s=30)
    assert second.state is ClaimState.NEW
    record.release("0190aa", first)  # stale: must not free the new holder's claim
    assert record.claim("0190aa", lease_s=30).state is ClaimState.BUSY
    record.complete("0190aa", second)
    assert record.claim("0190aa", lease_s=30).state is ClaimState.DONE
    # another consumer's record of the same event id is its own
    assert _record(firestore_project, "notifier", now).claim("0190aa", 30).state is ClaimState.NEW
    # a failed run releases its claim so the redelivery runs at once
    failed = record.claim("0190ab", lease_s=30)
    record.release("0190ab", failed)
    assert record.claim("0190ab", lease_s=30).state is ClaimState.NEW
    doc = firestore_project.client.collection("processed").document("sequencer:0190aa").get()
    assert doc.exists
    fields = doc.to_dict()
    assert fields["state"] == "done" and fields["event_id"] == "0190aa"
    assert fields["consumer"] == "sequencer" and fields["expire_at"] is not None


def test_the_consumer_on_the_firestore_record_runs_once_across_two_instances(
    pubsub_project: PubSubProject, firestore_project: FirestoreProject, bus: PubSubEventBus
) -> None:
    """Two consumers (two function instances) on one subscription share the record."""
    topo = topology(pubsub_project, SEQUENCE)
    runs: list[str] = []
    lock = threading.Lock()

    def handler(d: Delivery) -> None:
        with lock:
            runs.append(d.event_id)

    record = FirestoreProcessedEvents(firestore_project.client, "sequencer")
    consumers = [PubSubConsumer(handler, record), PubSubConsumer(handler, record)]
    ids = [f"outbox-{n:04d}" for n in range(10)]
    for event_id in ids + ids:  # every event published twice
        bus.trigger_sequence(f"chain-{event_id[-1]}", event_id=event_id)

    def settled() -> int:
        return sum(c.counts[Outcome.HANDLED] + c.counts[Outcome.DUPLICATE] for c in consumers)

    deadline = time.monotonic() + WAIT_S
    while settled() < 20:
        assert time.monotonic() < deadline, f"settled {settled()} of 20"
        for consumer in consumers:
            consumer.pull(pubsub_project.subscriber, topo.subscription, max_messages=3, timeout_s=2)
    assert sorted(runs) == ids
