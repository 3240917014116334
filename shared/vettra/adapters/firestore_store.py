"""The Google Cloud store: Firestore, with the audit chain linked later from an outbox.

Follows docs/audit.md ("One sequencer per chain, and Firestore's limits") and
docs/firestore.md (the data model). A unit of work is one Firestore
transaction over the documents of one request (its action, its idempotency key,
its outbox events); no request writes a shared document. ``uow.audit.record``
adds an outbox event to that transaction, so the event exists exactly when the
state change does; ``uow.audit.linked`` stays empty because linking is
deferred to the chain's sequencer (vettra.adapters.firestore_sequencer), which
the read side (:class:`FirestoreAuditLog`) then sees as entries and a head.

The client is built on first use, never at import; ``client`` is injectable
(tests pass one bound to the emulator). No google exception leaves this module.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..domain.audit import GENESIS_HASH, AuditEntry, AuditEvent
from ..domain.errors import Conflict
from ..domain.merkle import CompactRange, leaf_hash
from ..ports import ALL_ENTRIES, AuditLog, AuditRecorder, EntryQuery, KeyStore, Store, UnitOfWork
from .firestore_repos import (
    AUDIT_CHAINS,
    AUDIT_HEADS,
    CHECKPOINTS,
    ENTRIES,
    NODES,
    OUTBOX,
    FirestoreActions,
    FirestoreDocs,
    FirestoreIdempotency,
    FirestorePolicies,
    Work,
    doc_key,
    mapped,
    node_key,
    number_key,
    ordered_id,
)

if TYPE_CHECKING:  # at runtime only inside sequencer(): that module imports this one
    from .firestore_sequencer import FirestoreSequencer

log = logging.getLogger(__name__)


def chain_ref(db: Any, chain: str) -> Any:
    return db.collection(AUDIT_CHAINS).document(doc_key(chain))


def outbox_record(event: AuditEvent, event_id: str) -> dict[str, Any]:
    """An outbox document: the event's fields, ``data`` as JSON text, and ``seq`` null until sequenced."""
    return {
        "event_id": event_id,
        "chain": event.chain,
        "seq": None,
        "type": event.type,
        "actor": event.actor,
        "at": event.at,
        "action_id": event.action_id,
        "user": event.user,
        "data": json.dumps(event.data, separators=(",", ":"), ensure_ascii=False),
    }


def event_from_outbox(doc: dict[str, Any]) -> AuditEvent:
    return AuditEvent(
        type=doc["type"],
        chain=doc["chain"],
        actor=doc["actor"],
        at=doc["at"],
        action_id=doc.get("action_id"),
        user=doc.get("user"),
        data=json.loads(doc["data"]),
    )


class FirestoreRecorder(AuditRecorder):
    """Writes each event to ``audit_chains/{chain}/outbox/{time-ordered id}`` in the unit of work."""

    def __init__(self, work: Work):
        self._w = work
        self._event_ids: list[str] = []
        #: The chains this unit of work wrote outbox events to (their sequencers get a nudge).
        self.chains: set[str] = set()

    def record(self, event: AuditEvent) -> None:
        event_id = ordered_id()
        ref = chain_ref(self._w.db, event.chain).collection(OUTBOX).document(event_id)
        self._w.insert(ref, outbox_record(event, event_id))
        self._event_ids.append(event_id)
        self.chains.add(event.chain)

    @property
    def event_ids(self) -> list[str]:
        """The outbox ids recorded by this unit of work (what an answer can cite before ``seq`` exists)."""
        return self._event_ids

    @property
    def linked(self) -> list[AuditEntry]:
        return []  # deferred: the sequencer links (the port allows an empty list)


class FirestoreUnitOfWork(UnitOfWork):
    def __init__(self, store: FirestoreStore, readonly: bool):
        self._store, self._readonly = store, readonly
        self._work: Work | None = None

    def __enter__(self) -> FirestoreUnitOfWork:
        work = self._work = Work(self._store.db, self._readonly)
        self.actions = FirestoreActions(work)
        self.docs = FirestoreDocs(work)
        self.idempotency = FirestoreIdempotency(work)
        self.policies = FirestorePolicies(work)
        self.audit = self._recorder = FirestoreRecorder(work)
        return self

    def commit(self) -> None:
        assert self._work is not None, "commit outside the unit of work"
        if self._readonly:
            raise RuntimeError("a read-only unit of work cannot commit")
        self._work.commit()
        self._work = None
        if self._recorder.chains:
            self._store.committed(self._recorder.chains)

    def rollback(self) -> None:
        if self._work is not None:
            self._work.rollback()
            self._work = None


class FirestoreAuditLog(AuditLog):
    """Read side: the sequenced entries and the head document the sequencer writes per batch.

    The sequencer writes a batch's entries and the head in one atomic batched
    write, so the head's ``(seq, hash, frontier)`` always describes exactly the
    entries that exist.
    """

    def __init__(self, store: FirestoreStore):
        self._store = store

    def _chain(self, chain: str) -> Any:
        return chain_ref(self._store.db, chain)

    def _head(self, chain: str) -> dict[str, Any] | None:
        with mapped():
            snap = self._store.db.collection(AUDIT_HEADS).document(doc_key(chain)).get()
        return snap.to_dict() if snap.exists else None

    def entries(self, chain: str, query: EntryQuery = ALL_ENTRIES) -> Iterator[AuditEntry]:
        from google.cloud.firestore_v1 import FieldFilter

        found = (
            self._chain(chain)
            .collection(ENTRIES)
            .where(filter=FieldFilter("seq", ">", query.after))
        )
        if query.action_id is not None:
            found = found.where(filter=FieldFilter("action_id", "==", query.action_id))
        if query.user is not None:
            found = found.where(filter=FieldFilter("user", "==", query.user))
        found = found.order_by("seq")
        if query.limit is not None:
            found = found.limit(query.limit)
        with mapped():
            for snap in found.stream():
                doc = snap.to_dict()
                yield AuditEntry.from_stored(
                    doc["body"], doc["hash"], doc["mac"], event_id=doc.get("event_id")
                )

    def head(self, chain: str) -> tuple[int, str]:
        head = self._head(chain)
        return (head["seq"], head["hash"]) if head else (0, GENESIS_HASH)

    def tree_state(self, chain: str) -> tuple[int, bytes]:
        head = self._head(chain)
        tree = CompactRange.from_dict(head["frontier"]) if head else CompactRange()
        return tree.size, tree.root()

    def entry_hashes(self, chain: str, upto: int) -> list[bytes]:
        from google.cloud.firestore_v1 import FieldFilter

        query = (
            self._chain(chain)
            .collection(ENTRIES)
            .where(filter=FieldFilter("seq", "<=", upto))
            .order_by("seq")
            .select(["hash"])
        )
        with mapped():
            return [bytes.fromhex(snap.get("hash")) for snap in query.stream()]

    def merkle_nodes(
        self, chain: str, ids: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Level 0 from the entries themselves, higher levels from the nodes the sequencer
        wrote with them; one ``get_all`` for the lot."""
        base = self._chain(chain)
        refs: dict[str, tuple[int, int]] = {}
        for level, index in ids:
            ref = (
                base.collection(ENTRIES).document(number_key(index + 1))
                if level == 0
                else base.collection(NODES).document(node_key(level, index))
            )
            refs[ref.path] = (level, index)
        if not refs:
            return {}
        by_path = {path: self._store.db.document(path) for path in refs}
        found: dict[tuple[int, int], bytes] = {}
        with mapped():
            for snap in self._store.db.get_all(list(by_path.values())):
                if not snap.exists:
                    continue
                level, index = refs[snap.reference.path]
                raw = bytes.fromhex(snap.get("hash"))
                found[(level, index)] = leaf_hash(raw) if level == 0 else raw
        return found

    def add_checkpoint(self, chain: str, size: int, root: bytes, note: str) -> None:
        ref = self._chain(chain).collection(CHECKPOINTS).document(number_key(size))
        try:
            with mapped():
                ref.create({"chain": chain, "size": int(size), "root": root.hex(), "note": note})
        except Conflict:
            pass  # one checkpoint per size: the first one stays

    def checkpoints(self, chain: str) -> list[tuple[int, str]]:
        query = self._chain(chain).collection(CHECKPOINTS).order_by("size")
        with mapped():
            return [(snap.get("size"), snap.get("note")) for snap in query.stream()]

    def last_checkpoint(self, chain: str) -> tuple[int, str] | None:
        from google.cloud.firestore_v1 import Query

        query = (
            self._chain(chain)
            .collection(CHECKPOINTS)
            .order_by("size", direction=Query.DESCENDING)
            .limit(1)
        )
        with mapped():
            found = list(query.stream())
        return (found[0].get("size"), found[0].get("note")) if found else None


class FirestoreStore(Store):
    """Store over google-cloud-firestore (sync client).

    ``FirestoreStore(project=..., keys=KeyStore, client=None)``; with no client
    one is built on first use (``FIRESTORE_EMULATOR_HOST`` selects the emulator,
    as the client library itself decides).

    ``on_commit(chains)`` is called after every committed unit of work that wrote
    outbox events, with the chains it wrote to: bootstrap points it at whatever
    runs the sequencer (the in-process runner's ``poke``, or a publish to the
    sequence topic). The decision is saved by then, so a failing hook is logged
    and never fails the request; the sequencers' periodic sweep catches up.
    """

    def __init__(
        self,
        project: str,
        keys: KeyStore,
        client: Any = None,
        database: str | None = None,
        on_commit: Callable[[set[str]], None] | None = None,
    ):
        self.project, self.keys, self.database = project, keys, database
        self._client = client
        self._owns_client = client is None
        self._audit_log = FirestoreAuditLog(self)
        self.on_commit = on_commit

    def committed(self, chains: set[str]) -> None:
        """After a commit that wrote outbox events to ``chains``: nudge their sequencer."""
        hook = self.on_commit
        if hook is None:
            return
        try:
            hook(set(chains))
        except Exception:  # noqa: BLE001 - the commit stands; a periodic sweep sequences it
            log.exception(
                "the sequencer trigger failed after a commit", extra={"chains": sorted(chains)}
            )

    def probe(self, timeout_s: float = 15.0) -> None:
        """One small read with a short deadline: :class:`Unavailable` (one line) when
        Firestore cannot be reached or refuses the credentials, so a boot fails at once
        rather than on the first request after the client's long retries."""
        with mapped():
            list(self.db.collection(AUDIT_HEADS).limit(1).get(timeout=timeout_s, retry=None))

    def chains_waiting(self, limit: int = 100) -> list[str]:
        """Chains with outbox events not sequenced yet (a collection-group query over
        every chain's outbox, ``seq == null``): what a periodic sweep drains when a
        trigger was lost (the process died between a commit and its nudge)."""
        from google.cloud.firestore_v1 import FieldFilter

        query = (
            self.db.collection_group(OUTBOX)
            .where(filter=FieldFilter("seq", "==", None))
            .select(["chain"])
            .limit(limit)
        )
        with mapped():
            return sorted({snap.get("chain") for snap in query.stream()})

    @property
    def db(self) -> Any:
        if self._client is None:
            from google.cloud import firestore

            with mapped():
                self._client = firestore.Client(project=self.project, database=self.database)
        return self._client

    def unit_of_work(self, *, readonly: bool = False) -> UnitOfWork:
        return FirestoreUnitOfWork(self, readonly)

    @property
    def audit_log(self) -> AuditLog:
        return self._audit_log

    def known_chains(self) -> list[str]:
        """Chains with sequenced entries (each has a head document)."""
        with mapped():
            return sorted(snap.get("chain") for snap in self.db.collection(AUDIT_HEADS).stream())

    def sequencer(self, chain: str, **options: Any) -> FirestoreSequencer:
        """A sequencer for ``chain`` on this store's database (see firestore_sequencer)."""
        from .firestore_sequencer import FirestoreSequencer

        return FirestoreSequencer(self.db, chain, self.keys, **options)

    def sequence_now(self, chain: str) -> int:
        """Sequence every event waiting in ``chain``'s outbox now; returns how many.

        Takes the chain's lease like any sequencer (:class:`Unavailable` while
        another holds it) and lets it go afterwards. For tests and operator
        commands: it writes the head once per batch without the 1/s pacing of
        :meth:`FirestoreSequencer.run`.
        """
        sequencer = self.sequencer(chain)
        sequencer.require_lease()
        try:
            return sequencer.drain()
        finally:
            sequencer.release()

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None
