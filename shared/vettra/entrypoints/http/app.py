"""The HTTP application: authenticate → route → handler → problem+json.

One :class:`HttpApp` serves the local server and every Cloud Functions target.
Domain errors become responses by their own ``status`` (RFC 9457); anything
unexpected is logged with its trace id and answered 500 without details.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Callable

from ...domain.errors import MethodNotAllowed, NotFound, Unauthenticated, VettraError
from ...domain.identity import Principal
from .types import Request, Response

log = logging.getLogger("vettra.http")

Handler = Callable[[Any, Request, Principal | None], Response]
_PARAM = re.compile(r"\{(\w+)\}")
_PARAM_PATTERN = r"(?P<\1>[A-Za-z0-9_.:-]{1,128})"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/.*)?$")


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    roles: tuple[str, ...] | None  # None: no authentication (only /health)
    summary: str = ""
    operation_id: str = ""
    group: str = ""                # which Cloud Function serves it
    request: str | None = None     # schema name (schemas.REGISTRY) of the JSON body
    response: str | None = None    # schema name of the 2xx JSON body
    query: tuple[tuple[str, str, str], ...] = ()   # (name, json type, description)
    created: bool = False          # may answer 201
    media_type: str = "application/json"   # of the 2xx body (text/event-stream for a stream)
    errors: tuple[int, ...] = ()   # statuses it may answer beyond the common ones (e.g. 429)

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + _PARAM.sub(_PARAM_PATTERN, self.template) + "$")


def trace_id_of(request_headers: dict[str, str]) -> str:
    """W3C ``traceparent`` or Cloud's ``X-Cloud-Trace-Context``; a fresh id otherwise."""
    parent = _TRACEPARENT.match(request_headers.get("traceparent", ""))
    if parent:
        return parent.group(1)
    cloud = _CLOUD_TRACE.match(request_headers.get("x-cloud-trace-context", ""))
    if cloud:
        return cloud.group(1).lower()
    return secrets.token_hex(16)


class HttpApp:
    def __init__(self, deps: Any, routes: list[Route], identity: Any, *, project: str = ""):
        self.deps = deps
        self.routes = routes
        self.identity = identity
        self.project = project
        self._compiled = [(r, r.pattern) for r in routes]

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        allowed = []
        for route, pattern in self._compiled:
            m = pattern.match(path)
            if m:
                if route.method == method:
                    return route, m.groupdict()
                allowed.append(route.method)
        if allowed:
            raise MethodNotAllowed(f"{method} is not allowed here; use {', '.join(sorted(set(allowed)))}",
                                   headers={"Allow": ", ".join(sorted(set(allowed)))})
        raise NotFound(f"no endpoint at {path}")

    def group_of(self, path: str) -> str | None:
        """Which Cloud Function serves ``path`` (``Route.group``); None if no route matches."""
        for route, pattern in self._compiled:
            if pattern.match(path):
                return route.group
        return None

    def authenticate(self, request: Request) -> Principal:
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("send Authorization: Bearer <token>",
                                  headers={"WWW-Authenticate": 'Bearer realm="vettra"'})
        return self.identity.authenticate(token.strip())

    def handle(self, request: Request) -> Response:
        started = time.perf_counter()
        request.trace_id = request.trace_id or trace_id_of(dict(request.headers))
        principal: Principal | None = None
        try:
            public = request.path == "/health"
            if not public:
                principal = self.authenticate(request)
            route, params = self._match(request.method, request.path)
            request.path_params = params
            if route.roles is not None:
                if principal is None:  # pragma: no cover - only /health is public
                    raise Unauthenticated("authentication required")
                principal.require(*route.roles)
            response = route.handler(self.deps, request, principal)
        except VettraError as error:
            response = Response.problem(error, instance=request.path, trace_id=request.trace_id)
        except Exception:  # noqa: BLE001 - the boundary: never leak internals
            log.exception("unhandled error", extra=self._log_fields(request, 500, started, principal))
            response = Response.problem(VettraError("an unexpected error occurred; it was logged"),
                                        instance=request.path, trace_id=request.trace_id)
            return response
        response.headers.setdefault("X-Trace-Id", request.trace_id)
        level = logging.WARNING if response.status >= 400 and response.status != 404 else logging.INFO
        if log.isEnabledFor(level):
            log.log(level, f"{request.method} {request.path} {response.status}",
                    extra=self._log_fields(request, response.status, started, principal))
        return response

    def _log_fields(self, request: Request, status: int, started: float,
                    principal: Principal | None) -> dict[str, Any]:
        trace = (f"projects/{self.project}/traces/{request.trace_id}" if self.project
                 else request.trace_id)
        return {"trace": trace,
                "httpRequest": {"requestMethod": request.method, "requestUrl": request.path,
                                "status": status,
                                "latency": f"{time.perf_counter() - started:.6f}s"},
                "principal": principal.actor if principal else None}
