"""The Firestore audit sequencer on the official emulator (docs/audit.md, issue 10 item 3).

The classic hole: an outbox event whose time-ordered id is earlier commits after
the sequencer has already linked later ones. These tests hold commits open on
purpose, run two sequencers against each other with injected delays, and check
that every event is linked exactly once into a chain that verifies; then 200
concurrent commits with the sequencer running at its normal pace, counting how
often the head document was written.
"""

from __future__ import annotations

import random
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from vettra.adapters.firestore_repos import OUTBOX
from vettra.adapters.firestore_sequencer import FirestoreSequencer
from vettra.adapters.firestore_store import FirestoreStore, chain_ref
from vettra.adapters.local_keys import LocalKeyStore
from vettra.domain.actions import new_action_id
from vettra.domain.audit import AuditEvent, verify_chain
from vettra.domain.checkpoint import (
    NoteVerifier,
    audit_origin,
    ed25519_verifier_key,
    verify_checkpoint,
)
from vettra.domain.errors import Unavailable
from vettra.domain.merkle import leaf_hash, root_from_leaf_hashes
from vettra.ports import IdempotencyRecord

from .firestore_emulator import FirestoreProject
from .test_store_contract import _action, _event

CHAIN = "default"
LOAD_COMMITS = 200
LOAD_BATCH = 50
SOLO_COMMITS = 20
WRITER_COMMITS = 8  # per writer thread in the competing-sequencers test


@pytest.fixture
def fstore(firestore_project: FirestoreProject, tmp_path: Path) -> FirestoreStore:
    return FirestoreStore(
        project=firestore_project.project,
        keys=LocalKeyStore(tmp_path),
        client=firestore_project.client,
    )


def _commit_one(store: FirestoreStore, hold: threading.Event | None = None) -> str:
    """An intercept-shaped unit of work: idempotency read + key + action + outbox event."""
    action = _action()
    with store.unit_of_work() as uow:
        assert uow.idempotency.get("default:bot", action.id) is None
        uow.idempotency.put(IdempotencyRecord("default:bot", action.id, "sha256:x", action.id))
        uow.actions.add(action)
        uow.audit.record(_event(action))
        event_id = uow.audit.event_ids[0]  # type: ignore[attr-defined]
        if hold is not None:
            hold.wait(
                timeout=30
            )  # the commit is held open: its id is older than what lands meanwhile
        uow.commit()
    return event_id


def _check_exactly_once(store: FirestoreStore, event_ids: list[str]) -> None:
    """Every committed event is in the chain once, seqs are 1..n, outbox marks agree, the chain verifies."""
    entries = list(store.audit_log.entries(CHAIN))
    assert [e.seq for e in entries] == list(range(1, len(event_ids) + 1))
    db = store.db
    stored = {s.id: s.to_dict() for s in chain_ref(db, CHAIN).collection("entries").stream()}
    linked_ids = [doc["event_id"] for doc in stored.values()]
    assert sorted(linked_ids) == sorted(event_ids), "an event skipped or linked twice"
    outbox = {s.id: s.get("seq") for s in chain_ref(db, CHAIN).collection(OUTBOX).stream()}
    assert set(outbox) == set(event_ids)
    assert {doc["event_id"]: doc["seq"] for doc in stored.values()} == outbox
    report = verify_chain([e.as_dict() for e in entries], store.keys.audit_hmac_keys())
    assert report.valid, report.first_invalid
    assert store.audit_log.head(CHAIN) == (len(event_ids), entries[-1].hash)
    assert store.audit_log.tree_state(CHAIN)[0] == len(event_ids)
    _check_checkpoints(store, [bytes.fromhex(e.hash) for e in entries])


def _check_checkpoints(store: FirestoreStore, hashes: list[bytes]) -> None:
    """Each batch signed a checkpoint of exactly the tree it committed; the last covers the chain."""
    public = store.keys.checkpoint_public_keys()[0].public_bytes(Encoding.Raw, PublicFormat.Raw)
    verifier = NoteVerifier(ed25519_verifier_key(audit_origin(CHAIN), public))
    stored = store.audit_log.checkpoints(CHAIN)
    for size, note in stored:
        checkpoint = verify_checkpoint(note, verifier)
        assert checkpoint.size == size
        assert checkpoint.root_hash == root_from_leaf_hashes([leaf_hash(h) for h in hashes[:size]])
    assert stored[-1][0] == len(hashes) and store.audit_log.last_checkpoint(CHAIN) == stored[-1]


def test_a_live_lease_keeps_a_second_sequencer_out_until_it_expires(fstore: FirestoreStore) -> None:
    now = [time.time()]
    first = fstore.sequencer(CHAIN, lease_ttl_s=10, clock=lambda: now[0])
    second = fstore.sequencer(CHAIN, lease_ttl_s=10, clock=lambda: now[0])
    assert first.acquire() and not second.acquire()
    with pytest.raises(Unavailable):
        fstore.sequence_now(CHAIN)  # a one-shot sequencer is refused too
    now[0] += 11  # the first holder stopped renewing
    assert second.acquire() and not first.acquire()
    second.release()
    assert first.acquire()


def test_a_commit_held_open_past_a_sequenced_round_is_linked_later_not_skipped(
    fstore: FirestoreStore,
) -> None:
    hold = threading.Event()
    late: list[str] = []
    held = threading.Thread(target=lambda: late.append(_commit_one(fstore, hold)))
    held.start()
    time.sleep(0.2)  # its event id is taken now
    early = [_commit_one(fstore) for _ in range(5)]
    assert fstore.sequence_now(CHAIN) == 5
    hold.set()
    held.join()
    assert late[0] < min(early), "the held commit's id sorts before the ones already linked"
    assert fstore.sequence_now(CHAIN) == 1
    _check_exactly_once(fstore, early + late)
    assert list(fstore.audit_log.entries(CHAIN))[-1].seq == 6  # linked after, in commit order


def test_a_sequencer_that_lost_its_lease_mid_batch_writes_nothing(fstore: FirestoreStore) -> None:
    now = [1000.0]
    ids = [_commit_one(fstore) for _ in range(3)]
    rival = fstore.sequencer(CHAIN, lease_ttl_s=5, clock=lambda: now[0])

    def stall(events: list[Any]) -> None:
        # this sequencer stalls (GC pause, slow network) past its lease; the rival takes over
        now[0] += 6
        assert rival.drain() == 3

    slow = fstore.sequencer(CHAIN, lease_ttl_s=5, clock=lambda: now[0], before_commit=stall)
    assert slow.run_once() == 0 and slow.lost_batches == 1
    _check_exactly_once(fstore, ids)


def test_two_competing_sequencers_with_delays_link_every_event_exactly_once(
    fstore: FirestoreStore,
) -> None:
    rng = random.Random(7)
    ttl = 0.6
    sequencers: list[FirestoreSequencer] = []
    stalled: list[FirestoreSequencer] = []

    def delay(index: int) -> Any:
        def before_commit(events: list[Any]) -> None:
            me = sequencers[index]
            if not stalled and me.batches:
                stalled.append(me)
                time.sleep(ttl * 1.5)  # once: long enough for the lease to pass to the rival
            time.sleep(rng.uniform(0, 0.03))

        return before_commit

    sequencers.extend(
        fstore.sequencer(
            CHAIN, lease_ttl_s=ttl, interval_s=0.05, batch_size=5, before_commit=delay(i)
        )
        for i in range(2)
    )
    stop = threading.Event()
    runners = [threading.Thread(target=s.run, args=(stop,)) for s in sequencers]
    for r in runners:
        r.start()
    ids: list[str] = []
    lock = threading.Lock()

    def writer(seed: int) -> None:
        local = random.Random(seed)
        for _ in range(WRITER_COMMITS):
            hold = threading.Event()
            # some commits are held open a while after their event id was taken
            timer = threading.Timer(local.choice([0, 0, 0.05, 0.3]), hold.set)
            timer.start()
            event_id = _commit_one(fstore, hold)
            with lock:
                ids.append(event_id)
            time.sleep(local.uniform(0, 0.05))

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    deadline = time.monotonic() + 20
    while fstore.audit_log.head(CHAIN)[0] < len(ids) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for r in runners:
        r.join()
    assert stalled and stalled[0].lost_batches >= 1, "the stalled sequencer's batch was refused"
    assert all(s.batches for s in sequencers), "both sequencers linked some batches"
    _check_exactly_once(fstore, ids)


def test_200_concurrent_commits_all_succeed_and_the_head_is_written_about_once_a_second(
    fstore: FirestoreStore,
) -> None:
    solo, solo_ids = [], []
    for _ in range(SOLO_COMMITS):  # uncontended latency first, for comparison
        started = time.perf_counter()
        solo_ids.append(_commit_one(fstore))
        solo.append(time.perf_counter() - started)
    ids: list[str] = []
    assert fstore.sequence_now(CHAIN) == SOLO_COMMITS
    # the production pace (one round per second); small batches so the backlog takes several rounds
    sequencer = fstore.sequencer(CHAIN, batch_size=LOAD_BATCH)
    stop = threading.Event()
    runner = threading.Thread(target=sequencer.run, args=(stop,))
    runner.start()
    barrier = threading.Barrier(LOAD_COMMITS)
    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait()
        started = time.perf_counter()
        try:
            event_id = _commit_one(fstore)
        except BaseException as exc:  # noqa: BLE001
            with lock:
                errors.append(exc)
            return
        with lock:
            latencies.append(time.perf_counter() - started)
            ids.append(event_id)

    began = time.monotonic()
    threads = [threading.Thread(target=one) for _ in range(LOAD_COMMITS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    committed = time.monotonic()
    while (
        fstore.audit_log.head(CHAIN)[0] < SOLO_COMMITS + LOAD_COMMITS
        and time.monotonic() - committed < 30
    ):
        time.sleep(0.05)
    stop.set()
    runner.join()
    elapsed = time.monotonic() - began
    assert errors == [] and len(ids) == LOAD_COMMITS
    _check_exactly_once(fstore, solo_ids + ids)
    writes = [b.committed_at for b in sequencer.batches]
    gaps = [b - a for a, b in zip(writes, writes[1:], strict=False)]
    print(
        f"\nalone: commit p50 {statistics.median(solo) * 1000:.1f} ms; "
        f"{LOAD_COMMITS} concurrent commits: p50 {statistics.median(latencies) * 1000:.1f} ms, "
        f"max {max(latencies) * 1000:.0f} ms, all committed in {committed - began:.2f} s; "
        f"head writes {len(writes)} in {elapsed:.2f} s (min gap {min(gaps, default=0):.2f} s); "
        f"batches {[b.events for b in sequencer.batches]}, batch latency p50 "
        f"{statistics.median(b.seconds for b in sequencer.batches) * 1000:.0f} ms"
    )
    assert len(writes) <= elapsed / sequencer.interval_s + 1
    assert all(gap >= 0.9 * sequencer.interval_s for gap in gaps), gaps


def test_the_outbox_keeps_the_event_exactly_as_recorded(fstore: FirestoreStore) -> None:
    event = AuditEvent(
        type="action.approved",
        chain=CHAIN,
        actor="approver:ä",
        at="2026-01-01T00:00:00.000Z",
        action_id=new_action_id(),
        user="alice",
        data={"n": 1, "x": 1.5, "nested": [[1, 2], {"k": None}], "s": "\u2028"},
    )
    with fstore.unit_of_work() as uow:
        uow.audit.record(event)
        assert uow.audit.linked == []  # deferred: the port allows it
        uow.commit()
    fstore.sequence_now(CHAIN)
    entry = next(fstore.audit_log.entries(CHAIN))
    assert (entry.type, entry.actor, entry.action_id, entry.user, entry.data) == (
        event.type,
        event.actor,
        event.action_id,
        event.user,
        event.data,
    )


def test_two_open_transactions_deciding_one_action_never_both_win(fstore: FirestoreStore) -> None:
    """Both read the action pending, then both write: the emulator deadlocks them until it
    aborts one or both ("Transaction lock timeout"). Never may both win; a loser gets
    Conflict (no google exception); if both were aborted the action is still pending and
    a retry decides it exactly once."""
    from vettra.domain.actions import APPROVED, DENIED, PENDING
    from vettra.domain.errors import Conflict

    from .test_store_contract import T0

    action = _action()
    with fstore.unit_of_work() as uow:
        uow.actions.add(action)
        uow.commit()
    both_read = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def decide(status: str, race: bool) -> None:
        try:
            with fstore.unit_of_work() as uow:
                if uow.actions.get(action.id).status != PENDING:
                    raise Conflict("already decided")
                if race:
                    both_read.wait(timeout=10)  # both saw it pending: a real race
                uow.actions.update(
                    action.decide(status, by="approver:alice", at=T0, reason=None),
                    expected_status=PENDING,
                )
                uow.commit()
            outcomes[status] = "won"
        except Conflict:
            outcomes[status] = "conflict"

    threads = [threading.Thread(target=decide, args=(s, True)) for s in (APPROVED, DENIED)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(outcomes) == {APPROVED, DENIED} and list(outcomes.values()).count("won") <= 1, (
        outcomes
    )
    with fstore.unit_of_work(readonly=True) as uow:
        stored = uow.actions.get(action.id).status
    winners = [s for s, o in outcomes.items() if o == "won"]
    assert stored == (winners[0] if winners else PENDING)
    for status in (APPROVED, DENIED):  # the losers retry, one after the other
        if outcomes[status] == "conflict":
            decide(status, race=False)
    assert list(outcomes.values()).count("won") == 1, outcomes
    with fstore.unit_of_work(readonly=True) as uow:
        assert uow.actions.get(action.id).status == next(
            s for s, o in outcomes.items() if o == "won"
        )
