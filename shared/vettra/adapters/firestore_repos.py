"""Firestore repositories: the documents of one unit of work, read in its transaction.

The data model is described in docs/firestore.md. Firestore transactions need
every read before the first write, while the ports let a caller read, write,
and read again (a single-use marker created twice must conflict). So a unit of
work *buffers* its writes in :class:`Work` and applies them only at commit;
reads look at that buffer first, then at the database inside the transaction.
A create-only write keeps its ``exists=False`` precondition at commit, so a
concurrent creator of the same id still loses with :class:`Conflict`.

Every call to the client goes through :func:`mapped`: no google exception
leaves the adapter (AlreadyExists and FailedPrecondition become :class:`Conflict`,
Aborted its subclass :class:`Contention`: a transaction that lost to others for the
same documents, nothing written; anything else from the API becomes :class:`Unavailable`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from ..domain.actions import PENDING, Action, rfc3339
from ..domain.errors import Conflict, Contention, Unavailable, VettraError
from ..ports import (
    ActionRepository,
    DocumentRepository,
    IdempotencyRecord,
    IdempotencyRepository,
    PolicyRepository,
)

ACTIONS = "actions"
IDEMPOTENCY = "idempotency"
POLICIES, POLICY_VERSIONS = "policies", "versions"
DOCS, DOC_ITEMS = "docs", "items"
AUDIT_CHAINS, OUTBOX, ENTRIES, CHECKPOINTS = "audit_chains", "outbox", "entries", "checkpoints"
#: Completed perfect Merkle subtrees above the leaves, ``{level}-{index}`` (proofs in O(log n)).
NODES = "nodes"
AUDIT_HEADS = "audit_heads"
AUDIT_LEASES = "audit_leases"
#: The field of an action document that every write sets to a fresh time-ordered id.
CHANGED = "changed"

#: Firestore ids are at most 1500 bytes and may not contain "/"; longer or odd ones are hashed.
_MAX_PLAIN_ID_BYTES = 500
#: How many rows a filtered query fetches per page while looking for ``limit`` matches.
_PAGE = 100
#: An ISO 8601 time as ``datetime.isoformat`` writes it (what retention sweeps age by).
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}:\d{2}|Z)?$")
_SEQ_WIDTH = 12  # zero-padded numeric ids sort as numbers


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def doc_key(text: str) -> str:
    """A Firestore document id for ``text``: itself when legal, else ``~`` + its SHA-256."""
    if (
        text
        and "/" not in text
        and text not in (".", "..")
        and not text.startswith("~")
        and not (text.startswith("__") and text.endswith("__"))
        and len(text.encode("utf-8")) <= _MAX_PLAIN_ID_BYTES
    ):
        return text
    return "~" + hashlib.sha256(text.encode("utf-8")).hexdigest()


def number_key(n: int) -> str:
    return f"{int(n):0{_SEQ_WIDTH}d}"


def node_key(level: int, index: int) -> str:
    return f"{int(level):02d}-{number_key(index)}"


_id_lock = threading.Lock()
_last_ms, _last_rand = 0, 0


def ordered_id() -> str:
    """A time-ordered id (ULID-like, hex): 48 bits of milliseconds then 80 random bits.

    Monotonic within a process (the same millisecond increments the random
    part), so documents created by one process sort in creation order. Across
    processes only the clock orders them, and commits can land out of id order.
    """
    global _last_ms, _last_rand
    with _id_lock:
        ms = time.time_ns() // 1_000_000
        if ms <= _last_ms:
            ms, rand = _last_ms, _last_rand + 1
        else:
            rand = secrets.randbits(79)  # leave headroom so increments never overflow 80 bits
        _last_ms, _last_rand = ms, rand
    return f"{ms:012x}{rand:020x}"


def translate(exc: BaseException) -> VettraError | None:
    """The domain error for a google client exception; ``None`` for anything else."""
    from google.api_core import exceptions as gexc

    if isinstance(exc, gexc.Aborted):
        return Contention("the store aborted the transaction under contention (Aborted)")
    if isinstance(exc, (gexc.AlreadyExists, gexc.FailedPrecondition, gexc.Conflict)):
        return Conflict(f"store refused a conflicting write ({type(exc).__name__})")
    if isinstance(exc, (gexc.GoogleAPIError, gexc.RetryError)):
        return Unavailable(f"Firestore did not answer ({type(exc).__name__})")
    try:
        from google.auth.exceptions import GoogleAuthError
    except ImportError:  # pragma: no cover - google-auth comes with the client
        return None
    if isinstance(exc, GoogleAuthError):
        return Unavailable("Firestore credentials were refused or missing")
    return None


@contextlib.contextmanager
def mapped() -> Iterator[None]:
    """Translate google exceptions raised inside the block into domain errors."""
    try:
        yield
    except VettraError:
        raise
    except Exception as exc:
        domain = translate(exc)
        if domain is None:
            raise
        raise domain from exc


class Work:
    """One unit of work's transaction and write buffer.

    Write units of work begin a Firestore transaction at their first read (a
    unit of work that only writes commits a batched write instead: also atomic,
    one round trip less). Read-only ones read directly, without a transaction.
    """

    def __init__(self, db: Any, readonly: bool):
        self.db, self.readonly = db, readonly
        self.txn: Any = None
        # path -> (op, ref, data): the last write per document, applied in insertion order
        self.writes: dict[str, tuple[str, Any, dict[str, Any] | None]] = {}
        # path -> data read in this transaction (it cannot change under us before commit)
        self.seen: dict[str, dict[str, Any] | None] = {}

    def _transaction(self) -> Any:
        if self.txn is None:
            txn = self.db.transaction()
            with mapped():
                # the port's unit of work wraps caller code that cannot be re-run, so
                # Firestore's retrying @transactional decorator does not fit: begin by hand
                txn._begin()
            self.txn = txn
        return self.txn

    def read(self, ref: Any) -> dict[str, Any] | None:
        """The document as this unit of work sees it (its own writes first)."""
        if ref.path in self.writes:
            op, _, data = self.writes[ref.path]
            return None if op == "delete" else dict(data or {})
        if ref.path in self.seen:
            found = self.seen[ref.path]
            return None if found is None else dict(found)
        with mapped():
            if self.readonly:
                snap = ref.get()
            else:
                snap = next(iter(self.db.get_all([ref], transaction=self._transaction())))
        found = snap.to_dict() if snap.exists else None
        if not self.readonly:
            self.seen[ref.path] = found
        return None if found is None else dict(found)

    def query(self, query: Any, keep: Any = None, limit: int | None = None) -> list[Any]:
        """Snapshots of ``query`` passing ``keep``, up to ``limit``, paging past the rest.

        Buffered writes are not merged into query results: every caller queries
        before writing, which is also the order Firestore requires.
        """
        found: list[Any] = []
        if limit is not None and limit <= 0:
            return found
        cursor = None
        page = _PAGE if limit is None else max(limit, _PAGE) if keep else limit
        while True:
            q = query.limit(page)
            if cursor is not None:
                q = q.start_after(cursor)
            with mapped():
                snaps = list(
                    q.stream() if self.readonly else q.stream(transaction=self._transaction())
                )
            for snap in snaps:
                if keep is None or keep(snap):
                    found.append(snap)
                    if limit is not None and len(found) >= limit:
                        return found
            if len(snaps) < page:
                return found
            cursor = snaps[-1]

    def not_deleted(self, snap: Any) -> bool:
        """A query filter: False for a document this unit of work has deleted already."""
        return self.writes.get(snap.reference.path, ("",))[0] != "delete"

    def sweep(self, query: Any, limit: int) -> int:
        """Delete the first ``limit`` documents of ``query`` (those not deleted already in
        this unit of work); return how many."""
        found = self.query(query, self.not_deleted, limit)
        for snap in found:
            self.delete(snap.reference)
        return len(found)

    def _write(self, op: str, ref: Any, data: dict[str, Any] | None) -> None:
        if self.readonly:
            raise RuntimeError("a read-only unit of work cannot write")
        earlier = self.writes.pop(ref.path, None)
        if op == "create" and earlier is not None:
            op = "set"  # created after our own delete: the stored one is gone at commit
        self.writes[ref.path] = (op, ref, data)

    def insert(self, ref: Any, data: dict[str, Any]) -> None:
        """Create-only without reading first: for fresh random ids (actions, outbox events)."""
        self._write("create", ref, data)

    def create(self, ref: Any, data: dict[str, Any], what: str) -> None:
        """Create-only: :class:`Conflict` now if it exists, and at commit if it appeared since."""
        if self.read(ref) is not None:
            raise Conflict(f"{what} already exists")
        self._write("create", ref, data)

    def set(self, ref: Any, data: dict[str, Any]) -> None:
        self._write("set", ref, data)

    def delete(self, ref: Any) -> None:
        self._write("delete", ref, None)

    def commit(self) -> None:
        target = self.txn if self.txn is not None else self.db.batch()
        for op, ref, data in self.writes.values():
            if op == "create":
                target.create(ref, data)
            elif op == "set":
                target.set(ref, data)
            else:
                target.delete(ref)
        with mapped():
            if self.txn is not None:
                self.txn._commit()
                self.txn = None
            elif self.writes:
                target.commit()
        self.writes.clear()
        self.seen.clear()

    def rollback(self) -> None:
        self.writes.clear()
        self.seen.clear()
        txn, self.txn = self.txn, None
        if txn is not None and txn.in_progress:
            try:
                txn._rollback()
            except Exception as exc:  # noqa: BLE001 - the transaction expires on its own
                if translate(exc) is None:
                    raise


class FirestoreActions(ActionRepository):
    """``actions/{id}``: the record as JSON text plus the fields the pending queries filter on."""

    def __init__(self, work: Work):
        self._w = work
        self._coll = work.db.collection(ACTIONS)

    @staticmethod
    def _doc(action: Action, record_json: str) -> dict[str, Any]:
        return {
            "tenant": action.tenant,
            "user": action.user,
            "status": action.status,
            "created_at": rfc3339(action.created_at),
            "expires_at": rfc3339(action.expires_at),
            "approvers": list(action.named_approvers),
            # time-ordered id of this write: what a change listener filters on (firestore_changes)
            CHANGED: ordered_id(),
            "record": record_json,
        }

    def sweep_quorum_rows(self, limit: int) -> int:
        """Named approvers live on the action document itself (``approvers``, an array the
        pending queries pair with ``status == pending``): there are no index rows to sweep."""
        return 0

    def get(self, action_id: str) -> Action | None:
        doc = self._w.read(self._coll.document(doc_key(action_id)))
        return Action.from_record(json.loads(doc["record"])) if doc else None

    def add(self, action: Action, *, record_json: str | None = None) -> None:
        # ids carry 128 random bits: no read first; the create-only precondition at commit
        # still turns a duplicate into Conflict
        self._w.insert(
            self._coll.document(doc_key(action.id)),
            self._doc(action, record_json or action.to_record_json()),
        )

    def update(self, action: Action, *, expected_status: str) -> None:
        ref = self._coll.document(doc_key(action.id))
        stored = self._w.read(
            ref
        )  # read in the transaction: a concurrent decision aborts one of us
        if stored is None or stored.get("status") != expected_status:
            raise Conflict(f"action {action.id} is no longer {expected_status}")
        self._w.set(ref, self._doc(action, _dumps(action.to_record())))

    def pending(self, tenant: str, user: str, now: datetime, limit: int) -> list[Action]:
        from google.cloud.firestore_v1 import FieldFilter

        at = rfc3339(now)

        def live(snap: Any) -> bool:
            expires = snap.get("expires_at")
            return expires is None or expires > at

        base = self._coll.where(filter=FieldFilter("tenant", "==", tenant)).where(
            filter=FieldFilter("status", "==", PENDING)
        )
        own = self._w.query(
            base.where(filter=FieldFilter("user", "==", user)).order_by("created_at"), live, limit
        )
        named = self._w.query(
            base.where(filter=FieldFilter("approvers", "array_contains", user)).order_by(
                "created_at"
            ),
            lambda snap: live(snap) and snap.get("user") != user,
            limit,
        )
        snaps = sorted(own + named, key=lambda s: s.get("created_at"))[:limit]
        return [Action.from_record(json.loads(s.get("record"))) for s in snaps]

    def pending_with_deadline(self, limit: int) -> list[Action]:
        from google.cloud.firestore_v1 import FieldFilter

        # a string range is type-bounded in Firestore: actions without a deadline (null) drop out
        query = (
            self._coll.where(filter=FieldFilter("status", "==", PENDING))
            .where(filter=FieldFilter("expires_at", ">", ""))
            .order_by("expires_at")
        )
        return [
            Action.from_record(json.loads(s.get("record")))
            for s in self._w.query(query, None, limit)
        ]


class FirestoreDocs(DocumentRepository):
    """``docs/{collection}/items/{id}``: body as JSON text, ``owner``, and ``created`` (time-ordered)."""

    def __init__(self, work: Work):
        self._w = work

    def _items(self, collection: str) -> Any:
        return self._w.db.collection(DOCS).document(doc_key(collection)).collection(DOC_ITEMS)

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        doc = self._w.read(self._items(collection).document(doc_key(doc_id)))
        return json.loads(doc["body"]) if doc else None

    def _stored(
        self, doc_id: str, doc: Mapping[str, Any], owner: str | None, created: str
    ) -> dict[str, Any]:
        # Top-level times are copied out of the JSON body so :meth:`sweep` can query them.
        dates = {k: v for k, v in doc.items() if isinstance(v, str) and _ISO_TIME.match(v)}
        return {
            "id": doc_id,
            "owner": owner,
            "created": created,
            "dates": dates,
            "body": _dumps(dict(doc)),
        }

    def put(
        self, collection: str, doc_id: str, doc: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        ref = self._items(collection).document(doc_key(doc_id))
        earlier = self._w.read(ref)  # a replaced document keeps its place in the owner's list
        created = earlier["created"] if earlier else ordered_id()
        self._w.set(ref, self._stored(doc_id, doc, owner, created))

    def create(
        self, collection: str, doc_id: str, doc: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        self._w.create(
            self._items(collection).document(doc_key(doc_id)),
            self._stored(doc_id, doc, owner, ordered_id()),
            f"{collection}/{doc_id}",
        )

    def delete(self, collection: str, doc_id: str) -> None:
        self._w.delete(self._items(collection).document(doc_key(doc_id)))

    def list(self, collection: str, owner: str, limit: int = 100) -> list[dict[str, Any]]:
        from google.cloud.firestore_v1 import FieldFilter

        query = (
            self._items(collection)
            .where(filter=FieldFilter("owner", "==", owner))
            .order_by("created")
        )
        return [json.loads(s.get("body")) for s in self._w.query(query, None, limit)]

    def sweep(self, collection: str, field: str, before: datetime, limit: int) -> int:
        from google.cloud.firestore_v1 import FieldFilter

        path = f"dates.`{field}`" if not field.isidentifier() else f"dates.{field}"
        query = (
            self._items(collection)
            .where(filter=FieldFilter(path, "<", before.isoformat()))
            .order_by(path)
        )
        return self._w.sweep(query, limit)


class FirestoreIdempotency(IdempotencyRepository):
    """``idempotency/{sha256(scope, key)}``: one document per key, created once."""

    def __init__(self, work: Work):
        self._w = work
        self._coll = work.db.collection(IDEMPOTENCY)

    def _ref(self, scope: str, key: str) -> Any:
        digest = hashlib.sha256(_dumps([scope, key]).encode("utf-8")).hexdigest()
        return self._coll.document(digest)

    def get(self, scope: str, key: str) -> tuple[str, str] | None:
        doc = self._w.read(self._ref(scope, key))
        return (doc["request_digest"], doc["action_id"]) if doc else None

    def put(self, record: IdempotencyRecord) -> None:
        self._w.create(
            self._ref(record.scope, record.key),
            {
                "scope": record.scope,
                "key": record.key,
                "request_digest": record.request_digest,
                "action_id": record.action_id,
                "created_at": rfc3339(record.at),
            },
            "Idempotency-Key",
        )

    def sweep(self, before: datetime, limit: int) -> int:
        from google.cloud.firestore_v1 import FieldFilter

        query = self._coll.where(filter=FieldFilter("created_at", "<", rfc3339(before))).order_by(
            "created_at"
        )
        return self._w.sweep(query, limit)


class FirestorePolicies(PolicyRepository):
    """``policies/{tenant}/versions/{version}``: the signed envelope as JSON text, created once."""

    def __init__(self, work: Work):
        self._w = work

    def _versions(self, tenant: str) -> Any:
        return self._w.db.collection(POLICIES).document(doc_key(tenant)).collection(POLICY_VERSIONS)

    def active(self, tenant: str) -> dict[str, Any] | None:
        from google.cloud.firestore_v1 import Query

        query = self._versions(tenant).order_by("version", direction=Query.DESCENDING)
        found = self._w.query(query, None, 1)
        return json.loads(found[0].get("envelope")) if found else None

    def activate(self, tenant: str, envelope: dict[str, Any], version: int, digest: str) -> None:
        self._w.create(
            self._versions(tenant).document(number_key(version)),
            {
                "tenant": tenant,
                "version": int(version),
                "digest": digest,
                "envelope": _dumps(envelope),
            },
            f"policy version {version}",
        )
