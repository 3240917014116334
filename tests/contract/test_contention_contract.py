"""Decisions and intercepts that collide, on every store: SQLite, the in-memory fake and
Firestore on the official emulator (skipped loudly when absent).

Firestore aborts transactions that contend for the same documents, often several of
them at once and sometimes all; SQLite serialises writers. On each store, whoever loses
a race must hear the truth (the action is already approved, the key already made this
action), never a vague "conflicting write", and nothing may be decided twice or lost
(vettra.services.contention).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vettra.adapters.clock import FakeClock
from vettra.domain.errors import Conflict, Contention, Unavailable
from vettra.domain.identity import DEFAULT_TENANT, Principal
from vettra.services import actions, contention
from vettra.services.deps import Deps

from ..fakes import recording_deps
from ..races import race, refuse_commits
from .test_store_contract import ADAPTERS, settle

AGENT = Principal(tenant=DEFAULT_TENANT, role="agent", sub="agent-1", user="alice")
ALICE = Principal(tenant=DEFAULT_TENANT, role="approver", sub="alice", user="alice")
SEND = {"tool": "gmail.send_message", "arguments": {"to": "bob@example.com", "subject": "hi"}}
CONTENDERS = 6
ROUNDS = 3


@pytest.fixture(params=ADAPTERS)
def deps(request, tmp_path: Path) -> Iterator[Deps]:
    from vettra.adapters.local_keys import LocalKeyStore

    store = request.param(tmp_path, request)
    built = recording_deps(store, LocalKeyStore(tmp_path / "keys-home"), FakeClock())
    built.policies.ensure_default(DEFAULT_TENANT)
    yield built
    store.close()


def _pending(deps: Deps) -> Any:
    action = actions.intercept(deps, AGENT, SEND).action
    assert action.status == "pending"
    return action


def _trail(deps: Deps, action_id: str) -> list[str]:
    settle(deps.store, DEFAULT_TENANT)
    return [
        e.type for e in deps.store.audit_log.entries(DEFAULT_TENANT) if e.action_id == action_id
    ]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_racing_decisions_decide_once_and_tell_every_loser_who_won(deps: Deps, round_: int) -> None:
    action = _pending(deps)
    verbs = ["approve", "deny"] * (CONTENDERS // 2)
    results = race([lambda v=v: actions.decide(deps, ALICE, action.id, v) for v in verbs])
    won = [r for r in results if isinstance(r, dict)]
    assert len(won) == 1, results
    final = won[0]["status"]
    losers = [r for r in results if not isinstance(r, dict)]
    assert all(type(r) is Conflict for r in losers), losers
    assert {r.detail for r in losers} == {f"action {action.id} is already {final}"}
    trail = _trail(deps, action.id)
    assert trail.count("action.approved") + trail.count("action.denied") == 1, trail
    assert trail.count("action.decision_rejected") == CONTENDERS - 1, trail


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_resends_with_one_key_make_one_action(deps: Deps, round_: int) -> None:
    key = f"resend-{round_}"
    results = race([lambda: actions.intercept(deps, AGENT, SEND, idempotency_key=key)] * CONTENDERS)
    assert all(isinstance(r, actions.Intercepted) for r in results), results
    assert len({r.action.id for r in results}) == 1
    assert [r.created for r in results].count(True) == 1
    assert _trail(deps, results[0].action.id) == ["action.intercepted"]


def test_an_aborted_decision_is_run_again(deps: Deps, monkeypatch: pytest.MonkeyPatch) -> None:
    action = _pending(deps)
    aborted = Contention("the store aborted the transaction under contention (Aborted)")
    left = refuse_commits(deps.store, monkeypatch, contention.ATTEMPTS - 1, aborted)
    assert actions.decide(deps, ALICE, action.id, "approve")["status"] == "approved"
    assert left == [0]
    assert _trail(deps, action.id).count("action.approved") == 1


def test_a_decision_the_store_keeps_aborting_is_503_and_decides_nothing(
    deps: Deps, monkeypatch: pytest.MonkeyPatch
) -> None:
    action = _pending(deps)
    aborted = Contention("the store aborted the transaction under contention (Aborted)")
    left = refuse_commits(deps.store, monkeypatch, contention.ATTEMPTS, aborted)
    with pytest.raises(Unavailable, match="nothing was written"):
        actions.decide(deps, ALICE, action.id, "approve")
    assert left == [0]
    assert actions.get_action(deps, ALICE, action.id)["status"] == "pending"
    assert "action.approved" not in _trail(deps, action.id)
    assert actions.decide(deps, ALICE, action.id, "approve")["status"] == "approved"


def test_a_refusal_is_not_run_again(deps: Deps, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an abort is retried: a verdict (already decided) is answered at once."""
    action = _pending(deps)
    actions.decide(deps, ALICE, action.id, "deny")
    runs = []
    decide_once = actions._decide

    def counted(*args: Any) -> Any:
        runs.append(1)
        return decide_once(*args)

    monkeypatch.setattr(actions, "_decide", counted)
    with pytest.raises(Conflict, match="already denied"):
        actions.decide(deps, ALICE, action.id, "approve")
    assert runs == [1]
