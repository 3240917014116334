"""An in-memory store that records what it committed (cosmicpython's fakes).

It implements every store port, passes the same contract suite as the SQLite
store (tests/contract/test_store_contract.py), and lets service tests run
without SQLite where storage is not the point of the test. A write unit of work
holds one lock and works on a copy of the state; commit links its audit events
and swaps the copy in, so readers only ever see committed states.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from vettra.adapters.buffered_recorder import BufferedRecorder
from vettra.domain.actions import PENDING, Action
from vettra.domain.audit import GENESIS_HASH, AuditEntry, AuditEvent, link_all
from vettra.domain.catalogue import Catalogue
from vettra.domain.errors import Conflict, Unavailable
from vettra.domain.merkle import CompactRange, MerkleTree, leaf_hash
from vettra.ports import (
    ALL_ENTRIES,
    ActionRepository,
    AuditLog,
    DocumentRepository,
    EntryQuery,
    EventBus,
    IdempotencyRecord,
    IdempotencyRepository,
    KeyStore,
    PolicyRepository,
    Scheduler,
    Store,
    UnitOfWork,
)
from vettra.services.deps import Deps
from vettra.services.policies import PolicyService


@dataclass
class _State:
    actions: dict[str, Action] = field(default_factory=dict)
    docs: dict[tuple[str, str], tuple[int, str | None, dict[str, Any]]] = field(
        default_factory=dict
    )
    idempotency: dict[tuple[str, str], tuple[str, str, datetime | None]] = field(
        default_factory=dict
    )
    policies: dict[str, dict[int, tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    entries: dict[str, list[AuditEntry]] = field(default_factory=dict)
    created: int = 0


class _Actions(ActionRepository):
    def __init__(self, state: _State):
        self._s = state

    def get(self, action_id: str) -> Action | None:
        return self._s.actions.get(action_id)

    def add(self, action: Action, *, record_json: str | None = None) -> None:
        if action.id in self._s.actions:
            raise Conflict(f"action {action.id} exists")
        self._s.actions[action.id] = action

    def update(self, action: Action, *, expected_status: str) -> None:
        stored = self._s.actions.get(action.id)
        if stored is None or stored.status != expected_status:
            raise Conflict(f"action {action.id} is no longer {expected_status}")
        self._s.actions[action.id] = action

    def pending(self, tenant: str, user: str, now: datetime, limit: int) -> list[Action]:
        def live(a: Action) -> bool:
            return a.status == PENDING and (a.expires_at is None or a.expires_at > now)

        mine = [
            a
            for a in self._s.actions.values()
            if a.tenant == tenant and live(a) and (a.user == user or user in a.named_approvers)
        ]
        return sorted(mine, key=lambda a: a.created_at)[:limit]

    def sweep_quorum_rows(self, limit: int) -> int:
        return 0  # named approvers live on the action itself: no index rows to sweep

    def pending_with_deadline(self, limit: int) -> list[Action]:
        waiting = [
            a for a in self._s.actions.values() if a.status == PENDING and a.expires_at is not None
        ]
        return sorted(waiting, key=lambda a: a.expires_at or a.created_at)[:limit]


class _Docs(DocumentRepository):
    def __init__(self, state: _State):
        self._s = state

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        found = self._s.docs.get((collection, doc_id))
        return copy.deepcopy(found[2]) if found else None

    def put(
        self, collection: str, doc_id: str, doc: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        earlier = self._s.docs.get((collection, doc_id))
        order = earlier[0] if earlier else self._next()
        self._s.docs[(collection, doc_id)] = (order, owner, copy.deepcopy(dict(doc)))

    def create(
        self, collection: str, doc_id: str, doc: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        if (collection, doc_id) in self._s.docs:
            raise Conflict(f"{collection}/{doc_id} already exists")
        self._s.docs[(collection, doc_id)] = (self._next(), owner, copy.deepcopy(dict(doc)))

    def delete(self, collection: str, doc_id: str) -> None:
        self._s.docs.pop((collection, doc_id), None)

    def list(self, collection: str, owner: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = sorted(
            (order, doc)
            for (coll, _), (order, who, doc) in self._s.docs.items()
            if coll == collection and who == owner
        )
        return [copy.deepcopy(doc) for _, doc in rows[:limit]]

    def sweep(self, collection: str, field: str, before: datetime, limit: int) -> int:
        cutoff = before.isoformat()
        old = sorted(
            (order, doc_id)
            for (coll, doc_id), (order, _, doc) in self._s.docs.items()
            if coll == collection and isinstance(doc.get(field), str) and doc[field] < cutoff
        )[:limit]
        for _, doc_id in old:
            del self._s.docs[(collection, doc_id)]
        return len(old)

    def _next(self) -> int:
        self._s.created += 1
        return self._s.created


class _Idempotency(IdempotencyRepository):
    def __init__(self, state: _State):
        self._s = state

    def get(self, scope: str, key: str) -> tuple[str, str] | None:
        found = self._s.idempotency.get((scope, key))
        return (found[0], found[1]) if found else None

    def put(self, record: IdempotencyRecord) -> None:
        scope_key = (record.scope, record.key)
        if scope_key in self._s.idempotency:
            raise Conflict("Idempotency-Key already recorded")
        self._s.idempotency[scope_key] = (record.request_digest, record.action_id, record.at)

    def sweep(self, before: datetime, limit: int) -> int:
        old = sorted(
            (at, scope_key)
            for scope_key, (_, _, at) in self._s.idempotency.items()
            if at is not None and at < before
        )[:limit]
        for _, scope_key in old:
            del self._s.idempotency[scope_key]
        return len(old)


class _Policies(PolicyRepository):
    def __init__(self, state: _State):
        self._s = state

    def active(self, tenant: str) -> dict[str, Any] | None:
        versions = self._s.policies.get(tenant)
        return copy.deepcopy(versions[max(versions)][1]) if versions else None

    def activate(self, tenant: str, envelope: dict[str, Any], version: int, digest: str) -> None:
        versions = self._s.policies.setdefault(tenant, {})
        if version in versions:
            raise Conflict(f"policy version {version} exists")
        versions[version] = (digest, copy.deepcopy(envelope))


class FakeUnitOfWork(UnitOfWork):
    def __init__(self, store: FakeStore, readonly: bool):
        self._store, self._readonly = store, readonly
        self._open = False

    def __enter__(self) -> FakeUnitOfWork:
        if not self._readonly:
            self._store._write_lock.acquire()
        # a write works on a copy; a read on the committed state, never mutated in place
        base = self._store._state
        self._state = base if self._readonly else copy.deepcopy(base)
        self.actions = _Actions(self._state)
        self.docs = _Docs(self._state)
        self.idempotency = _Idempotency(self._state)
        self.policies = _Policies(self._state)
        self.audit = BufferedRecorder()
        self._open = True
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.rollback()
        finally:
            if not self._readonly:
                self._store._write_lock.release()

    def commit(self) -> None:
        if self._readonly:
            raise RuntimeError("a read-only unit of work cannot commit")
        assert self._open, "commit outside the unit of work"
        if self._store.fail_commits:
            raise Unavailable("the fake store refuses commits (fail_commits is set)")
        recorder: BufferedRecorder = self.audit  # type: ignore[assignment]
        key_id, key = self._store.keys.audit_hmac_key()
        linked: list[AuditEntry] = []
        for event in recorder.events:
            chain = self._state.entries.setdefault(event.chain, [])
            head_seq, head_hash = (chain[-1].seq, chain[-1].hash) if chain else (0, GENESIS_HASH)
            entry = link_all(
                [event], head_seq=head_seq, head_hash=head_hash, key_id=key_id, key=key
            )[0]
            chain.append(entry)
            linked.append(entry)
        recorder.linked_entries = linked
        self._store._state = self._state
        self._store.committed += 1
        self._store.committed_events.extend(recorder.events)
        self._open = False

    def rollback(self) -> None:
        if self._open:
            self._store.rolled_back += 1
        self._open = False


class _FakeAuditLog(AuditLog):
    def __init__(self, store: FakeStore):
        self._store = store
        self._checkpoints: dict[str, dict[int, tuple[bytes, str]]] = {}

    def _chain(self, chain: str) -> list[AuditEntry]:
        return list(self._store._state.entries.get(chain, []))

    def entries(self, chain: str, query: EntryQuery = ALL_ENTRIES) -> Iterator[AuditEntry]:
        found = [
            e
            for e in self._chain(chain)
            if e.seq > query.after
            and (query.action_id is None or e.action_id == query.action_id)
            and (query.user is None or e.user == query.user)
        ]
        return iter(found[: query.limit] if query.limit is not None else found)

    def head(self, chain: str) -> tuple[int, str]:
        entries = self._chain(chain)
        return (entries[-1].seq, entries[-1].hash) if entries else (0, GENESIS_HASH)

    def tree_state(self, chain: str) -> tuple[int, bytes]:
        tree = CompactRange()
        entries = self._chain(chain)
        for entry in entries:
            tree.append(leaf_hash(bytes.fromhex(entry.hash)))
        return len(entries), tree.root()

    def entry_hashes(self, chain: str, upto: int) -> list[bytes]:
        return [bytes.fromhex(e.hash) for e in self._chain(chain)[:upto]]

    def merkle_nodes(
        self, chain: str, ids: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        leaves = [leaf_hash(bytes.fromhex(e.hash)) for e in self._chain(chain)]
        tree = MerkleTree(leaves)
        return {
            (level, index): tree._root(index << level, (index + 1) << level)
            for level, index in ids
            if (index + 1) << level <= len(leaves)
        }

    def add_checkpoint(self, chain: str, size: int, root: bytes, note: str) -> None:
        self._checkpoints.setdefault(chain, {}).setdefault(size, (root, note))

    def checkpoints(self, chain: str) -> list[tuple[int, str]]:
        return [
            (size, note) for size, (_, note) in sorted(self._checkpoints.get(chain, {}).items())
        ]

    def last_checkpoint(self, chain: str) -> tuple[int, str] | None:
        found = self.checkpoints(chain)
        return found[-1] if found else None


class FakeStore(Store):
    """Records ``committed`` (count), ``committed_events`` and ``rolled_back``.

    ``known_chains`` is on the :class:`~vettra.ports.Store` port in spirit: the
    checkpointer asks for it.
    """

    def __init__(self, keys: KeyStore):
        self.keys = keys
        self._state = _State()
        self._write_lock = threading.Lock()
        self._audit_log = _FakeAuditLog(self)
        self.committed = 0
        self.rolled_back = 0
        self.committed_events: list[AuditEvent] = []
        self.closed = False
        #: Set to make every commit raise :class:`Unavailable`, as a store outage would.
        self.fail_commits = False

    def unit_of_work(self, *, readonly: bool = False) -> UnitOfWork:
        return FakeUnitOfWork(self, readonly)

    @property
    def audit_log(self) -> AuditLog:
        return self._audit_log

    def known_chains(self) -> list[str]:
        return sorted(c for c, entries in self._state.entries.items() if entries)

    def close(self) -> None:
        self.closed = True


class RecordingScheduler(Scheduler):
    """Records ``scheduled`` (name, due, payload) and ``cancelled`` names; fires nothing."""

    def __init__(self) -> None:
        self.scheduled: list[tuple[str, datetime, dict[str, Any]]] = []
        self.cancelled: list[str] = []

    def schedule(self, name: str, due: datetime, payload: Mapping[str, Any]) -> None:
        self.scheduled.append((name, due, dict(payload)))

    def cancel(self, name: str) -> None:
        self.cancelled.append(name)


class RecordingBus(EventBus):
    """Records ``sent`` (topic, event); delivers to subscribers like the in-process bus."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self._subs: dict[str, list[Callable[[Mapping[str, Any]], None]]] = {}

    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        self.sent.append((topic, dict(event)))
        for handler in list(self._subs.get(topic, ())):
            handler(event)

    def subscribe(
        self, topic: str, handler: Callable[[Mapping[str, Any]], None]
    ) -> Callable[[], None]:
        self._subs.setdefault(topic, []).append(handler)
        return lambda: self._subs.get(topic, []).remove(handler)


def recording_deps(store: Store, keys: Any, clock: Any, step_up: Any = None) -> Deps:
    """The services wired by hand around ``store`` (no bootstrap): the default catalogue,
    a policy service on the store, and a scheduler and a bus that record what they get."""
    return Deps(
        store=store,
        scheduler=RecordingScheduler(),
        bus=RecordingBus(),
        clock=clock,
        keys=keys,
        catalogue=Catalogue.default(),
        policies=PolicyService(store, keys, clock),
        step_up=step_up,
    )
