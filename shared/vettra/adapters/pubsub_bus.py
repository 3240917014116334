"""The :class:`~vettra.ports.EventBus` port on Google Cloud Pub/Sub (docs/pubsub.md).

Two audiences read the bus, so :class:`PubSubEventBus` delivers twice:

* **In this process, at once.** Every event goes first to an in-process bus
  (:class:`~vettra.adapters.memory_bus.InProcessEventBus`), synchronously in the
  publisher's thread, exactly as on the embedded default: long-polls
  (``GET /api/actions/{id}?wait=``) and event streams wake on it.
  :meth:`subscribe` is that bus's subscribe; nothing is read back from Pub/Sub.
* **To other consumers, later.** Events on a *routed* topic are also queued for
  Pub/Sub: the ``actions`` topic (decision events: created, voted, decided) goes
  to ``VETTRA_EVENTS_TOPIC``, unordered (an ordering key per action would give
  every message a batch of its own: 10x slower to flush, measured), and
  :data:`SEQUENCE_TOPIC` (``{"chain": ...}``: "this chain has new outbox events")
  to ``VETTRA_SEQUENCE_TOPIC`` with ordering key = the chain. The per-action
  topics (``action.<id>``) stay local: they only wake waiters in this process.

Publishing never blocks or fails a request. The request thread only puts the
encoded message on a bounded queue (:attr:`PubSubEventBus.stats` counts what
a full queue drops); one daemon thread builds the client (lazily, on the first
routed event: never at import or construction), hands messages to the
library's batching publisher (flow-controlled: it blocks that thread, not
requests, when ``max_in_flight`` messages are unanswered), tries transient
failures again a bounded number of times, and logs what still fails.
A lost event is not lost state: the store committed first, the outbox is the
audit record, and a lost sequencer trigger is recovered by the sequencer's
periodic sweep. :meth:`PubSubEventBus.close` flushes what is queued.

Each message carries a stable ``event_id`` attribute (the consumers' dedupe
key, docs/pubsub.md §Idempotency): the event's own ``event_id`` member when it
has one, else, on content-identified routes (decision events), a digest of the
topic and the event, so publishing the same event twice gives the same id;
otherwise a random id fixed at publish time.

No google exception leaves this module; google imports are local to the worker.
"""

from __future__ import annotations

import atexit
import hashlib
import heapq
import json
import logging
import queue
import random
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..ports import EventBus
from .memory_bus import InProcessEventBus

log = logging.getLogger("vettra.pubsub")

#: Defaults of the env vars VETTRA_EVENTS_TOPIC / VETTRA_SEQUENCE_TOPIC.
DEFAULT_EVENTS_TOPIC = "vettra-events"
DEFAULT_SEQUENCE_TOPIC = "vettra-sequence"
#: The local topic of decision events (services.action_events.ACTIONS_TOPIC).
ACTIONS_TOPIC = "actions"
#: The local topic of sequencer triggers: event ``{"chain": ..., "event_id"?: ...}``.
SEQUENCE_TOPIC = "audit.sequence"
EVENT_ID_ATTRIBUTE = "event_id"
#: An event id is also a Firestore document id and a Pub/Sub attribute value.
EVENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
#: Pub/Sub topic ids: 3-255 chars, a letter first (https://cloud.google.com/pubsub/docs/pubsub-basics#resource_names).
TOPIC_ID_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")
#: Attribute values are at most 1024 bytes; longer optional attributes are left out.
_MAX_ATTRIBUTE_BYTES = 1024
#: Our events are tiny; anything near Pub/Sub's 10 MB limit is a bug, dropped and logged.
MAX_MESSAGE_BYTES = 1_000_000
#: Optional attributes copied from the event (subscription filters can select on them).
_COPIED_ATTRIBUTES = ("type", "tenant")

MAX_QUEUE = 10_000
MAX_IN_FLIGHT = 1_000
BATCH_MAX_MESSAGES = 100
BATCH_MAX_LATENCY_S = 0.01
#: One publish RPC's deadline, and how many attempts a transient failure gets in all.
PUBLISH_TIMEOUT_S = 10.0
MAX_ATTEMPTS = 3
RETRY_INITIAL_S = 0.5
#: After the client could not be built, messages are dropped for this long before trying again.
CLIENT_RETRY_S = 30.0
#: At most one failure log line per interval (with the count suppressed meanwhile).
LOG_INTERVAL_S = 10.0
CLOSE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TopicRoute:
    """Where a local topic's events go in Pub/Sub.

    ``ordering_field`` names the event member used as ordering key (none: unordered).
    ``content_ids``: events without an ``event_id`` get a digest of their content
    (publishing one event twice is one event to consumers); otherwise a random id.
    """

    topic_id: str
    ordering_field: str | None = None
    content_ids: bool = False

    def __post_init__(self) -> None:
        if not TOPIC_ID_PATTERN.match(self.topic_id) or self.topic_id.startswith("goog"):
            raise ValueError(f"not a Pub/Sub topic id: {self.topic_id!r}")


def default_routes(
    events_topic: str = DEFAULT_EVENTS_TOPIC, sequence_topic: str = DEFAULT_SEQUENCE_TOPIC
) -> dict[str, TopicRoute]:
    return {
        ACTIONS_TOPIC: TopicRoute(events_topic, content_ids=True),
        SEQUENCE_TOPIC: TopicRoute(sequence_topic, ordering_field="chain"),
    }


@dataclass(frozen=True)
class OutgoingMessage:
    """One Pub/Sub message, encoded in the request thread (so a bad event fails there, logged)."""

    topic_id: str
    data: bytes
    attributes: dict[str, str]
    ordering_key: str

    @property
    def event_id(self) -> str:
        return self.attributes[EVENT_ID_ATTRIBUTE]


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def event_id_for(topic: str, event: Mapping[str, Any], route: TopicRoute) -> str:
    """The message's ``event_id`` (module docstring); raises ValueError for a malformed one."""
    given = event.get(EVENT_ID_ATTRIBUTE)
    if given is not None:
        if not isinstance(given, str) or not EVENT_ID_PATTERN.match(given):
            raise ValueError("event_id must match " + EVENT_ID_PATTERN.pattern)
        return given
    if route.content_ids:
        body = {k: v for k, v in event.items() if k != EVENT_ID_ATTRIBUTE}
        return "ev_" + hashlib.sha256(topic.encode() + b"\n" + _canonical(body)).hexdigest()[:32]
    return "ev_" + secrets.token_hex(16)


def encode(topic: str, event: Mapping[str, Any], route: TopicRoute) -> OutgoingMessage:
    """Data = the event as compact JSON without ``event_id``; ``event_id`` (and the
    event's ``type``/``tenant``) as attributes; the ordering key from ``route``."""
    event_id = event_id_for(topic, event, route)
    data = _canonical({k: v for k, v in event.items() if k != EVENT_ID_ATTRIBUTE})
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"event of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    attributes = {EVENT_ID_ATTRIBUTE: event_id}
    for name in _COPIED_ATTRIBUTES:
        value = event.get(name)
        if isinstance(value, str) and value and len(value.encode()) <= _MAX_ATTRIBUTE_BYTES:
            attributes[name] = value
    ordering_key = ""
    if route.ordering_field is not None:
        key = event.get(route.ordering_field)
        if not isinstance(key, str) or not key:
            raise ValueError(f"event lacks its ordering key {route.ordering_field!r}")
        if len(key.encode()) > _MAX_ATTRIBUTE_BYTES:
            raise ValueError("ordering key longer than 1024 bytes")
        ordering_key = key
    return OutgoingMessage(route.topic_id, data, attributes, ordering_key)


@dataclass
class PublishStats:
    """Counters since construction (for tests, health output and operators)."""

    queued: int = 0  # accepted for Pub/Sub
    sent: int = 0  # Pub/Sub answered with a message id
    failed: int = 0  # the publish failed (after the library's retries)
    dropped: int = 0  # never sent: queue full, bad event, no client, or bus closed
    last_error: str = ""  # the kind of the last failure (never its message)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, name: str, error: BaseException | None = None) -> None:
        """Add one to counter ``name`` (from any thread)."""
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)
            if error is not None:
                self.last_error = type(error).__name__

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {k: v for k, v in vars(self).items() if not k.startswith("_")}


class _Throttled:
    """Log a recurring failure at most once per interval, with the count of the ones held back."""

    def __init__(self, interval_s: float):
        self._interval = interval_s
        self._next = 0.0
        self._held = 0
        self._lock = threading.Lock()

    def warning(self, message: str, **extra: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                self._held += 1
                return
            held, self._held, self._next = self._held, 0, now + self._interval
        log.warning(message, extra={**extra, "suppressed_since_last": held})


_STOP = object()


@dataclass(order=True)
class _Retry:
    """A message to publish again at ``due`` (``time.monotonic()``), its ``attempt``-th try."""

    due: float
    attempt: int = field(compare=False)
    message: OutgoingMessage = field(compare=False)


@dataclass
class _Tracking:
    pending: int = 0  # queued + in flight + waiting to retry: what flush() waits for
    cond: threading.Condition = field(default_factory=threading.Condition)


class PubSubEventBus(EventBus):
    """Local delivery now, Pub/Sub delivery for routed topics soon after (module docstring).

    ``publisher_factory`` builds the client (default: a ``pubsub_v1.PublisherClient``
    with batching, flow control and message ordering; it honours
    ``PUBSUB_EMULATOR_HOST``). ``local`` is the in-process bus local subscribers use.

    Each publish is one RPC attempt of at most ``publish_timeout_s``; a transient
    failure is tried again, up to ``max_attempts`` in all, after a doubling backoff
    from ``retry_initial_s``. (The library's own retry cannot be bounded once message
    ordering is on: it retries forever, holding a flow-control slot per message.)
    """

    def __init__(
        self,
        project: str,
        *,
        events_topic: str = DEFAULT_EVENTS_TOPIC,
        sequence_topic: str = DEFAULT_SEQUENCE_TOPIC,
        routes: Mapping[str, TopicRoute] | None = None,
        local: EventBus | None = None,
        publisher_factory: Callable[[], Any] | None = None,
        max_queue: int = MAX_QUEUE,
        max_in_flight: int = MAX_IN_FLIGHT,
        batch_max_messages: int = BATCH_MAX_MESSAGES,
        batch_max_latency_s: float = BATCH_MAX_LATENCY_S,
        publish_timeout_s: float = PUBLISH_TIMEOUT_S,
        max_attempts: int = MAX_ATTEMPTS,
        retry_initial_s: float = RETRY_INITIAL_S,
        client_retry_s: float = CLIENT_RETRY_S,
        log_interval_s: float = LOG_INTERVAL_S,
    ):
        if not project or "/" in project:
            raise ValueError(f"project must be a non-empty id without '/', found {project!r}")
        if max_queue < 1 or max_in_flight < 1 or max_attempts < 1:
            raise ValueError("max_queue, max_in_flight and max_attempts must be positive")
        self.project = project
        self.routes = dict(
            routes if routes is not None else default_routes(events_topic, sequence_topic)
        )
        self.local = local or InProcessEventBus()
        self.stats = PublishStats()
        self._factory = publisher_factory or (
            lambda: _default_publisher(max_in_flight, batch_max_messages, batch_max_latency_s)
        )
        self._publish_timeout_s = publish_timeout_s
        self._max_attempts, self._retry_initial_s = max_attempts, retry_initial_s
        self._client_retry_s = client_retry_s
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._track = _Tracking()
        self._client: Any = None
        self._client_failed_at: float | None = None
        self._worker: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False  # no new messages (close() was called)
        self._stopped = False  # no more retries (the worker is done)
        self._failures = _Throttled(log_interval_s)

    # -- port -------------------------------------------------------------------
    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        """Deliver to local subscribers now, then queue for Pub/Sub if ``topic`` is routed.

        Never raises and never waits on the network (module docstring).
        """
        self.local.publish(topic, event)
        route = self.routes.get(topic)
        if route is None:
            return
        try:
            message = encode(topic, event, route)
        except (ValueError, TypeError) as exc:
            self._drop("event not publishable", topic=topic, error=str(exc))
            return
        self._enqueue(message, topic)

    def subscribe(
        self, topic: str, handler: Callable[[Mapping[str, Any]], None]
    ) -> Callable[[], None]:
        """Local subscribers only: this process's events, delivered synchronously."""
        return self.local.subscribe(topic, handler)

    # -- the sequencer trigger --------------------------------------------------------
    def trigger_sequence(self, chain: str, *, event_id: str | None = None) -> None:
        """Tell the sequencer that ``chain`` has new outbox events (after the commit).

        ``event_id`` should name what caused it (the outbox event id), so a retried
        trigger for the same commit is one event to the consumer.
        """
        event: dict[str, Any] = {"chain": chain}
        if event_id is not None:
            event[EVENT_ID_ATTRIBUTE] = event_id
        self.publish(SEQUENCE_TOPIC, event)

    # -- lifecycle --------------------------------------------------------------------
    def flush(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Wait until everything queued so far was answered (or given up);
        ``False`` on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._track.cond:
            while self._track.pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._track.cond.wait(left)
        return True

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Send what is queued (waiting up to ``timeout_s``), then stop; later events
        reach local subscribers only. ``False`` if messages were still unanswered."""
        with self._start_lock:
            if self._closed:
                return True
            self._closed = True
            worker = self._worker
        atexit.unregister(self.close)
        if worker is None:
            return True
        deadline = time.monotonic() + timeout_s
        flushed = self.flush(timeout_s)
        try:
            self._queue.put(_STOP, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:
            pass
        worker.join(max(0.0, deadline - time.monotonic()))
        if not flushed:
            with self._track.cond:
                left = self._track.pending
            log.warning(
                "Pub/Sub publisher closed with messages unanswered", extra={"unanswered": left}
            )
        return flushed

    # -- internals: the request thread's side -------------------------------------------
    def _drop(self, why: str, **extra: Any) -> None:
        self.stats.count("dropped")
        self._failures.warning(f"Pub/Sub message dropped: {why}", **extra)

    def _enqueue(self, message: OutgoingMessage, topic: str) -> None:
        if self._closed:
            self._drop("bus closed", topic=topic, event_id=message.event_id)
            return
        self._ensure_worker()
        with self._track.cond:
            self._track.pending += 1
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self._settle()
            self._drop("queue full", topic=topic, event_id=message.event_id)
            return
        self.stats.count("queued")

    def _settle(self) -> None:
        with self._track.cond:
            self._track.pending -= 1
            if not self._track.pending:
                self._track.cond.notify_all()

    def _ensure_worker(self) -> None:
        if self._worker is not None:
            return
        with self._start_lock:
            if self._worker is None and not self._closed:
                worker = threading.Thread(target=self._run, name="vettra-pubsub", daemon=True)
                worker.start()
                self._worker = worker
                atexit.register(self.close)

    # -- internals: the worker thread ----------------------------------------------------
    def _run(self) -> None:
        retries: list[_Retry] = []  # a heap by due time; only this thread touches it
        while True:
            wait = max(0.0, retries[0].due - time.monotonic()) if retries else None
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                item = None
            if item is _STOP:
                break
            if isinstance(item, _Retry):
                heapq.heappush(retries, item)
            elif item is not None:
                self._attempt(item, 1)
            while retries and retries[0].due <= time.monotonic():
                due = heapq.heappop(retries)
                self._attempt(due.message, due.attempt)
        self._stopped = True
        # closing: the flush already waited for what it could; the rest is given up
        leftovers: list[Any] = list(retries)
        while True:
            try:
                leftovers.append(self._queue.get_nowait())
            except queue.Empty:
                break
        for left in leftovers:
            message = left.message if isinstance(left, _Retry) else left
            self._settle()
            self._drop("closed before it was sent", event_id=message.event_id)
        client = self._client
        if client is not None:
            try:
                client.stop()
            except Exception:  # noqa: BLE001 - already stopped, or the library refused
                log.debug("publisher stop failed", exc_info=True)

    def _publisher(self) -> Any:
        """The client, built on the first message (retried after ``client_retry_s``)."""
        if self._client is None:
            now = time.monotonic()
            if (
                self._client_failed_at is not None
                and now - self._client_failed_at < self._client_retry_s
            ):
                return None
            try:
                self._client = self._factory()
            except Exception as exc:  # noqa: BLE001 - no credentials, bad endpoint, import error
                self._client_failed_at = now
                self.stats.last_error = type(exc).__name__  # the drop that follows counts it
                log.error(
                    "Pub/Sub publisher could not be created; events go to local "
                    "subscribers only until it can",
                    extra={"error": type(exc).__name__, "retry_in_s": self._client_retry_s},
                )
                return None
        return self._client

    def _attempt(self, message: OutgoingMessage, attempt: int) -> None:
        client = self._publisher()
        if client is None:
            self._settle()
            self._drop("no publisher client", event_id=message.event_id)
            return
        try:
            future = client.publish(
                self._topic_path(message),
                message.data,
                ordering_key=message.ordering_key,
                retry=None,  # one RPC per attempt; this class retries (class docstring)
                timeout=self._publish_timeout_s,
                **message.attributes,
            )
        except Exception as exc:  # noqa: BLE001 - paused ordering key, stopped client, ...
            self._answered(message, attempt, exc)
            return
        future.add_done_callback(lambda done: self._answered(message, attempt, _error(done)))

    def _topic_path(self, message: OutgoingMessage) -> str:
        return f"projects/{self.project}/topics/{message.topic_id}"

    def _answered(
        self, message: OutgoingMessage, attempt: int, error: BaseException | None
    ) -> None:
        """Runs in the library's callback thread (or the worker's, for a refused publish)."""
        if error is None:
            self.stats.count("sent")
            self._settle()
            return
        if message.ordering_key and self._client is not None:
            # a failed publish pauses its ordering key until resumed (the library's rule)
            try:
                self._client.resume_publish(self._topic_path(message), message.ordering_key)
            except Exception:  # noqa: BLE001 - nothing paused, or the client is stopping
                log.debug("resume_publish failed", exc_info=True)
        if attempt < self._max_attempts and not self._stopped and _transient(error):
            delay = self._retry_initial_s * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
            try:
                self._queue.put_nowait(_Retry(time.monotonic() + delay, attempt + 1, message))
                return
            except queue.Full:
                pass
        self.stats.count("failed", error)
        self._failures.warning(
            "Pub/Sub publish failed",
            topic=message.topic_id,
            event_id=message.event_id,
            error=type(error).__name__,
            attempts=attempt,
        )
        self._settle()


def _error(future: Any) -> BaseException | None:
    try:
        error: BaseException | None = future.exception()
    except Exception as exc:  # noqa: BLE001 - cancelled, or the future itself failed
        error = exc
    return error


#: Failures worth another attempt: the service's transient statuses, and the
#: library's refusal of a key paused by an earlier failure of the same key.
_TRANSIENT = {
    "Aborted",
    "DeadlineExceeded",
    "InternalServerError",
    "ResourceExhausted",
    "ServiceUnavailable",
    "Unknown",
    "PublishToPausedOrderingKeyException",
    "TimeoutError",
}


def _transient(error: BaseException) -> bool:
    return type(error).__name__ in _TRANSIENT


def _default_publisher(
    max_in_flight: int, batch_max_messages: int, batch_max_latency_s: float
) -> Any:
    """The library's batching publisher with message ordering on and flow control that
    blocks the worker (never a request) when ``max_in_flight`` messages are unanswered."""
    from google.cloud.pubsub_v1 import PublisherClient
    from google.cloud.pubsub_v1.types import (
        BatchSettings,
        LimitExceededBehavior,
        PublisherOptions,
        PublishFlowControl,
    )

    return PublisherClient(
        batch_settings=BatchSettings(
            max_messages=batch_max_messages, max_latency=batch_max_latency_s
        ),
        publisher_options=PublisherOptions(
            enable_message_ordering=True,
            flow_control=PublishFlowControl(
                message_limit=max_in_flight,
                limit_exceeded_behavior=LimitExceededBehavior.BLOCK,
            ),
        ),
    )
