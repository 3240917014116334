"""The embedded store: SQLite in WAL mode, one transaction per command.

Durability: ``synchronous=FULL`` makes every commit fsync the WAL, so a decision
that was answered survives ``kill -9``. Writers inside this process queue on a
lock and write through one connection: SQLite's own busy handler sleeps in
millisecond steps, which would dominate latency; the lock hands over at once.
Other processes (the CLI) still wait through ``busy_timeout``.

Group commit: a unit of work runs in a savepoint of the writer's open
transaction. When it commits and another unit of work is already waiting for
the lock, it hands the open transaction on and waits; the last of such a run
(or the ``GROUP_MAX``-th) commits them all with one fsync, and only then does
each ``commit()`` return. A unit of work that fails rolls back to its savepoint
and leaves the others alone; a commit that fails fails every member. So every
answered write is still durable before it is answered, with one fsync per group
instead of one per request when writers queue.

Audit events recorded in a unit of work are linked into their chain inside the
same transaction, so an entry exists exactly when its state change does.
"""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC
from pathlib import Path
from typing import Any

from ..domain.audit import GENESIS_HASH, AuditEntry, AuditEvent, link_all
from ..domain.errors import Unavailable
from ..domain.merkle import CompactRange, leaf_hash
from ..ports import ALL_ENTRIES, AuditLog, EntryQuery, KeyStore, Store, UnitOfWork
from . import sqlite_merkle
from .buffered_recorder import BufferedRecorder
from .local_files import private_sqlite
from .sqlite_repos import SqliteActions, SqliteDocs, SqliteIdempotency, SqlitePolicies

BUSY_TIMEOUT_MS = 10_000
POOL_SIZE = 16
#: At most this many units of work share one commit (bounds how long one waits).
GROUP_MAX = 16
#: The head row is a cache of the last entry (the entries themselves are the truth),
#: written at most this often per chain: the same budget Firestore gives one document.
HEAD_PERSIST_INTERVAL_S = 1.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
  id TEXT PRIMARY KEY, tenant TEXT NOT NULL, user TEXT NOT NULL, status TEXT NOT NULL,
  created_at TEXT NOT NULL, expires_at TEXT, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS actions_by_user ON actions (tenant, user, status, created_at);
CREATE INDEX IF NOT EXISTS actions_by_deadline ON actions (status, expires_at);
CREATE TABLE IF NOT EXISTS action_approvers (
  tenant TEXT NOT NULL, approver TEXT NOT NULL, action_id TEXT NOT NULL,
  PRIMARY KEY (tenant, approver, action_id));
CREATE TABLE IF NOT EXISTS idempotency (
  scope TEXT NOT NULL, key TEXT NOT NULL, request_digest TEXT NOT NULL,
  action_id TEXT NOT NULL, created_at TEXT, PRIMARY KEY (scope, key));
CREATE TABLE IF NOT EXISTS policies (
  tenant TEXT NOT NULL, version INTEGER NOT NULL, digest TEXT NOT NULL,
  envelope TEXT NOT NULL, PRIMARY KEY (tenant, version));
CREATE TABLE IF NOT EXISTS docs (
  collection TEXT NOT NULL, id TEXT NOT NULL, owner TEXT, doc TEXT NOT NULL,
  created INTEGER NOT NULL, PRIMARY KEY (collection, id));
CREATE INDEX IF NOT EXISTS docs_by_owner ON docs (collection, owner, created);
CREATE TABLE IF NOT EXISTS audit_entries (
  chain TEXT NOT NULL, seq INTEGER NOT NULL, action_id TEXT, user TEXT,
  body TEXT NOT NULL, hash TEXT NOT NULL, mac TEXT NOT NULL, prev_hash TEXT NOT NULL,
  PRIMARY KEY (chain, seq));
CREATE UNIQUE INDEX IF NOT EXISTS audit_one_successor ON audit_entries (chain, prev_hash);
CREATE INDEX IF NOT EXISTS audit_by_action ON audit_entries (chain, action_id, seq);
CREATE INDEX IF NOT EXISTS audit_by_user ON audit_entries (chain, user, seq);
CREATE TABLE IF NOT EXISTS audit_heads (
  chain TEXT PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, frontier TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  chain TEXT NOT NULL, size INTEGER NOT NULL, root TEXT NOT NULL, note TEXT NOT NULL,
  PRIMARY KEY (chain, size));
"""


def _migrate_for_sweeps(conn: sqlite3.Connection) -> None:
    """Date idempotency keys (the retention sweep ages them, docs/approvals.md).

    A store made by an older build has no ``created_at``: its keys are dated now,
    so each still replays for one full window after the upgrade.
    """
    from datetime import datetime

    from ..domain.actions import rfc3339

    conn.execute("BEGIN IMMEDIATE")  # another process may be upgrading the same file
    try:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(idempotency)")}
        if "created_at" not in columns:
            conn.execute("ALTER TABLE idempotency ADD COLUMN created_at TEXT")
            conn.execute("UPDATE idempotency SET created_at=?", (rfc3339(datetime.now(UTC)),))
        conn.execute("CREATE INDEX IF NOT EXISTS idempotency_by_age ON idempotency (created_at)")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection with Vettra's pragmas; ``isolation_level=None`` so we issue BEGIN ourselves."""
    conn = sqlite3.connect(
        str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class SqliteUnitOfWork(UnitOfWork):
    def __init__(self, store: SqliteStore, readonly: bool):
        self._store = store
        self._readonly = readonly
        self._conn: sqlite3.Connection | None = None
        self._open = False
        self._turn = False  # a writer holding the write lock

    def __enter__(self) -> SqliteUnitOfWork:
        if self._readonly:
            self._conn = self._store._acquire()
            try:
                self._conn.execute("BEGIN")
            except sqlite3.Error as exc:
                self._store._release(self._conn)
                self._conn = None
                raise Unavailable(f"store did not open a transaction: {exc}") from exc
        else:
            self._conn = self._store._begin_turn()
            self._turn = True
        self._open = True
        self.actions = SqliteActions(self._conn)
        self.docs = SqliteDocs(self._conn)
        self.idempotency = SqliteIdempotency(self._conn)
        self.policies = SqlitePolicies(self._conn)
        self.audit = BufferedRecorder()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.rollback()
        finally:
            if self._turn:
                self._turn = False
                self._store._end_turn(None)
            elif self._readonly and self._conn is not None:
                self._store._release(self._conn)
            self._conn = None

    def commit(self) -> None:
        """Durable when it returns: alone, or with the group it joined (see the module)."""
        assert self._conn is not None and self._open, "commit outside the unit of work"
        if self._readonly:
            raise RuntimeError("a read-only unit of work cannot commit")
        recorder: BufferedRecorder = self.audit  # type: ignore[assignment]
        linked: list[AuditEntry] = []
        persisted: list[str] = []
        if recorder.events:
            linked, persisted = self._link(recorder.events)
        self._conn.execute("RELEASE uow")
        member = self._store._join_group(linked, persisted)
        self._open = False
        self._turn = False
        self._store._end_turn(member)  # returns once the group's COMMIT is durable
        recorder.linked_entries = linked

    def _link(self, events: list[AuditEvent]) -> tuple[list[AuditEntry], list[str]]:
        """Sequence ``events`` after each chain's head in this transaction (the write lock
        is held): the committed head, or the last entry of an earlier member of the group."""
        conn = self._conn
        assert conn is not None
        key_id, key = self._store.keys.audit_hmac_key()
        linked: list[AuditEntry] = []
        persisted: list[str] = []
        by_chain: dict[str, list[AuditEvent]] = {}
        for event in events:
            by_chain.setdefault(event.chain, []).append(event)
        for chain, chain_events in by_chain.items():
            state = self._store._pending_state(chain)
            entries = link_all(
                chain_events, head_seq=state.seq, head_hash=state.hash, key_id=key_id, key=key
            )
            conn.executemany(
                "INSERT INTO audit_entries (chain, seq, action_id, user, body, hash, mac, prev_hash)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [
                    (e.chain, e.seq, e.action_id, e.user, e.body_json, e.hash, e.mac, e.prev_hash)
                    for e in entries
                ],
            )
            # The subtrees these entries complete, in the same transaction: proofs read them.
            sqlite_merkle.insert(
                conn, sqlite_merkle.completed_nodes(chain, state.tree.copy(), entries)
            )
            if state.head_due():
                self._store._persist_head(conn, chain, state.after(entries))
                persisted.append(chain)
            linked.extend(entries)
        return linked, persisted

    def rollback(self) -> None:
        if self._open and self._conn is not None:
            self._open = False
            if self._readonly:
                self._conn.execute("ROLLBACK")
            else:
                self._store._rollback_savepoint()


class _Member:
    """One committed unit of work waiting for its group's COMMIT."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.error: BaseException | None = None


class _SqliteAuditLog(AuditLog):
    def __init__(self, store: SqliteStore):
        self._store = store
        self._node_cache = sqlite_merkle.NodeCache()

    def entries(self, chain: str, query: EntryQuery = ALL_ENTRIES) -> Iterator[AuditEntry]:
        sql = "SELECT body, hash, mac FROM audit_entries WHERE chain=? AND seq>?"
        params: list[Any] = [chain, query.after]
        if query.action_id is not None:
            sql += " AND action_id=?"
            params.append(query.action_id)
        if query.user is not None:
            sql += " AND user=?"
            params.append(query.user)
        sql += " ORDER BY seq"
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(query.limit)
        conn = self._store._acquire()
        try:
            for body, hash_hex, mac_hex in conn.execute(sql, params):
                yield AuditEntry.from_stored(body, hash_hex, mac_hex)
        finally:
            self._store._release(conn)

    def head(self, chain: str) -> tuple[int, str]:
        state = self._store._committed_state(chain)  # replaced whole, never changed in place
        return state.seq, state.hash

    def tree_state(self, chain: str) -> tuple[int, bytes]:
        state = self._store._committed_state(chain)
        return state.tree.size, state.tree.root()

    def entry_hashes(self, chain: str, upto: int) -> list[bytes]:
        conn = self._store._acquire()
        try:
            rows = conn.execute(
                "SELECT hash FROM audit_entries WHERE chain=? AND seq<=? ORDER BY seq",
                (chain, upto),
            ).fetchall()
        finally:
            self._store._release(conn)
        return [bytes.fromhex(r[0]) for r in rows]

    def merkle_nodes(
        self, chain: str, ids: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        conn = self._store._acquire()
        try:
            return sqlite_merkle.read(conn, chain, ids, cache=self._node_cache)
        finally:
            self._store._release(conn)

    def add_checkpoint(self, chain: str, size: int, root: bytes, note: str) -> None:
        with self._store.unit_of_work() as uow:
            uow._conn.execute(  # type: ignore[attr-defined]
                "INSERT OR IGNORE INTO audit_checkpoints (chain, size, root, note) VALUES (?,?,?,?)",
                (chain, size, root.hex(), note),
            )
            uow.commit()

    def last_checkpoint(self, chain: str) -> tuple[int, str] | None:
        conn = self._store._acquire()
        try:
            row = conn.execute(
                "SELECT size, note FROM audit_checkpoints WHERE chain=? ORDER BY size DESC LIMIT 1",
                (chain,),
            ).fetchone()
        finally:
            self._store._release(conn)
        return (row[0], row[1]) if row else None

    def checkpoints(self, chain: str) -> list[tuple[int, str]]:
        conn = self._store._acquire()
        try:
            rows = conn.execute(
                "SELECT size, note FROM audit_checkpoints WHERE chain=? ORDER BY size", (chain,)
            ).fetchall()
        finally:
            self._store._release(conn)
        return [(r[0], r[1]) for r in rows]


class _ChainState:
    """The committed head of one chain and the right edge of its Merkle tree.

    Kept in memory by the single sequencer (this process), so linking never reads
    a hot row; rebuilt at start from the last persisted head plus the entries
    after it. The committed heads are replaced whole when a group commits (under
    the state lock); the open group's heads are copies (under the write lock).
    """

    def __init__(self, seq: int, hash_hex: str, tree: CompactRange):
        self.seq, self.hash, self.tree = seq, hash_hex, tree
        self.persisted_at = 0.0  # the first commit after start writes the head

    def head_due(self) -> bool:
        return time.monotonic() - self.persisted_at >= HEAD_PERSIST_INTERVAL_S

    def after(self, entries: list[AuditEntry]) -> tuple[int, str, CompactRange]:
        tree = CompactRange.from_dict(self.tree.to_dict())
        for entry in entries:
            tree.append(leaf_hash(bytes.fromhex(entry.hash)))
        return entries[-1].seq, entries[-1].hash, tree


class SqliteStore(Store):
    """The embedded default store (one file, WAL)."""

    def __init__(self, path: Path | str, keys: KeyStore):
        self.path = Path(path)
        self.keys = keys
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._created = 0
        self._pool_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        self._waiting = 0  # writers blocked on the write lock (under _waiting_lock)
        self._waiting_lock = threading.Lock()
        self._group: list[_Member] = []  # committed members of the open transaction
        self._pending: dict[str, _ChainState] = {}  # chain heads after the group's entries
        self._state_lock = threading.Lock()  # guards _chains (the committed heads)
        private_sqlite(self.path)  # 0600 before SQLite creates the WAL and SHM beside it
        conn = self._acquire()
        try:
            conn.executescript(SCHEMA + sqlite_merkle.SCHEMA)
            _migrate_for_sweeps(conn)
            self._backfill_merkle_nodes(conn)
        finally:
            self._release(conn)
        self._audit_log = _SqliteAuditLog(self)
        self._chains: dict[str, _ChainState] = {}
        self._stored_chains: set[str] | None = None
        self.head_writes = 0

    def _backfill_merkle_nodes(self, conn: sqlite3.Connection) -> None:
        """Store the subtree hashes of chains written before they were kept (once per home)."""
        for (chain,) in conn.execute("SELECT chain FROM audit_heads").fetchall():
            if sqlite_merkle.is_complete(conn, chain):
                continue
            with self._write_lock:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if not sqlite_merkle.is_complete_locked(conn, chain):
                        sqlite_merkle.backfill(conn, chain)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

    # -- writers: turns, savepoints, groups (see the module docstring) -----------
    def _begin_turn(self) -> sqlite3.Connection:
        """Take the write lock and open a savepoint in the writer's transaction."""
        with self._waiting_lock:
            self._waiting += 1
        self._write_lock.acquire()
        with self._waiting_lock:
            self._waiting -= 1
        try:
            conn = self._writer_conn()
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            conn.execute("SAVEPOINT uow")
        except sqlite3.Error as exc:
            self._end_turn(None)
            raise Unavailable(f"store did not open a transaction: {exc}") from exc
        return conn

    def _rollback_savepoint(self) -> None:
        """Undo this unit of work only; if SQLite rolled the whole transaction back
        (some I/O and full-disk errors do), the group's members fail with it."""
        conn = self._writer
        assert conn is not None
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK TO uow")
                conn.execute("RELEASE uow")
                return
            except sqlite3.Error as exc:
                self._fail_group(exc)
                return
        self._fail_group(sqlite3.OperationalError("the transaction was rolled back"))

    def _join_group(self, linked: list[AuditEntry], persisted: list[str]) -> _Member:
        """Count a committed unit of work in the group and move the pending heads on."""
        for entry in linked:
            state = self._pending[entry.chain]
            state.tree.append(leaf_hash(bytes.fromhex(entry.hash)))
            state.seq, state.hash = entry.seq, entry.hash
        now = time.monotonic()
        for chain in persisted:
            self._pending[chain].persisted_at = now
        member = _Member()
        self._group.append(member)
        return member

    def _end_turn(self, member: _Member | None) -> None:
        """Hand the open transaction to a waiting writer, or commit it; release the
        lock; then wait until ``member`` (if any) is durable, or raise why not."""
        try:
            with self._waiting_lock:
                waiting = self._waiting
            if not (self._group and waiting and len(self._group) < GROUP_MAX):
                self._commit_group()
        finally:
            self._write_lock.release()
        if member is not None:
            member.done.wait()
            if member.error is not None:
                raise Unavailable(f"store commit failed: {member.error}") from member.error

    def _commit_group(self) -> None:
        """COMMIT the writer's transaction for every member (the write lock is held)."""
        conn = self._writer
        if conn is None or not conn.in_transaction:
            if self._group:
                self._fail_group(sqlite3.OperationalError("the transaction was rolled back"))
            return
        if not self._group:
            conn.execute("ROLLBACK")  # nothing committed in it: no fsync
            return
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._fail_group(exc)
            return
        with self._state_lock:
            self._chains.update(self._pending)
        self._pending = {}
        group, self._group = self._group, []
        for member in group:
            member.done.set()

    def _fail_group(self, error: BaseException) -> None:
        """Roll the writer's transaction back and fail every member with ``error``."""
        conn = self._writer
        if conn is not None and conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
        self._pending = {}
        group, self._group = self._group, []
        for member in group:
            member.error = error
            member.done.set()

    def _pending_state(self, chain: str) -> _ChainState:
        """The chain's head after the open group's entries (a copy of the committed one)."""
        state = self._pending.get(chain)
        if state is None:
            committed = self._committed_state(chain)
            state = _ChainState(committed.seq, committed.hash, committed.tree.copy())
            state.persisted_at = committed.persisted_at
            self._pending[chain] = state
        return state

    def _committed_state(self, chain: str) -> _ChainState:
        """The chain's committed head, read through a pooled connection when not known."""
        with self._state_lock:
            state = self._chains.get(chain)
            if state is None:
                conn = self._acquire()
                try:
                    state = self._chains[chain] = self._load_state(conn, chain)
                finally:
                    self._release(conn)
            return state

    def _load_state(self, conn: sqlite3.Connection, chain: str) -> _ChainState:
        """The head as stored: the persisted head row, then the entries after it."""
        row = conn.execute(
            "SELECT seq, hash, frontier FROM audit_heads WHERE chain=?", (chain,)
        ).fetchone()
        seq, head = (row[0], row[1]) if row else (0, GENESIS_HASH)
        tree = CompactRange.from_dict(json.loads(row[2])) if row else CompactRange()
        for entry_seq, entry_hash in conn.execute(
            "SELECT seq, hash FROM audit_entries WHERE chain=? AND seq>? ORDER BY seq",
            (chain, seq),
        ):
            tree.append(leaf_hash(bytes.fromhex(entry_hash)))
            seq, head = entry_seq, entry_hash
        return _ChainState(seq, head, tree)

    def _persist_head(
        self, conn: sqlite3.Connection, chain: str, head: tuple[int, str, CompactRange]
    ) -> None:
        seq, hash_hex, tree = head
        conn.execute(
            "INSERT INTO audit_heads (chain, seq, hash, frontier) VALUES (?,?,?,?)"
            " ON CONFLICT(chain) DO UPDATE SET seq=excluded.seq, hash=excluded.hash,"
            " frontier=excluded.frontier",
            (chain, seq, hash_hex, json.dumps(tree.to_dict())),
        )
        self.head_writes += 1

    def known_chains(self) -> list[str]:
        """Chains with entries: those linked since start and those with a persisted head."""
        if self._stored_chains is None:
            conn = self._acquire()
            try:
                # a chain's first commit always writes its head row (persisted_at starts at 0)
                rows = conn.execute("SELECT chain FROM audit_heads").fetchall()
            finally:
                self._release(conn)
            self._stored_chains = {r[0] for r in rows}
        with self._state_lock:
            return sorted(self._stored_chains | set(self._chains))

    def _acquire(self) -> sqlite3.Connection:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            pass
        with self._pool_lock:
            if self._created < POOL_SIZE:
                self._created += 1
                return connect(self.path)
        return self._pool.get()

    def _writer_conn(self) -> sqlite3.Connection:
        """The one connection units of work write through (the write lock is held).

        Writes are serialised anyway; one connection keeps its page cache, which
        SQLite empties whenever another connection has written since its last
        transaction (WAL): a write through a pooled connection re-read every
        b-tree page it touched, about 20 reads a commit.
        """
        if self._writer is None:
            self._writer = connect(self.path)
        return self._writer

    def _release(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:  # an iterator abandoned mid-read
            conn.rollback()
        self._pool.put(conn)

    def unit_of_work(self, *, readonly: bool = False) -> UnitOfWork:
        return SqliteUnitOfWork(self, readonly)

    @property
    def audit_log(self) -> AuditLog:
        return self._audit_log

    def close(self) -> None:
        with self._write_lock:
            self._commit_group()  # a group handed on to a writer that is not there yet
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                break
