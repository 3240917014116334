"""Approval deadlines at their edges (issue 7 item 11), over HTTP on a controlled clock.

The deadline is exclusive: an approval counts only strictly before ``expires_at``; at
``expires_at`` and after, the action is expired (docs/timeouts.md). The runtime is not
started here, so no timer fires: each approval meets a deadline that only the approve
path itself can enforce (as with a late Cloud Tasks delivery).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vettra.adapters.clock import FakeClock
from vettra.bootstrap import Config, bootstrap

from ..conftest import Server
from .scenarios import SEND_EMAIL

PROBLEM = "application/problem+json"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def late_server(tmp_path: Path, clock: FakeClock) -> Iterator[Server]:
    rt = bootstrap(Config(home=tmp_path / "home"), clock=clock)  # not started: no timer runs
    srv = Server(rt)
    yield srv
    srv.stop()
    rt.close()


def _held(srv: Server) -> tuple[str, datetime]:
    with srv.client("agent", "agent-1", "alice") as agent:
        r = agent.post("/api/actions/intercept", json=SEND_EMAIL)
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    action_id = r.json()["action_id"]
    with srv.runtime.deps.store.unit_of_work(readonly=True) as uow:
        deadline = uow.actions.get(action_id).expires_at
    assert deadline is not None
    return action_id, deadline


def _move_to(clock: FakeClock, when: datetime) -> None:
    clock.advance((when - clock.now()).total_seconds())
    assert clock.now() == when


def _approve(srv: Server, action_id: str):
    with srv.client("approver", "alice") as alice:
        return alice.post(
            "/api/actions/approve", json={"action_id": action_id, "decision": "approve"}
        )


def _types(srv: Server, action_id: str) -> list[str]:
    with srv.client("admin", "root-admin") as admin:
        return [
            e["type"]
            for e in admin.get("/api/audit/entries", params={"action_id": action_id}).json()[
                "entries"
            ]
        ]


def test_approving_just_before_the_deadline_is_accepted(late_server, clock) -> None:
    from datetime import timedelta

    action_id, deadline = _held(late_server)
    _move_to(clock, deadline - timedelta(microseconds=1))
    r = _approve(late_server, action_id)
    assert r.status_code == 200 and r.json()["status"] == "approved", r.text


def test_approving_at_exactly_the_deadline_is_too_late(late_server, clock) -> None:
    action_id, deadline = _held(late_server)
    _move_to(clock, deadline)
    r = _approve(late_server, action_id)
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["action_status"] == "expired"
    assert "action.expired" in _types(late_server, action_id)


def test_approving_after_the_deadline_before_the_timer_fired_expires_it(late_server, clock) -> None:
    action_id, deadline = _held(late_server)
    _move_to(clock, deadline)
    clock.advance(90)  # the timer is late (Cloud Tasks delivers at least once, not on time)
    r = _approve(late_server, action_id)
    assert r.status_code == 409 and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["action_status"] == "expired"
    with late_server.client("agent", "agent-1", "alice") as agent:
        assert agent.get(f"/api/actions/{action_id}").json()["status"] == "expired"
    types = _types(late_server, action_id)
    assert types.count("action.expired") == 1 and "action.approved" not in types
    # the late timer then finds nothing to do
    from vettra.services.actions import expire

    assert expire(late_server.runtime.deps, action_id) == "not-pending"
