"""Actions written by any process, from a Firestore snapshot listener (:class:`ActionChanges`).

Every write of an action document sets its ``changed`` field to a fresh
time-ordered id (firestore_repos.FirestoreActions), so the query ``changed >
<now>`` matches exactly the actions written from now on, and a listener on it
(``on_snapshot``) is told of each such write, whichever process made it, within
tens of milliseconds. Its initial snapshot holds only what was written since
the watch began, never the collection.

A listener costs the emulator much of its write throughput (docs/firestore.md),
so the relaying bus (vettra.services.relay_bus) keeps one open only while a live
event stream is; long-polls re-read the action instead.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..domain.actions import Action
from ..ports import ActionChanges
from .firestore_repos import ACTIONS, CHANGED, mapped

log = logging.getLogger("vettra.firestore.changes")


def id_floor(at_s: float) -> str:
    """The smallest time-ordered id of the millisecond ``at_s`` (see ``ordered_id``)."""
    return f"{int(at_s * 1000):012x}" + "0" * 20


class FirestoreActionChanges(ActionChanges):
    """``watch(handler)`` opens one snapshot listener; the function it returns closes it."""

    def __init__(self, store: Any):
        self._store = store  # the FirestoreStore: its client is made on first use

    def watch(self, handler: Callable[[Action], None]) -> Callable[[], None]:
        from google.cloud.firestore_v1 import FieldFilter

        query = self._store.db.collection(ACTIONS).where(
            filter=FieldFilter(CHANGED, ">", id_floor(time.time()))
        )

        def on_snapshot(_docs: Any, changes: Any, _read_time: Any) -> None:
            for change in changes:
                if change.type.name == "REMOVED":  # only a write that left the query
                    continue
                try:
                    action = Action.from_record(json.loads(change.document.get("record")))
                except Exception:  # noqa: BLE001 - one malformed document must not stop the rest
                    log.warning("skipped an action document that does not parse")
                    continue
                handler(action)

        with mapped():
            watch = query.on_snapshot(on_snapshot)
        closed = threading.Event()

        def stop() -> None:
            if not closed.is_set():
                closed.set()
                try:
                    watch.unsubscribe()
                except Exception:  # noqa: BLE001 - a listener that already died is closed too
                    log.debug("closing an action listener failed", exc_info=True)

        return stop
