"""The actions API over a real HTTP server on the embedded default."""

from __future__ import annotations

import threading
import time

import pytest

from .scenarios import CHARGE_500, DELETE_REPO, EXPECTED, GRANT_ADMIN, READ_PROFILE, SEND_EMAIL


@pytest.mark.parametrize(
    "bundle, status, level, step_up",
    EXPECTED,
    ids=["read-profile", "send-email", "delete-repo", "charge-500", "grant-admin"],
)
def test_the_five_scenarios(agent, bundle, status, level, step_up) -> None:
    r = agent.post("/api/actions/intercept", json=bundle)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["status"], body["risk"]["level"], body["step_up_required"]) == (
        status,
        level,
        step_up,
    )
    assert set(body["risk"]["factors"]) == {
        "action_type",
        "reversibility",
        "blast_radius",
        "sensitivity",
    }
    assert body["risk"]["score"] == sum(body["risk"]["factors"].values())
    assert body["risk"]["reasons"] and all(isinstance(x, str) for x in body["risk"]["reasons"])
    assert body["args_digest"].startswith("sha256:") and len(body["args_digest"]) == 71
    assert (body["expires_at"] is not None) == (status == "pending")
    if status == "denied":
        assert "admin" in body["reason"]
    assert isinstance(body["audit_seq"], int)


def test_pending_queue_and_approval(agent, alice) -> None:
    action = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()
    queue = alice.get("/api/actions/pending").json()["actions"]
    assert [a["action_id"] for a in queue] == [action["action_id"]]
    r = alice.post(
        "/api/actions/approve", json={"action_id": action["action_id"], "decision": "approve"}
    )
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert agent.get(f"/api/actions/{action['action_id']}").json()["status"] == "approved"
    again = alice.post(
        "/api/actions/approve", json={"action_id": action["action_id"], "decision": "deny"}
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == "application/problem+json"
    assert alice.get("/api/actions/pending").json()["actions"] == []


def test_denial_reason_reaches_the_agent(agent, alice) -> None:
    action = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()
    alice.post(
        "/api/actions/approve",
        json={
            "action_id": action["action_id"],
            "decision": "deny",
            "reason": "Do not email customers about Q3 yet.",
        },
    )
    seen = agent.get(f"/api/actions/{action['action_id']}").json()
    assert seen["status"] == "denied" and seen["reason"] == "Do not email customers about Q3 yet."


@pytest.mark.parametrize("bundle", [DELETE_REPO, CHARGE_500], ids=["delete-repo", "charge"])
def test_step_up_actions_cannot_be_approved_without_step_up(agent, alice, bundle) -> None:
    action = agent.post("/api/actions/intercept", json=bundle).json()
    r = alice.post(
        "/api/actions/approve", json={"action_id": action["action_id"], "decision": "approve"}
    )
    assert r.status_code == 401
    assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
    assert agent.get(f"/api/actions/{action['action_id']}").json()["status"] == "pending"
    deny = alice.post(
        "/api/actions/approve", json={"action_id": action["action_id"], "decision": "deny"}
    )
    assert deny.status_code == 200 and deny.json()["status"] == "denied"


def test_ownership(server, agent, alice, bob) -> None:
    action = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()
    aid = action["action_id"]
    assert bob.get(f"/api/actions/{aid}").status_code == 404
    assert (
        bob.post("/api/actions/approve", json={"action_id": aid, "decision": "approve"}).status_code
        == 404
    )
    assert bob.get("/api/actions/pending").json()["actions"] == []
    with server.client("agent", "agent-2", "alice") as other_agent:
        assert other_agent.get(f"/api/actions/{aid}").status_code == 404
    for path in ("/api/actions/pending", "/api/audit/entries", "/api/audit/verify"):
        assert agent.get(path).status_code == 403, path
    assert (
        agent.post(
            "/api/actions/approve", json={"action_id": aid, "decision": "approve"}
        ).status_code
        == 403
    )
    assert alice.post("/api/actions/intercept", json=SEND_EMAIL).status_code == 403
    assert alice.get(f"/api/actions/{aid}").status_code == 200
    assert agent.get(f"/api/actions/{aid}").status_code == 200


def test_no_token_no_access(server) -> None:
    import httpx

    for method, path in [
        ("GET", "/api/actions/pending"),
        ("POST", "/api/actions/intercept"),
        ("GET", "/api/audit/verify"),
        ("GET", "/api/openapi.json"),
        ("GET", "/api/nope"),
    ]:
        r = httpx.request(method, server.url + path, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401, path
        assert r.headers["content-type"] == "application/problem+json"
        assert httpx.request(method, server.url + path).status_code == 401
    assert httpx.get(server.url + "/health").status_code == 200


def test_idempotency(agent) -> None:
    headers = {"Idempotency-Key": "order-42"}
    first = agent.post("/api/actions/intercept", json=SEND_EMAIL, headers=headers)
    second = agent.post("/api/actions/intercept", json=SEND_EMAIL, headers=headers)
    assert first.status_code == 201 and second.status_code == 200
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["action_id"] == second.json()["action_id"]
    other = agent.post("/api/actions/intercept", json=READ_PROFILE, headers=headers)
    assert other.status_code == 409


def test_concurrent_retries_with_one_key_make_one_action(server) -> None:
    ids: list[str] = []
    lock = threading.Lock()

    def go() -> None:
        with server.client("agent", "agent-1", "alice") as c:
            r = c.post(
                "/api/actions/intercept", json=SEND_EMAIL, headers={"Idempotency-Key": "same"}
            )
            with lock:
                ids.append(r.json()["action_id"])

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(ids) == 8 and len(set(ids)) == 1


def test_wait_returns_as_soon_as_decided(agent, alice) -> None:
    aid = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    timer = threading.Timer(
        0.3,
        lambda: alice.post("/api/actions/approve", json={"action_id": aid, "decision": "approve"}),
    )
    started = time.monotonic()
    timer.start()
    r = agent.get(f"/api/actions/{aid}", params={"wait": 10})
    elapsed = time.monotonic() - started
    assert r.json()["status"] == "approved"
    assert 0.25 < elapsed < 5


def test_wait_times_out_still_pending(agent) -> None:
    aid = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    started = time.monotonic()
    assert agent.get(f"/api/actions/{aid}", params={"wait": 1}).json()["status"] == "pending"
    assert time.monotonic() - started >= 0.9


def test_agent_deadline_expires_the_action(agent, alice) -> None:
    aid = agent.post("/api/actions/intercept", json={**SEND_EMAIL, "timeout_s": 1}).json()[
        "action_id"
    ]
    r = agent.get(f"/api/actions/{aid}", params={"wait": 10})
    assert r.json()["status"] == "expired"
    late = alice.post("/api/actions/approve", json={"action_id": aid, "decision": "approve"})
    assert late.status_code == 409
    types = [e["type"] for e in alice.get(f"/api/audit/action/{aid}").json()["entries"]]
    assert types == ["action.intercepted", "action.expired", "action.decision_rejected"]


def test_every_state_change_is_audited(agent, alice, admin) -> None:
    a = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()
    alice.post("/api/actions/approve", json={"action_id": a["action_id"], "decision": "approve"})
    agent.post("/api/actions/intercept", json=GRANT_ADMIN)
    trail = alice.get(f"/api/audit/action/{a['action_id']}").json()["entries"]
    assert [e["type"] for e in trail] == ["action.intercepted", "action.approved"]
    assert trail[1]["actor"] == "approver:alice"
    assert (
        "arguments" not in trail[0]["data"] and trail[0]["data"]["args_digest"] == a["args_digest"]
    )
    everything = admin.get("/api/audit/entries").json()["entries"]
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    assert everything[0]["type"] == "policy.activated"
    assert admin.get("/api/audit/verify").json()["valid"] is True
    # an approver sees only entries about their own actions
    assert all(e["user"] == "alice" for e in alice.get("/api/audit/entries").json()["entries"])
