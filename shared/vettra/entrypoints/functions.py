"""Cloud Functions targets: the same ASGI app (:mod:`vettra.entrypoints.asgi`) under
``functions_framework.aio``, each restricted to its route group (``Route.group``).

A target's handler returns a response that *is* the ASGI app run on the
request's own scope and body stream, so the cloud serves exactly what ``vettra
dev`` serves: the same limits, parsing checks, problem+json and logging. The
runtime is built lazily on the first request, once per instance, so a cold start
pays only for what it uses, and never at import. A build that fails (Firestore
unreachable, a mounted secret missing) answers that request 503 problem+json with
``Retry-After`` and a trace id, logs one line naming the cause, and is tried again
by the next request. With ``VETTRA_BACKEND=firestore``
instances share state only through Firestore (no home store, no home lock).

``sequence`` is the Pub/Sub-triggered target: each message names a chain that has
new outbox events (``{"chain": …}``, published after the commit); it drains that
chain under the chain's lease (:meth:`FirestoreSequencer.drain_paced`).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Mapping
from typing import Any

from .asgi import AsgiApp

log = logging.getLogger("vettra.functions")
MAX_CHAIN_LENGTH = 500

_runtime: Any = None
_lock = threading.Lock()
_apps: dict[str, AsgiApp] = {}


def runtime() -> Any:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                from .. import logs
                from ..bootstrap import FUNCTIONS, Config, bootstrap

                try:
                    config = Config.from_env()
                except Exception:
                    logs.configure()  # so that the 503's log line is JSON too
                    raise
                config.host = FUNCTIONS
                logs.configure(config.log_level)
                built = bootstrap(config)
                built.start()
                _runtime = built
    return _runtime


def asgi_app(group: str) -> AsgiApp:
    """The ASGI app of one target (one per group, sharing the lazy runtime)."""
    with _lock:
        app = _apps.get(group)
        if app is None:
            app = _apps[group] = AsgiApp(lambda: runtime().app, group=group)
        return app


class _Served:
    """A Starlette-compatible response (an ASGI callable) that runs our app on the request."""

    def __init__(self, app: AsgiApp):
        self.app = app
        self.background = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


def serve(request: Any, group: str) -> _Served:
    """What an ``@functions_framework.aio.http`` target returns for ``request``."""
    return _Served(asgi_app(group))


class BadSequenceMessage(ValueError):
    """A sequence message that can never succeed: raised, so Pub/Sub redelivers it a few
    times and then moves it to the dead-letter topic, where it stays as evidence."""


def sequence_chain(data: Any) -> str:
    """The chain named by a Pub/Sub push CloudEvent's data (``message.data`` is base64 of
    ``{"chain": "<tenant>"}``); :class:`BadSequenceMessage` for anything else."""
    message = data.get("message") if isinstance(data, Mapping) else None
    raw = message.get("data") if isinstance(message, Mapping) else None
    if not isinstance(raw, str):
        raise BadSequenceMessage("expected a Pub/Sub message with base64 data")
    try:
        body = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        raise BadSequenceMessage("the message data is not base64 of a JSON object") from None
    chain = body.get("chain") if isinstance(body, dict) else None
    if not isinstance(chain, str) or not 0 < len(chain) <= MAX_CHAIN_LENGTH:
        raise BadSequenceMessage(f"expected {{'chain': <1..{MAX_CHAIN_LENGTH} characters>}}")
    return chain


def sequence(cloud_event: Any) -> int:
    """What the ``sequence`` target runs for one message; returns how many events it linked.

    Redelivery-safe: a message for a chain already drained finds nothing and links
    nothing. A message arriving while another instance drains waits for the lease;
    if it stays taken the error makes Pub/Sub deliver the message again later.
    """
    chain = sequence_chain(getattr(cloud_event, "data", None))
    store = runtime().deps.store
    if not hasattr(store, "sequencer"):
        raise RuntimeError("the sequence target needs VETTRA_BACKEND=firestore")
    linked: int = store.sequencer(chain, pace_s=1.0).drain_paced()
    log.info("sequenced", extra={"chain": chain, "events": linked})
    return linked


def reset() -> None:
    """Forget the runtime and the apps (tests: a fresh home per test)."""
    global _runtime
    with _lock:
        for app in _apps.values():
            app.close()
        _apps.clear()
        built, _runtime = _runtime, None
    if built is not None:
        built.close()
