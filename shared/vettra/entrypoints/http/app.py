"""The HTTP application: authenticate → route → handler → problem+json.

One :class:`HttpApp` serves ``vettra dev`` and every Cloud Functions target, both
through the ASGI adapter (:mod:`vettra.entrypoints.asgi`). Domain errors become
responses by their own ``status`` (RFC 9457); anything unexpected is logged with
its trace id and answered 500 without details.

Handlers are plain functions that may block (store calls): the adapter runs them
in a bounded thread pool. A handler that waits (long-poll, event stream) is a
coroutine function ``(deps, request, principal, ctx)`` and waits on the event
loop through :class:`Context`, never in a thread.

Routing: a template without parameters wins over one with (``/api/actions/pending``
is never ``/api/actions/{action_id}``), and a 405's ``Allow`` lists the methods of
the one template the path matched (RFC 9110 §15.5.6).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from ...domain.errors import BadQuery, MethodNotAllowed, NotFound, Unauthenticated, VettraError
from ...domain.identity import Principal
from ...ports import Identity
from .types import Request, Response

log = logging.getLogger("vettra.http")

Handler = Callable[..., Response | Awaitable[Response]]
_T = TypeVar("_T")
_PARAM = re.compile(r"\{(\w+)\}")
_PARAM_PATTERN = r"(?P<\1>[A-Za-z0-9_.:-]{1,128})"
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")
MAX_INT_DIGITS = 19
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/.*)?$")


def answers(service: Callable[..., Any], *path_params: str) -> Handler:
    """The handler of a route that answers what ``service(deps, principal, *path values)``
    returns, as JSON: most routes that take no body. Only for routes that name roles
    (the app has authenticated the caller before the handler runs)."""

    def handler(deps: Any, request: Request, principal: Principal | None) -> Response:
        assert principal is not None
        values = [request.path_params[name] for name in path_params]
        return Response.json(service(deps, principal, *values))

    handler.__name__ = handler.__qualname__ = service.__name__
    return handler


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    roles: tuple[str, ...] | None  # None: no authentication (only /health)
    summary: str = ""
    operation_id: str = ""
    group: str = ""  # which Cloud Function serves it
    request: str | None = None  # schema name (schemas.REGISTRY) of the JSON body
    response: str | None = None  # schema name of the 2xx JSON body
    #: (name, JSON Schema, description[, required]): published in the document and
    #: enforced before the handler runs (:meth:`HttpApp._check_query`).
    query: tuple[tuple[Any, ...], ...] = ()
    created: bool = False  # may answer 201
    redirect: bool = False  # answers 303 See Other (a browser redirect) instead of 200
    media_type: str = "application/json"  # of the 2xx body (text/event-stream for a stream)
    errors: tuple[int, ...] = ()  # statuses it may answer beyond the common ones (e.g. 429)
    #: The domain's own parser of the body (pure): run when the schema refuses the body,
    #: so the 422 names the fields the way the domain does; the schema still decides.
    explain: Callable[[Any], Any] | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + _PARAM.sub(_PARAM_PATTERN, self.template) + "$")

    @property
    def params(self) -> list[tuple[str, dict[str, Any], str, bool]]:
        """The query parameters as (name, schema, description, required)."""
        out = []
        for entry in self.query:
            name, schema, description = entry[:3]
            required = bool(entry[3]) if len(entry) > 3 else False
            out.append(
                (
                    name,
                    {"type": schema} if isinstance(schema, str) else schema,
                    description,
                    required,
                )
            )
        return out

    @property
    def waits(self) -> bool:
        """A coroutine handler: it waits on the event loop rather than blocking a thread."""
        return inspect.iscoroutinefunction(self.handler)


class Context:
    """What a waiting handler may use: the bounded pool for blocking calls, and
    ``stopping``, set when the server shuts down (a wait then ends at once)."""

    def __init__(
        self, blocking: Callable[..., Awaitable[Any]], stopping: asyncio.Event | None = None
    ):
        self._blocking = blocking
        self.stopping = stopping or asyncio.Event()

    @classmethod
    def inline(cls) -> Context:
        """Blocking calls run in the caller's thread (``HttpApp.handle`` outside a server)."""

        async def run(fn: Callable[..., Any], *args: Any) -> Any:
            return fn(*args)

        return cls(run)

    async def blocking(self, fn: Callable[..., _T], *args: Any) -> _T:
        result: _T = await self._blocking(fn, *args)  # the pool hands back fn's own result
        return result

    def waker(self, event: asyncio.Event) -> Callable[[], None]:
        """A function any thread may call to set ``event`` on this loop (the bus is thread-based)."""
        loop = asyncio.get_running_loop()

        def wake() -> None:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop is closed: the server has gone
                pass

        return wake

    async def wait(self, event: asyncio.Event, timeout: float) -> bool:
        """Wait for ``event`` up to ``timeout`` s; False on timeout or shutdown."""
        if event.is_set():
            return True
        waiters = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(self.stopping.wait())]
        try:
            await asyncio.wait(
                waiters, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
        return event.is_set()


def trace_id_of(request_headers: dict[str, str]) -> str:
    """W3C ``traceparent`` or Cloud's ``X-Cloud-Trace-Context``; a fresh id otherwise."""
    parent = _TRACEPARENT.match(request_headers.get("traceparent", ""))
    if parent:
        return parent.group(1)
    cloud = _CLOUD_TRACE.match(request_headers.get("x-cloud-trace-context", ""))
    if cloud:
        return cloud.group(1).lower()
    return secrets.token_hex(16)


def _check_query(route: Route, request: Request) -> None:
    """Validate the query by the route's published parameter schemas (400 on failure)."""
    from jsonschema import Draft202012Validator

    for name, schema, _description, required in route.params:
        raw = request.query_value(name)
        if raw is None or raw == "":
            if required:
                raise BadQuery(f"query parameter {name!r} is required")
            continue
        value: Any = raw
        if schema.get("type") == "integer":
            digits = raw[1:] if raw[:1] == "-" else raw
            if not (digits.isascii() and digits.isdigit() and len(digits) <= MAX_INT_DIGITS):
                raise BadQuery(f"query parameter {name!r}: expected an integer, found {raw[:32]!r}")
            value = int(raw)
        errors = list(Draft202012Validator(schema).iter_errors(value))
        if errors:
            raise BadQuery(f"query parameter {name!r}: {errors[0].message[:200]}")


class HttpApp:
    def __init__(self, deps: Any, routes: list[Route], identity: Identity, *, project: str = ""):
        self.deps = deps
        self.routes = routes
        self.identity = identity
        self.project = project
        # Paths served without a token (/health, the dashboard's sign-in code exchange):
        # every other path is authenticated before it is even routed.
        self._public = {r.template for r in routes if r.roles is None and "{" not in r.template}
        # Literal templates first: a path that spells one is never a parameter's value.
        self._static: dict[str, list[Route]] = {
            r.template: [] for r in routes if "{" not in r.template
        }
        for r in routes:
            if r.template in self._static:
                self._static[r.template].append(r)
        self._templates: list[tuple[re.Pattern[str], list[Route]]] = []
        for r in routes:
            if "{" in r.template:
                for _pattern, group in self._templates:
                    if group[0].template == r.template:
                        group.append(r)
                        break
                else:
                    self._templates.append((r.pattern, [r]))

    def _candidates(self, path: str) -> tuple[list[Route], dict[str, str]]:
        """The routes of the one template ``path`` matches, and its parameters."""
        if path in self._static:
            return self._static[path], {}
        for pattern, group in self._templates:
            m = pattern.match(path)
            if m:
                return group, m.groupdict()
        return [], {}

    def _match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        candidates, params = self._candidates(path)
        for route in candidates:
            if route.method == method:
                return route, params
        if candidates:
            allowed = ", ".join(sorted({r.method for r in candidates}))
            raise MethodNotAllowed(
                f"{method} is not allowed here; use {allowed}", headers={"Allow": allowed}
            )
        raise NotFound(f"no endpoint at {path}")

    def route_of(self, method: str, path: str) -> Route | None:
        """The route that would serve ``method path``, or None."""
        for route in self._candidates(path)[0]:
            if route.method == method:
                return route
        return None

    def group_of(self, path: str) -> str | None:
        """Which Cloud Function serves ``path`` (``Route.group``); None if no route matches."""
        candidates = self._candidates(path)[0]
        return candidates[0].group if candidates else None

    def authenticate(self, request: Request) -> Principal:
        header = request.header("authorization") or ""
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated(
                "send Authorization: Bearer <token>",
                headers={"WWW-Authenticate": 'Bearer realm="vettra"'},
            )
        return self.identity.authenticate(token.strip())

    def is_public(self, path: str) -> bool:
        """Every route at ``path`` needs no bearer token (``roles=None``: /health, and
        sign-in, whose body carries its own credential). Any other path authenticates
        first, so an unauthenticated caller learns nothing of which paths exist."""
        candidates = self._candidates(path)[0]
        return bool(candidates) and all(r.roles is None for r in candidates)

    def _admit(self, request: Request) -> tuple[Route, Principal | None]:
        """Authenticate (all but public paths), route, check the role; raises a VettraError."""
        principal: Principal | None = None
        if not self.is_public(request.path):
            principal = self.authenticate(request)
        request.principal = principal
        route, params = self._match(request.method, request.path)
        request.path_params = params
        if route.roles is not None:
            if principal is None:  # pragma: no cover - a public path has no role routes
                raise Unauthenticated("authentication required")
            principal.require(*route.roles)
        _check_query(route, request)
        if route.request is not None:
            from . import schemas

            body = request.json()
            if not schemas.is_valid(route.request, body):
                if route.explain is not None:
                    route.explain(body)  # raises ValidationFailed naming the fields
                schemas.validate(route.request, body)
        return route, principal

    def handle(self, request: Request) -> Response:
        """Serve ``request`` in this thread (a waiting route gets a private event loop)."""
        route = self.route_of(request.method, request.path)
        if route is not None and route.waits:
            return asyncio.run(self.handle_async(request, Context.inline()))
        started = time.perf_counter()
        request.trace_id = request.trace_id or trace_id_of(dict(request.headers))
        try:
            route, principal = self._admit(request)
            # not route.waits: a plain function, so its answer is a Response, not an awaitable
            response = cast(Response, route.handler(self.deps, request, principal))
        except Exception as error:  # noqa: BLE001 - the boundary: _finish answers
            return self._failed(request, error, started)
        return self._finish(request, response, started)

    async def handle_async(self, request: Request, ctx: Context) -> Response:
        """Serve ``request`` on the event loop: blocking parts go through ``ctx.blocking``."""
        route = self.route_of(request.method, request.path)
        if route is None or not route.waits:
            return await ctx.blocking(self.handle, request)  # one hop to the pool for the lot
        started = time.perf_counter()
        request.trace_id = request.trace_id or trace_id_of(dict(request.headers))
        try:
            matched, principal = await ctx.blocking(self._admit, request)
            # route.waits: a coroutine function, so calling it gives an awaitable of a Response
            response = await cast(
                Awaitable[Response], matched.handler(self.deps, request, principal, ctx)
            )
        except Exception as error:  # noqa: BLE001 - the boundary: _finish answers
            return self._failed(request, error, started)
        return self._finish(request, response, started)

    def _failed(self, request: Request, error: Exception, started: float) -> Response:
        if isinstance(error, VettraError):
            response = Response.problem(error, instance=request.path, trace_id=request.trace_id)
            return self._finish(request, response, started)
        log.error(
            "unhandled error",
            exc_info=error,
            extra=self._log_fields(request, 500, started, request.principal),
        )
        return Response.problem(
            VettraError("an unexpected error occurred; it was logged"),
            instance=request.path,
            trace_id=request.trace_id,
        )

    def _finish(self, request: Request, response: Response, started: float) -> Response:
        response.headers.setdefault("X-Trace-Id", request.trace_id)
        level = (
            logging.WARNING if response.status >= 400 and response.status != 404 else logging.INFO
        )
        if log.isEnabledFor(level):
            log.log(
                level,
                f"{request.method} {request.path} {response.status}",
                extra=self._log_fields(request, response.status, started, request.principal),
            )
        return response

    def _log_fields(
        self, request: Request, status: int, started: float, principal: Principal | None
    ) -> dict[str, Any]:
        trace = (
            f"projects/{self.project}/traces/{request.trace_id}"
            if self.project
            else request.trace_id
        )
        return {
            "trace": trace,
            "httpRequest": {
                "requestMethod": request.method,
                "requestUrl": request.path,
                "status": status,
                "latency": f"{time.perf_counter() - started:.6f}s",
            },
            "principal": principal.actor if principal else None,
        }
