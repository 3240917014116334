"""Cloud Functions targets: the same ASGI app (:mod:`vettra.entrypoints.asgi`) under
``functions_framework.aio``, each restricted to its route group (``Route.group``).

A target's handler returns a response that *is* the ASGI app run on the
request's own scope and body stream, so the cloud serves exactly what ``vettra
dev`` serves: the same limits, parsing checks, problem+json and logging. The
runtime is built lazily on the first request, so a cold start pays only for
what it uses, and never at import.
"""

from __future__ import annotations

import threading
from typing import Any

from .asgi import AsgiApp

_runtime: Any = None
_lock = threading.Lock()
_apps: dict[str, AsgiApp] = {}


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
