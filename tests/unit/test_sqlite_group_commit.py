"""Group commit in the SQLite store: writers that queue share one COMMIT (one fsync),
each ``commit()`` returns only once its group is durable, a failing unit of work
takes only itself back, and a failed COMMIT fails every member of its group."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vettra.adapters.local_keys import LocalKeyStore
from vettra.adapters.sqlite_store import SqliteStore
from vettra.domain.actions import Action
from vettra.domain.audit import verify_chain
from vettra.domain.errors import Unavailable

from ..contract.test_store_contract import _action, _event


@pytest.fixture
def store(tmp_path: Path):
    s = SqliteStore(tmp_path / "store.db", LocalKeyStore(tmp_path))
    yield s
    s.close()


def _write(store: SqliteStore, hold_s: float = 0.0, fail: bool = False) -> Action:
    action = _action()
    with store.unit_of_work() as uow:
        uow.actions.add(action)
        uow.audit.record(_event(action))
        time.sleep(hold_s)  # others queue on the lock meanwhile
        if fail:
            raise RuntimeError("this unit of work fails")
        uow.commit()
    return action


def _count_commits(store: SqliteStore) -> list[str]:
    seen: list[str] = []
    store._writer_conn().set_trace_callback(
        lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None
    )
    return seen


def _committed(store: SqliteStore, action_id: str) -> bool:
    with store.unit_of_work(readonly=True) as uow:  # a pooled connection: committed data only
        return uow.actions.get(action_id) is not None


def _run(n_threads: int, target: Any) -> list[BaseException]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return errors


def test_queued_writers_share_commits_and_each_returns_durable(store) -> None:
    commits = _count_commits(store)
    done: list[Action] = []

    def writer() -> None:
        for _ in range(10):
            action = _write(store, hold_s=0.002)
            assert _committed(store, action.id), "commit() returned before it was durable"
            done.append(action)

    assert _run(8, writer) == []
    assert len(done) == 80
    assert 1 <= len(commits) < 80, len(commits)  # 8 writers queue: groups of several
    entries = [e.as_dict() for e in store.audit_log.entries("default")]
    assert [e["seq"] for e in entries] == list(range(1, 81))
    assert verify_chain(entries, store.keys.audit_hmac_keys()).valid
    assert store.audit_log.head("default")[0] == 80
    assert store.audit_log.tree_state("default")[0] == 80


def test_a_lone_writer_commits_at_once(store) -> None:
    commits = _count_commits(store)
    for _ in range(5):
        assert _committed(store, _write(store).id)
    assert len(commits) == 5


def test_a_failing_member_takes_back_only_itself(store) -> None:
    first_in = threading.Event()
    results: dict[str, Any] = {}

    def first() -> None:
        action = _action()
        with store.unit_of_work() as uow:
            uow.actions.add(action)
            first_in.set()
            time.sleep(0.2)  # the failing writer queues behind: first hands over to it
            uow.commit()
        results["first"] = action

    def failing() -> None:
        first_in.wait(5)
        try:
            _write(store, fail=True)
        except RuntimeError:
            results["failed"] = True

    commits = _count_commits(store)
    t1, t2 = threading.Thread(target=first), threading.Thread(target=failing)
    t1.start()
    t2.start()
    t1.join(10)
    t2.join(10)
    assert results.get("failed") is True
    assert _committed(store, results["first"].id)
    assert len(commits) == 1  # first handed the transaction on; the failing one committed it
    with sqlite3.connect(store.path) as raw:  # the failed one left no row
        assert raw.execute("SELECT count(*) FROM actions").fetchone()[0] == 1
    assert _committed(store, _write(store).id)  # and the store goes on


class _FailingCommit:
    """The writer connection, whose next COMMIT fails as a full disk would."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.armed = True

    def execute(self, sql: str, *args: Any) -> Any:
        if self.armed and sql == "COMMIT":
            self.armed = False
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)


def test_a_failed_commit_fails_every_member_and_keeps_nothing(store) -> None:
    real = store._writer_conn()
    store._writer = _FailingCommit(real)  # type: ignore[assignment]
    ids: list[str] = []
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def writer() -> None:
        action = _action()
        ids.append(action.id)
        start.wait(10)
        try:
            with store.unit_of_work() as uow:
                uow.actions.add(action)
                time.sleep(0.2)  # the other three queue: one group
                uow.commit()
        except Unavailable as exc:
            failures.append(exc)

    assert _run(4, writer) == []
    store._writer = real
    # every member of the failed group raised, and none of its writes is there
    assert len(failures) == 4
    assert not [i for i in ids if _committed(store, i)]
    assert all("disk is full" in str(f) for f in failures)
    assert _committed(store, _write(store).id)
    entries = [e.as_dict() for e in store.audit_log.entries("default")]
    assert verify_chain(entries, store.keys.audit_hmac_keys()).valid
