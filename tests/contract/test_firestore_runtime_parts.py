"""What the Firestore runtime adds around the store, on the official emulator:

* the store's ``on_commit`` hook (the sequencer's trigger) fires after a commit that
  wrote outbox events, with their chains, and never fails the commit;
* ``chains_waiting`` (the sweep's collection-group query) finds unsequenced chains;
* ``pace_s`` keeps head writes a second apart *across* sequencers taking the lease in
  turn; ``drain_paced`` (the ``sequence`` target) waits for a held lease, and gives up
  with Unavailable when it stays held;
* the in-process :class:`SequencerRunner`: a poke sequences at once, the sweep finds
  what no poke announced, and two runners on one chain link every event exactly once;
* :class:`FirestoreActionChanges` reports writes made through another client.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from vettra.adapters.firestore_changes import FirestoreActionChanges
from vettra.adapters.firestore_store import FirestoreStore
from vettra.adapters.local_keys import LocalKeyStore
from vettra.adapters.sequencer_runner import Pacing, SequencerRunner
from vettra.domain.actions import APPROVED, PENDING, Action
from vettra.domain.errors import Unavailable

from .firestore_emulator import FirestoreProject
from .test_firestore_sequencer import CHAIN, _check_exactly_once, _commit_one
from .test_store_contract import T0, _action, _event


@pytest.fixture
def keys(tmp_path: Path) -> LocalKeyStore:
    return LocalKeyStore(tmp_path)


def _store(project: FirestoreProject, keys: LocalKeyStore, **kw) -> FirestoreStore:
    return FirestoreStore(project=project.project, keys=keys, client=project.client, **kw)


def test_on_commit_names_the_chains_a_commit_wrote_events_to(firestore_project, keys) -> None:
    seen: list[set[str]] = []
    store = _store(firestore_project, keys, on_commit=seen.append)
    a, b = _action(), _action()
    with store.unit_of_work() as uow:
        uow.actions.add(a)
        uow.audit.record(_event(a))
        uow.audit.record(_event(b, "action.approved"))
        uow.audit.record(replace(_event(b), chain="acme"))
        uow.commit()
    assert seen == [{"default", "acme"}]
    with store.unit_of_work() as uow:  # no audit event: no nudge
        uow.actions.add(_action())
        uow.commit()
    with store.unit_of_work() as uow:  # rolled back: no nudge
        uow.audit.record(_event(_action()))
    assert seen == [{"default", "acme"}]


def test_a_failing_trigger_never_fails_the_commit(firestore_project, keys) -> None:
    def broken(chains: set[str]) -> None:
        raise RuntimeError("pubsub down")

    store = _store(firestore_project, keys, on_commit=broken)
    action = _action()
    with store.unit_of_work() as uow:
        uow.actions.add(action)
        uow.audit.record(_event(action))
        uow.commit()
    with store.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id) == action
    assert store.chains_waiting() == [CHAIN]  # the sweep will find it


def test_chains_waiting_lists_only_chains_with_unsequenced_events(firestore_project, keys) -> None:
    store = _store(firestore_project, keys)
    assert store.chains_waiting() == []
    _commit_one(store)
    action = _action()
    with store.unit_of_work() as uow:
        uow.audit.record(replace(_event(action), chain="acme"))
        uow.commit()
    assert store.chains_waiting() == ["acme", CHAIN]
    store.sequence_now(CHAIN)
    assert store.chains_waiting() == ["acme"]


def test_the_pace_holds_across_sequencers_taking_the_lease_in_turn(firestore_project, keys) -> None:
    store = _store(firestore_project, keys)
    first_ids = [_commit_one(store)]
    first = store.sequencer(CHAIN, pace_s=1.0)
    assert first.run_once() == 1
    first.release()
    second_ids = [_commit_one(store)]
    second = store.sequencer(CHAIN, pace_s=1.0)  # another holder: no memory of the first
    assert second.run_once() == 0 and 0 < second.wait_s <= 1.0
    time.sleep(second.wait_s)
    assert second.run_once() == 1
    head = store.db.collection("audit_heads").document(CHAIN).get()
    assert head.get("writes") == 2
    second.release()
    _check_exactly_once(store, first_ids + second_ids)


def test_drain_paced_waits_for_a_held_lease_then_drains(firestore_project, keys) -> None:
    store = _store(firestore_project, keys)
    ids = [_commit_one(store) for _ in range(3)]
    holder = store.sequencer(CHAIN)
    assert holder.acquire()
    with pytest.raises(Unavailable):  # the lease stays held past the wait
        store.sequencer(CHAIN, pace_s=1.0).drain_paced(lease_wait_s=0.5)
    release = threading.Timer(0.5, holder.release)
    release.start()
    drained = store.sequencer(CHAIN, pace_s=1.0).drain_paced(lease_wait_s=10)
    release.join()
    assert drained == 3
    ids.append(_commit_one(store))  # a redelivered trigger later: only what is new
    assert store.sequencer(CHAIN, pace_s=1.0).drain_paced() == 1
    assert store.sequencer(CHAIN, pace_s=1.0).drain_paced() == 0
    _check_exactly_once(store, ids)


def _wait(predicate, timeout_s: float = 15.0) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_poke_sequences_at_once_and_the_sweep_finds_the_rest(firestore_project, keys) -> None:
    store = _store(firestore_project, keys)
    runner = SequencerRunner(store, Pacing(sweep_s=1.0))
    store.on_commit = runner.poke
    runner.start()
    try:
        ids = [_commit_one(store)]
        took = _wait(lambda: store.audit_log.head(CHAIN)[0] == 1)
        assert took < 1.0, f"a lone commit waited {took:.2f} s for its entry"
        # a commit whose nudge was lost (another process died after committing)
        store.on_commit = None
        ids.append(_commit_one(store))
        store.on_commit = runner.poke
        _wait(lambda: store.audit_log.head(CHAIN)[0] == 2)
        assert runner.stats.sweeps >= 1
    finally:
        runner.stop()
    _check_exactly_once(store, ids)


def test_two_runners_on_one_chain_link_every_event_once(firestore_project, tmp_path) -> None:
    keys = LocalKeyStore(tmp_path)  # both processes read the same keys
    stores = [_store(firestore_project, keys) for _ in range(2)]
    runners = [SequencerRunner(s, Pacing(sweep_s=0.5)) for s in stores]
    for store, runner in zip(stores, runners, strict=True):
        store.on_commit = runner.poke
        runner.start()
    ids: list[str] = []
    lock = threading.Lock()

    def write(store: FirestoreStore) -> None:
        for _ in range(10):
            event_id = _commit_one(store)
            with lock:
                ids.append(event_id)
            time.sleep(0.05)

    writers = [threading.Thread(target=write, args=(s,)) for s in stores]
    try:
        for w in writers:
            w.start()
        for w in writers:
            w.join()
        _wait(lambda: stores[0].chains_waiting() == [], timeout_s=30)
    finally:
        for runner in runners:
            runner.stop()
    _check_exactly_once(stores[0], ids)
    writes = sum(r.stats.head_writes for r in runners)
    head = stores[0].db.collection("audit_heads").document(CHAIN).get()
    assert head.get("writes") == writes  # every head write is one runner's batch


def test_changes_report_writes_made_through_another_client(firestore_project, keys) -> None:
    writer = _store(firestore_project, keys)
    early = _action()
    with writer.unit_of_work() as uow:
        uow.actions.add(early)
        uow.commit()
    seen: list[Action] = []
    stop = FirestoreActionChanges(_store(firestore_project, keys)).watch(seen.append)
    try:
        time.sleep(0.5)  # the listener's first (empty) snapshot
        action = _action()
        with writer.unit_of_work() as uow:
            uow.actions.add(action)
            uow.commit()
        _wait(lambda: [a.id for a in seen] == [action.id], timeout_s=10)
        with writer.unit_of_work() as uow:
            decided = action.decide(APPROVED, by="user:alice", at=T0, reason=None)
            uow.actions.update(decided, expected_status=PENDING)
            uow.commit()
        _wait(lambda: len(seen) == 2, timeout_s=10)
        assert seen[-1].status == APPROVED and early.id not in {a.id for a in seen}
    finally:
        stop()
    stop()  # idempotent
