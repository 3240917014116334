"""``vettra dev``'s HTTP server: uvicorn (httptools), in process, one worker, with limits.

The embedded store, timers and event bus live in this process, so there is one
worker and one event loop (uvloop where it is installed). The wire protocol is
uvicorn's httptools, i.e. llhttp, Node's strict RFC 9112 parser in C: a
malformed request line or header is a 4xx, never a dropped connection. It
replaced uvicorn's h11 (pure Python), which cost about 0.5 M instructions a
request more and merges two identical ``Content-Length`` headers instead of
refusing them. Two guards are added on the protocol, not on the HTTP app:

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..domain.errors import PROBLEM_BASE
from .asgi import DEFAULT_THREADS, AsgiApp
from .http.app import HttpApp
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


def asgi_app(app: HttpApp, limits: Limits) -> AsgiApp:
    """The ASGI app as ``vettra dev`` serves ``app`` under ``limits``."""
    return AsgiApp(
        app,
        max_body_bytes=limits.max_body_bytes,
        threads=limits.threads,
        max_header_bytes=limits.max_header_bytes,
    )


def _problem_bytes(status: int, detail: str, extra_headers: bytes = b"") -> bytes:
    """A complete HTTP/1.1 answer the protocol writes itself (no request reached the app),
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


class _CoalescedTransport:
    """A connection's transport whose writes in one loop step leave as one send.

    uvicorn writes a response's head and body separately; on loopback each send
    is a segment and a wake-up of the reader. Writes are joined and flushed when
    the response completes, on close, or at the end of the loop step (a stream's
    chunks), so their order never changes.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Refuse(Exception):
    """Raised in a parser callback: answer ``status`` with ``detail`` and close."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


#: llhttp's reasons that are not a plain 400 (all others are): its wording, as
#: httptools passes it on; an unknown wording is 400, the safe side.
_LLHTTP_STATUS = (("Invalid HTTP version", 505), ("has invalid `Transfer-Encoding`", 501))
_VERSIONS = ("1.0", "1.1")


def protocol_class(limits: Limits) -> type[HttpToolsProtocol]:
    """uvicorn's httptools (llhttp) protocol with the connection cap, the head timeout,
    problem+json errors and what llhttp lets through.

    llhttp refuses by itself what h11 refused (space before a colon, control bytes
    in names, bad or conflicting ``Content-Length``, ``Content-Length`` with
    ``Transfer-Encoding``, whitespace before the first header, unknown versions)
    and also two identical ``Content-Length`` and obs-fold. Added here, where it is
    more lenient: a request line without a version (HTTP/0.9) is 400, ``HTTP/2.0``
    on an HTTP/1.1 wire is 505, a transfer coding other than exactly ``chunked`` is
    501, and a head over ``max_header_bytes`` is 431 (uvicorn sets no head limit for
    httptools: the bytes of an incomplete head are counted as they arrive).
    """

    def over_capacity() -> bytes:
        return _problem_bytes(
            503,
            f"more than {limits.max_connections} open connections; retry shortly",
            b"retry-after: %d\r\n" % limits.retry_after_s,
        )

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_done = False  # the current request's head is complete
        _head_bytes = 0  # bytes received since the last complete head
        _deferred: bytes | None = None  # a refusal waiting for an earlier answer

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
            # every write of this connection (the cycles', refusals, timeouts) goes through it
            self.transport = _CoalescedTransport(transport, self.loop)  # type: ignore[assignment]
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            self._unset_keepalive_if_required()
            if not self._head_done:
                self._head_bytes += len(data)
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserUpgrade:
                if self._should_upgrade():  # pragma: no cover - ws="none"
                    self.handle_websocket_upgrade()
                else:
                    self._unsupported_upgrade_warning()
                return
            except httptools.HttpParserError as exc:
                refused = exc.__context__
                if isinstance(refused, _Refuse):
                    self._refuse(refused.status, refused.detail)
                else:
                    self._refuse(_llhttp_status(str(exc)), f"malformed HTTP/1.1 request: {exc}")
                return
            if not self._head_done and self._head_bytes > limits.max_header_bytes:
                self._refuse(
                    431,
                    f"the request head is over {limits.max_header_bytes} bytes",
                )

        def on_headers_complete(self) -> None:
            version = self.parser.get_http_version()
            if version not in _VERSIONS:
                if version == "0.9":  # llhttp's name for a request line without a version
                    raise _Refuse(400, "malformed HTTP/1.1 request: no HTTP version")
                raise _Refuse(505, f"HTTP/{version} is not supported; use HTTP/1.1")
            size = len(self.url) + sum(len(n) + len(v) + 4 for n, v in self.headers)
            if size > limits.max_header_bytes:
                raise _Refuse(431, f"the request head is over {limits.max_header_bytes} bytes")
            for name, value in self.headers:
                if name == b"transfer-encoding" and value.strip().lower() != b"chunked":
                    raise _Refuse(501, "only Transfer-Encoding: chunked is supported")
            self._head_done, self._head_bytes = True, 0
            self._cancel_head_timer()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._head_done = False
            super().on_message_complete()

        def on_response_complete(self) -> None:
            if isinstance(self.transport, _CoalescedTransport):
                self.transport.flush()
            if self._deferred is not None:  # the earlier answer is out: now the refusal
                if not self.transport.is_closing():
                    self.transport.write(self._deferred)
                    self.transport.close()
                return
            super().on_response_complete()
            if not self.transport.is_closing() and not self._head_done:
                self._arm_head_timer()

        def send_400_response(self, msg: str) -> None:
            self._refuse(400, msg)

        def _refuse(self, status: int, detail: str) -> None:
            log.warning("%s (%s)", detail, self.client[0] if self.client else "?")
            if self._answering_earlier():
                # llhttp parses ahead of the answers (pipelining): the earlier request
                # is answered first, then this refusal, then the connection closes
                if self._deferred is None:
                    self._deferred = _problem_bytes(status, detail)
                    self.flow.pause_reading()
                return
            cycle = self.cycle
            if cycle is None or cycle.response_complete or not cycle.response_started:
                self.transport.write(_problem_bytes(status, detail))
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # the app's answer, if any, is not sent
                cycle.message_event.set()
            self.transport.close()

        def _answering_earlier(self) -> bool:
            """Whether an answer to an earlier request than the one parsed is on its way."""
            if self.pipeline:  # the current cycle waits behind one in flight
                return True
            cycle = self.cycle  # a new head began after a request whose answer is not out
            return not self._head_done and cycle is not None and not cycle.response_complete

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(limits.head_timeout_s, self._head_expired)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_expired(self) -> None:
            self._head_timer = None
            if self.transport.is_closing() or self._head_done:
                return
            log.warning("request head timeout (%s)", self.client[0] if self.client else "?")
            self.transport.write(
                _problem_bytes(
                    408, f"the request head did not arrive within {limits.head_timeout_s:g} s"
                )
            )
            self.transport.close()

    return GuardedHttpToolsProtocol


def _llhttp_status(reason: str) -> int:
    for words, status in _LLHTTP_STATUS:
        if words in reason:
            return status
    return 400


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop where it is installed (not on Windows), else None: asyncio's own.

    libuv's loop costs about 0.15 M instructions less per request than asyncio's
    selector loop, and hands work back from the pool over an eventfd.
    """
    try:
        import uvloop
    except ImportError:  # pragma: no cover - installed with vettra except on Windows
        return None
    return uvloop.new_event_loop


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
        loop="auto",  # uvloop when installed, else asyncio (see loop_factory)
        workers=1,
        access_log=False,
        log_config=None,
        log_level=log_level.lower(),
        server_header=False,
        proxy_headers=False,  # nothing here reads the client address; trust no X-Forwarded-*
        timeout_keep_alive=limits.keep_alive_s,  # type: ignore[arg-type]
        timeout_graceful_shutdown=10,
        backlog=min(limits.max_connections, 4096),
    )
    return Server(config, asgi), config
