"""The embedded timer: fires on time, cancels, retries, and survives a restart."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vettra.adapters.clock import SystemClock
from vettra.adapters.local_timer import LocalTimer


def _now() -> datetime:
    return datetime.now(UTC)


def _collect(timer: LocalTimer) -> tuple[list[dict], threading.Event]:
    fired: list[dict] = []
    done = threading.Event()

    def handler(payload):
        fired.append(dict(payload))
        done.set()

    timer.set_handler(handler)
    return fired, done


def test_fires_in_order_and_on_time(tmp_path: Path) -> None:
    timer = LocalTimer(tmp_path / "t.db", SystemClock())
    fired, _ = _collect(timer)
    timer.start()
    try:
        start = _now()
        timer.schedule("b", start + timedelta(milliseconds=200), {"n": 2})
        timer.schedule("a", start + timedelta(milliseconds=100), {"n": 1})
        deadline = time.monotonic() + 5
        while len(fired) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [p["n"] for p in fired] == [1, 2]
        assert (_now() - start).total_seconds() < 2
    finally:
        timer.stop()


def test_cancel_and_reschedule(tmp_path: Path) -> None:
    timer = LocalTimer(tmp_path / "t.db", SystemClock())
    fired, _ = _collect(timer)
    timer.start()
    try:
        timer.schedule("x", _now() + timedelta(milliseconds=100), {"n": 1})
        timer.cancel("x")
        timer.schedule("y", _now() + timedelta(seconds=30), {"n": 2})
        timer.schedule("y", _now() + timedelta(milliseconds=100), {"n": 3})  # re-scheduled earlier
        time.sleep(0.5)
        assert fired == [{"n": 3}]
        assert timer.pending_count() == 0
    finally:
        timer.stop()


def test_pending_timers_survive_a_restart_and_overdue_ones_fire_at_boot(tmp_path: Path) -> None:
    first = LocalTimer(tmp_path / "t.db", SystemClock())
    first.schedule("late", _now() + timedelta(milliseconds=50), {"n": 1})
    first.schedule("later", _now() + timedelta(seconds=60), {"n": 2})
    first.stop()  # never started: nothing fired
    time.sleep(0.1)
    second = LocalTimer(tmp_path / "t.db", SystemClock())
    fired, done = _collect(second)
    second.start()
    try:
        assert done.wait(3)
        assert fired == [{"n": 1}]
        assert second.pending_count() == 1
    finally:
        second.stop()


def test_a_failing_handler_is_retried(tmp_path: Path) -> None:
    import vettra.adapters.local_timer as mod

    timer = LocalTimer(tmp_path / "t.db", SystemClock())
    calls: list[int] = []
    done = threading.Event()

    def flaky(payload):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("transient")
        done.set()

    timer.set_handler(flaky)
    original = mod.RETRY_BACKOFF_S
    mod.RETRY_BACKOFF_S = (0.05,)
    timer.start()
    try:
        timer.schedule("r", _now(), {})
        assert done.wait(3)
        assert len(calls) == 2
    finally:
        mod.RETRY_BACKOFF_S = original
        timer.stop()
