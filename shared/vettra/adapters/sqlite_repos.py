"""The embedded store's repositories: one SQLite connection, inside its unit of work."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from ..domain.actions import PENDING, Action, rfc3339
from ..domain.errors import Conflict
from ..ports import (
    ActionRepository,
    DocumentRepository,
    IdempotencyRecord,
    IdempotencyRepository,
    PolicyRepository,
)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SqliteActions(ActionRepository):
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def get(self, action_id: str) -> Action | None:
        row = self._conn.execute("SELECT doc FROM actions WHERE id=?", (action_id,)).fetchone()
        return Action.from_record(json.loads(row[0])) if row else None

    def add(self, action: Action, *, record_json: str | None = None) -> None:
        try:
            self._conn.execute(
                "INSERT INTO actions (id, tenant, user, status, created_at, expires_at, doc)"
                " VALUES (?,?,?,?,?,?,?)",
                (
                    action.id,
                    action.tenant,
                    action.user,
                    action.status,
                    rfc3339(action.created_at),
                    rfc3339(action.expires_at),
                    record_json or action.to_record_json(),
                ),
            )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"action {action.id} exists") from exc
        if action.named_approvers:
            # the named approvers of a quorum see the action in their own pending list
            self._conn.executemany(
                "INSERT OR IGNORE INTO action_approvers (tenant, approver, action_id) VALUES (?,?,?)",
                [(action.tenant, name, action.id) for name in action.named_approvers],
            )

    def update(self, action: Action, *, expected_status: str) -> None:
        cur = self._conn.execute(
            "UPDATE actions SET status=?, expires_at=?, doc=? WHERE id=? AND status=?",
            (
                action.status,
                rfc3339(action.expires_at),
                _dumps(action.to_record()),
                action.id,
                expected_status,
            ),
        )
        if cur.rowcount != 1:
            raise Conflict(f"action {action.id} is no longer {expected_status}")

    def pending(self, tenant: str, user: str, now: datetime, limit: int) -> list[Action]:
        at = rfc3339(now)
        rows = self._conn.execute(
            "SELECT doc, created_at FROM actions WHERE tenant=? AND user=? AND status=?"
            " AND (expires_at IS NULL OR expires_at > ?)"
            " UNION ALL"
            " SELECT a.doc, a.created_at FROM action_approvers q JOIN actions a ON a.id=q.action_id"
            " WHERE q.tenant=? AND q.approver=? AND a.user<>? AND a.status=?"
            " AND (a.expires_at IS NULL OR a.expires_at > ?)"
            " ORDER BY created_at LIMIT ?",
            (tenant, user, PENDING, at, tenant, user, user, PENDING, at, limit),
        ).fetchall()
        return [Action.from_record(json.loads(r[0])) for r in rows]

    def pending_with_deadline(self, limit: int) -> list[Action]:
        rows = self._conn.execute(
            "SELECT doc FROM actions WHERE status=? AND expires_at IS NOT NULL"
            " ORDER BY expires_at LIMIT ?",
            (PENDING, limit),
        ).fetchall()
        return [Action.from_record(json.loads(r[0])) for r in rows]

    def sweep_quorum_rows(self, limit: int) -> int:
        return self._conn.execute(
            "DELETE FROM action_approvers WHERE rowid IN (SELECT q.rowid FROM action_approvers q"
            " JOIN actions a ON a.id=q.action_id WHERE a.status<>? LIMIT ?)",
            (PENDING, limit),
        ).rowcount


class SqliteDocs(DocumentRepository):
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT doc FROM docs WHERE collection=? AND id=?", (collection, doc_id)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, collection: str, doc_id: str, doc: Any, *, owner: str | None = None) -> None:
        self._conn.execute(
            "INSERT INTO docs (collection, id, owner, doc, created) VALUES (?,?,?,?,"
            " (SELECT COALESCE(MAX(created), 0) + 1 FROM docs))"
            " ON CONFLICT(collection, id) DO UPDATE SET owner=excluded.owner, doc=excluded.doc",
            (collection, doc_id, owner, _dumps(dict(doc))),
        )

    def create(self, collection: str, doc_id: str, doc: Any, *, owner: str | None = None) -> None:
        try:
            self._conn.execute(
                "INSERT INTO docs (collection, id, owner, doc, created) VALUES (?,?,?,?,"
                " (SELECT COALESCE(MAX(created), 0) + 1 FROM docs))",
                (collection, doc_id, owner, _dumps(dict(doc))),
            )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{collection}/{doc_id} already exists") from exc

    def delete(self, collection: str, doc_id: str) -> None:
        self._conn.execute("DELETE FROM docs WHERE collection=? AND id=?", (collection, doc_id))

    def list(self, collection: str, owner: str, limit: int = 100) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT doc FROM docs WHERE collection=? AND owner=? ORDER BY created LIMIT ?",
            (collection, owner, limit),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def sweep(self, collection: str, field: str, before: datetime, limit: int) -> int:
        # ISO 8601 times of one offset compare as strings; docs oldest first, by insertion
        path = "$." + field
        return self._conn.execute(
            "DELETE FROM docs WHERE rowid IN (SELECT rowid FROM docs WHERE collection=?"
            " AND json_extract(doc, ?) < ? ORDER BY created LIMIT ?)",
            (collection, path, before.isoformat(), limit),
        ).rowcount


class SqliteIdempotency(IdempotencyRepository):
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def get(self, scope: str, key: str) -> tuple[str, str] | None:
        row = self._conn.execute(
            "SELECT request_digest, action_id FROM idempotency WHERE scope=? AND key=?",
            (scope, key),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def put(self, record: IdempotencyRecord) -> None:
        self._conn.execute(
            "INSERT INTO idempotency (scope, key, request_digest, action_id, created_at)"
            " VALUES (?,?,?,?,?)",
            (
                record.scope,
                record.key,
                record.request_digest,
                record.action_id,
                rfc3339(record.at),
            ),
        )

    def sweep(self, before: datetime, limit: int) -> int:
        return self._conn.execute(
            "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency"
            " WHERE created_at < ? ORDER BY created_at LIMIT ?)",
            (rfc3339(before), limit),
        ).rowcount


class SqlitePolicies(PolicyRepository):
    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def active(self, tenant: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT envelope FROM policies WHERE tenant=? ORDER BY version DESC LIMIT 1", (tenant,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def activate(self, tenant: str, envelope: dict[str, Any], version: int, digest: str) -> None:
        self._conn.execute(
            "INSERT INTO policies (tenant, version, digest, envelope) VALUES (?,?,?,?)",
            (tenant, version, digest, _dumps(envelope)),
        )
