"""Stored Merkle subtree hashes for the embedded store (the ``AuditLog.merkle_nodes`` port).

Table ``audit_nodes`` holds node ``(level, index)`` for level >= 1, written by the
sequencer in the same transaction as the entries that complete it; level 0 (the leaf
hash) is derived from ``audit_entries.hash`` rather than stored twice. A chain of ``n``
entries thus has ``n - popcount(n)`` rows, and a proof reads O(log n) of them by primary
key in one query.

Homes written before nodes were kept are backfilled when the store opens
(:func:`backfill`): one pass over the entry hashes, once.

A stored node never changes, so nodes of subtrees of at least 2**CACHE_MIN_LEVEL
leaves are also kept in a bounded in-memory cache (:class:`NodeCache`): the upper
levels every proof shares are then read once, and a proof over 1M entries reads about
as many rows as one over 1k.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence

from ..domain.audit import AuditEntry
from ..domain.merkle import CompactRange, leaf_hash

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_nodes (
  chain TEXT NOT NULL, level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
  PRIMARY KEY (chain, level, idx)) WITHOUT ROWID;
"""
_INSERT = "INSERT INTO audit_nodes (chain, level, idx, hash) VALUES (?,?,?,?)"
_BACKFILL_BATCH = 10_000
#: Cached levels: subtrees of >= 1024 leaves, so at most n / 512 nodes could qualify.
CACHE_MIN_LEVEL = 10
#: At most this many cached nodes (about 10 MB), least recently used dropped first.
CACHE_MAX_NODES = 65_536
# Ids per query: inside SQLite's default limits (500 compound SELECT terms, 32766 parameters).
_BATCH = 250
#: One audit_nodes row: (chain, level, index, node hash).
NodeRow = tuple[str, int, int, bytes]


def completed_nodes(chain: str, tree: CompactRange, entries: Iterable[AuditEntry]) -> list[NodeRow]:
    """Rows for the nodes ``entries`` complete, appending them to ``tree`` (a copy the caller owns)."""
    rows = []
    for entry in entries:
        for level, index, node in tree.append_completing(leaf_hash(bytes.fromhex(entry.hash))):
            rows.append((chain, level, index, node))
    return rows


def insert(conn: sqlite3.Connection, rows: Sequence[NodeRow]) -> None:
    if rows:
        conn.executemany(_INSERT, rows)


class NodeCache:
    """Stored nodes of the upper levels, by ``(chain, level, index)``; bounded LRU."""

    def __init__(self, max_nodes: int = CACHE_MAX_NODES, min_level: int = CACHE_MIN_LEVEL):
        self.max_nodes, self.min_level = max_nodes, min_level
        self._nodes: OrderedDict[tuple[str, int, int], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, chain: str, ids: Sequence[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        out = {}
        nodes, floor = self._nodes, self.min_level
        with self._lock:
            for level, index in ids:
                if level >= floor and (key := (chain, level, index)) in nodes:
                    nodes.move_to_end(key)
                    out[level, index] = nodes[key]
        return out

    def put(self, chain: str, nodes: dict[tuple[int, int], bytes]) -> None:
        with self._lock:
            for (level, index), node in nodes.items():
                if level >= self.min_level:
                    self._nodes[chain, level, index] = node
            while len(self._nodes) > self.max_nodes:
                self._nodes.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._nodes.clear()

    def __len__(self) -> int:
        return len(self._nodes)


def read(
    conn: sqlite3.Connection,
    chain: str,
    ids: Sequence[tuple[int, int]],
    cache: NodeCache | None = None,
) -> dict[tuple[int, int], bytes]:
    """Nodes among ``ids``: cached ones, then levels >= 1 by key and leaves from the
    entries, one query per :data:`_BATCH` ids (a proof needs fewer than 200: one query)."""
    ids = list(dict.fromkeys(ids))
    out = cache.get(chain, ids) if cache is not None else {}
    missing = [i for i in ids if i not in out]
    for at in range(0, len(missing), _BATCH):
        found = _read_batch(conn, chain, missing[at : at + _BATCH])
        if cache is not None:
            cache.put(chain, found)
        out.update(found)
    return out


def _read_batch(
    conn: sqlite3.Connection, chain: str, ids: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], bytes]:
    inner = [(level, index) for level, index in ids if level > 0]
    seqs = [index + 1 for level, index in ids if level == 0]
    parts, params = [], []
    for level, index in inner:
        # One point lookup per node in a compound SELECT: each uses the full primary key,
        # whereas the planner may answer an OR of terms or a row-value IN by scanning
        # the chain's nodes (seen at 100k entries: 70 ms a proof).
        parts.append("SELECT level, idx, hash FROM audit_nodes WHERE chain=? AND level=? AND idx=?")
        params += [chain, level, index]
    if seqs:
        parts.append(
            "SELECT 0, seq - 1, hash FROM audit_entries WHERE chain=? AND seq IN "
            f"({','.join('?' * len(seqs))})"
        )
        params += [chain, *seqs]
    out = {}
    if parts:
        for level, index, value in conn.execute(" UNION ALL ".join(parts), params):
            out[level, index] = leaf_hash(bytes.fromhex(value)) if level == 0 else bytes(value)
    return out


def is_complete(conn: sqlite3.Connection, chain: str) -> bool:
    """Whether the stored nodes are exactly those of the stored entries (one read snapshot)."""
    conn.execute("BEGIN")
    try:
        return is_complete_locked(conn, chain)
    finally:
        conn.execute("COMMIT")


def is_complete_locked(conn: sqlite3.Connection, chain: str) -> bool:
    """:func:`is_complete` inside the caller's transaction."""
    size = conn.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM audit_entries WHERE chain=?", (chain,)
    ).fetchone()[0]
    count = conn.execute("SELECT COUNT(*) FROM audit_nodes WHERE chain=?", (chain,)).fetchone()[0]
    return bool(count == size - size.bit_count())


def backfill(conn: sqlite3.Connection, chain: str) -> int:
    """Rebuild ``chain``'s nodes from its entry hashes (caller holds the write transaction)."""
    conn.execute("DELETE FROM audit_nodes WHERE chain=?", (chain,))
    tree, rows, written = CompactRange(), [], 0
    for (hash_hex,) in conn.execute(
        "SELECT hash FROM audit_entries WHERE chain=? ORDER BY seq", (chain,)
    ):
        for level, index, node in tree.append_completing(leaf_hash(bytes.fromhex(hash_hex))):
            rows.append((chain, level, index, node))
        if len(rows) >= _BACKFILL_BATCH:
            insert(conn, rows)
            written, rows = written + len(rows), []
    insert(conn, rows)
    return written + len(rows)
