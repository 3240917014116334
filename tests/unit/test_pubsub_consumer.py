"""PubSubConsumer on the in-memory processed-id record: one successful run per event id,
nack on failure, poison messages refused. (Against the Pub/Sub and Firestore emulators:
tests/contract/test_pubsub_bus.py.)"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable
from typing import Any

import pytest

from vettra.adapters.pubsub_consumer import (
    Claim,
    ClaimState,
    Delivery,
    DeliveryNotAcked,
    InMemoryProcessedEvents,
    Outcome,
    PoisonMessage,
    ProcessedEvents,
    PubSubConsumer,
    from_cloud_event,
    from_push,
)


def push_body(data: Any, attributes: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return {
        "message": {
            "data": base64.b64encode(raw).decode(),
            "attributes": {"event_id": "ev_1"} if attributes is None else attributes,
            "messageId": "m-1",
            "publishTime": "2026-01-01T00:00:00Z",
        },
        "subscription": "projects/p/subscriptions/vettra-sequence-sub",
        **extra,
    }


def delivery(event_id: str = "ev_1", data: dict[str, Any] | None = None) -> Delivery:
    return Delivery(event_id, data or {"chain": "default"}, {"event_id": event_id})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """A handler that records its calls and fails while ``failures`` lasts."""

    def __init__(self, failures: int = 0):
        self.failures = failures
        self.calls: list[str] = []
        self.successes: list[str] = []

    def __call__(self, d: Delivery) -> None:
        self.calls.append(d.event_id)
        if self.failures:
            self.failures -= 1
            raise RuntimeError("downstream unavailable")
        self.successes.append(d.event_id)


# -- decoding -------------------------------------------------------------------------
def test_a_push_body_and_the_cloud_event_made_of_it_decode_alike() -> None:
    body = push_body({"chain": "tenant-a"}, {"event_id": "0190ab", "type": "x"}, deliveryAttempt=3)
    d = from_push(body)
    assert (d.event_id, d.data, d.message_id, d.delivery_attempt) == (
        "0190ab",
        {"chain": "tenant-a"},
        "m-1",
        3,
    )
    assert d.attributes == {"event_id": "0190ab", "type": "x"}

    class CloudEvent:  # the shape functions_framework hands a cloud_event target
        data = {"message": body["message"]}

    assert from_cloud_event(CloudEvent()).data == {"chain": "tenant-a"}
    assert from_cloud_event({"data": json.dumps(body)}).event_id == "0190ab"


@pytest.mark.parametrize(
    "body, reason",
    [
        (push_body({"chain": "c"}, {}), "no valid event_id"),
        (push_body({"chain": "c"}, {"event_id": "a/b"}), "no valid event_id"),
        (push_body(b"\xff\xfe", {"event_id": "ev_1"}), "not JSON"),
        (push_body([1, 2], {"event_id": "ev_1"}), "not a JSON object"),
        ({"message": {"data": "***", "attributes": {"event_id": "ev_1"}}}, "not base64"),
        ({"message": "x"}, "no message"),
        ({"message": {"data": "", "attributes": ["event_id"]}}, "attributes"),
        ([], "no message"),
    ],
)
def test_undecodable_deliveries_are_poison(body: Any, reason: str) -> None:
    with pytest.raises(PoisonMessage, match=reason):
        from_push(body)


# -- idempotency ---------------------------------------------------------------------
def test_the_handler_runs_once_per_event_id_and_duplicates_are_acked() -> None:
    handler = Recorder()
    consumer = PubSubConsumer(handler, InMemoryProcessedEvents())
    assert consumer.handle(delivery("ev_1")) is Outcome.HANDLED
    assert consumer.handle(delivery("ev_1")) is Outcome.DUPLICATE
    assert consumer.handle(delivery("ev_2")) is Outcome.HANDLED
    assert handler.calls == ["ev_1", "ev_2"]
    assert Outcome.DUPLICATE.ack and Outcome.HANDLED.ack
    assert consumer.counts[Outcome.HANDLED] == 2 and consumer.counts[Outcome.DUPLICATE] == 1


def test_a_failing_handler_is_nacked_and_the_redelivery_runs_it_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler = Recorder(failures=2)
    consumer = PubSubConsumer(handler, InMemoryProcessedEvents())
    with caplog.at_level(logging.ERROR, logger="vettra.pubsub"):
        outcomes = [consumer.handle(delivery("ev_1")) for _ in range(4)]
    assert outcomes == [Outcome.FAILED, Outcome.FAILED, Outcome.HANDLED, Outcome.DUPLICATE]
    assert not Outcome.FAILED.ack
    assert handler.calls == ["ev_1"] * 3 and handler.successes == ["ev_1"]
    assert "will be redelivered" in caplog.text


def test_a_live_claim_makes_a_concurrent_duplicate_busy_until_its_lease_ends() -> None:
    clock = Clock()
    record = InMemoryProcessedEvents(clock=clock)
    inside, finish = threading.Event(), threading.Event()
    calls: list[str] = []

    def slow(d: Delivery) -> None:
        calls.append(d.event_id)
        inside.set()
        finish.wait(5)

    consumer = PubSubConsumer(slow, record, lease_s=30)
    first: list[Outcome] = []
    worker = threading.Thread(target=lambda: first.append(consumer.handle(delivery())))
    worker.start()
    assert inside.wait(5)
    assert consumer.handle(delivery()) is Outcome.BUSY  # nacked: Pub/Sub tries again later
    finish.set()
    worker.join(5)
    assert first == [Outcome.HANDLED] and calls == ["ev_1"]
    # a claim whose holder died is taken over once its lease has run out
    stale = record.claim("ev_2", lease_s=30)
    assert stale.state is ClaimState.NEW
    assert record.claim("ev_2", lease_s=30).state is ClaimState.BUSY
    clock.now += 31
    taken = record.claim("ev_2", lease_s=30)
    assert taken.state is ClaimState.NEW
    record.release("ev_2", stale)  # the old holder cannot release the new claim
    assert record.claim("ev_2", lease_s=30).state is ClaimState.BUSY


def test_an_unavailable_record_nacks_and_a_failed_done_mark_still_acks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Flaky(ProcessedEvents):
        def __init__(self, fail: str):
            self.fail = fail

        def claim(self, event_id: str, lease_s: float) -> Claim:
            if self.fail == "claim":
                raise OSError("record down")
            return Claim(ClaimState.NEW, 1)

        def complete(self, event_id: str, claim: Claim) -> None:
            raise OSError("record down")

        def release(self, event_id: str, claim: Claim) -> None:
            raise OSError("record down")

    handler = Recorder()
    with caplog.at_level(logging.WARNING, logger="vettra.pubsub"):
        assert PubSubConsumer(handler, Flaky("claim")).handle(delivery()) is Outcome.FAILED
        assert handler.calls == []  # not run without a claim
        assert PubSubConsumer(handler, Flaky("complete")).handle(delivery()) is Outcome.HANDLED
    assert handler.calls == ["ev_1"]
    assert "processed-event record unavailable" in caplog.text
    assert "could not record a handled event" in caplog.text


def test_the_in_memory_record_keeps_the_newest_ids_only() -> None:
    record = InMemoryProcessedEvents(limit=3)
    for n in range(5):
        claim = record.claim(f"ev_{n}", 10)
        record.complete(f"ev_{n}", claim)
    assert [record.done(f"ev_{n}") for n in range(5)] == [False, False, True, True, True]


# -- the CloudEvent entry ------------------------------------------------------------------
def test_handle_cloud_event_raises_unless_the_message_may_be_acked() -> None:
    handler = Recorder(failures=1)
    consumer = PubSubConsumer(handler, InMemoryProcessedEvents())
    event = {"data": {"message": push_body({"chain": "c"}, {"event_id": "ev_7"})["message"]}}
    with pytest.raises(DeliveryNotAcked) as failed:
        consumer.handle_cloud_event(event)
    assert failed.value.outcome is Outcome.FAILED and failed.value.event_id == "ev_7"
    assert consumer.handle_cloud_event(event) is Outcome.HANDLED
    assert consumer.handle_cloud_event(event) is Outcome.DUPLICATE
    with pytest.raises(DeliveryNotAcked) as poison:
        consumer.handle_cloud_event({"data": {"message": {"data": "", "attributes": {}}}})
    assert poison.value.outcome is Outcome.POISON and poison.value.event_id is None
    assert handler.calls == ["ev_7", "ev_7"]


def test_on_message_acks_handled_and_nacks_failed_messages() -> None:
    class Message:  # the streaming-pull message interface the callback uses
        def __init__(self, event_id: str):
            self.data = b'{"chain":"c"}'
            self.attributes = {"event_id": event_id}
            self.message_id, self.ordering_key, self.delivery_attempt = "m", "c", 1
            self.answer = ""

        def ack(self) -> None:
            self.answer = "ack"

        def nack(self) -> None:
            self.answer = "nack"

    fail_once: Callable[[Delivery], None] = Recorder(failures=1)
    consumer = PubSubConsumer(fail_once, InMemoryProcessedEvents())
    answers = []
    for event_id in ("ev_1", "ev_1", "ev_1", "bad id"):
        message = Message(event_id)
        consumer.on_message(message)
        answers.append(message.answer)
    assert answers == ["nack", "ack", "ack", "nack"]
    assert consumer.counts[Outcome.POISON] == 1


# -- synchronous pull and the topology: google errors stay inside ------------------------
class FakeSubscriber:
    """The three SubscriberClient calls ``PubSubConsumer.pull`` makes."""

    def __init__(self, received: list[Any], pull_error: BaseException | None = None):
        self.received, self.pull_error = received, pull_error
        self.acked: list[str] = []
        self.nacked: list[str] = []
        self.ack_error: BaseException | None = None

    def pull(self, request: dict[str, Any], timeout: float) -> Any:
        if self.pull_error is not None:
            raise self.pull_error
        return type("PullResponse", (), {"received_messages": self.received})()

    def acknowledge(self, request: dict[str, Any], timeout: float) -> None:
        if self.ack_error is not None:
            raise self.ack_error
        self.acked += request["ack_ids"]

    def modify_ack_deadline(self, request: dict[str, Any], timeout: float) -> None:
        assert request["ack_deadline_seconds"] == 0  # a nack: redeliver at once
        self.nacked += request["ack_ids"]


def received(ack_id: str, event_id: str, attempt: int = 1) -> Any:
    message = type(
        "PubsubMessage",
        (),
        {
            "data": b'{"chain":"c"}',
            "attributes": {"event_id": event_id},
            "message_id": ack_id,
            "ordering_key": "c",
        },
    )()
    return type(
        "ReceivedMessage", (), {"ack_id": ack_id, "message": message, "delivery_attempt": attempt}
    )()


def test_pull_acks_what_was_handled_and_nacks_the_rest() -> None:
    handler = Recorder(failures=1)
    consumer = PubSubConsumer(handler, InMemoryProcessedEvents())
    subscriber = FakeSubscriber(
        [received("a1", "ev_1"), received("a2", "ev_2"), received("a3", "ev_2"), received("a4", "")]
    )
    outcomes = consumer.pull(subscriber, "projects/p/subscriptions/s")
    assert outcomes == [Outcome.FAILED, Outcome.HANDLED, Outcome.DUPLICATE, Outcome.POISON]
    assert subscriber.acked == ["a2", "a3"] and subscriber.nacked == ["a1", "a4"]


def test_pull_turns_google_errors_into_unavailable_and_an_empty_wait_into_nothing() -> None:
    from google.api_core import exceptions as api_exceptions

    from vettra.domain.errors import Unavailable

    consumer = PubSubConsumer(Recorder(), InMemoryProcessedEvents())
    empty = FakeSubscriber([], api_exceptions.DeadlineExceeded("no messages"))
    assert consumer.pull(empty, "projects/p/subscriptions/s") == []
    down = FakeSubscriber([], api_exceptions.ServiceUnavailable("secret resource name"))
    with pytest.raises(Unavailable) as failed:
        consumer.pull(down, "projects/p/subscriptions/s")
    assert str(failed.value) == "Pub/Sub Pull failed: ServiceUnavailable"
    acking = FakeSubscriber([received("a1", "ev_9")])
    acking.ack_error = api_exceptions.PermissionDenied("no role")
    with pytest.raises(Unavailable, match="Acknowledge failed: PermissionDenied"):
        consumer.pull(acking, "projects/p/subscriptions/s")


def test_ensure_topology_checks_its_arguments_and_maps_google_errors() -> None:
    from google.api_core import exceptions as api_exceptions

    from vettra.adapters.pubsub_admin import ensure_topology
    from vettra.domain.errors import Unavailable

    class Refusing:
        def create_topic(self, request: dict[str, Any], timeout: float) -> None:
            raise api_exceptions.PermissionDenied("projects/p/topics/x: denied")

    for bad, match in [
        ({"max_delivery_attempts": 4}, "5..100"),
        ({"ack_deadline_s": 5}, "10..600"),
        ({"min_backoff_s": 5, "max_backoff_s": 1}, "backoff"),
        ({"push_service_account": "sa@p.iam.gserviceaccount.com"}, "push_endpoint"),
    ]:
        with pytest.raises(ValueError, match=match):
            ensure_topology("p", "vettra-events", publisher=Refusing(), subscriber=object(), **bad)
    with pytest.raises(ValueError, match="topic id"):
        ensure_topology("p", "x", publisher=Refusing(), subscriber=object())
    with pytest.raises(Unavailable) as failed:
        ensure_topology("p", "vettra-events", publisher=Refusing(), subscriber=object())
    assert str(failed.value) == "Pub/Sub creating the topology failed: PermissionDenied"
