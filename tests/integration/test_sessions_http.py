"""Sessions and pre-authorisation over the real HTTP server."""

from __future__ import annotations

import pytest

from .approvals import decide, enrol_totp, pre_authorize, step_up
from .scenarios import DELETE_REPO, GRANT_ADMIN, SEND_EMAIL


def _step_up(alice, purpose: str) -> str:
    return step_up(alice, enrol_totp(alice), purpose=purpose)


@pytest.fixture
def session_id(agent) -> str:
    r = agent.post("/api/approvals/sessions", json={"label": "inbox triage"})
    assert r.status_code == 201, r.text
    return r.json()["session_id"]


def test_session_lifecycle_and_visibility(server, agent, alice, bob, session_id) -> None:
    mine = alice.get("/api/approvals/sessions").json()["sessions"]
    assert [s["session_id"] for s in mine] == [session_id]
    assert mine[0]["agent"] == "agent-1" and mine[0]["active"] and not mine[0]["preauth_active"]
    assert alice.get(f"/api/approvals/sessions/{session_id}").status_code == 200
    assert bob.get(f"/api/approvals/sessions/{session_id}").status_code == 404
    assert bob.get("/api/approvals/sessions").json()["sessions"] == []
    with server.client("agent", "agent-2", "alice") as other:
        assert other.get(f"/api/approvals/sessions/{session_id}").status_code == 404
        r = other.post("/api/actions/intercept", json={**SEND_EMAIL, "session_id": session_id})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "session_id"
    assert agent.delete(f"/api/approvals/sessions/{session_id}").status_code == 403
    assert bob.delete(f"/api/approvals/sessions/{session_id}").status_code == 404


def test_pre_authorisation_lifts_medium_only_and_needs_step_up(agent, alice, session_id) -> None:
    pending = agent.post(
        "/api/actions/intercept", json={**SEND_EMAIL, "session_id": session_id}
    ).json()
    assert pending["status"] == "pending"

    refused = pre_authorize(alice, session_id, duration_s=1800)
    assert refused.status_code == 401
    assert "insufficient_user_authentication" in refused.headers["www-authenticate"]
    assert pre_authorize(alice, session_id, "HIGH", duration_s=1800).status_code == 422

    token = _step_up(alice, f"preauth:{session_id}")
    granted = pre_authorize(alice, session_id, step_up_token=token, duration_s=1800)
    assert granted.status_code == 200, granted.text
    assert granted.json()["preauth_active"] and granted.json()["preauth"]["max_level"] == "MEDIUM"
    again = pre_authorize(alice, session_id, step_up_token=token, duration_s=1800)
    assert again.status_code == 401  # a step-up token is single-use

    lifted = agent.post(
        "/api/actions/intercept", json={**SEND_EMAIL, "session_id": session_id}
    ).json()
    assert lifted["status"] == "allowed" and lifted["reason"].startswith("pre-authorised")
    high = agent.post(
        "/api/actions/intercept", json={**DELETE_REPO, "session_id": session_id}
    ).json()
    assert high["status"] == "pending" and high["step_up_required"]
    denied = agent.post(
        "/api/actions/intercept", json={**GRANT_ADMIN, "session_id": session_id}
    ).json()
    assert denied["status"] == "denied"
    outside = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()
    assert outside["status"] == "pending"  # only the pre-authorised session is lifted

    trail = alice.get(f"/api/audit/action/{lifted['action_id']}").json()["entries"]
    assert trail[0]["data"]["status"] == "allowed"
    types = [e["type"] for e in alice.get("/api/audit/entries").json()["entries"]]
    assert "session.preauthorized" in types and "stepup.verified" in types


def test_revocation_takes_effect_on_the_next_intercept(agent, alice, session_id) -> None:
    token = _step_up(alice, f"preauth:{session_id}")
    pre_authorize(alice, session_id, step_up_token=token)
    assert (
        agent.post("/api/actions/intercept", json={**SEND_EMAIL, "session_id": session_id}).json()[
            "status"
        ]
        == "allowed"
    )
    revoked = alice.delete(f"/api/approvals/sessions/{session_id}")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    after = agent.post(
        "/api/actions/intercept", json={**SEND_EMAIL, "session_id": session_id}
    ).json()
    assert after["status"] == "denied" and "revoked" in after["reason"]
    assert pre_authorize(alice, session_id, "LOW").status_code == 409


def test_bad_session_input(agent, alice) -> None:
    assert agent.post("/api/approvals/sessions", json={"ttl_s": 5}).status_code == 422
    assert agent.post("/api/approvals/sessions", json={"surprise": 1}).status_code == 422
    r = agent.post("/api/actions/intercept", json={**SEND_EMAIL, "session_id": "ses_doesnotexist"})
    assert r.status_code == 422
    assert pre_authorize(alice, "ses_nope").status_code == 404
    assert alice.get("/api/approvals/sessions/ses_nope").status_code == 404


def test_refused_attempts_are_audited(agent, alice, session_id) -> None:
    pre_authorize(alice, session_id)
    high = agent.post("/api/actions/intercept", json=DELETE_REPO).json()["action_id"]
    assert decide(alice, high, "approve").status_code == 401
    done = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    decide(alice, done, "deny")
    assert decide(alice, done, "approve").status_code == 409
    entries = alice.get("/api/audit/entries").json()["entries"]
    rejected = [e for e in entries if e["type"] == "action.decision_rejected"]
    assert [(e["action_id"], e["data"]["status"]) for e in rejected] == [(high, 401), (done, 409)]
    assert any(e["type"] == "session.preauthorize_rejected" for e in entries)
    assert agent.get(f"/api/actions/{high}").json()["status"] == "pending"
