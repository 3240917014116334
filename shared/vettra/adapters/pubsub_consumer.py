"""The receiving side of the Pub/Sub bus: at-least-once deliveries made idempotent by event id.

Pub/Sub delivers a message at least once, and :mod:`vettra.adapters.pubsub_bus` may publish
one event twice (same ``event_id``). :class:`PubSubConsumer` turns any delivery —
a pull or streaming-pull message, a push request body, or the CloudEvent Cloud
Functions builds from either — into at most one *successful* handler run per
event id (docs/pubsub.md §Idempotency):

1. **claim** the event id in a :class:`ProcessedEvents` record (create-only, with a
   lease): ``DONE`` already → ack without running; claimed by another live
   delivery → nack (redelivered later); else run the handler;
2. the handler returns → mark ``done`` → ack;
3. the handler raises → release the claim → nack, so Pub/Sub redelivers; after
   the subscription's ``max_delivery_attempts`` Pub/Sub moves the message to the
   dead-letter topic ``<topic>-dlq`` (:mod:`vettra.adapters.pubsub_admin`);
4. a message that can never be handled (no valid ``event_id``, data not a JSON
   object) is nacked too, and so reaches the dead-letter topic without running.

The record is pluggable: :class:`InMemoryProcessedEvents` (one process, tests) and
:class:`FirestoreProcessedEvents` (``processed/{consumer}:{event_id}`` documents, a
TTL field for cleanup). A handler's effects and its ``done`` mark are not one
transaction, so a crash between them runs the handler again on redelivery: handlers
must still tolerate a repeat (the sequencer's does: a drained chain has nothing to do).

No google exception leaves this module: a failing record or client counts as a
failed delivery (nack) or becomes :class:`~vettra.domain.errors.Unavailable`.
"""

from __future__ import annotations

import abc
import base64
import binascii
import enum
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..domain.errors import Conflict
from .pubsub_bus import EVENT_ID_ATTRIBUTE, EVENT_ID_PATTERN

log = logging.getLogger("vettra.pubsub")

#: How long a claim keeps other deliveries of the same event id away (≥ the handler's run time).
LEASE_S = 60.0
#: ``done`` records are kept this long (Pub/Sub keeps unacked messages at most 7 days).
RETENTION = timedelta(days=8)
PROCESSED_COLLECTION = "processed"
MAX_IN_MEMORY = 100_000
PULL_TIMEOUT_S = 10.0


class PoisonMessage(ValueError):
    """A delivery that no handler can take (it goes to the dead-letter topic)."""


class DeliveryNotAcked(Exception):
    """Raised by :meth:`PubSubConsumer.handle_cloud_event` so the function answers
    an error and Pub/Sub redelivers (or dead-letters)."""

    def __init__(self, outcome: Outcome, event_id: str | None):
        super().__init__(f"delivery {outcome.value} (event_id={event_id})")
        self.outcome, self.event_id = outcome, event_id


class Outcome(enum.Enum):
    HANDLED = "handled"  # the handler ran and returned: ack
    DUPLICATE = "duplicate"  # already done for this event id: ack without running
    BUSY = "busy"  # another delivery holds the claim: nack, try later
    FAILED = "failed"  # the handler (or the record) raised: nack, redelivered
    POISON = "poison"  # undecodable: nack until it is dead-lettered

    @property
    def ack(self) -> bool:
        return self in (Outcome.HANDLED, Outcome.DUPLICATE)


@dataclass(frozen=True)
class Delivery:
    event_id: str
    data: dict[str, Any]
    attributes: dict[str, str]
    message_id: str = ""
    ordering_key: str = ""
    delivery_attempt: int | None = None  # set when the subscription has a dead-letter policy


# -- decoding ------------------------------------------------------------------------
def _delivery(
    raw: bytes,
    attributes: Mapping[str, str],
    message_id: str,
    ordering_key: str,
    attempt: Any,
) -> Delivery:
    attrs = {str(k): str(v) for k, v in attributes.items()}
    event_id = attrs.get(EVENT_ID_ATTRIBUTE, "")
    if not EVENT_ID_PATTERN.match(event_id):
        raise PoisonMessage("the message has no valid event_id attribute")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PoisonMessage("the message data is not JSON") from None
    if not isinstance(data, dict):
        raise PoisonMessage("the message data is not a JSON object")
    try:
        attempt_no = int(attempt) if attempt not in (None, "", 0) else None
    except (TypeError, ValueError):
        attempt_no = None
    return Delivery(event_id, data, attrs, message_id, ordering_key, attempt_no)


def from_message(message: Any) -> Delivery:
    """From a streaming-pull ``Message`` (``subscriber.subscribe`` callbacks)."""
    return _delivery(
        message.data,
        message.attributes,
        getattr(message, "message_id", ""),
        getattr(message, "ordering_key", ""),
        getattr(message, "delivery_attempt", None),
    )


def from_received(received: Any) -> Delivery:
    """From a synchronous pull's ``ReceivedMessage``."""
    message = received.message
    return _delivery(
        message.data,
        message.attributes,
        message.message_id,
        message.ordering_key,
        received.delivery_attempt,
    )


def from_push(body: Any) -> Delivery:
    """From a push request body (``{"message": {"data": base64, "attributes", "messageId"}, ...}``)
    or the ``data`` of the CloudEvent Cloud Functions / Eventarc make of it."""
    message = body.get("message") if isinstance(body, Mapping) else None
    if not isinstance(message, Mapping):
        raise PoisonMessage("the push body has no message")
    try:
        raw = base64.b64decode(message.get("data") or "", validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise PoisonMessage("the message data is not base64") from None
    attributes = message.get("attributes") or {}
    if not isinstance(attributes, Mapping):
        raise PoisonMessage("the message attributes are not an object")
    return _delivery(
        raw,
        attributes,
        str(message.get("messageId") or message.get("message_id") or ""),
        str(message.get("orderingKey") or ""),
        body.get("deliveryAttempt"),
    )


def from_cloud_event(cloud_event: Any) -> Delivery:
    """From a ``cloudevents`` CloudEvent (``functions_framework.cloud_event`` targets) or its dict."""
    data = cloud_event.data if hasattr(cloud_event, "data") else cloud_event.get("data")
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise PoisonMessage("the CloudEvent data is not JSON") from None
    return from_push(data)


# -- the processed-id record -------------------------------------------------------------
class ClaimState(enum.Enum):
    NEW = "new"  # claimed for this delivery: run the handler
    DONE = "done"
    BUSY = "busy"


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    token: Any = None  # the record's proof that this delivery holds the claim


class ProcessedEvents(abc.ABC):
    """Which event ids a consumer has handled (and which it is handling now)."""

    @abc.abstractmethod
    def claim(self, event_id: str, lease_s: float) -> Claim:
        """Claim ``event_id`` for ``lease_s`` seconds unless done or claimed by a live lease."""

    @abc.abstractmethod
    def complete(self, event_id: str, claim: Claim) -> None:
        """Mark ``event_id`` handled: every later claim answers DONE."""

    @abc.abstractmethod
    def release(self, event_id: str, claim: Claim) -> None:
        """Give a claim up after a failure (if still held), so a redelivery runs at once."""


class InMemoryProcessedEvents(ProcessedEvents):
    """One process's record (tests, single-instance consumers); keeps the newest ``limit`` ids."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, limit: int = MAX_IN_MEMORY):
        self._clock, self._limit = clock, limit
        self._records: OrderedDict[str, tuple[str, float, object]] = OrderedDict()
        self._lock = threading.Lock()

    def claim(self, event_id: str, lease_s: float) -> Claim:
        now = self._clock()
        with self._lock:
            record = self._records.get(event_id)
            if record is not None:
                state, until, _ = record
                if state == "done":
                    return Claim(ClaimState.DONE)
                if until > now:
                    return Claim(ClaimState.BUSY)
            token = object()
            self._records[event_id] = ("running", now + lease_s, token)
            self._records.move_to_end(event_id)
            while len(self._records) > self._limit:
                self._records.popitem(last=False)
            return Claim(ClaimState.NEW, token)

    def complete(self, event_id: str, claim: Claim) -> None:
        with self._lock:
            self._records[event_id] = ("done", float("inf"), claim.token)

    def release(self, event_id: str, claim: Claim) -> None:
        with self._lock:
            record = self._records.get(event_id)
            if record is not None and record[0] == "running" and record[2] is claim.token:
                del self._records[event_id]

    def done(self, event_id: str) -> bool:
        with self._lock:
            record = self._records.get(event_id)
            return record is not None and record[0] == "done"


class FirestoreProcessedEvents(ProcessedEvents):
    """``processed/{consumer}:{event_id}`` documents (docs/pubsub.md §Idempotency).

    A claim is a create-only write (``state: running``, ``lease_until``); an expired
    claim is taken over with an update-time precondition, so of two deliveries
    racing for it one wins. ``complete`` sets ``state: done``. Each document
    carries ``expire_at`` for a Firestore TTL policy on the collection.
    """

    def __init__(
        self,
        db: Any,
        consumer: str,
        *,
        collection: str = PROCESSED_COLLECTION,
        retention: timedelta = RETENTION,
        clock: Callable[[], float] = time.time,
    ):
        if not EVENT_ID_PATTERN.match(consumer):
            raise ValueError(f"consumer must match {EVENT_ID_PATTERN.pattern}")
        self.db, self.consumer = db, consumer
        self._collection, self._retention, self._clock = collection, retention, clock

    def _ref(self, event_id: str) -> Any:
        from .firestore_repos import doc_key

        return self.db.collection(self._collection).document(doc_key(f"{self.consumer}:{event_id}"))

    def _record(self, event_id: str, state: str, lease_s: float = 0.0) -> dict[str, Any]:
        now = self._clock()
        return {
            "consumer": self.consumer,
            "event_id": event_id,
            "state": state,
            "lease_until": now + lease_s,
            "at": now,
            "expire_at": datetime.fromtimestamp(now, UTC) + self._retention,
        }

    def claim(self, event_id: str, lease_s: float) -> Claim:
        from .firestore_repos import mapped

        ref = self._ref(event_id)
        for _ in range(3):  # a concurrent release between create and get: try again
            try:
                with mapped():
                    result = ref.create(self._record(event_id, "running", lease_s))
                return Claim(ClaimState.NEW, result.update_time)
            except Conflict:
                pass
            with mapped():
                snap = ref.get()
            if not snap.exists:
                continue
            record = snap.to_dict() or {}
            if record.get("state") == "done":
                return Claim(ClaimState.DONE)
            if float(record.get("lease_until", 0)) > self._clock():
                return Claim(ClaimState.BUSY)
            try:
                with mapped():
                    result = ref.update(
                        self._record(event_id, "running", lease_s),
                        option=self.db.write_option(last_update_time=snap.update_time),
                    )
                return Claim(ClaimState.NEW, result.update_time)
            except Conflict:
                return Claim(ClaimState.BUSY)  # another delivery took the expired claim
        return Claim(ClaimState.BUSY)

    def complete(self, event_id: str, claim: Claim) -> None:
        from .firestore_repos import mapped

        with mapped():
            self._ref(event_id).set(self._record(event_id, "done"))

    def release(self, event_id: str, claim: Claim) -> None:
        from .firestore_repos import mapped

        try:
            with mapped():
                self._ref(event_id).delete(
                    option=self.db.write_option(last_update_time=claim.token)
                )
        except Conflict:
            pass  # taken over (lease expired) or gone: not ours to release


# -- the consumer ---------------------------------------------------------------------
Handler = Callable[[Delivery], None]


class PubSubConsumer:
    """Runs ``handler`` once per event id for every delivery it is given (module docstring)."""

    def __init__(self, handler: Handler, processed: ProcessedEvents, *, lease_s: float = LEASE_S):
        self.handler, self.processed, self.lease_s = handler, processed, lease_s
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        self._lock = threading.Lock()

    def _count(self, outcome: Outcome) -> Outcome:
        with self._lock:
            self.counts[outcome] += 1
        return outcome

    def handle(self, delivery: Delivery) -> Outcome:
        """Claim, run, mark: the outcome says whether to ack."""
        extra = {"event_id": delivery.event_id, "delivery_attempt": delivery.delivery_attempt}
        try:
            claim = self.processed.claim(delivery.event_id, self.lease_s)
        except Exception as exc:  # noqa: BLE001 - the record is down: let Pub/Sub retry
            log.warning(
                "processed-event record unavailable", extra={**extra, "error": type(exc).__name__}
            )
            return self._count(Outcome.FAILED)
        if claim.state is ClaimState.DONE:
            log.debug("duplicate delivery acked", extra=extra)
            return self._count(Outcome.DUPLICATE)
        if claim.state is ClaimState.BUSY:
            return self._count(Outcome.BUSY)
        try:
            self.handler(delivery)
        except Exception:  # noqa: BLE001 - any handler failure means: redeliver
            log.exception("event handler failed; the message will be redelivered", extra=extra)
            try:
                self.processed.release(delivery.event_id, claim)
            except Exception as exc:  # noqa: BLE001 - the lease runs out instead
                log.warning("could not release claim", extra={**extra, "error": type(exc).__name__})
            return self._count(Outcome.FAILED)
        try:
            self.processed.complete(delivery.event_id, claim)
        except Exception as exc:  # noqa: BLE001 - the work is done; a later duplicate may rerun
            log.warning(
                "could not record a handled event", extra={**extra, "error": type(exc).__name__}
            )
        return self._count(Outcome.HANDLED)

    def handle_raw(self, decode: Callable[[Any], Delivery], raw: Any) -> Outcome:
        try:
            delivery = decode(raw)
        except PoisonMessage as exc:
            log.error("undeliverable Pub/Sub message", extra={"reason": str(exc)})
            return self._count(Outcome.POISON)
        return self.handle(delivery)

    # -- transports ---------------------------------------------------------------------
    def on_message(self, message: Any) -> None:
        """A ``SubscriberClient.subscribe`` callback: ack or nack ``message``."""
        outcome = self.handle_raw(from_message, message)
        if outcome.ack:
            message.ack()
        else:
            message.nack()

    def handle_cloud_event(self, cloud_event: Any) -> Outcome:
        """A Cloud Functions CloudEvent target's body: returns when the message may be
        acked, raises :class:`DeliveryNotAcked` (an error answer: redeliver) otherwise."""
        outcome = self.handle_raw(from_cloud_event, cloud_event)
        if not outcome.ack:
            event_id = None
            try:
                event_id = from_cloud_event(cloud_event).event_id
            except PoisonMessage:
                pass
            raise DeliveryNotAcked(outcome, event_id)
        return outcome

    def pull(
        self,
        subscriber: Any,
        subscription: str,
        *,
        max_messages: int = 10,
        timeout_s: float = PULL_TIMEOUT_S,
    ) -> list[Outcome]:
        """One synchronous pull from ``subscription`` (a full path); acks what was handled,
        nacks the rest (ack deadline 0: redelivered at once)."""
        from .pubsub_admin import google_errors, unavailable

        try:
            answer = subscriber.pull(
                request={"subscription": subscription, "max_messages": max_messages},
                timeout=timeout_s,
            )
        except google_errors() as exc:
            if type(exc).__name__ == "DeadlineExceeded":
                return []  # nothing arrived in time
            raise unavailable("Pull", exc) from exc
        outcomes: list[Outcome] = []
        acks: list[str] = []
        nacks: list[str] = []
        for received in answer.received_messages:
            outcome = self.handle_raw(from_received, received)
            outcomes.append(outcome)
            (acks if outcome.ack else nacks).append(received.ack_id)
        try:
            if acks:
                subscriber.acknowledge(
                    request={"subscription": subscription, "ack_ids": acks}, timeout=timeout_s
                )
            if nacks:
                subscriber.modify_ack_deadline(
                    request={
                        "subscription": subscription,
                        "ack_ids": nacks,
                        "ack_deadline_seconds": 0,
                    },
                    timeout=timeout_s,
                )
        except google_errors() as exc:
            # unacked messages come back after their deadline: handled ones are then duplicates
            raise unavailable("Acknowledge", exc) from exc
        return outcomes
