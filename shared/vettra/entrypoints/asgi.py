"""The one ASGI application (ASGI 3.0 HTTP and lifespan) over :class:`HttpApp`.

``vettra dev`` serves it with uvicorn (:mod:`vettra.entrypoints.server`); each
Cloud Functions target runs it under ``functions_framework.aio``, restricted to
its route group (:mod:`vettra.entrypoints.functions`). The HTTP/1.1 wire format
is parsed by the server (llhttp under uvicorn's httptools protocol; h11 where a
server picks it), never here; this adapter checks what a server may pass
through and a security product should not accept:

* ``Content-Length`` must be ASCII digits (RFC 9110 §8.6); a body over
  ``max_body_bytes`` is refused from that header before it is read, and while
  it streams when there is none (chunked) - 413, and the connection closes;
* ``Content-Length`` together with ``Transfer-Encoding`` is refused (RFC 9112
  §6.1 allows it and says to close the connection: a smuggling attempt);
* HTTP/1.1 without ``Host`` is 400 (RFC 9112 §3.2), and ``Authorization``,
  ``Content-Type``, ``Content-Length`` or ``Host`` given twice is 400;
* headers over ``max_header_bytes`` in all are 431 (a server may count only a
  head that arrives in pieces, or nothing), and an HTTP version other than 1.0,
  1.1, 2 or 3 is 505.

Blocking handlers run in a thread pool of ``threads`` workers, so a slow store
call never stalls the loop and the thread count stays bounded whatever the
number of connections. Waiting handlers (long-poll, event stream) wait on the
loop. :meth:`AsgiApp.begin_shutdown` ends every wait and stream at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs

from ..domain.errors import MalformedRequest, NotFound, PayloadTooLarge, Unavailable, VettraError
from .http.app import Context, HttpApp, trace_id_of
from .http.types import MAX_BODY_BYTES, Request, Response

log = logging.getLogger("vettra.http")

DEFAULT_THREADS = 16
#: A 429 is answered after min(Retry-After, this), waiting on the loop (no thread): a
#: client that loops on refusals then sends about one request a second, instead of
#: keeping the server's CPU busy answering refusals (bench/proofs.py measures it).
TOO_MANY_DELAY_MAX_S = 1.0
MAX_QUERY_FIELDS = 32
#: Headers whose repetition would be ambiguous (who is calling, how long the body is).
SINGLE_HEADERS = ("authorization", "content-length", "content-type", "host")
CLOSE = (b"connection", b"close")
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
HTTP_VERSIONS = ("1.0", "1.1", "2", "3")
#: Per header line: ": " and CRLF around the name and value.
LINE_OVERHEAD = 4
#: A refused body up to this size is read and dropped before the answer: closing a
#: socket with unread data makes TCP reset it, and the reset can destroy the 413 before
#: the client reads it. Nothing is kept; a larger body is not waited for.
DRAIN_BYTES = 1024 * 1024
DRAIN_S = 2.0
#: A lazily built app that failed to build (Firestore unreachable, a mounted secret
#: missing) is answered 503 with this Retry-After; the next request tries the build again.
BUILD_RETRY_AFTER_S = 5
#: How much of the build error's message its log line keeps (one line, no traceback).
BUILD_ERROR_CHARS = 300

Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class HeaderFieldsTooLarge(VettraError):
    """The request line and headers are over the limit (RFC 6585 §5)."""

    status = 431
    slug = "header-fields-too-large"
    title = "Request header fields too large"


class HttpVersionNotSupported(VettraError):
    """Not HTTP/1.0, 1.1, 2 or 3 (RFC 9110 §15.6.6)."""

    status = 505
    slug = "http-version-not-supported"
    title = "HTTP version not supported"


class _Refused(Exception):
    """Refuse the request before the handler; close the connection when ``close``.

    ``cause`` is for the server's failures: what the log line says instead of the
    client's ``error`` (an ERROR line then, not a WARNING)."""

    def __init__(self, error: VettraError, close: bool, drain: int = 0, cause: str = ""):
        super().__init__(str(error))
        self.error, self.close, self.drain, self.cause = error, close, drain, cause


class AsgiApp:
    """ASGI callable; ``app`` is the HttpApp or a function building it on first use."""

    def __init__(
        self,
        app: HttpApp | Callable[[], HttpApp],
        *,
        group: str | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        threads: int = DEFAULT_THREADS,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
    ):
        self._app = app if isinstance(app, HttpApp) else None
        self._build = None if isinstance(app, HttpApp) else app
        self.group = group
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def app(self) -> HttpApp:
        if self._app is None:
            assert self._build is not None
            self._app = self._build()
        return self._app

    def _bind(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._stopping = loop, asyncio.Event()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="vettra-http")

    def begin_shutdown(self) -> None:
        """End every long-poll and event stream now (call on the server's loop)."""
        if self._stopping is not None:
            self._stopping.set()

    def close(self) -> None:
        """Wait for blocking calls in flight, then release the pool's threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    async def _blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self._pool is not None and self._loop is not None
        return await self._loop.run_in_executor(self._pool, functools.partial(fn, *args))

    # -- ASGI ---------------------------------------------------------------------------
    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # websockets: not served
            return
        self._bind()
        path = scope.get("path") or "/"
        try:
            request = await self._request(scope, receive)
        except _Refused as refused:
            trace_id = trace_id_of(_headers_of(scope))
            log.log(
                logging.ERROR if refused.cause else logging.WARNING,
                f"{scope.get('method')} {path} {refused.error.status}: "
                + (refused.cause or str(refused.error)),
                extra={"trace": trace_id},
            )
            if refused.drain:
                await _drain(receive, refused.drain)
            problem = Response.problem(refused.error, instance=path, trace_id=trace_id)
            problem.headers.setdefault("X-Trace-Id", trace_id)
            await self._send(send, receive, problem, close=refused.close)
            return
        assert self._stopping is not None
        response = await self.app.handle_async(request, Context(self._blocking, self._stopping))
        if response.status == 429:
            await self._hold_refusal(response)
        await self._send(send, receive, response, close=False)

    async def _hold_refusal(self, response: Response) -> None:
        raw = str(response.headers.get("Retry-After", "1"))
        delay = min(float(raw) if raw.isascii() and raw.isdigit() else 1.0, TOO_MANY_DELAY_MAX_S)
        assert self._stopping is not None
        try:  # a stopping server answers at once
            await asyncio.wait_for(self._stopping.wait(), timeout=delay)
        except TimeoutError:
            pass

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.begin_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the request --------------------------------------------------------------------
    async def _request(self, scope: dict[str, Any], receive: Receive) -> Request:
        path = scope.get("path") or "/"
        if scope.get("http_version", "1.1") not in HTTP_VERSIONS:
            raise _Refused(
                HttpVersionNotSupported(
                    f"HTTP/{scope.get('http_version')} is not supported; use HTTP/1.1"
                ),
                True,
            )
        size = sum(len(n) + len(v) + LINE_OVERHEAD for n, v in scope.get("headers", ()))
        if size > self.max_header_bytes:
            raise _Refused(
                HeaderFieldsTooLarge(
                    f"headers are {size} bytes; the limit is {self.max_header_bytes}"
                ),
                True,
            )
        headers = _headers(scope)
        if self._app is None:
            self._build_app()
        if self.group is not None:
            owner = self.app.group_of(path)
            if owner is not None and owner != self.group:
                raise _Refused(
                    NotFound(f"{path} is not served by the {self.group} function"), False
                )
        length = _content_length(headers)
        if length is not None and length > self.max_body_bytes:
            raise _Refused(
                PayloadTooLarge(f"body is {length} bytes; the limit is {self.max_body_bytes}"),
                True,
                drain=length if length <= DRAIN_BYTES else 0,
            )
        body = await self._body(receive)
        try:
            query = parse_qs(
                scope.get("query_string", b"").decode("latin-1"),
                keep_blank_values=True,
                max_num_fields=MAX_QUERY_FIELDS,
            )
        except ValueError as exc:
            raise _Refused(MalformedRequest(f"query string not accepted: {exc}"), False) from exc
        return Request(method=scope["method"], path=path, query=query, headers=headers, body=body)

    def _build_app(self) -> None:
        """The lazy build, once per instance; when it fails, a 503 that names no cause to
        the client (the log line, found by the trace id, does) and says when to retry."""
        try:
            self.app  # noqa: B018 - the property builds it
        except Exception as error:  # noqa: BLE001 - the boundary: a 503, not a traceback
            cause = " ".join(f"{type(error).__name__}: {error}".split())[:BUILD_ERROR_CHARS]
            unavailable = Unavailable(
                "the service could not start (a backing service or its configuration is not "
                f"ready); retry in {BUILD_RETRY_AFTER_S} s",
                headers={"Retry-After": str(BUILD_RETRY_AFTER_S)},
                extra={"retry_after": BUILD_RETRY_AFTER_S},
            )
            raise _Refused(
                unavailable, False, cause=f"the runtime could not be built ({cause})"
            ) from None

    async def _body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Refused(
                    MalformedRequest("the client went away before its body arrived"), True
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:  # no Content-Length (chunked): counted as it streams
                raise _Refused(
                    PayloadTooLarge(f"body is over the limit of {self.max_body_bytes} bytes"),
                    True,
                    drain=DRAIN_BYTES,
                )
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    # -- the response -------------------------------------------------------------------
    async def _send(self, send: Send, receive: Receive, response: Response, *, close: bool) -> None:
        headers = [
            (name.lower().encode("latin-1"), str(value).encode("latin-1"))
            for name, value in response.headers.items()
        ]
        body = response.body
        if isinstance(body, (bytes, bytearray)):
            headers.append((b"content-length", str(len(body)).encode()))
            if close:
                headers.append(CLOSE)
            await send(
                {"type": "http.response.start", "status": response.status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": bytes(body)})
            return
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await self._stream(send, receive, body)

    async def _stream(self, send: Send, receive: Receive, body: Any) -> None:
        """Pump ``body`` until it ends, the client goes away or the server stops."""

        async def pump() -> None:
            async for chunk in body:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})

        async def gone() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        assert self._stopping is not None
        tasks = [
            asyncio.ensure_future(pump()),
            asyncio.ensure_future(gone()),
            asyncio.ensure_future(self._stopping.wait()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            disconnected = tasks[1] in done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            closer = getattr(body, "aclose", None)
            if closer is not None:
                await closer()
        if tasks[0].done() and not tasks[0].cancelled() and tasks[0].exception() is not None:
            log.warning("event stream ended by an error", exc_info=tasks[0].exception())
        if not disconnected:
            try:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the client went away as we ended
                pass


async def _drain(receive: Receive, limit: int) -> None:
    """Read and drop up to ``limit`` more body bytes, for at most DRAIN_S seconds."""

    async def read() -> None:
        seen = 0
        while seen < limit:
            message = await receive()
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    try:
        await asyncio.wait_for(read(), DRAIN_S)
    except TimeoutError:
        pass


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    """Lower-case names, latin-1 values; repeated names joined with ``, `` (RFC 9110 §5.3)."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers:
            if name in SINGLE_HEADERS:
                raise _Refused(MalformedRequest(f"header {name!r} given more than once"), True)
            headers[name] += ", " + value
        else:
            headers[name] = value
    if scope.get("http_version") == "1.1" and "host" not in headers:
        raise _Refused(MalformedRequest("HTTP/1.1 requires a Host header (RFC 9112 §3.2)"), True)
    if "transfer-encoding" in headers and "content-length" in headers:
        raise _Refused(
            MalformedRequest(
                "Content-Length and Transfer-Encoding together are refused (RFC 9112 §6.1)"
            ),
            True,
        )
    return headers


def _content_length(headers: dict[str, str]) -> int | None:
    raw = headers.get("content-length")
    if raw is None:
        return None
    raw = raw.strip()
    # str.isdigit() is true for '²' and '١', which int() then refuses: ASCII only.
    if not (raw.isascii() and raw.isdigit()):
        raise _Refused(MalformedRequest(f"Content-Length is not a number: {raw[:20]!r}"), True)
    return int(raw)


def _headers_of(scope: dict[str, Any]) -> dict[str, str]:
    """The request's headers, lower-cased names (latin-1, as the server decoded them)."""
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers") or ()
    }
