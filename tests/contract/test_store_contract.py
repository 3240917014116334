"""Store / unit-of-work contract. Every Store adapter must pass this suite:
the embedded SQLite store, the in-memory fake of tests/fakes.py (so service
tests that use the fake test against the same behaviour), and the Firestore
adapter on the official emulator (skipped loudly when it is absent).

Firestore links audit events later, from an outbox (docs/audit.md): tests call
:func:`settle` before they read the audit log, which runs that chain's
sequencer there and does nothing where a commit links at once."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vettra.adapters.firestore_store import FirestoreStore
from vettra.adapters.local_keys import LocalKeyStore
from vettra.adapters.sqlite_store import SqliteStore
from vettra.domain.actions import APPROVED, DENIED, PENDING, Action, new_action_id
from vettra.domain.audit import AuditEvent, verify_chain
from vettra.domain.errors import Conflict
from vettra.ports import EntryQuery, IdempotencyRecord

from ..audit_events import audit_event
from ..fakes import FakeStore
from .firestore_emulator import FirestoreProject

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def sqlite_store(tmp_path: Path, request: pytest.FixtureRequest) -> SqliteStore:
    return SqliteStore(tmp_path / "store.db", LocalKeyStore(tmp_path))


def memory_store(tmp_path: Path, request: pytest.FixtureRequest) -> FakeStore:
    return FakeStore(LocalKeyStore(tmp_path))


def firestore_store(tmp_path: Path, request: pytest.FixtureRequest) -> FirestoreStore:
    project: FirestoreProject = request.getfixturevalue("firestore_project")
    return FirestoreStore(
        project=project.project, keys=LocalKeyStore(tmp_path), client=project.client
    )


ADAPTERS = [
    pytest.param(sqlite_store, id="sqlite"),
    pytest.param(memory_store, id="fake"),
    pytest.param(firestore_store, id="firestore"),
]


@pytest.fixture(params=ADAPTERS)
def store(request, tmp_path: Path):
    s = request.param(tmp_path, request)
    yield s
    s.close()


def defers_linking(store) -> bool:
    """Whether the store links audit events after commit (an outbox and a sequencer)."""
    return hasattr(store, "sequence_now")


def settle(store, *chains: str) -> None:
    """Let a deferred store sequence its outbox now; a no-op where a commit links its events."""
    if defers_linking(store):
        for chain in chains or ("default", "acme"):
            store.sequence_now(chain)


def _action(user: str = "alice", status: str = PENDING, expires_in: float | None = 60) -> Action:
    return Action(
        id=new_action_id(),
        tenant="default",
        user=user,
        agent="bot",
        tool="gmail.send_message",
        arguments={"to": "a@b.c"},
        args_digest="sha256:" + "0" * 64,
        framework="plain",
        risk={"score": 50, "level": "MEDIUM", "factors": {}, "reasons": []},
        status=status,
        step_up_required=False,
        created_at=T0,
        expires_at=T0 + timedelta(seconds=expires_in) if expires_in else None,
    )


def _event(action: Action, kind: str = "action.intercepted") -> AuditEvent:
    return AuditEvent(
        type=kind,
        chain=action.tenant,
        actor="agent:bot",
        at="2026-01-01T00:00:00.000Z",
        action_id=action.id,
        user=action.user,
        data={"status": action.status},
    )


def _add_intercepted(uow, action: Action) -> None:
    """Stage ``action`` with its intercept entry (the unit of work commits it or not)."""
    uow.actions.add(action)
    uow.audit.record(_event(action))


def test_commit_persists_action_and_its_audit_entry(store) -> None:
    action = _action()
    with store.unit_of_work() as uow:
        _add_intercepted(uow, action)
        uow.commit()
        assert [e.seq for e in uow.audit.linked] == ([] if defers_linking(store) else [1])
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id) == action
    settle(store)
    entries = list(store.audit_log.entries("default"))
    assert [(e.seq, e.action_id) for e in entries] == [(1, action.id)]
    assert store.audit_log.head("default") == (1, entries[0].hash)


def test_without_commit_nothing_is_written(store) -> None:
    action = _action()
    with store.unit_of_work() as uow:
        _add_intercepted(uow, action)
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id) is None
    settle(store)
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
        uow.actions.update(
            action.decide(APPROVED, by="approver:alice", at=T0, reason=None),
            expected_status=PENDING,
        )
        uow.commit()
    with store.unit_of_work() as uow:
        with pytest.raises(Conflict):
            uow.actions.update(
                action.decide(DENIED, by="approver:alice", at=T0, reason=None),
                expected_status=PENDING,
            )
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id).status == APPROVED


def test_idempotency_keys_are_scoped(store) -> None:
    with store.unit_of_work() as uow:
        uow.idempotency.put(IdempotencyRecord("default:bot", "k1", "sha256:a", "act_1"))
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        assert uow.idempotency.get("default:bot", "k1") == ("sha256:a", "act_1")
        assert uow.idempotency.get("default:other", "k1") is None


def test_pending_lists_only_the_users_live_actions(store) -> None:
    mine, theirs, late, done = (
        _action(),
        _action("bob"),
        _action(expires_in=1),
        _action(status=DENIED),
    )
    with store.unit_of_work() as uow:
        for a in (mine, theirs, late, done):
            uow.actions.add(a)
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        ids = [
            a.id for a in uow.actions.pending("default", "alice", T0 + timedelta(seconds=5), 100)
        ]
        assert ids == [mine.id]
        assert {a.id for a in uow.actions.pending_with_deadline(100)} == {
            mine.id,
            theirs.id,
            late.id,
        }


def test_concurrent_writers_leave_a_gap_free_verifiable_chain(store) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(25):
                action = _action()
                with store.unit_of_work() as uow:
                    _add_intercepted(uow, action)
                    uow.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    settle(store)
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
    settle(store)
    assert [e.seq for e in store.audit_log.entries("default")] == [1]
    assert [e.seq for e in store.audit_log.entries("acme")] == [1]


def test_audit_filters(store) -> None:
    a, b = _action(), _action("bob")
    with store.unit_of_work() as uow:
        for x in (a, b):
            _add_intercepted(uow, x)
        uow.commit()
    settle(store)
    log = store.audit_log
    assert [e.action_id for e in log.entries("default", EntryQuery(user="bob"))] == [b.id]
    assert [e.action_id for e in log.entries("default", EntryQuery(action_id=a.id))] == [a.id]
    assert [e.seq for e in log.entries("default", EntryQuery(after=1))] == [2]
    assert [e.seq for e in log.entries("default", EntryQuery(limit=1))] == [1]


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


def _quorum_action(user: str, names: list[str]) -> Action:
    """A pending action (a fresh id each) that any one of ``names`` may approve."""
    return replace(
        _action(user=user),
        policy={
            "id": "p",
            "version": 1,
            "rule_id": "q",
            "outcome": "require_approval",
            "approvers": {"quorum": 1, "of": names},
        },
    )


def test_pending_lists_quorum_actions_to_their_named_approvers(store) -> None:
    shared = _quorum_action("alice", ["alice", "carol"])  # the owner is named too
    carols = _quorum_action("bob", ["carol", "dave"])
    done = replace(_quorum_action("alice", ["carol"]), id=new_action_id())
    plain = _action(user="alice")
    with store.unit_of_work() as uow:
        for action in (shared, carols, done, plain):
            uow.actions.add(action)
        uow.commit()
    with store.unit_of_work() as uow:
        uow.actions.update(
            done.decide(APPROVED, by="approver:carol", at=T0, reason="ok"), expected_status=PENDING
        )
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
        assert (
            uow.actions.pending("default", "carol", T0 + timedelta(hours=1), 100) == []
        )  # past deadlines
        assert uow.actions.get(shared.id) == shared


def test_policies_the_highest_version_is_active_per_tenant(store) -> None:
    with store.unit_of_work(readonly=True) as uow:
        assert uow.policies.active("default") is None
    with store.unit_of_work() as uow:
        uow.policies.activate("default", {"v": 1}, 1, "sha256:1")
        uow.policies.activate("default", {"v": 3}, 3, "sha256:3")
        uow.policies.activate("acme", {"v": 2}, 2, "sha256:2")
        uow.commit()
    with store.unit_of_work() as uow:
        uow.policies.activate("default", {"v": 9}, 9, "sha256:9")  # rolled back
    with store.unit_of_work(readonly=True) as uow:
        assert uow.policies.active("default") == {"v": 3}
        assert uow.policies.active("acme") == {"v": 2}
        assert uow.policies.active("other") is None


def test_a_read_only_unit_of_work_cannot_commit(store) -> None:
    with store.unit_of_work(readonly=True) as uow:
        with pytest.raises(RuntimeError):
            uow.commit()


def _append(store, n: int, tenant: str = "default") -> list[Action]:
    actions = [replace(_action(), tenant=tenant) for _ in range(n)]
    for action in actions:
        with store.unit_of_work() as uow:
            _add_intercepted(uow, action)
            uow.commit()
    settle(store, tenant)
    return actions


def test_tree_state_is_the_rfc9162_root_of_the_entry_hashes(store) -> None:
    from vettra.domain.merkle import leaf_hash, root_from_leaf_hashes

    assert store.audit_log.tree_state("default")[0] == 0
    _append(store, 7)
    settle(store)
    size, root = store.audit_log.tree_state("default")
    hashes = store.audit_log.entry_hashes("default", 7)
    assert size == 7 and len(hashes) == 7
    assert hashes == [bytes.fromhex(e.hash) for e in store.audit_log.entries("default")]
    assert root == root_from_leaf_hashes([leaf_hash(h) for h in hashes])
    assert store.audit_log.entry_hashes("default", 3) == hashes[:3]
    assert store.audit_log.head("default") == (7, hashes[-1].hex())


def test_checkpoints_are_kept_once_per_size_oldest_first(store) -> None:
    assert store.audit_log.checkpoints("default") == []
    assert store.audit_log.last_checkpoint("default") is None
    store.audit_log.add_checkpoint("default", 2, b"\x02" * 32, "note-2")
    store.audit_log.add_checkpoint("default", 5, b"\x05" * 32, "note-5")
    store.audit_log.add_checkpoint("default", 2, b"\x09" * 32, "note-2-again")  # ignored
    store.audit_log.add_checkpoint("acme", 1, b"\x01" * 32, "acme-1")
    assert store.audit_log.checkpoints("default") == [(2, "note-2"), (5, "note-5")]
    assert store.audit_log.last_checkpoint("default") == (5, "note-5")
    assert store.audit_log.checkpoints("acme") == [(1, "acme-1")]


def test_known_chains_are_those_with_entries(store) -> None:
    assert list(store.known_chains()) == []
    _append(store, 1)
    _append(store, 2, tenant="acme")
    settle(store)
    assert sorted(store.known_chains()) == ["acme", "default"]


def _record(store, n: int, per_unit: int = 1) -> None:
    for _ in range(0, n, per_unit):
        with store.unit_of_work() as uow:
            for _ in range(per_unit):
                action = _action()
                _add_intercepted(uow, action)
            uow.commit()
    settle(store)


def test_merkle_nodes_are_the_subtree_hashes_of_the_committed_entries(store) -> None:
    """``AuditLog.merkle_nodes``: every complete perfect subtree, none that is not yet complete."""
    from vettra.domain.merkle import MerkleTree, leaf_hash

    _record(store, 9)
    _record(store, 12, per_unit=4)  # several entries linked in one commit
    size = 21
    leaves = [leaf_hash(h) for h in store.audit_log.entry_hashes("default", size)]
    tree = MerkleTree(leaves)
    complete = [(level, index) for level in range(6) for index in range(size >> level)]
    nodes = store.audit_log.merkle_nodes("default", complete)
    assert set(nodes) == set(complete)
    for (level, index), h in nodes.items():
        assert h == tree._root(index << level, (index + 1) << level)
    incomplete = [(1, 10), (2, 5), (3, 2), (5, 0), (0, 21)]
    assert store.audit_log.merkle_nodes("default", incomplete) == {}
    assert store.audit_log.merkle_nodes("acme", [(0, 0), (1, 0)]) == {}


def test_proofs_from_stored_nodes_match_proofs_from_every_leaf(store) -> None:
    from vettra.domain.merkle import MerkleTree, leaf_hash
    from vettra.domain.merkle_nodes import consistency_from_nodes, inclusion_from_nodes

    _record(store, 37, per_unit=3)
    size = store.audit_log.tree_state("default")[0]
    tree = MerkleTree([leaf_hash(h) for h in store.audit_log.entry_hashes("default", size)])
    assert tree.root() == store.audit_log.tree_state("default")[1]

    def read(ids):
        return store.audit_log.merkle_nodes("default", ids)

    for tree_size in (1, 2, 7, 16, size):
        for index in range(tree_size):
            assert inclusion_from_nodes(read, index, tree_size) == (
                tree.inclusion_proof(index, tree_size),
                tree.root(tree_size),
            )
        for old in range(tree_size + 1):
            assert consistency_from_nodes(read, old, tree_size) == (
                tree.consistency_proof(old, tree_size),
                tree.root(old),
                tree.root(tree_size),
            )


def test_upper_level_nodes_of_a_larger_log_read_the_same_twice(store) -> None:
    """Past 1024 entries the adapter may cache the upper levels; cold and warm reads agree."""
    from vettra.domain.merkle import MerkleTree, leaf_hash
    from vettra.domain.merkle_nodes import inclusion_from_nodes

    with store.unit_of_work() as uow:
        for i in range(2100):
            uow.audit.record(audit_event(type="test", data={"i": i}))
        uow.commit()
    settle(store)
    size = 2100
    tree = MerkleTree([leaf_hash(h) for h in store.audit_log.entry_hashes("default", size)])
    assert store.audit_log.merkle_nodes("default", [(11, 0), (10, 1), (10, 2)]) == {
        (11, 0): tree._root(0, 2048),
        (10, 1): tree._root(1024, 2048),
    }

    def read(ids):
        return store.audit_log.merkle_nodes("default", ids)

    for _ in range(2):
        for index in (0, 1023, 1024, 2047, 2048, 2099):
            assert inclusion_from_nodes(read, index, size) == (
                tree.inclusion_proof(index, size),
                tree.root(),
            )


def test_adding_an_action_twice_conflicts(store) -> None:
    action = _action()
    with store.unit_of_work() as uow:
        uow.actions.add(action)
        uow.commit()
    with pytest.raises(Conflict):
        with store.unit_of_work() as uow:
            uow.actions.add(replace(action, user="mallory"))
            uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id) == action


# -- retention sweeps (services/retention.py calls these in bounded batches) -----------------


def test_idempotency_sweep_deletes_only_keys_older_than_the_cutoff_in_batches(store) -> None:
    with store.unit_of_work() as uow:
        for i in range(5):
            at = T0 + timedelta(seconds=i)
            uow.idempotency.put(IdempotencyRecord("s", f"old-{i}", "sha256:a", f"act_o{i}", at=at))
        hour = timedelta(hours=1)
        uow.idempotency.put(IdempotencyRecord("s", "edge", "sha256:a", "act_e", at=T0 + hour))
        uow.idempotency.put(IdempotencyRecord("s", "new", "sha256:a", "act_n", at=T0 + 2 * hour))
        uow.commit()
    cutoff = T0 + timedelta(hours=1)
    with store.unit_of_work() as uow:
        assert uow.idempotency.sweep(cutoff, 3) == 3  # bounded by the limit
        uow.commit()
    with store.unit_of_work() as uow:
        assert uow.idempotency.sweep(cutoff, 3) == 2
        assert uow.idempotency.sweep(cutoff, 3) == 0
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        assert [uow.idempotency.get("s", f"old-{i}") for i in range(5)] == [None] * 5
        assert uow.idempotency.get("s", "edge") == ("sha256:a", "act_e")  # the cutoff is exclusive
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
        left = {
            d for d in ("m0", "m1", "m2", "m3", "undated", "micro") if uow.docs.get("markers", d)
        }
        assert left == {"m2", "m3", "undated"}
        assert all(uow.docs.get("other", f"m{i}") for i in range(4))


def test_quorum_rows_of_decided_actions_are_swept_and_pending_ones_stay(store) -> None:
    live = _quorum_action("alice", ["carol", "dave"])
    done = _quorum_action("alice", ["carol", "erin"])
    with store.unit_of_work() as uow:
        uow.actions.add(live)
        uow.actions.add(done)
        uow.commit()
    with store.unit_of_work() as uow:
        uow.actions.update(
            done.decide(APPROVED, by="approver:carol", at=T0, reason="ok"), expected_status=PENDING
        )
        # SQLite keeps one index row per named approver; the fake and Firestore keep the
        # names on the action itself, so they have none to sweep.
        rows = 2 if isinstance(store, SqliteStore) else 0
        assert [uow.actions.sweep_quorum_rows(1) for _ in range(3)] == [1] * rows + [0] * (3 - rows)
        assert uow.actions.sweep_quorum_rows(10) == 0
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        assert [a.id for a in uow.actions.pending("default", "carol", T0, 100)] == [live.id]
        assert [a.id for a in uow.actions.pending("default", "dave", T0, 100)] == [live.id]
        assert uow.actions.get(done.id).status == APPROVED  # the action itself stays


def test_an_explicit_rollback_discards_the_unit_of_work(store) -> None:
    action = _action()
    with store.unit_of_work() as uow:
        _add_intercepted(uow, action)
        uow.rollback()
    settle(store)
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id) is None
    assert list(store.audit_log.entries("default")) == []
