"""Retention (issue 7 item 9): what is swept, when, and that the audit log is untouched.

A runtime on a controlled clock; intercepts and step-ups over HTTP, the sweep through
:func:`vettra.services.retention.sweep_once` and, once, the Runtime's own sweeper thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyotp
import pytest

from vettra.adapters.clock import FakeClock
from vettra.bootstrap import Config, bootstrap
from vettra.services import retention
from vettra.services.retention import IDEMPOTENCY_WINDOW_S, sweep_once

from ..conftest import Server
from .scenarios import DELETE_REPO, SEND_EMAIL


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC))


@pytest.fixture
def srv(tmp_path: Path, clock: FakeClock) -> Iterator[Server]:
    rt = bootstrap(Config(home=tmp_path / "home", extra={"sweep_interval_s": 3600}), clock=clock)
    server = Server(rt)
    yield server
    server.stop()
    rt.close()


def _long_lived(srv: Server, role: str, sub: str, user: str | None = None) -> httpx.Client:
    """A client whose token outlives the clock jumps below (30 days)."""
    token = srv.token(role, sub, user, ttl_s=30 * 24 * 3600)
    return httpx.Client(base_url=srv.url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def _count(srv: Server, sql: str) -> int:
    with srv.runtime.deps.store.unit_of_work(readonly=True) as uow:
        return uow._conn.execute(sql).fetchone()[0]


def _audit(srv: Server) -> list[str]:
    return [e.hash for e in srv.runtime.deps.store.audit_log.entries("default")]


def test_idempotency_keys_replay_inside_the_window_and_are_swept_after_it(srv, clock) -> None:
    key = {"Idempotency-Key": "retry-me"}
    with _long_lived(srv, "agent", "agent-1", "alice") as agent:
        first = agent.post("/api/actions/intercept", json=SEND_EMAIL, headers=key).json()
        clock.advance(IDEMPOTENCY_WINDOW_S - 60)
        assert sweep_once(srv.runtime.deps)["idempotency"] == 0
        again = agent.post("/api/actions/intercept", json=SEND_EMAIL, headers=key)
        assert again.status_code == 200 and again.json()["action_id"] == first["action_id"]
        audit = _audit(srv)
        clock.advance(120)
        assert sweep_once(srv.runtime.deps)["idempotency"] == 1
        assert _count(srv, "SELECT COUNT(*) FROM idempotency") == 0
        assert _audit(srv) == audit  # nothing the audit log needs
        assert agent.get(f"/api/actions/{first['action_id']}").status_code == 200  # actions stay


def test_step_up_markers_go_once_they_cannot_matter(srv, clock) -> None:
    deps = srv.runtime.deps
    with srv.client("agent", "agent-1", "alice") as agent, srv.client("approver", "alice") as alice:
        started = alice.post("/api/approvals/stepup/enroll", json={"method": "totp"}).json()
        secret = started["secret"]
        code = pyotp.TOTP(secret).at(clock.now())
        assert (
            alice.post(
                "/api/approvals/stepup/enroll",
                json={"method": "totp", "enrollment_id": started["enrollment_id"], "code": code},
            ).status_code
            == 200
        )
        action = agent.post("/api/actions/intercept", json=DELETE_REPO).json()
        challenge = alice.post(
            "/api/approvals/stepup/trigger", json={"action_id": action["action_id"]}
        ).json()
        clock.advance(30)
        verified = alice.post(
            "/api/approvals/stepup/verify",
            json={
                "challenge_id": challenge["challenge_id"],
                "code": pyotp.TOTP(secret).at(clock.now()),
            },
        ).json()
        token = verified["step_up_token"]
        r = alice.post(
            "/api/actions/approve",
            json={"action_id": action["action_id"], "decision": "approve", "step_up_token": token},
        )
        assert r.status_code == 200, r.text
        markers = (
            "stepup_challenges",
            "stepup_challenges_used",
            "stepup_totp_used",
            "stepup_grants",
            "stepup_grants_used",
        )
        assert all(_docs(srv, c) for c in markers)
        assert sweep_once(deps) == {name: 0 for name in sweep_once(deps)}  # all still matter
        audit = _audit(srv)
        clock.advance(deps.step_up.max_age_s + 301)
        swept = sweep_once(deps)
        assert not [c for c in markers if _docs(srv, c)], swept
        assert _docs(srv, "stepup_totp") == 1  # the factor itself stays
        assert _audit(srv) == audit
        # a redeemed token stays refused once its markers are gone
        replay = alice.post(
            "/api/actions/approve",
            json={"action_id": action["action_id"], "decision": "approve", "step_up_token": token},
        )
        assert replay.status_code in (401, 409)


def _docs(srv: Server, collection: str) -> int:
    with srv.runtime.deps.store.unit_of_work(readonly=True) as uow:
        return uow._conn.execute(
            "SELECT COUNT(*) FROM docs WHERE collection=?", (collection,)
        ).fetchone()[0]


def test_the_sweep_works_in_bounded_batches(srv, clock, monkeypatch) -> None:
    with srv.client("agent", "agent-1", "alice") as agent:
        for i in range(7):
            assert (
                agent.post(
                    "/api/actions/intercept", json=SEND_EMAIL, headers={"Idempotency-Key": f"k{i}"}
                ).status_code
                == 201
            )
    clock.advance(IDEMPOTENCY_WINDOW_S + 1)
    units = []
    store = srv.runtime.deps.store
    real = store.unit_of_work
    monkeypatch.setattr(store, "unit_of_work", lambda **kw: units.append(1) or real(**kw))
    assert (
        sweep_once(srv.runtime.deps, batch=3, max_batches=2)["idempotency"] == 6
    )  # one pass is bounded
    assert sweep_once(srv.runtime.deps, batch=3)["idempotency"] == 1
    assert _count(srv, "SELECT COUNT(*) FROM idempotency") == 0
    assert len(units) > 3  # several short transactions, not one long one


def test_the_runtime_starts_a_sweeper_on_the_injected_clock(tmp_path, clock) -> None:
    rt = bootstrap(Config(home=tmp_path / "home", extra={"sweep_interval_s": 0.05}), clock=clock)
    rt.start()
    srv = Server(rt)
    try:
        with srv.client("agent", "agent-1", "alice") as agent:
            agent.post("/api/actions/intercept", json=SEND_EMAIL, headers={"Idempotency-Key": "k"})
        time.sleep(0.3)
        assert (
            _count(srv, "SELECT COUNT(*) FROM idempotency") == 1
        )  # real time passing is not the window
        clock.advance(IDEMPOTENCY_WINDOW_S + 1)
        deadline = time.monotonic() + 5
        while _count(srv, "SELECT COUNT(*) FROM idempotency") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _count(srv, "SELECT COUNT(*) FROM idempotency") == 0
        assert rt.sweeper.swept.get("idempotency") == 1
    finally:
        srv.stop()
        rt.close()


def test_the_rules_cover_every_single_use_collection() -> None:
    from vettra.services import stepup

    swept = {r.collection for r in retention.doc_rules(300)}
    single_use = {
        stepup.USED_CHALLENGES,
        stepup.USED_TOTP_STEPS,
        stepup.USED_GRANTS,
        stepup.USED_ID_TOKENS,
        stepup.CHALLENGES,
        stepup.GRANTS,
        stepup.PENDING_ENROLMENTS,
    }
    assert single_use <= swept


def test_a_store_from_an_older_build_dates_its_keys_at_upgrade(tmp_path) -> None:
    import sqlite3

    from vettra.adapters.local_keys import LocalKeyStore
    from vettra.adapters.sqlite_store import SqliteStore

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE idempotency (scope TEXT NOT NULL, key TEXT NOT NULL, request_digest TEXT"
        " NOT NULL, action_id TEXT NOT NULL, PRIMARY KEY (scope, key))"
    )
    conn.execute("INSERT INTO idempotency VALUES ('s', 'k', 'sha256:a', 'act_1')")
    conn.commit()
    conn.close()
    store = SqliteStore(path, LocalKeyStore(tmp_path))
    try:
        now = datetime.now(UTC)
        with store.unit_of_work() as uow:
            assert uow.idempotency.sweep(now.replace(year=now.year - 1), 10) == 0
            assert uow.idempotency.get("s", "k") == ("sha256:a", "act_1")  # still replays
            from datetime import timedelta

            assert uow.idempotency.sweep(now + timedelta(seconds=IDEMPOTENCY_WINDOW_S), 10) == 1
    finally:
        store.close()
