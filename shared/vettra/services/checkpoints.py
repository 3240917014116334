"""Signed checkpoints and Merkle proofs over each tenant's audit chain.

A checkpoint is the C2SP tlog-checkpoint ``(origin, size, root)`` signed as a
C2SP signed note with the deployment's Ed25519 key, so anyone holding the
published verifier key can check the log (RFC 9162 proofs) without trusting us.
One checkpoint document is written per interval at most, never per request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization

from ..domain import checkpoint
from ..domain.errors import BadQuery, VerificationError
from ..domain.identity import Principal
from ..domain.merkle import leaf_hash
from ..domain.merkle_nodes import (
    LeafReader,
    NodeReader,
    consistency_from_nodes,
    inclusion_from_nodes,
)
from ..ports import EntryQuery
from .deps import Deps
from .periodic import Periodic
from .rate_limit import principal_key

DEFAULT_INTERVAL_S = 1.0
DEFAULT_EVERY_ENTRIES = 1000
MIN_INTERVAL_S = 1.0  # one checkpoint document write per chain per second at most
_POLL_S = 0.1


def signer_for(deps: Deps, chain: str) -> checkpoint.NoteSigner:
    return checkpoint.NoteSigner(checkpoint.audit_origin(chain), deps.keys.checkpoint_signing_key())


def verifier_keys(deps: Deps, chain: str) -> list[str]:
    """Verifier key strings (signed-note form) for ``chain``: current first."""
    origin = checkpoint.audit_origin(chain)
    return [
        checkpoint.ed25519_verifier_key(
            origin, public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        )
        for public in deps.keys.checkpoint_public_keys()
    ]


def make_checkpoint(deps: Deps, chain: str) -> str | None:
    """Sign the current tree if it grew since the last checkpoint; returns the note."""
    log = deps.store.audit_log
    size, root = log.tree_state(chain)
    last = log.last_checkpoint(chain)
    if last is not None and last[0] >= size:
        return None
    if size == 0:
        return None
    tree = checkpoint.Checkpoint(checkpoint.audit_origin(chain), size, root)
    note = checkpoint.sign_checkpoint(tree, signer_for(deps, chain))
    log.add_checkpoint(chain, size, root, note)
    return note


def verified_checkpoints(deps: Deps, chain: str) -> list[checkpoint.Checkpoint]:
    """Every stored checkpoint, signature-checked; a bad one raises with its size."""
    verifiers = [checkpoint.NoteVerifier(k) for k in verifier_keys(deps, chain)]
    out = []
    for size, note in deps.store.audit_log.checkpoints(chain):
        for verifier in verifiers:
            try:
                out.append(checkpoint.verify_checkpoint(note, verifier))
                break
            except VerificationError:
                continue
        else:
            raise VerificationError(
                f"bad checkpoint signature: checkpoint of size {size} "
                "does not verify with any published key",
                extra={"seq": size},
            )
    return out


def latest(deps: Deps, principal: Principal) -> dict[str, Any]:
    chain = principal.tenant
    stored = deps.store.audit_log.last_checkpoint(chain)
    if stored is None:
        make_checkpoint(deps, chain)
        stored = deps.store.audit_log.last_checkpoint(chain)
    keys = verifier_keys(deps, chain)
    if stored is None:
        return {
            "origin": checkpoint.audit_origin(chain),
            "size": 0,
            "root_hash": None,
            "note": None,
            "verifier_key": keys[0],
        }
    size, note = stored
    verifiers = [checkpoint.NoteVerifier(k) for k in keys]
    text, _ = checkpoint.open_note(note, verifiers)  # served only if it verifies
    cp = checkpoint.Checkpoint.parse(text)
    return {
        "origin": cp.origin,
        "size": cp.size,
        "root_hash": cp.root_hash.hex(),
        "note": note,
        "verifier_key": keys[0],
    }


def public_keys(deps: Deps, principal: Principal) -> dict[str, Any]:
    chain = principal.tenant
    keys = verifier_keys(deps, chain)
    return {"origin": checkpoint.audit_origin(chain), "verifier_key": keys[0], "previous": keys[1:]}


def _reader(deps: Deps, chain: str, tree_size: int) -> tuple[NodeReader, LeafReader]:
    """Stored-node reads for a tree of ``tree_size`` committed entries, and the leaf fallback."""
    log = deps.store.audit_log
    size, _ = log.tree_state(chain)
    if tree_size > size:
        raise BadQuery(f"tree_size {tree_size} is beyond the log's {size} entries")

    def leaves(start: int, end: int) -> list[bytes]:
        # Only for a node a store lacks (none once the SQLite backfill has run).
        return [
            leaf_hash(bytes.fromhex(e.hash))
            for e in log.entries(chain, EntryQuery(after=start, limit=end - start))
        ]

    return (lambda ids: log.merkle_nodes(chain, ids)), leaves


def inclusion(deps: Deps, principal: Principal, seq: int, tree_size: int | None) -> dict[str, Any]:
    """RFC 9162 §2.1.3: audit path for entry ``seq`` (leaf index seq-1) in a tree of ``tree_size``.

    Served from O(log n) stored subtree hashes read in one batch (:mod:`..domain.merkle_nodes`).
    """
    chain = principal.tenant
    limit_proofs(deps, principal)
    if tree_size is None:
        tree_size = deps.store.audit_log.tree_state(chain)[0]
    if not 1 <= seq <= tree_size:
        raise BadQuery(f"seq must be 1..tree_size ({tree_size}), found {seq}")
    read, leaves = _reader(deps, chain, tree_size)
    path, root = inclusion_from_nodes(read, seq - 1, tree_size, leaves)
    entry = next(iter(deps.store.audit_log.entries(chain, EntryQuery(after=seq - 1, limit=1))))
    entry_hash = bytes.fromhex(entry.hash)
    return {
        "seq": seq,
        "leaf_index": seq - 1,
        "tree_size": tree_size,
        "entry_hash": entry_hash.hex(),
        "leaf_hash": leaf_hash(entry_hash).hex(),
        "proof": [h.hex() for h in path],
        "root_hash": root.hex(),
    }


def consistency(deps: Deps, principal: Principal, old: int, new: int) -> dict[str, Any]:
    """RFC 9162 §2.1.4: proof that the tree of size ``old`` is a prefix of the tree of size ``new``.

    Served from O(log n) stored subtree hashes read in one batch.
    """
    limit_proofs(deps, principal)
    if not 1 <= old <= new:
        raise BadQuery(f"need 1 <= from <= to, found from={old} to={new}")
    read, leaves = _reader(deps, principal.tenant, new)
    proof, old_root, new_root = consistency_from_nodes(read, old, new, leaves)
    return {
        "from": old,
        "to": new,
        "from_root": old_root.hex(),
        "to_root": new_root.hex(),
        "proof": [h.hex() for h in proof],
    }


def limit_proofs(deps: Deps, principal: Principal) -> None:
    """Per-principal token bucket for the proof endpoints (:mod:`.rate_limit`); none if unwired."""
    limiter = deps.proof_limiter
    if limiter is not None:
        limiter.take(principal_key(principal))


@dataclass(frozen=True, kw_only=True)
class Cadence:
    """When a :class:`Checkpointer` signs a chain, and how often it looks."""

    interval_s: float = DEFAULT_INTERVAL_S  # sign a chain that grew once this passed
    every_entries: int = DEFAULT_EVERY_ENTRIES  # ... or once this many entries wait
    poll_s: float = _POLL_S

    @property
    def min_interval_s(self) -> float:
        return min(MIN_INTERVAL_S, self.interval_s)


class Checkpointer(Periodic):
    """Background signer of the embedded default.

    Signs a chain when it grew and ``interval_s`` passed since its last checkpoint,
    or when ``every_entries`` new entries are waiting, but never more than once per
    :data:`MIN_INTERVAL_S` per chain: a checkpoint is one document write, and
    Firestore sustains about one write a second per document.
    """

    def __init__(self, deps: Deps, chains: Any, cadence: Cadence = Cadence()):
        super().__init__("vettra-checkpointer", cadence.poll_s)
        self._deps, self._chains = deps, chains
        self.cadence = cadence
        self._last: dict[str, tuple[int, float]] = {}  # chain -> (size, monotonic time) signed
        self.signed = 0

    def stop(self) -> None:
        super().stop()
        self._tick(final=True)

    def tick(self) -> None:
        self._tick()

    def _tick(self, *, final: bool = False) -> None:
        now = time.monotonic()
        log = self._deps.store.audit_log
        for chain in self._chains():
            if chain not in self._last:
                stored = log.last_checkpoint(chain)
                self._last[chain] = (stored[0] if stored else 0, 0.0)
            last_size, last_at = self._last[chain]
            size, _ = log.tree_state(chain)
            waited = now - last_at
            due = size > last_size and (
                final
                or waited >= self.cadence.interval_s
                or (
                    size - last_size >= self.cadence.every_entries
                    and waited >= self.cadence.min_interval_s
                )
            )
            if not due:
                continue
            try:
                if make_checkpoint(self._deps, chain):
                    self.signed += 1
                self._last[chain] = (size, now)
            except Exception:  # noqa: BLE001 - keep signing other chains; retried next tick
                logging.getLogger("vettra.audit").exception(
                    "checkpoint failed", extra={"chain": chain}
                )
