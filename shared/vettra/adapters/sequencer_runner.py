"""The Firestore sequencers run in this process: one thread for every chain it writes to.

What ``vettra dev --backend firestore`` (and a function instance without a Pub/Sub
sequence trigger) runs so that audit entries follow decisions within about a second,
as they do on the embedded store:

* :meth:`SequencerRunner.poke` is the store's ``on_commit`` hook: a commit that
  wrote outbox events to a chain makes that chain due *now*, so an isolated
  decision is sequenced in tens of milliseconds, not at the next tick;
* each chain's rounds are paced by its head document (``pace_s``, 1 s, see
  :class:`~vettra.adapters.firestore_sequencer.FirestoreSequencer`): however many
  commits poke it, the head is written at most about once a second;
* a periodic sweep (``sweep_s``) asks Firestore which chains have unsequenced
  events (:meth:`FirestoreStore.chains_waiting`): events of a process that died
  between its commit and its poke, or of another process while this one holds the
  chain's lease, are sequenced too.

Safety is the sequencer's (lease and preconditions, docs/firestore.md): two
runners in two processes take the lease in turn and never link an event twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .firestore_sequencer import INTERVAL_S, LEASE_TTL_S, FirestoreSequencer

log = logging.getLogger("vettra.sequencer")

SWEEP_S = 2.0
RETRY_S = 1.0  # after a failed round (Firestore unavailable, a malformed event)
_STOP_JOIN_S = 10.0


@dataclass
class RunnerStats:
    rounds: int = 0
    events: int = 0
    head_writes: int = 0
    failed_rounds: int = 0
    sweeps: int = 0


@dataclass(frozen=True, kw_only=True)
class Pacing:
    """How often a runner writes a chain's head, sweeps for stragglers, holds a lease."""

    pace_s: float = INTERVAL_S
    sweep_s: float = SWEEP_S
    lease_ttl_s: float = LEASE_TTL_S


class SequencerRunner:
    """Drives one :class:`FirestoreSequencer` per chain from a single daemon thread."""

    def __init__(self, store: Any, pacing: Pacing = Pacing()):
        self._store = store
        self.pacing = pacing
        self._sequencers: dict[str, FirestoreSequencer] = {}
        self._due: dict[str, float] = {}  # chain -> monotonic time of its next round
        self._not_before: dict[str, float] = {}  # chain -> when the pace allows a head write
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.stats = RunnerStats()

    # -- what the store and the runtime call ----------------------------------------------
    def poke(self, chains: Iterable[str]) -> None:
        """These chains have new outbox events: run their next round as soon as the pace allows."""
        now = time.monotonic()
        with self._cond:
            for chain in chains:
                at = max(now, self._not_before.get(chain, 0.0))
                if at < self._due.get(chain, float("inf")):
                    self._due[chain] = at
            self._cond.notify()

    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="vettra-sequencer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Finish the round in progress and let the leases go (what is left waits in the
        outbox for the next sequencer: nothing is lost)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=_STOP_JOIN_S)
            self._thread = None
        for sequencer in list(self._sequencers.values()):
            try:
                sequencer.release()
            except Exception:  # noqa: BLE001 - an unreleased lease expires on its own
                log.warning("could not release the lease of chain %s", sequencer.chain)

    # -- the thread -------------------------------------------------------------------------
    def _run(self) -> None:
        next_sweep = time.monotonic()  # sweep at once: a restart picks up what waits
        while True:
            with self._cond:
                while True:
                    now = time.monotonic()
                    ready = [chain for chain, at in self._due.items() if at <= now]
                    if self._stopping or ready or now >= next_sweep:
                        break
                    self._cond.wait(min([next_sweep, *self._due.values()]) - now)
                for chain in ready:
                    del self._due[chain]
                stopping = self._stopping
            if stopping:
                return
            if now >= next_sweep:
                next_sweep = now + self.pacing.sweep_s
                ready += self._sweep()
            for chain in dict.fromkeys(ready):
                self._round(chain)

    def _sweep(self) -> list[str]:
        self.stats.sweeps += 1
        try:
            found: list[str] = self._store.chains_waiting()
            return found
        except Exception:  # noqa: BLE001 - retried at the next sweep
            log.warning("the sequencer's sweep could not list waiting chains", exc_info=True)
            return []

    def _sequencer(self, chain: str) -> FirestoreSequencer:
        sequencer = self._sequencers.get(chain)
        if sequencer is None:
            sequencer = self._sequencers[chain] = self._store.sequencer(
                chain, pace_s=self.pacing.pace_s, lease_ttl_s=self.pacing.lease_ttl_s
            )
        return sequencer

    def _round(self, chain: str) -> None:
        sequencer = self._sequencer(chain)
        lost = sequencer.lost_batches
        try:
            landed = sequencer.run_once()
        except Exception:  # noqa: BLE001 - keep the thread (and other chains) going
            self.stats.failed_rounds += 1
            log.exception("a sequencer round failed on chain %s; retrying", chain)
            self._again(chain, RETRY_S)
            return
        self.stats.rounds += 1
        if landed:
            self.stats.events += landed
            self.stats.head_writes += 1
            with self._cond:
                self._not_before[chain] = time.monotonic() + self.pacing.pace_s
            # more may wait (a full batch, or commits that poked during the round)
            self._again(chain, self.pacing.pace_s)
        elif sequencer.wait_s:
            with self._cond:
                self._not_before[chain] = time.monotonic() + sequencer.wait_s
            self._again(chain, sequencer.wait_s)
        elif sequencer.lost_batches != lost:
            self._again(chain, self.pacing.pace_s)  # the head moved under us: read it again
        # else: nothing waiting, or another process holds the lease (its sweep drains it)

    def _again(self, chain: str, delay_s: float) -> None:
        at = time.monotonic() + delay_s
        with self._cond:
            if at < self._due.get(chain, float("inf")):
                self._due[chain] = at
            self._cond.notify()
