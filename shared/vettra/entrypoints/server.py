"""``vettra dev``'s HTTP server: uvicorn (h11), in process, one worker, with limits.

The embedded store, timers and event bus live in this process, so there is one
worker and one event loop. The wire protocol is uvicorn's h11 (strict RFC 9112
parsing: a malformed request line or header is a 4xx, never a dropped
connection). Two guards are added on the protocol, not on the HTTP app:

* **connections**: past ``max_connections`` open connections, a new one is
  answered 503 with ``Retry-After`` (problem+json) and closed;
* **request-head timeout** (slowloris): a request head that is not complete
  ``head_timeout_s`` after the connection opened (or after the previous answer)
  gets 408 and the connection closes. Idle keep-alive connections close after
  ``keep_alive_s`` (uvicorn's ``timeout_keep_alive``).

A framing error is answered with its own status (400, 431 for a head over
``max_header_bytes``, 501 for an unknown transfer coding, 505 for another HTTP
version) as problem+json, and logged. See docs/http.md.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import socket
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from ..domain.errors import PROBLEM_BASE
from .asgi import DEFAULT_THREADS, AsgiApp
from .http.types import MAX_BODY_BYTES, PROBLEM_JSON

log = logging.getLogger("vettra.http")

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    501: b"Not Implemented",
    503: b"Service Unavailable",
    505: b"HTTP Version Not Supported",
}
_SLUGS = {
    400: "malformed-request",
    408: "request-timeout",
    431: "header-fields-too-large",
    501: "not-implemented",
    503: "unavailable",
    505: "http-version-not-supported",
}


@dataclass(frozen=True)
class Limits:
    """What one ``vettra dev`` accepts; each has a flag and a ``VETTRA_*`` variable."""

    max_connections: int = 4096  # --max-connections / VETTRA_MAX_CONNECTIONS
    keep_alive_s: float = 5.0  # --keep-alive-timeout / VETTRA_KEEP_ALIVE_TIMEOUT
    head_timeout_s: float = 10.0  # --head-timeout / VETTRA_HEAD_TIMEOUT
    max_header_bytes: int = 16 * 1024  # --max-header-bytes / VETTRA_MAX_HEADER_BYTES
    max_body_bytes: int = MAX_BODY_BYTES  # --max-body-bytes / VETTRA_MAX_BODY_BYTES
    threads: int = DEFAULT_THREADS  # --threads / VETTRA_THREADS
    max_streams_per_user: int = 10  # --max-streams-per-user / VETTRA_MAX_STREAMS_PER_USER
    retry_after_s: int = 1  # the 503's Retry-After

    ENV = {
        "max_connections": "VETTRA_MAX_CONNECTIONS",
        "keep_alive_s": "VETTRA_KEEP_ALIVE_TIMEOUT",
        "head_timeout_s": "VETTRA_HEAD_TIMEOUT",
        "max_header_bytes": "VETTRA_MAX_HEADER_BYTES",
        "max_body_bytes": "VETTRA_MAX_BODY_BYTES",
        "threads": "VETTRA_THREADS",
        "max_streams_per_user": "VETTRA_MAX_STREAMS_PER_USER",
    }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Limits:
        """Defaults, then ``VETTRA_*`` variables, then ``overrides`` that are not None."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            kind = float if f.type in ("float", float) else int
            name = cls.ENV.get(f.name)
            if name and env.get(name):
                try:
                    values[f.name] = kind(env[name])
                except ValueError:
                    raise ValueError(f"{name}={env[name]!r} is not a number") from None
            if overrides.get(f.name) is not None:
                values[f.name] = kind(overrides[f.name])
        limits = cls(**values)
        for f in fields(cls):
            if getattr(limits, f.name) <= 0:
                raise ValueError(f"{f.name} must be positive")
        return limits


def _problem_bytes(status: int, detail: str, extra_headers: bytes = b"") -> bytes:
    """A complete HTTP/1.1 answer for a connection h11 cannot answer (no request yet),
    with a fresh trace id (body and ``X-Trace-Id``) like every other problem answer."""
    trace_id = secrets.token_hex(16)
    body = json.dumps(
        {
            "type": PROBLEM_BASE + _SLUGS[status],
            "title": _REASONS[status].decode(),
            "status": status,
            "detail": detail,
            "trace_id": trace_id,
        }
    ).encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\nconnection: close\r\n"
        b"x-trace-id: %s\r\n%s\r\n"
        % (
            status,
            _REASONS[status],
            PROBLEM_JSON.encode(),
            len(body),
            trace_id.encode(),
            extra_headers,
        )
    ) + body


def protocol_class(limits: Limits) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the connection cap, the head timeout and problem+json errors."""

    def over_capacity() -> bytes:
        return _problem_bytes(
            503,
            f"more than {limits.max_connections} open connections; retry shortly",
            b"retry-after: %d\r\n" % limits.retry_after_s,
        )

    def head_timeout() -> bytes:
        return _problem_bytes(
            408, f"the request head did not arrive within {limits.head_timeout_s:g} s"
        )

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None
        _framing_error: h11.RemoteProtocolError | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                log.warning(
                    "connection refused: %d open, limit %d",
                    len(self.connections) - 1,
                    limits.max_connections,
                )
                transport.write(over_capacity())
                transport.close()
                return
            next_event = self.conn.next_event

            def next_event_noting_errors() -> Any:  # h11 says why; uvicorn's 400 drops it
                try:
                    return next_event()
                except h11.RemoteProtocolError as exc:
                    self._framing_error = exc
                    raise

            self.conn.next_event = next_event_noting_errors  # type: ignore[method-assign]
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
                self._cancel_head_timer()  # the head is complete

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_head_timer()

        def send_400_response(self, msg: str) -> None:
            error = self._framing_error
            status = getattr(error, "error_status_hint", 400) if error else 400
            status = status if status in _REASONS else 400
            detail = f"malformed HTTP/1.1 request: {str(error)[:200]}" if error else msg
            log.warning("%s (%s)", detail, self.client[0] if self.client else "?")
            if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                self.transport.write(_problem_bytes(status, detail))
            self.transport.close()

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_expired)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            log.warning("request head timeout (%s)", self.client[0] if self.client else "?")
            self.transport.write(head_timeout())
            self.transport.close()

    return GuardedH11Protocol


class Server(uvicorn.Server):
    """uvicorn's server; on shutdown it first ends long-polls and streams, so the graceful
    wait is for short requests only (committed work is never cut: handlers finish)."""

    def __init__(self, config: uvicorn.Config, asgi: AsgiApp):
        super().__init__(config)
        self.asgi = asgi

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.asgi.begin_shutdown()
        await super().shutdown(sockets)


def build(
    asgi: AsgiApp,
    host: str,
    port: int,
    limits: Limits,
    *,
    log_level: str = "warning",
    sock: socket.socket | None = None,
    front: Any = None,
) -> tuple[Server, uvicorn.Config]:
    """A configured server (not started); ``sock`` instead of host/port for tests;
    ``front``, an ASGI app in front of ``asgi`` (the dashboard's files), is what it runs."""
    config = uvicorn.Config(
        asgi if front is None else front,
        host=host,
        port=port,
        http=protocol_class(limits),
        ws="none",
        lifespan="on",
        loop="asyncio",
        workers=1,
        access_log=False,
        log_config=None,
        log_level=log_level.lower(),
        server_header=False,
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=10,
        h11_max_incomplete_event_size=limits.max_header_bytes,
        backlog=min(limits.max_connections, 4096),
    )
    return Server(config, asgi), config
