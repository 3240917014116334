"""Adapter from functions-framework (Flask) requests to the shared HTTP app.

Each Cloud Function target serves one group of routes (see ``Route.group``); the
runtime is built lazily on the first request so a cold start pays only for what
it uses, and never at import.
"""

from __future__ import annotations

import threading
from typing import Any

from ..domain.errors import NotFound
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
    length = flask_request.content_length or 0
    body = flask_request.get_data(cache=False) if length <= MAX_BODY_BYTES else b"x" * (MAX_BODY_BYTES + 1)
    request = Request(method=flask_request.method, path=flask_request.path,
                      query={k: flask_request.args.getlist(k) for k in flask_request.args},
                      headers={k.lower(): v for k, v in flask_request.headers.items()}, body=body)
    route_group = _group_of(app, request)
    if route_group is not None and route_group != group:
        response = Response.problem(NotFound(f"{request.path} is not served by the {group} function"),
                                    instance=request.path)
    else:
        response = app.handle(request)
    payload = response.body if isinstance(response.body, (bytes, bytearray)) else b"".join(response.body)
    return bytes(payload), response.status, response.headers


def _group_of(app: Any, request: Request) -> str | None:
    for route, pattern in app._compiled:
        if pattern.match(request.path):
            return route.group
    return None
