"""vettra.services.contention: what is run again, how often, and what is answered after."""

from __future__ import annotations

import pytest

from vettra.domain.errors import Conflict, Contention, NotFound, Unavailable
from vettra.services import contention


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(contention.time, "sleep", slept.append)
    return slept


def _failing(errors: list[Exception], result: str = "done"):
    calls: list[int] = []

    def run() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return result

    return run, calls


def test_an_aborted_run_is_run_again_until_it_commits(pauses: list[float]) -> None:
    run, calls = _failing([Contention("aborted"), Contention("aborted")])
    assert contention.retried(run, what="decide") == "done"
    assert len(calls) == 3 and len(pauses) == 2


def test_pauses_are_jittered_below_a_doubling_bound(pauses: list[float]) -> None:
    run, _ = _failing([Contention("aborted")] * (contention.ATTEMPTS - 1))
    contention.retried(run, what="decide")
    bounds = [contention.BACKOFF_S * 2**n for n in range(contention.ATTEMPTS - 1)]
    assert len(pauses) == len(bounds)
    assert all(0 <= p <= b for p, b in zip(pauses, bounds, strict=True))
    assert sum(bounds) < 1.0  # a caller waits well under a second in the worst case


def test_a_run_aborted_every_time_is_503_saying_nothing_was_written(pauses: list[float]) -> None:
    run, calls = _failing([Contention("aborted")] * contention.ATTEMPTS)
    with pytest.raises(Unavailable, match="aborted 6 attempts to decide .*nothing was written"):
        contention.retried(run, what="decide")
    assert len(calls) == contention.ATTEMPTS


@pytest.mark.parametrize("verdict", [Conflict("already approved"), NotFound("no such action")])
def test_a_verdict_is_answered_at_once(pauses: list[float], verdict: Exception) -> None:
    run, calls = _failing([verdict])
    with pytest.raises(type(verdict)) as raised:
        contention.retried(run, what="decide")
    assert raised.value is verdict and len(calls) == 1 and pauses == []


def test_a_caller_may_say_what_else_is_run_again(pauses: list[float]) -> None:
    run, calls = _failing([Conflict("marker created at commit")])
    assert contention.retried(run, what="release", retry_if=lambda e: isinstance(e, Conflict))
    assert len(calls) == 2
