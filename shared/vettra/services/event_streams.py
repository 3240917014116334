"""Live action events for the local dashboard (docs/architecture.md flow 6, local mode).

One :class:`EventHub` per event bus fans the ``actions`` topic out to open
streams (server-sent events, WHATWG HTML §9.2). Everything it holds is bounded:

* a ring of the last ``ring_size`` events per user, so a client reconnecting with
  ``Last-Event-ID`` gets what it missed (§9.2.4) or, if that fell off the ring,
  a *reset* telling it to re-fetch its pending actions;
* a queue of ``queue_size`` events per stream: a consumer that falls that far
  behind is dropped with a reset instead of growing memory;
* ``max_streams`` concurrent streams per user (429 beyond).

Ids are per user and increase by one per event. They start at the hub's start
time in microseconds, so an id from an earlier process (or from before the hub
went idle) is below every id of this one and is recognised as unknown.

The hub listens to the bus only while streams are open, plus ``linger_s`` after
the last one closes so a browser's automatic reconnect can still replay; after
that it unsubscribes and forgets, as if the process had restarted.

An event may reach the hub twice: over a shared store the bus also relays the
changes other processes make (vettra.services.relay_bus), and this process's own
changes come back that way too. The hub is idempotent by ``(action_id, type,
status)`` — an action enters each of those once — and, for a quorum vote
(``action.voted``), by the number of approvals so far, remembering the last
:data:`SEEN_SIZE` of them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..domain.errors import TooManyRequests
from ..ports import EventBus
from .action_events import ACTION_CREATED, ACTION_DECIDED, ACTION_VOTED, ACTIONS_TOPIC

EVENT_TYPES = (ACTION_CREATED, ACTION_DECIDED, ACTION_VOTED)
#: The only members of a bus event a stream carries: never arguments, never secrets.
PUBLIC_FIELDS = ("type", "action_id", "status", "tenant", "user", "risk_level", "tool")
RING_SIZE = 1000
QUEUE_SIZE = 1000
MAX_STREAMS_PER_USER = 10
LINGER_S = 60.0
RETRY_AFTER_S = 5
RESET_UNKNOWN_ID = "last-event-id-unknown"
RESET_OVERFLOW = "overflow"
SEEN_SIZE = 10_000

UserKey = tuple[str, str]  # (tenant, user)


@dataclass(frozen=True)
class StreamEvent:
    id: int
    data: Mapping[str, Any]


class Subscription:
    """One open stream's bounded queue; filled by the publisher, drained by the writer."""

    def __init__(self, key: UserKey, types: frozenset[str], limit: int):
        self.key = key
        self.types = types
        self._limit = limit
        self._items: deque[StreamEvent] = deque()
        self._ready = threading.Condition()
        self.overflowed = False
        self.dropped_at = 0  # the id that did not fit: a reset resumes from there
        #: Called (in the publisher's thread) whenever an event or an overflow arrives:
        #: an asyncio reader sets it to a ``call_soon_threadsafe`` wake-up of its loop.
        self.notify: Callable[[], None] | None = None

    def offer(self, event: StreamEvent) -> bool:
        """Queue ``event``; False (and the subscription is spent) if the queue is full."""
        with self._ready:
            if len(self._items) >= self._limit:
                self.overflowed = True
                self.dropped_at = event.id
                self._items.clear()  # free the backlog now; the client re-fetches instead
                self._ready.notify_all()
                accepted = False
            else:
                self._items.append(event)
                self._ready.notify_all()
                accepted = True
        if self.notify is not None:
            self.notify()
        return accepted

    def poll(self) -> StreamEvent | None:
        """The next queued event without waiting (None if none, or after an overflow)."""
        with self._ready:
            return self._items.popleft() if self._items and not self.overflowed else None

    async def next_async(
        self, timeout: float, ready: Any, stopping: Any = None
    ) -> StreamEvent | None:
        """Like :meth:`next` on an event loop: ``ready`` is an ``asyncio.Event`` that
        ``notify`` sets; returns None after ``timeout`` s, on overflow, or once ``stopping``."""
        import asyncio

        ready.clear()  # cleared before the check: a notify after it sets it again
        event = self.poll()
        if event is not None or self.overflowed:
            return event
        waiters = [asyncio.ensure_future(ready.wait())]
        if stopping is not None:
            waiters.append(asyncio.ensure_future(stopping.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return self.poll()

    def next(self, timeout: float) -> StreamEvent | None:
        """The next queued event, or None after ``timeout`` seconds (or on overflow)."""
        with self._ready:
            if not self._items and not self.overflowed:
                self._ready.wait(timeout)
            return self._items.popleft() if self._items and not self.overflowed else None


@dataclass(frozen=True)
class Opening:
    """What a new stream starts with: its subscription, the replay, and where it stands."""

    subscription: Subscription
    replay: list[StreamEvent]
    cursor: int  # the user's latest event id when the stream opened
    reset: bool  # Last-Event-ID was unknown or too old: the client must re-fetch


@dataclass(frozen=True, kw_only=True)
class HubLimits:
    """How much a hub holds (the module docstring says what each bound is for)."""

    ring_size: int = RING_SIZE
    queue_size: int = QUEUE_SIZE
    max_streams: int = MAX_STREAMS_PER_USER
    linger_s: float = LINGER_S

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> HubLimits:
        """The limits a runtime's ``events_*`` settings name; the defaults for the rest."""
        default = cls()
        return cls(
            ring_size=int(settings.get("events_ring_size", default.ring_size)),
            queue_size=int(settings.get("events_queue_size", default.queue_size)),
            max_streams=int(settings.get("events_max_streams", default.max_streams)),
            linger_s=float(settings.get("events_linger_s", default.linger_s)),
        )


class EventHub:
    def __init__(
        self,
        bus: EventBus,
        limits: HubLimits = HubLimits(),
        now_us: Callable[[], int] = lambda: time.time_ns() // 1000,
    ):
        self._bus = bus
        self.limits = limits
        self._now_us = now_us
        self._lock = threading.Lock()
        self._subs: dict[UserKey, list[Subscription]] = {}
        self._rings: dict[UserKey, deque[StreamEvent]] = {}
        self._last_id: dict[UserKey, int] = {}
        self._base = 0
        self._unsubscribe: Callable[[], None] | None = None
        self._idle: threading.Timer | None = None
        self._seen: OrderedDict[tuple[str, str, str, int], None] = OrderedDict()

    # -- streams ----------------------------------------------------------------------------

    def open(
        self,
        tenant: str,
        user: str,
        types: Iterable[str] = EVENT_TYPES,
        last_event_id: str | None = None,
    ) -> Opening:
        """Register a stream for ``(tenant, user)`` and compute its replay atomically, so no
        event is lost or doubled between the two. Raises :class:`TooManyRequests` past the cap."""
        key = (tenant, user)
        with self._lock:
            open_now = len(self._subs.get(key, ()))
            if open_now >= self.limits.max_streams:
                raise TooManyRequests(
                    f"{open_now} event streams are open for this user; "
                    f"the limit is {self.limits.max_streams}",
                    retry_after=RETRY_AFTER_S,
                )
            self._listen()
            subscription = Subscription(key, frozenset(types), self.limits.queue_size)
            self._subs.setdefault(key, []).append(subscription)
            cursor = self._last_id.get(key, self._base)
            replay, reset = self._replay(key, cursor, last_event_id, subscription.types)
        return Opening(subscription, replay, cursor, reset)

    def close(self, subscription: Subscription) -> None:
        """Forget a stream (idempotent); when none remain, stop listening after the linger."""
        with self._lock:
            subs = self._subs.get(subscription.key, [])
            if subscription in subs:
                subs.remove(subscription)
            if not subs:
                self._subs.pop(subscription.key, None)
            if not self._subs and self._unsubscribe is not None and self._idle is None:
                self._idle = threading.Timer(self.limits.linger_s, self._stop_if_idle)
                self._idle.daemon = True
                self._idle.start()

    def stream_count(self, tenant: str | None = None, user: str | None = None) -> int:
        with self._lock:
            if tenant is None:
                return sum(len(s) for s in self._subs.values())
            return len(self._subs.get((tenant, user or ""), []))

    @property
    def listening(self) -> bool:
        return self._unsubscribe is not None

    # -- inside the lock --------------------------------------------------------------------

    def _listen(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None
        if self._unsubscribe is None:
            # A fresh id space: nothing recorded while we were not listening can be replayed.
            self._base = max(self._now_us(), max(self._last_id.values(), default=0) + 1)
            self._rings.clear()
            self._last_id.clear()
            self._unsubscribe = self._bus.subscribe(ACTIONS_TOPIC, self._record)

    def _replay(
        self, key: UserKey, cursor: int, last_event_id: str | None, types: frozenset[str]
    ) -> tuple[list[StreamEvent], bool]:
        if last_event_id is None:
            return [], False
        raw = last_event_id.strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 20):
            return [], True
        after = int(raw)
        ring = self._rings.get(key, deque())
        oldest = ring[0].id if ring else cursor + 1
        if after > cursor or after < self._base or after < oldest - 1:
            return [], True
        return [e for e in ring if e.id > after and e.data["type"] in types], False

    def _stop_if_idle(self) -> None:
        with self._lock:
            if self._subs or self._unsubscribe is None:
                return
            self._unsubscribe()
            self._unsubscribe = None
            self._idle = None
            self._rings.clear()

    # -- the publisher's thread -------------------------------------------------------------

    def _record(self, event: Mapping[str, Any]) -> None:
        if event.get("type") not in EVENT_TYPES:
            return  # only the documented shapes go out on the wire
        tenant = str(event.get("tenant"))
        # The owner, and the named approvers of a quorum action (they decide it too).
        recipients = dict.fromkeys(
            [str(event.get("user")), *map(str, event.get("approvers") or ())]
        )
        data = {name: event.get(name) for name in PUBLIC_FIELDS}
        identity = (
            str(event.get("action_id")),
            str(event.get("type")),
            str(event.get("status")),
            len(event.get("approvals") or ()),  # each vote of a quorum is news
        )
        with self._lock:
            if identity in self._seen:
                return  # the same change again (relayed from the store): delivered once
            self._seen[identity] = None
            if len(self._seen) > SEEN_SIZE:
                self._seen.popitem(last=False)
            for user in recipients:
                self._deliver((tenant, user), data)

    def _deliver(self, key: UserKey, data: dict[str, Any]) -> None:
        event_id = self._last_id.get(key, self._base) + 1
        self._last_id[key] = event_id
        recorded = StreamEvent(event_id, data)
        self._rings.setdefault(key, deque(maxlen=self.limits.ring_size)).append(recorded)
        subs = self._subs.get(key, [])
        for subscription in list(subs):
            if data["type"] in subscription.types and not subscription.offer(recorded):
                subs.remove(subscription)  # dropped: its writer sends the reset and ends
        if not subs:
            self._subs.pop(key, None)
