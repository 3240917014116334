"""Transactions the store aborted because others competed: run them again, with jitter.

Firestore aborts a transaction that contends with others for the same documents (the
emulator more eagerly than production) and says so (:class:`Contention`); nothing of it
was written. The services' units of work read everything they decide on afresh, so
running the whole of one again is safe and gives the true answer: the decision, or the
409 of whoever won, never a vague "conflicting write". SQLite serialises writers and
never raises it. A unit of work the store aborts every time is answered 503 with
nothing written (safe to retry), never as a refusal it was not.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from ..domain.errors import Contention, Unavailable

T = TypeVar("T")

#: Runs of a unit of work before 503, and the first pause between them (doubling, full
#: jitter: at most 0.02 + 0.04 + 0.08 + 0.16 + 0.32 s, about 0.6 s in all).
ATTEMPTS = 6
BACKOFF_S = 0.02


def contended(exc: Exception) -> bool:
    return isinstance(exc, Contention)


def retried(
    run: Callable[[], T],
    *,
    what: str,
    retry_if: Callable[[Exception], bool] = contended,
    attempts: int = ATTEMPTS,
    backoff_s: float = BACKOFF_S,
) -> T:
    """``run()``, again after an exception ``retry_if`` accepts (a :class:`Contention` by
    default), pausing a random time up to ``backoff_s * 2**n`` before the n+1-th retry so
    contenders that collided do not collide again in step."""
    last: Exception | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(random.uniform(0, backoff_s * 2 ** (attempt - 1)))
        try:
            return run()
        except Exception as exc:
            if not retry_if(exc):
                raise
            last = exc
    raise Unavailable(
        f"the store aborted {attempts} attempts to {what} under contention; nothing was "
        "written: try again"
    ) from last
