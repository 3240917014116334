"""Starting calls at the same moment, for the tests of what happens when they collide."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any


def race(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` at once (a barrier releases them together); return value or exception each."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - the race's loser is part of the result
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def refuse_commits(store: Any, monkeypatch: Any, times: int, error: Exception) -> list[int]:
    """The store's next ``times`` commits raise ``error`` before anything is written, as
    Firestore aborts a transaction under contention. Returns a one-item list: how many
    refusals are left."""
    left = [times]
    make = store.unit_of_work

    def unit_of_work(*, readonly: bool = False) -> Any:
        uow = make(readonly=readonly)
        commit = uow.commit

        def refused_or_commit() -> None:
            if left[0] > 0:
                left[0] -= 1
                raise error
            commit()

        uow.commit = refused_or_commit
        return uow

    monkeypatch.setattr(store, "unit_of_work", unit_of_work)
    return left
