"""Adapter from functions-framework (Flask) requests to the shared HTTP app.

Each Cloud Function target serves one group of routes (see ``Route.group``); the
runtime is built lazily on the first request so a cold start pays only for what
it uses, and never at import.
"""

from __future__ import annotations

import threading
from typing import Any

from ..domain.errors import NotFound, PayloadTooLarge
from .http.types import MAX_BODY_BYTES, Request, Response

_runtime: Any = None
_lock = threading.Lock()


def runtime() -> Any:
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                from .. import logs
                from ..bootstrap import Config, bootstrap

                config = Config.from_env()
                logs.configure(config.log_level)
                built = bootstrap(config)
                built.start()
                _runtime = built
    return _runtime


def handle(flask_request: Any, group: str) -> tuple[bytes, int, dict[str, str]]:
    """Serve ``flask_request`` if its route belongs to ``group``; 404 otherwise."""
    app = runtime().app
    path = flask_request.path
    length = flask_request.content_length or 0
    route_group = app.group_of(path)
    if route_group is not None and route_group != group:
        response = Response.problem(NotFound(f"{path} is not served by the {group} function"),
                                    instance=path)
    elif length > MAX_BODY_BYTES:  # refused from the header, as the local server does
        response = Response.problem(PayloadTooLarge(f"body is {length} bytes; the limit is "
                                                    f"{MAX_BODY_BYTES}"), instance=path)
    else:
        request = Request(method=flask_request.method, path=path,
                          query={k: flask_request.args.getlist(k) for k in flask_request.args},
                          headers={k.lower(): v for k, v in flask_request.headers.items()},
                          body=flask_request.get_data(cache=False))
        response = app.handle(request)
    payload = response.body if isinstance(response.body, (bytes, bytearray)) else b"".join(response.body)
    return bytes(payload), response.status, response.headers
