"""POST /api/tasks/expire over the real local server: who may call it, what it
accepts, and that duplicate and early deliveries are harmless.

The runtime's scheduler is replaced by a fake that records, so the only
deliveries are the ones these tests make (the embedded timer stays idle).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ..fakes import RecordingScheduler
from .scenarios import SEND_EMAIL

EXPIRE = "/api/tasks/expire"


@pytest.fixture
def timers(server: Any, monkeypatch: pytest.MonkeyPatch) -> RecordingScheduler:
    fake = RecordingScheduler()
    monkeypatch.setattr(server.runtime.deps, "scheduler", fake)
    return fake


@pytest.fixture
def system(server: Any) -> Iterator[httpx.Client]:
    token = server.runtime.identity.issue(role="system", sub="scheduler", user="system")
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as c:
        yield c


def _pending(agent: httpx.Client, timeout_s: int) -> dict[str, Any]:
    r = agent.post("/api/actions/intercept", json={**SEND_EMAIL, "timeout_s": timeout_s})
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    return r.json()


def _deliver(client: httpx.Client, action_id: str, retry: int = 0) -> httpx.Response:
    return client.post(
        EXPIRE,
        json={"kind": "expire", "action_id": action_id},
        headers={
            "X-CloudTasks-TaskName": f"expire-{action_id}",
            "X-CloudTasks-TaskRetryCount": str(retry),
        },
    )


@pytest.mark.parametrize("caller", ["agent", "alice", "admin"])
def test_people_and_agents_are_forbidden(request, timers, agent, caller: str) -> None:
    action = _pending(agent, 60)
    r = _deliver(request.getfixturevalue(caller), action["action_id"])
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert agent.get(f"/api/actions/{action['action_id']}").json()["status"] == "pending"


def test_no_token_is_unauthenticated(server) -> None:
    r = httpx.post(server.url + EXPIRE, json={"kind": "expire", "action_id": "act_x"})
    assert r.status_code == 401


def test_the_system_role_reaches_no_other_endpoint(system) -> None:
    assert system.get("/api/actions/pending").status_code == 403
    assert system.post("/api/actions/intercept", json=SEND_EMAIL).status_code == 403
    assert system.get("/api/audit/verify").status_code == 403


@pytest.mark.parametrize(
    "body, field",
    [
        ({"action_id": "act_1"}, "kind"),
        ({"kind": "approve", "action_id": "act_1"}, "kind"),
        ({"kind": "expire"}, "action_id"),
        ({"kind": "expire", "action_id": "../etc"}, "action_id"),
        ({"kind": "expire", "action_id": "act_1", "extra": 1}, "extra"),
    ],
)
def test_bad_bodies_are_422(system, body: dict, field: str) -> None:
    r = system.post(EXPIRE, json=body)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]


def test_an_unknown_action_is_missing_not_an_error(system) -> None:
    r = _deliver(system, "act_does_not_exist")
    assert (r.status_code, r.json()) == (200, {"result": "missing"})


def test_an_early_delivery_re_arms_the_timer_and_changes_nothing(system, agent, timers) -> None:
    action = _pending(agent, 60)
    timers.scheduled.clear()
    r = _deliver(system, action["action_id"])
    assert (r.status_code, r.json()) == (200, {"result": "early"})
    [(name, due, payload)] = timers.scheduled
    assert name == f"expire-{action['action_id']}" and payload == {
        "kind": "expire",
        "action_id": action["action_id"],
    }
    assert due.isoformat().startswith(action["expires_at"][:19])
    assert agent.get(f"/api/actions/{action['action_id']}").json()["status"] == "pending"


def test_duplicate_deliveries_expire_once(system, agent, alice, timers) -> None:
    action = _pending(agent, 1)
    aid = action["action_id"]
    time.sleep(1.1)
    results = [_deliver(system, aid, retry=n).json()["result"] for n in range(3)]
    assert results == ["expired", "not-pending", "not-pending"]
    assert agent.get(f"/api/actions/{aid}").json()["status"] == "expired"
    types = [e["type"] for e in alice.get(f"/api/audit/action/{aid}").json()["entries"]]
    assert types.count("action.expired") == 1


def test_a_decided_action_is_not_pending(system, agent, alice, timers) -> None:
    action = _pending(agent, 60)
    alice.post("/api/actions/approve", json={"action_id": action["action_id"], "decision": "deny"})
    assert _deliver(system, action["action_id"]).json() == {"result": "not-pending"}
    assert timers.cancelled == [f"expire-{action['action_id']}"]
