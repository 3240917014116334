"""The in-process event bus of the embedded default.

Handlers run synchronously in the publisher's thread and must be quick (they
typically wake a waiting request). A failing handler is logged and skipped so
one bad subscriber cannot stop the others or the publisher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..ports import EventBus

WILDCARD = "*"
log = logging.getLogger("vettra.bus")

Handler = Callable[[Mapping[str, Any]], None]


class InProcessEventBus(EventBus):
    def __init__(self) -> None:
        self._subs: dict[str, list[Handler]] = {}
        self._lock = threading.Lock()
        self.published = 0

    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        with self._lock:
            handlers = list(self._subs.get(topic, ())) + list(self._subs.get(WILDCARD, ()))
            self.published += 1
        for handler in handlers:
            try:
                handler(event)
            except Exception:  # noqa: BLE001 - isolate subscribers from each other
                log.exception("event handler failed", extra={"topic": topic})

    def subscribe(self, topic: str, handler: Handler) -> Callable[[], None]:
        with self._lock:
            self._subs.setdefault(topic, []).append(handler)

        def unsubscribe() -> None:
            with self._lock:
                handlers = self._subs.get(topic, [])
                if handler in handlers:
                    handlers.remove(handler)
                if not handlers:
                    self._subs.pop(topic, None)

        return unsubscribe
