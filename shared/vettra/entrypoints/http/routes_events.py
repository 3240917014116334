"""``GET /api/events``: the caller's action events as server-sent events (WHATWG HTML §9.2).

Local mode only (docs/architecture.md flow 6): the cloud dashboard listens to Firestore, so the
route's group has no Cloud Functions target. Wire format, one block per event::

    id: 1718000000000042
    event: action
    data: {"type":"action.created","action_id":"act_…","status":"pending",…}

plus ``: keep-alive`` comments every ``events_heartbeat_s`` seconds (default 15) and
``event: reset`` when the client must re-fetch ``/api/actions/pending``. See
docs/events.md.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

from ...domain.errors import BadQuery
from ...domain.identity import DECIDERS, Principal
from ...services import event_streams
from ...services.event_streams import EVENT_TYPES, EventHub, HubLimits, Opening
from . import schemas
from .app import Context, Route
from .schemas import nullable, obj, string
from .types import Request, Response

GROUP = "events"  # no Cloud Functions target serves it: a stream cannot be buffered
EVENT_STREAM_TYPE = "text/event-stream"
HEARTBEAT_S = 15.0
RETRY_MS = 3000
EVENT_NAME = "action"
RESET_NAME = "reset"
REFETCH = "/api/actions/pending"
KEEP_ALIVE = b": keep-alive\n\n"
_HEADERS = {
    "Content-Type": EVENT_STREAM_TYPE,
    "Cache-Control": "no-store",
    "X-Accel-Buffering": "no",
    "X-Content-Type-Options": "nosniff",
}

EVENT_STREAM = schemas.register(
    "EVENT_STREAM",
    string(
        description="text/event-stream (WHATWG HTML §9.2). Blocks: `id:` (per-user, increasing), "
        "`event: action` with `data:` an ACTION_EVENT; `event: reset` with `data:` an "
        "EVENT_RESET (re-fetch /api/actions/pending); `: keep-alive` comments. "
        "Send Last-Event-ID to resume; see docs/events.md."
    ),
)

ACTION_EVENT = schemas.register(
    "ACTION_EVENT",
    obj(
        {
            "type": string(enum=list(EVENT_TYPES)),
            "action_id": string(),
            "status": schemas.STATUS,
            "tenant": string(),
            "user": string(),
        },
        {
            "risk_level": nullable("string", enum=["LOW", "MEDIUM", "HIGH", None]),
            "tool": nullable("string"),
        },
        closed=True,
        description="The data of an `event: action` block.",
    ),
)

EVENT_RESET = schemas.register(
    "EVENT_RESET",
    obj(
        {
            "type": {"const": RESET_NAME},
            "reason": string(enum=[event_streams.RESET_UNKNOWN_ID, event_streams.RESET_OVERFLOW]),
            "refetch": string(),
        },
        description="The data of an `event: reset` block: events may have been missed.",
    ),
)

_HUB_LOCK = threading.Lock()


def hub_of(deps: Any) -> EventHub:
    """The runtime's hub (:attr:`Deps.event_hub`), made on the first stream so that limits
    set in ``deps.settings`` (``events_*``) after boot still apply; it lives and goes
    with its runtime, never in a module-level registry."""
    with _HUB_LOCK:
        if deps.event_hub is None:
            deps.event_hub = EventHub(deps.bus, HubLimits.from_settings(deps.settings))
        hub: EventHub = deps.event_hub
        return hub


_TYPE_ALT = "(" + "|".join(t.replace(".", "\\.") for t in EVENT_TYPES) + ")"
TYPES_PARAM = string(pattern=f"^ *{_TYPE_ALT} *(, *{_TYPE_ALT} *)*$")


def _types(raw: str | None) -> tuple[str, ...]:
    if raw is None:
        return EVENT_TYPES
    names = [name.strip(" ") for name in raw.split(",")]  # spaces only, as TYPES_PARAM says
    unknown = [name for name in names if name not in EVENT_TYPES]
    if unknown:
        raise BadQuery(
            f"query parameter 'types': expected a comma-separated list of "
            f"{', '.join(EVENT_TYPES)}; found {', '.join(repr(n[:40]) for n in unknown[:5])}"
        )
    return tuple(names)


def _block(event_id: int, name: str, data: dict[str, Any]) -> bytes:
    # ensure_ascii: JSON then holds no CR, LF or U+2028 that could split a data line
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    return f"id: {event_id}\nevent: {name}\ndata: {payload}\n\n".encode()


def _reset(event_id: int, reason: str) -> bytes:
    return _block(event_id, RESET_NAME, {"type": RESET_NAME, "reason": reason, "refetch": REFETCH})


class EventStream:
    """The response body: an async iterator of SSE blocks until the client goes away,
    the subscription overflows or the server stops.

    It waits on the event loop (the bus wakes it from the publisher's thread through
    ``Subscription.notify``), so an open stream holds no thread. ``aclose()``
    releases the subscription even if iteration never started, so the server
    calls it always.
    """

    def __init__(self, hub: EventHub, opening: Opening, heartbeat_s: float, ctx: Context):
        self._hub, self._opening, self._heartbeat_s, self._ctx = hub, opening, heartbeat_s, ctx
        self._ready = asyncio.Event()
        opening.subscription.notify = ctx.waker(self._ready)
        self._chunks = self._generate()

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        return await self._chunks.__anext__()

    async def aclose(self) -> None:
        try:
            await self._chunks.aclose()
        finally:
            self._opening.subscription.notify = None
            self._hub.close(self._opening.subscription)

    async def _generate(self) -> AsyncGenerator[bytes, None]:
        opening, subscription = self._opening, self._opening.subscription
        if opening.reset:
            yield f"retry: {RETRY_MS}\n\n".encode() + _reset(
                opening.cursor, event_streams.RESET_UNKNOWN_ID
            )
        elif opening.replay:
            yield f"retry: {RETRY_MS}\n\n".encode()
            for replayed in opening.replay:
                yield _block(replayed.id, EVENT_NAME, dict(replayed.data))
        else:  # an id-only block sets the client's resume point without dispatching (§9.2.6)
            yield f"retry: {RETRY_MS}\nid: {opening.cursor}\n\n".encode()
        stopping = self._ctx.stopping
        while not stopping.is_set():
            event = await subscription.next_async(self._heartbeat_s, self._ready, stopping)
            if subscription.overflowed:
                yield _reset(subscription.dropped_at, event_streams.RESET_OVERFLOW)
                return
            if event is not None:
                yield _block(event.id, EVENT_NAME, dict(event.data))
            elif not stopping.is_set():
                yield KEEP_ALIVE  # also how a vanished client is noticed: the write fails


async def events(
    deps: Any, request: Request, principal: Principal | None, ctx: Context
) -> Response:
    assert principal is not None
    types = _types(request.query_value("types"))
    hub = hub_of(deps)
    opening = hub.open(principal.tenant, principal.user, types, request.header("last-event-id"))
    heartbeat_s = float(deps.settings.get("events_heartbeat_s", HEARTBEAT_S))
    return Response(200, EventStream(hub, opening, heartbeat_s, ctx), dict(_HEADERS))


EVENT_ROUTES: list[Route] = [
    Route(
        "GET",
        "/api/events",
        events,
        DECIDERS,
        "The caller's action events as server-sent events (local mode); Last-Event-ID resumes",
        "streamEvents",
        GROUP,
        response="EVENT_STREAM",
        media_type=EVENT_STREAM_TYPE,
        query=(("types", TYPES_PARAM, "Comma-separated subset of action.created,action.decided"),),
        errors=(429,),
    ),
]
