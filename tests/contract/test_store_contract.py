"""Store / unit-of-work contract. Every Store adapter must pass this suite;
today the embedded SQLite store, the Firestore adapter joins when it lands."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from vettra.adapters.local_keys import LocalKeyStore
from vettra.adapters.sqlite_store import SqliteStore
from vettra.domain.actions import APPROVED, DENIED, PENDING, Action, new_action_id
from vettra.domain.audit import AuditEvent, verify_chain
from vettra.domain.errors import Conflict

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def sqlite_store(tmp_path: Path) -> SqliteStore:
    return SqliteStore(tmp_path / "store.db", LocalKeyStore(tmp_path))


ADAPTERS = [pytest.param(sqlite_store, id="sqlite")]


@pytest.fixture(params=ADAPTERS)
def store(request, tmp_path: Path):
    s = request.param(tmp_path)
    yield s
    s.close()


def _action(user: str = "alice", status: str = PENDING, expires_in: float | None = 60) -> Action:
    return Action(id=new_action_id(), tenant="default", user=user, agent="bot", tool="gmail.send_message",
                  arguments={"to": "a@b.c"}, args_digest="sha256:" + "0" * 64, framework="plain",
                  risk={"score": 50, "level": "MEDIUM", "factors": {}, "reasons": []}, status=status,
                  step_up_required=False, created_at=T0,
                  expires_at=T0 + timedelta(seconds=expires_in) if expires_in else None)


def _event(action: Action, kind: str = "action.intercepted") -> AuditEvent:
    return AuditEvent(type=kind, chain=action.tenant, actor="agent:bot", at="2026-01-01T00:00:00.000Z",
                      action_id=action.id, user=action.user, data={"status": action.status})


def test_commit_persists_action_and_its_audit_entry(store) -> None:
    action = _action()
    with store.unit_of_work() as uow:
        uow.actions.add(action)
        uow.audit.record(_event(action))
        uow.commit()
        assert [e.seq for e in uow.audit.linked] == [1]
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id) == action
    entries = list(store.audit_log.entries("default"))
    assert [(e.seq, e.action_id) for e in entries] == [(1, action.id)]
    assert store.audit_log.head("default") == (1, entries[0].hash)


def test_without_commit_nothing_is_written(store) -> None:
    action = _action()
    with store.unit_of_work() as uow:
        uow.actions.add(action)
        uow.audit.record(_event(action))
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id) is None
    assert list(store.audit_log.entries("default")) == []


def test_an_exception_rolls_back(store) -> None:
    action = _action()
    with pytest.raises(RuntimeError):
        with store.unit_of_work() as uow:
            uow.actions.add(action)
            raise RuntimeError("boom")
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id) is None


def test_compare_and_set_update_lets_one_decision_win(store) -> None:
    action = _action()
    with store.unit_of_work() as uow:
        uow.actions.add(action)
        uow.commit()
    with store.unit_of_work() as uow:
        uow.actions.update(action.decide(APPROVED, by="approver:alice", at=T0, reason=None),
                           expected_status=PENDING)
        uow.commit()
    with store.unit_of_work() as uow:
        with pytest.raises(Conflict):
            uow.actions.update(action.decide(DENIED, by="approver:alice", at=T0, reason=None),
                               expected_status=PENDING)
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id).status == APPROVED


def test_idempotency_keys_are_scoped(store) -> None:
    with store.unit_of_work() as uow:
        uow.idempotency.put("default:bot", "k1", "sha256:a", "act_1")
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        assert uow.idempotency.get("default:bot", "k1") == ("sha256:a", "act_1")
        assert uow.idempotency.get("default:other", "k1") is None


def test_pending_lists_only_the_users_live_actions(store) -> None:
    mine, theirs, late, done = _action(), _action("bob"), _action(expires_in=1), _action(status=DENIED)
    with store.unit_of_work() as uow:
        for a in (mine, theirs, late, done):
            uow.actions.add(a)
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        ids = [a.id for a in uow.actions.pending("default", "alice", T0 + timedelta(seconds=5), 100)]
        assert ids == [mine.id]
        assert {a.id for a in uow.actions.pending_with_deadline(100)} == {mine.id, theirs.id, late.id}


def test_concurrent_writers_leave_a_gap_free_verifiable_chain(store) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(25):
                action = _action()
                with store.unit_of_work() as uow:
                    uow.actions.add(action)
                    uow.audit.record(_event(action))
                    uow.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    entries = [e.as_dict() for e in store.audit_log.entries("default")]
    assert [e["seq"] for e in entries] == list(range(1, 201))
    assert verify_chain(entries, store.keys.audit_hmac_keys()).valid


def test_chains_are_per_tenant(store) -> None:
    a, b = _action(), replace(_action(), tenant="acme")
    with store.unit_of_work() as uow:
        uow.actions.add(a)
        uow.actions.add(b)
        uow.audit.record(_event(a))
        uow.audit.record(_event(b))
        uow.commit()
    assert [e.seq for e in store.audit_log.entries("default")] == [1]
    assert [e.seq for e in store.audit_log.entries("acme")] == [1]


def test_audit_filters(store) -> None:
    a, b = _action(), _action("bob")
    with store.unit_of_work() as uow:
        for x in (a, b):
            uow.actions.add(x)
            uow.audit.record(_event(x))
        uow.commit()
    assert [e.action_id for e in store.audit_log.entries("default", user="bob")] == [b.id]
    assert [e.action_id for e in store.audit_log.entries("default", action_id=a.id)] == [a.id]
    assert [e.seq for e in store.audit_log.entries("default", after=1)] == [2]
    assert [e.seq for e in store.audit_log.entries("default", limit=1)] == [1]


def test_documents_crud_and_single_use_create(store) -> None:
    with store.unit_of_work() as uow:
        uow.docs.put("sessions", "ses_1", {"n": 1}, owner="alice")
        uow.docs.put("sessions", "ses_2", {"n": 2}, owner="alice")
        uow.docs.put("sessions", "ses_3", {"n": 3}, owner="bob")
        uow.docs.create("used", "code-1", {"at": 1})
        with pytest.raises(Conflict):
            uow.docs.create("used", "code-1", {"at": 2})
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.docs.get("sessions", "ses_1") == {"n": 1}
        assert [d["n"] for d in uow.docs.list("sessions", "alice")] == [1, 2]
        uow.docs.put("sessions", "ses_1", {"n": 10}, owner="alice")
        uow.docs.delete("sessions", "ses_2")
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        assert [d["n"] for d in uow.docs.list("sessions", "alice")] == [10]
        assert uow.docs.get("sessions", "ses_2") is None
        assert uow.docs.get("used", "code-1") == {"at": 1}


def test_pending_lists_quorum_actions_to_their_named_approvers(store) -> None:
    def quorum_action(user: str, names: list[str]) -> Action:
        return replace(_action(user=user), policy={"id": "p", "version": 1, "rule_id": "q",
                                                   "outcome": "require_approval",
                                                   "approvers": {"quorum": 1, "of": names}})

    shared = quorum_action("alice", ["alice", "carol"])           # the owner is named too
    carols = quorum_action("bob", ["carol", "dave"])
    done = replace(quorum_action("alice", ["carol"]), id=new_action_id())
    plain = _action(user="alice")
    with store.unit_of_work() as uow:
        for action in (shared, carols, done, plain):
            uow.actions.add(action)
        uow.commit()
    with store.unit_of_work() as uow:
        uow.actions.update(done.decide(APPROVED, by="approver:carol", at=T0, reason="ok"),
                           expected_status=PENDING)
        uow.commit()

    def pending_ids(user: str, tenant: str = "default") -> set[str]:
        with store.unit_of_work(readonly=True) as uow:
            found = uow.actions.pending(tenant, user, T0, 100)
        assert len(found) == len({a.id for a in found}), "an action listed twice"
        return {a.id for a in found}

    assert pending_ids("alice") == {shared.id, plain.id}
    assert pending_ids("carol") == {shared.id, carols.id}
    assert pending_ids("dave") == {carols.id}
    assert pending_ids("bob") == {carols.id}
    assert pending_ids("erin") == set() and pending_ids("carol", tenant="other") == set()
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.pending("default", "carol", T0 + timedelta(hours=1), 100) == []  # past deadlines
        assert uow.actions.get(shared.id) == shared


# -- retention sweeps (services/retention.py calls these in bounded batches) -----------------

def test_idempotency_sweep_deletes_only_keys_older_than_the_cutoff_in_batches(store) -> None:
    with store.unit_of_work() as uow:
        for i in range(5):
            uow.idempotency.put("s", f"old-{i}", "sha256:a", f"act_o{i}", at=T0 + timedelta(seconds=i))
        uow.idempotency.put("s", "edge", "sha256:a", "act_e", at=T0 + timedelta(hours=1))
        uow.idempotency.put("s", "new", "sha256:a", "act_n", at=T0 + timedelta(hours=2))
        uow.commit()
    cutoff = T0 + timedelta(hours=1)
    with store.unit_of_work() as uow:
        assert uow.idempotency.sweep(cutoff, 3) == 3     # bounded by the limit
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.idempotency.sweep(cutoff, 3) == 2
        assert uow.idempotency.sweep(cutoff, 3) == 0
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        assert [uow.idempotency.get("s", f"old-{i}") for i in range(5)] == [None] * 5
        assert uow.idempotency.get("s", "edge") == ("sha256:a", "act_e")   # the cutoff is exclusive
        assert uow.idempotency.get("s", "new") == ("sha256:a", "act_n")


def test_document_sweep_goes_by_one_field_of_one_collection(store) -> None:
    at = [(T0 + timedelta(minutes=m)).isoformat() for m in range(4)]
    with store.unit_of_work() as uow:
        for i, when in enumerate(at):
            uow.docs.create("markers", f"m{i}", {"at": when}, owner="alice")
            uow.docs.create("other", f"m{i}", {"at": when}, owner="alice")
        uow.docs.create("markers", "undated", {"n": 1}, owner="alice")
        uow.docs.create("markers", "micro", {"at": (T0 + timedelta(microseconds=1)).isoformat()})
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.docs.sweep("markers", "at", T0 + timedelta(minutes=2), 2) == 2
        assert uow.docs.sweep("markers", "at", T0 + timedelta(minutes=2), 100) == 1
        assert uow.docs.sweep("markers", "at", T0 + timedelta(minutes=2), 100) == 0
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        left = {d for d in ("m0", "m1", "m2", "m3", "undated", "micro") if uow.docs.get("markers", d)}
        assert left == {"m2", "m3", "undated"}
        assert all(uow.docs.get("other", f"m{i}") for i in range(4))


def test_quorum_rows_of_decided_actions_are_swept_and_pending_ones_stay(store) -> None:
    def quorum_action(names: list[str]) -> Action:
        return replace(_action(user="alice"), id=new_action_id(),
                       policy={"id": "p", "version": 1, "rule_id": "q", "outcome": "require_approval",
                               "approvers": {"quorum": 1, "of": names}})

    live, done = quorum_action(["carol", "dave"]), quorum_action(["carol", "erin"])
    with store.unit_of_work() as uow:
        uow.actions.add(live)
        uow.actions.add(done)
        uow.commit()
    with store.unit_of_work() as uow:
        uow.actions.update(done.decide(APPROVED, by="approver:carol", at=T0, reason="ok"),
                           expected_status=PENDING)
        assert uow.actions.sweep_quorum_rows(1) == 1
        assert uow.actions.sweep_quorum_rows(10) == 1
        assert uow.actions.sweep_quorum_rows(10) == 0
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        assert [a.id for a in uow.actions.pending("default", "carol", T0, 100)] == [live.id]
        assert [a.id for a in uow.actions.pending("default", "dave", T0, 100)] == [live.id]
        assert uow.actions.get(done.id).status == APPROVED   # the action itself stays
