"""The embedded timer stays bounded: cancelled and fired timers leave nothing behind."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vettra.adapters.clock import SystemClock
from vettra.adapters.local_timer import LocalTimer


def test_cancelled_timers_neither_stay_stored_nor_pile_up_in_the_heap(tmp_path: Path) -> None:
    timer = LocalTimer(tmp_path / "t.db", SystemClock())
    fired = threading.Event()
    timer.set_handler(lambda payload: fired.set())
    timer.start()
    try:
        later = datetime.now(UTC) + timedelta(hours=1)
        for i in range(2000):  # decided actions cancel timers due long after
            timer.schedule(f"expire-{i}", later, {"n": i})
            timer.cancel(f"expire-{i}")
        assert timer.pending_count() == 0 and timer.stored_count() == 0
        assert timer.heap_size() <= 200
        timer.schedule("soon", datetime.now(UTC) + timedelta(milliseconds=50), {"n": -1})
        assert fired.wait(5)
        assert timer.stored_count() == 0 and timer.pending_count() == 0
    finally:
        timer.stop()
