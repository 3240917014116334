"""The local HTTP/1.1 server of ``vettra dev``: stdlib, threaded, keep-alive.

Each connection gets a thread (long-polls and event streams block only their
own); bodies over the limit are refused from ``Content-Length`` before they are
read. The server binds where it is told (127.0.0.1 by default).
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..domain.errors import MalformedRequest, PayloadTooLarge, VettraError
from .http.types import MAX_BODY_BYTES, Request, Response

MAX_QUERY_FIELDS = 32
IDLE_TIMEOUT_S = 75


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vettra"
    sys_version = ""
    timeout = IDLE_TIMEOUT_S
    disable_nagle_algorithm = True  # small JSON answers must not wait for an ACK
    app: Any = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        """Silenced: the app logs every request as structured JSON."""

    def _serve(self) -> None:
        close = False
        try:
            request = self._read_request()
            response = self.app.handle(request)
        except VettraError as error:
            close = True  # the body may be unread: do not reuse the connection
            response = Response.problem(error, instance=urlsplit(self.path).path)
        self._write(response, close)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def _read_request(self) -> Request:
        if self.headers.get("Transfer-Encoding"):
            raise MalformedRequest("chunked bodies are not accepted; send Content-Length")
        raw_length = self.headers.get("Content-Length", "0") or "0"
        if not raw_length.isdigit():
            raise MalformedRequest(f"Content-Length is not a number: {raw_length[:20]!r}")
        length = int(raw_length)
        if length > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body is {length} bytes; the limit is {MAX_BODY_BYTES}")
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        try:
            query = parse_qs(parts.query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS,
                             strict_parsing=False)
        except ValueError as exc:
            raise MalformedRequest(f"query string not accepted: {exc}") from exc
        headers = {k.lower(): v for k, v in self.headers.items()}
        return Request(method=self.command, path=parts.path, query=query, headers=headers, body=body)

    def _write(self, response: Response, close: bool) -> None:
        body = response.body
        self.send_response_only(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        if isinstance(body, (bytes, bytearray)):
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
            return
        # A stream (server-sent events): no length, the connection ends with it.
        self.send_header("Connection", "close")
        self.close_connection = True
        try:  # close the body however this ends: it may hold a subscription
            self.end_headers()
            for chunk in body:
                self.wfile.write(chunk)
                self.wfile.flush()
        except OSError:  # the client went away: reset, broken pipe, or a send timeout
            pass
        finally:
            closer = getattr(body, "close", None)
            if closer:
                closer()


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 8080):
        handler = type("VettraHandler", (_Handler,), {"app": app})
        super().__init__((host, port), handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"
