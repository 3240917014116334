"""The audit sequencer for Firestore: one per chain, under a lease (docs/audit.md).

A round reads the chain's head (``audit_heads/{chain}``: seq, hash, Merkle
frontier), the outbox events not yet sequenced (``seq == null``; *not* a cursor
on event ids: commits land out of id order, and a cursor skipped ~1.4% of
events in a measurement on the emulator at 16 clients), links and seals them with
:func:`~vettra.domain.audit.link_all` and the KeyStore's HMAC key, and writes in
ONE atomic batched write:

- ``audit_chains/{chain}/entries/{seq}``, create-only (a seq is never written twice);
- each outbox event's ``seq``, with an update-time precondition on the snapshot
  it read (an event is never sequenced twice);
- the lease, with an update-time precondition on this sequencer's own last
  lease write (a sequencer whose lease was taken over cannot write at all);
- the head, with an update-time precondition on the head it read (or
  create-only for the first batch): the linearisation point of the chain;
- the signed checkpoint of the new tree (``checkpoints/{size}``, create-only; a
  C2SP signed note with the KeyStore's Ed25519 key, as services/checkpoints.py
  signs locally), so a checkpoint never names a size that was not committed.

Either everything in the batch lands or nothing does, so the head always
describes exactly the entries that exist, and a late outbox commit is simply
picked up by a later round (its ``seq`` follows the events already linked).
Safety rests on those preconditions, checked by Firestore, not on clocks: the
lease's expiry only decides who *tries*.

:meth:`FirestoreSequencer.run` does one round per ``interval_s`` (1 s), so the
head and lease documents are written about once a second per chain however
many requests arrive; a round takes at most ``batch_size`` events (a commit
holds at most 500 writes: two per event, the Merkle nodes the batch completes
(at most one per event plus one per level), lease, head and checkpoint), which
bounds one chain at ~150 events/s.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..domain.audit import GENESIS_HASH, link_all
from ..domain.checkpoint import Checkpoint, NoteSigner, audit_origin, sign_checkpoint
from ..domain.errors import Conflict, Unavailable
from ..domain.merkle import CompactRange, leaf_hash
from ..ports import KeyStore
from .firestore_repos import (
    AUDIT_HEADS,
    AUDIT_LEASES,
    CHECKPOINTS,
    ENTRIES,
    NODES,
    OUTBOX,
    doc_key,
    mapped,
    node_key,
    number_key,
)
from .firestore_store import chain_ref, event_from_outbox

log = logging.getLogger(__name__)

LEASE_TTL_S = 10.0
INTERVAL_S = 1.0
#: 2 writes per event + lease + head + checkpoint must stay within Firestore's 500 writes per commit.
#: 2 writes per event + at most ``BATCH_SIZE + 64`` nodes + 3 stays under 500 writes.
BATCH_SIZE = 140
_MAX_COMMIT_WRITES = 500
assert 2 * BATCH_SIZE + 3 <= _MAX_COMMIT_WRITES


@dataclass(frozen=True)
class BatchStats:
    events: int
    seconds: float  # from reading the head to the commit's answer
    committed_at: float  # time.monotonic() when the head was written


class FirestoreSequencer:
    """Links one chain's outbox into entries; see the module docstring for the guarantees.

    ``before_commit`` is a seam for tests: it is called with the prepared batch's
    events just before the commit (to inject delays, or lose the lease meanwhile).
    ``sign_checkpoints=False`` leaves signing to a separate checkpointer.

    ``pace_s`` > 0 keeps head writes at least that far apart *whoever* wrote the
    last one: a round that finds the head younger than ``pace_s`` (by its update
    time, which Firestore sets) writes nothing and sets :attr:`wait_s` to the
    time left. That holds across processes and function instances taking the
    lease in turn, where the sequencer's own memory of its last batch does not.
    """

    def __init__(
        self,
        db: Any,
        chain: str,
        keys: KeyStore,
        *,
        holder: str | None = None,
        lease_ttl_s: float = LEASE_TTL_S,
        interval_s: float = INTERVAL_S,
        batch_size: int = BATCH_SIZE,
        clock: Callable[[], float] = time.time,
        before_commit: Callable[[list[Any]], None] | None = None,
        sign_checkpoints: bool = True,
        pace_s: float = 0.0,
    ):
        if not 0 < batch_size <= BATCH_SIZE:
            raise ValueError(f"batch_size must be 1..{BATCH_SIZE}, got {batch_size}")
        self.db, self.chain, self.keys = db, chain, keys
        self.holder = holder or "sequencer-" + secrets.token_hex(8)
        self.lease_ttl_s, self.interval_s, self.batch_size = lease_ttl_s, interval_s, batch_size
        self._clock, self._before_commit = clock, before_commit
        self.sign_checkpoints = sign_checkpoints
        self._lease_ref = db.collection(AUDIT_LEASES).document(doc_key(chain))
        self._head_ref = db.collection(AUDIT_HEADS).document(doc_key(chain))
        self._chain_ref = chain_ref(db, chain)
        self._lease_time: Any = None  # update_time of our last lease write; None = not held
        self._lease_until = 0.0
        self.batches: list[BatchStats] = []
        self.lost_batches = 0  # batches refused by a precondition (lease or head moved)
        self.pace_s = pace_s
        #: After a round refused by the pace: seconds until the head may be written again.
        self.wait_s = 0.0

    # -- the lease ----------------------------------------------------------------
    def holds_lease(self) -> bool:
        # renew a third of the way before expiry so a slow round never runs on a dying lease
        return (
            self._lease_time is not None
            and self._clock() < self._lease_until - self.lease_ttl_s / 3
        )

    def acquire(self) -> bool:
        """Take (or renew) the chain's lease; ``False`` while another holder's lease is live.

        Compare-and-set on the lease document: created if absent, else updated
        with a precondition on the update time just read, so of two sequencers
        racing for an expired lease exactly one wins.
        """
        now = self._clock()
        data = {
            "chain": self.chain,
            "holder": self.holder,
            "expires_at": now + self.lease_ttl_s,
            "renewed_at": now,
        }
        try:
            with mapped():
                snap = self._lease_ref.get()
                if not snap.exists:
                    result = self._lease_ref.create(data)
                else:
                    lease = snap.to_dict()
                    if lease.get("holder") != self.holder and lease.get("expires_at", 0) > now:
                        self._lease_time = None
                        return False
                    result = self._lease_ref.update(
                        data, option=self.db.write_option(last_update_time=snap.update_time)
                    )
        except Conflict:
            self._lease_time = None
            return False
        self._lease_time, self._lease_until = result.update_time, now + self.lease_ttl_s
        return True

    def require_lease(self) -> None:
        if not self.acquire():
            raise Unavailable(f"another sequencer holds the lease of chain {self.chain!r}")

    def release(self) -> None:
        """Give the lease up (only if it is still ours)."""
        if self._lease_time is None:
            return
        try:
            with mapped():
                self._lease_ref.delete(
                    option=self.db.write_option(last_update_time=self._lease_time)
                )
        except Conflict:
            pass  # already taken over
        self._lease_time = None

    # -- sequencing -----------------------------------------------------------------
    def run_once(self) -> int:
        """One round: sequence up to ``batch_size`` waiting events; returns how many landed."""
        from google.cloud.firestore_v1 import FieldFilter
        from google.cloud.firestore_v1.field_path import FieldPath

        self.wait_s = 0.0
        if not self.holds_lease() and not self.acquire():
            return 0
        started = time.monotonic()
        with mapped():
            head_snap = self._head_ref.get()
        if self.pace_s and head_snap.exists:
            # the head's own update time (the server's clock), not this sequencer's memory
            age = time.time() - head_snap.update_time.timestamp()
            if age < self.pace_s:
                self.wait_s = self.pace_s - age
                return 0
        with mapped():
            waiting = list(
                self._chain_ref.collection(OUTBOX)
                .where(filter=FieldFilter("seq", "==", None))
                .order_by(FieldPath.document_id())
                .limit(self.batch_size)
                .stream()
            )
        if not waiting:
            return 0
        head = head_snap.to_dict() if head_snap.exists else None
        seq, prev = (head["seq"], head["hash"]) if head else (0, GENESIS_HASH)
        tree = CompactRange.from_dict(head["frontier"]) if head else CompactRange()
        key_id, key = self.keys.audit_hmac_key()
        entries = link_all(
            [event_from_outbox(s.to_dict()) for s in waiting],
            head_seq=seq,
            head_hash=prev,
            key_id=key_id,
            key=key,
        )
        completed: list[tuple[int, int, bytes]] = []
        for entry in entries:
            completed += tree.append_completing(leaf_hash(bytes.fromhex(entry.hash)))
        if self._before_commit is not None:
            self._before_commit(waiting)
        now = self._clock()
        batch = self.db.batch()
        for snap, entry in zip(waiting, entries, strict=False):
            batch.create(
                self._chain_ref.collection(ENTRIES).document(number_key(entry.seq)),
                {
                    "seq": entry.seq,
                    "event_id": snap.id,
                    "action_id": entry.action_id,
                    "user": entry.user,
                    "body": entry.body_json,
                    "hash": entry.hash,
                    "mac": entry.mac,
                    "prev_hash": entry.prev_hash,
                },
            )
            batch.update(
                snap.reference,
                {"seq": entry.seq},
                option=self.db.write_option(last_update_time=snap.update_time),
            )
        for level, index, node in completed:  # the perfect subtrees this batch completes
            batch.create(
                self._chain_ref.collection(NODES).document(node_key(level, index)),
                {"level": level, "index": index, "hash": node.hex()},
            )
        batch.update(
            self._lease_ref,
            {"expires_at": now + self.lease_ttl_s, "renewed_at": now},
            option=self.db.write_option(last_update_time=self._lease_time),
        )
        new_head = {
            "chain": self.chain,
            "seq": entries[-1].seq,
            "hash": entries[-1].hash,
            "frontier": tree.to_dict(),
            "holder": self.holder,
            # how many times the head was written: with update_time, what shows its pace
            "writes": int((head or {}).get("writes", 0)) + 1,
        }
        if head_snap.exists:
            batch.update(
                self._head_ref,
                new_head,
                option=self.db.write_option(last_update_time=head_snap.update_time),
            )
        else:
            batch.create(self._head_ref, new_head)
        if self.sign_checkpoints:
            root = tree.root()
            origin = audit_origin(self.chain)
            note = sign_checkpoint(
                Checkpoint(origin, tree.size, root),
                NoteSigner(origin, self.keys.checkpoint_signing_key()),
            )
            batch.create(
                self._chain_ref.collection(CHECKPOINTS).document(number_key(tree.size)),
                {"chain": self.chain, "size": tree.size, "root": root.hex(), "note": note},
            )
        try:
            with mapped():
                results = batch.commit()
        except Conflict:
            # the lease was taken over or another round moved the head first: nothing landed
            self.lost_batches += 1
            self._lease_time = None
            log.info(
                "sequencer %s lost a batch of %d on chain %s", self.holder, len(entries), self.chain
            )
            return 0
        self._lease_time, self._lease_until = (
            results[2 * len(entries) + len(completed)].update_time,
            now + self.lease_ttl_s,
        )
        self.batches.append(BatchStats(len(entries), time.monotonic() - started, time.monotonic()))
        return len(entries)

    def drain(self) -> int:
        """Rounds back to back until the outbox is empty (tests, operator commands)."""
        total = 0
        while True:
            if not self.holds_lease() and not self.acquire():
                raise Unavailable(f"another sequencer holds the lease of chain {self.chain!r}")
            lost = self.lost_batches
            landed = self.run_once()
            total += landed
            if not landed and self.lost_batches == lost:
                return total

    def drain_paced(
        self,
        *,
        lease_wait_s: float = LEASE_TTL_S * 1.5,
        budget_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> int:
        """Take the lease (waiting up to ``lease_wait_s`` for another holder to let go or
        expire), sequence until the outbox is empty at ``pace_s``, let the lease go.

        What a triggered sequencer (the ``sequence`` Cloud Function, one message per
        commit) runs: a message arriving while another instance drains waits for the
        lease instead of being dropped, so the events that holder may have read past
        are not stranded, and a redelivered message finds nothing to do. Raises
        :class:`Unavailable` when the lease stays taken (the message is then
        redelivered). Returns how many events it sequenced.
        """
        give_up = time.monotonic() + lease_wait_s
        while not self.acquire():
            if time.monotonic() >= give_up:
                raise Unavailable(f"another sequencer holds the lease of chain {self.chain!r}")
            sleep(min(0.25, max(0.0, give_up - time.monotonic())))
        total = 0
        try:
            end = time.monotonic() + budget_s
            while time.monotonic() < end:
                lost = self.lost_batches
                landed = self.run_once()
                total += landed
                if landed:
                    continue
                if self.wait_s:
                    sleep(self.wait_s)
                    continue
                if self.lost_batches != lost or not self.holds_lease():
                    if not self.acquire():  # taken over meanwhile: the new holder drains
                        return total
                    continue
                return total
            return total  # out of budget: later messages of this chain resume from the head
        finally:
            self.release()

    def run(self, stop: threading.Event) -> None:
        """A round per ``interval_s`` (the next one starts ``interval_s`` after a head write)
        until ``stop`` is set; then the lease is released."""
        try:
            while not stop.is_set():
                anchor = time.monotonic()
                try:
                    if self.run_once():
                        # pace from the head write itself, so two head writes are >= interval apart
                        anchor = self.batches[-1].committed_at
                except Unavailable as exc:
                    log.warning("sequencer %s on chain %s: %s", self.holder, self.chain, exc.detail)
                except Exception:  # noqa: BLE001 - e.g. a malformed outbox document: keep the
                    # loop (and the lease) alive and say so loudly; the chain waits for an operator
                    log.exception(
                        "sequencer %s on chain %s failed a round", self.holder, self.chain
                    )
                stop.wait(max(0.0, self.interval_s - (time.monotonic() - anchor)))
        finally:
            try:
                self.release()
            except Unavailable:
                pass  # the lease expires on its own
