"""The in-process timer of the embedded default, restart-safe.

Timers are kept in their own SQLite file (table ``timers``) as well as in a heap,
so a restart re-arms them and fires the overdue ones at once. The timer writes
with ``synchronous=NORMAL``: in WAL mode that survives a process crash (only an
OS crash could lose the last timers), and the expire service re-derives
deadlines from the actions themselves at boot, so nothing depends on it alone.

Delivery is at least once: a handler that raises is retried with backoff, and
handlers must be idempotent (as with Cloud Tasks).
"""

from __future__ import annotations

import heapq
import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..ports import Clock, Scheduler
from .local_files import private_sqlite

log = logging.getLogger("vettra.timer")

RETRY_BACKOFF_S = (0.5, 2, 10, 30, 60)
#: The heap is rebuilt when it holds this many times more items than live timers.
_COMPACT_FACTOR = 2
_COMPACT_SLACK = 64
_SCHEMA = "CREATE TABLE IF NOT EXISTS timers (name TEXT PRIMARY KEY, due TEXT NOT NULL, payload TEXT NOT NULL)"

Handler = Callable[[Mapping[str, Any]], None]


class LocalTimer(Scheduler):
    def __init__(self, path: Path | str, clock: Clock, handler: Handler | None = None):
        self._clock = clock
        self._handler = handler
        private_sqlite(Path(path))  # 0600 whatever the umask; the WAL and SHM inherit it
        self._conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=10
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)
        self._db_lock = threading.Lock()
        self._cond = threading.Condition()
        self._heap: list[tuple[datetime, int, str]] = []
        self._timers: dict[str, tuple[datetime, dict[str, Any], int]] = {}
        self._attempts: dict[str, int] = {}
        self._counter = 0
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.fired = 0

    def set_handler(self, handler: Handler) -> None:
        self._handler = handler

    # -- port -------------------------------------------------------------------
    def schedule(self, name: str, due: datetime, payload: Mapping[str, Any]) -> None:
        doc = dict(payload)
        with self._db_lock:
            self._conn.execute(
                "INSERT INTO timers (name, due, payload) VALUES (?,?,?)"
                " ON CONFLICT(name) DO UPDATE SET due=excluded.due, payload=excluded.payload",
                (name, due.astimezone(UTC).isoformat(), json.dumps(doc)),
            )
        self._arm(name, due, doc)

    def cancel(self, name: str) -> None:
        with self._db_lock:
            self._conn.execute("DELETE FROM timers WHERE name=?", (name,))
        with self._cond:
            self._timers.pop(name, None)  # its heap item is skipped when popped
            self._attempts.pop(name, None)
            if len(self._heap) > _COMPACT_FACTOR * len(self._timers) + _COMPACT_SLACK:
                # decided actions cancel timers due hours ahead: rebuild rather than keep
                # their dead heap items until their deadlines pass
                self._heap = [
                    item
                    for item in self._heap
                    if (live := self._timers.get(item[2])) is not None and live[2] == item[1]
                ]
                heapq.heapify(self._heap)

    # -- lifecycle --------------------------------------------------------------
    def start(self) -> None:
        with self._db_lock:
            rows = self._conn.execute("SELECT name, due, payload FROM timers").fetchall()
        for name, due, payload in rows:
            self._arm(name, datetime.fromisoformat(due), json.loads(payload))
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="vettra-timer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._db_lock:
            self._conn.close()

    def pending_count(self) -> int:
        with self._cond:
            return len(self._timers)

    def heap_size(self) -> int:
        """Items in the heap, live or cancelled (bounded by :data:`_COMPACT_FACTOR`)."""
        with self._cond:
            return len(self._heap)

    def stored_count(self) -> int:
        """Rows in the timers table: fired and cancelled timers are deleted."""
        with self._db_lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM timers").fetchone()[0])

    # -- internals --------------------------------------------------------------
    def _arm(self, name: str, due: datetime, payload: dict[str, Any]) -> None:
        with self._cond:
            self._counter += 1
            self._timers[name] = (due, payload, self._counter)
            heapq.heappush(self._heap, (due, self._counter, name))
            self._cond.notify()

    def _next_due(self) -> tuple[str, dict[str, Any]] | None:
        with self._cond:
            while not self._stopping:
                while self._heap:
                    due, counter, name = self._heap[0]
                    current = self._timers.get(name)
                    if current is None or current[2] != counter:
                        heapq.heappop(self._heap)  # cancelled or re-scheduled
                        continue
                    wait = (due - self._clock.now()).total_seconds()
                    if wait <= 0:
                        heapq.heappop(self._heap)
                        del self._timers[name]
                        return name, current[1]
                    self._cond.wait(timeout=min(wait, 1.0))
                    break
                else:
                    self._cond.wait(timeout=1.0)
            return None

    def _run(self) -> None:
        while True:
            item = self._next_due()
            if item is None:
                return
            name, payload = item
            try:
                if self._handler is None:
                    raise RuntimeError("no timer handler registered")
                self._handler(payload)
            except Exception:  # noqa: BLE001 - at-least-once: retry later
                attempt = self._attempts.get(name, 0)
                self._attempts[name] = attempt + 1
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                log.exception(
                    "timer handler failed; retrying", extra={"timer": name, "retry_in_s": delay}
                )
                self._arm(name, self._clock.now() + timedelta(seconds=delay), payload)
                continue
            self._attempts.pop(name, None)
            self.fired += 1
            with self._db_lock:
                with self._cond:
                    rearmed = name in self._timers
                if not rearmed:
                    self._conn.execute("DELETE FROM timers WHERE name=?", (name,))
