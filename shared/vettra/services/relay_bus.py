"""An event bus that also relays actions written by other processes, while anyone listens.

Over a shared store (Firestore) a decision can be made by another ``vettra dev``
or another function instance, whose in-process bus this process never hears. While
at least one subscriber listens to the dashboards' topic (:data:`ACTIONS_TOPIC`:
an open event stream's hub), :class:`RelayingBus` watches the store's action
changes (:class:`~vettra.ports.ActionChanges`) and publishes each one as the
service would have (``action.created`` or ``action.decided``, on the topic and on
the action's own topic, which also wakes a long-poll at once). When the last
such subscriber leaves, the watch closes.

A change made here arrives twice (published after the commit, then seen by the
watch): consumers are idempotent by ``(action_id, type, status)`` — the event
hub drops the second copy, and a long-poll only re-reads the action.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from ..domain.actions import Action
from ..ports import ActionChanges, EventBus
from .action_events import ACTION_CREATED, ACTION_DECIDED, ACTIONS_TOPIC, publish_action

log = logging.getLogger("vettra.bus.relay")


def relayed_kind(action: Action) -> str:
    """Which event a stored action stands for: decided once it carries a decision time."""
    return ACTION_DECIDED if action.decided_at is not None else ACTION_CREATED


class RelayingBus(EventBus):
    def __init__(self, inner: EventBus, changes: ActionChanges, local: EventBus | None = None):
        """``local``: where relayed changes go (default ``inner``). With a bus that also
        sends events out (Pub/Sub), its local part: the change was sent by its maker."""
        self._inner, self._changes = inner, changes
        self._local = local or inner
        self._lock = threading.Lock()
        self._listeners = 0
        self._stop_watch: Callable[[], None] | None = None
        self.relayed = 0

    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        self._inner.publish(topic, event)

    def close(self) -> None:
        """Close the wrapped bus, if it has anything to close (Pub/Sub flushes)."""
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()

    def subscribe(
        self, topic: str, handler: Callable[[Mapping[str, Any]], None]
    ) -> Callable[[], None]:
        unsubscribe = self._inner.subscribe(topic, handler)
        if topic != ACTIONS_TOPIC:
            return unsubscribe
        with self._lock:
            self._listeners += 1
            if self._stop_watch is None:
                try:
                    self._stop_watch = self._changes.watch(self._relay)
                except Exception:  # noqa: BLE001 - local events still flow; say so
                    log.warning(
                        "cannot watch the store's action changes: this stream shows "
                        "only decisions made in this process",
                        exc_info=True,
                    )
        done = threading.Event()

        def unsubscribe_and_maybe_stop() -> None:
            if done.is_set():
                return
            done.set()
            unsubscribe()
            with self._lock:
                self._listeners -= 1
                stop, self._stop_watch = (
                    (self._stop_watch, None) if self._listeners == 0 else (None, self._stop_watch)
                )
            if stop is not None:
                stop()

        return unsubscribe_and_maybe_stop

    @property
    def watching(self) -> bool:
        return self._stop_watch is not None

    def _relay(self, action: Action) -> None:
        self.relayed += 1
        publish_action(self._local, relayed_kind(action), action)
