"""The action services over fakes that record (no SQLite, no threads): what one
intercept or decision commits, schedules and publishes, and in which order."""

from __future__ import annotations

from pathlib import Path

import pytest

from vettra.adapters.clock import FakeClock
from vettra.adapters.local_keys import LocalKeyStore
from vettra.domain.errors import Conflict, Unavailable
from vettra.domain.identity import DEFAULT_TENANT, Principal
from vettra.services import actions
from vettra.services.deps import Deps

from ..fakes import FakeStore, recording_deps

SEND = {"tool": "gmail.send_message", "arguments": {"to": "bob@example.com", "subject": "hi"}}
READ = {"tool": "gmail.get_profile", "arguments": {}}


@pytest.fixture
def deps(tmp_path: Path) -> Deps:
    keys, clock = LocalKeyStore(tmp_path), FakeClock()
    deps = recording_deps(FakeStore(keys), keys, clock)
    deps.policies.ensure_default(DEFAULT_TENANT)
    return deps


AGENT = Principal(tenant=DEFAULT_TENANT, role="agent", sub="bot", user="alice")
ALICE = Principal(tenant=DEFAULT_TENANT, role="approver", sub="alice", user="alice")


def test_a_held_action_commits_once_with_its_entry_then_arms_its_timer(deps: Deps) -> None:
    before = deps.store.committed
    action = actions.intercept(deps, AGENT, SEND).action
    assert action.status == "pending"
    assert deps.store.committed == before + 1
    assert [(e.type, e.action_id) for e in deps.store.committed_events[-1:]] == [
        ("action.intercepted", action.id)
    ]
    assert [(name, due) for name, due, _ in deps.scheduler.scheduled] == [
        (f"expire-{action.id}", action.expires_at)
    ]
    assert any(event.get("action_id") == action.id for _, event in deps.bus.sent)


def test_an_allowed_read_arms_no_timer(deps: Deps) -> None:
    action = actions.intercept(deps, AGENT, READ).action
    assert action.status == "allowed"
    assert deps.scheduler.scheduled == []


def test_a_failed_commit_leaves_no_timer_no_event_and_no_action(deps: Deps) -> None:
    deps.store.fail_commits = True
    committed, sent = deps.store.committed, len(deps.bus.sent)
    with pytest.raises(Unavailable):
        actions.intercept(deps, AGENT, SEND)
    assert deps.store.committed == committed
    assert deps.scheduler.scheduled == [] and len(deps.bus.sent) == sent
    with deps.store.unit_of_work(readonly=True) as uow:
        assert uow.actions.pending(DEFAULT_TENANT, "alice", deps.clock.now(), 10) == []


def test_an_idempotent_replay_writes_nothing(deps: Deps) -> None:
    first = actions.intercept(deps, AGENT, SEND, idempotency_key="k-1")
    committed, events = deps.store.committed, len(deps.store.committed_events)
    again = actions.intercept(deps, AGENT, SEND, idempotency_key="k-1")
    assert (again.created, again.action.id) == (False, first.action.id)
    assert (deps.store.committed, len(deps.store.committed_events)) == (committed, events)
    assert len(deps.scheduler.scheduled) == 1


def test_a_decision_commits_its_entry_and_cancels_the_timer(deps: Deps) -> None:
    action = actions.intercept(deps, AGENT, SEND).action
    view = actions.decide(deps, ALICE, action.id, "deny", reason="not now")
    assert (view["status"], view["reason"]) == ("denied", "not now")
    assert deps.store.committed_events[-1].type == "action.denied"
    assert deps.scheduler.cancelled == [f"expire-{action.id}"]
    with pytest.raises(Conflict):
        actions.decide(deps, ALICE, action.id, "approve")


def test_on_expiry_is_the_policys_verb_everywhere(deps: Deps) -> None:
    """``timeouts.on_expiry`` says "deny"; the action keeps that word, and records of
    older builds that said "denied" read back as the same rule."""
    from dataclasses import replace

    from vettra.domain.actions import Action
    from vettra.domain.policy_schema import ON_EXPIRY_DENY, ON_EXPIRY_VALUES

    action = actions.intercept(deps, AGENT, SEND).action
    assert action.on_expiry == ON_EXPIRY_DENY and action.on_expiry in ON_EXPIRY_VALUES
    legacy = {**action.to_record(), "on_expiry": "denied"}
    assert Action.from_record(legacy).on_expiry == ON_EXPIRY_DENY
    assert Action.from_record(action.to_record()) == replace(action, audit_seq=action.audit_seq)
