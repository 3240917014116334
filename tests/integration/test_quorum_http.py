"""Quorum approvals over HTTP (docs/approvals.md): a real server, real tokens, real races.

The policy is activated as an admin would: the shipped default plus quorum rules,
a newer version, signed with the home's policy key, sent to ``POST /api/policy``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ..policies import issues_quorum, signed_default_with
from ..races import race
from .approvals import decide, enrol_totp, pre_authorize, step_up

OWNER = "alice"
ISSUE = {"tool": "github.create_issue", "arguments": {"repo": "acme/api", "title": "flaky test"}}
DELETE_REPO = {"tool": "github.delete_repo", "arguments": {"repo": "acme/old-api"}}
QUORUM_RULES = [
    issues_quorum("erin", "carol", "dave"),  # out of order: the stored policy sorts them
    {
        "id": "two-for-repo-deletion",
        "effect": "require_step_up",
        "tools": ["github.delete_repo"],
        "approvers": {"quorum": 2, "of": ["carol", "dave"]},
        "reason": "deleting a repository needs carol and dave, each with step-up",
    },
]
ROUNDS = 8


@pytest.fixture
def quorum_policy(server: Any, admin: httpx.Client) -> dict[str, Any]:
    envelope = signed_default_with(server.runtime.deps.keys.policy_signing_key(), QUORUM_RULES)
    r = admin.post("/api/policy", json=envelope)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture
def people(server: Any, quorum_policy: Any) -> Any:
    clients = {u: server.client("approver", u) for u in ("alice", "bob", "carol", "dave", "erin")}
    yield clients
    for c in clients.values():
        c.close()


def _intercept(agent: httpx.Client, bundle: dict) -> dict[str, Any]:
    r = agent.post("/api/actions/intercept", json=bundle)
    assert r.status_code == 201 and r.json()["status"] == "pending", r.text
    return r.json()


TRAIL_TYPES = {
    "action.intercepted",
    "action.vote",
    "action.approved",
    "action.denied",
    "stepup.redeemed",
}


def _trail(client: httpx.Client, action_id: str) -> list[str]:
    """The action's state changes (refused attempts may add entries of their own)."""
    r = client.get(f"/api/audit/action/{action_id}")
    assert r.status_code == 200, r.text
    return [e["type"] for e in r.json()["entries"] if e["type"] in TRAIL_TYPES]


def test_named_approvers_see_and_decide_strangers_get_404(agent: Any, people: dict) -> None:
    action = _intercept(agent, ISSUE)
    action_id = action["action_id"]
    assert action["policy"]["approvers"] == {"quorum": 2, "of": ["carol", "dave", "erin"]}
    for user in ("alice", "carol", "dave", "erin"):
        seen = people[user].get(f"/api/actions/{action_id}")
        assert seen.status_code == 200, seen.text
        assert seen.json()["quorum"] == {
            "required": 2,
            "approvals": [],
            "of": ["carol", "dave", "erin"],
        }
        pending = people[user].get("/api/actions/pending").json()["actions"]
        assert [a["action_id"] for a in pending] == [action_id]
    assert people["bob"].get(f"/api/actions/{action_id}").status_code == 404
    assert people["bob"].get("/api/actions/pending").json()["actions"] == []
    assert decide(people["bob"], action_id, "deny").status_code == 404
    # the owner is not named: may not approve (403), may deny
    refused = decide(people[OWNER], action_id, "approve")
    assert refused.status_code == 403 and refused.headers["content-type"].startswith(
        "application/problem+json"
    )

    first = decide(people["carol"], action_id, "approve")
    assert first.status_code == 200 and first.json()["status"] == "pending"
    assert first.json()["quorum"]["approvals"] == ["carol"]
    again = decide(people["carol"], action_id, "approve")
    assert again.status_code == 200 and again.json()["quorum"]["approvals"] == ["carol"]
    assert agent.get(f"/api/actions/{action_id}").json()["status"] == "pending"

    final = decide(people["dave"], action_id, "approve")
    assert final.status_code == 200 and final.json()["status"] == "approved", final.text
    assert final.json()["quorum"] == {
        "required": 2,
        "approvals": ["carol", "dave"],
        "of": ["carol", "dave", "erin"],
    }
    assert decide(people["erin"], action_id, "approve").status_code == 409
    assert agent.get(f"/api/actions/{action_id}").json()["status"] == "approved"
    assert _trail(people["carol"], action_id) == [
        "action.intercepted",
        "action.vote",
        "action.vote",
        "action.approved",
    ]
    assert people["bob"].get(f"/api/audit/action/{action_id}").status_code == 404


def test_a_deny_by_the_owner_ends_a_half_approved_action(agent: Any, people: dict) -> None:
    action_id = _intercept(agent, ISSUE)["action_id"]
    assert decide(people["erin"], action_id, "approve").json()["status"] == "pending"
    denied = decide(people[OWNER], action_id, "deny", reason="duplicate of #12")
    assert denied.status_code == 200 and denied.json()["status"] == "denied"
    assert agent.get(f"/api/actions/{action_id}").json()["reason"] == "duplicate of #12"
    assert decide(people["dave"], action_id, "approve").status_code == 409
    assert _trail(people[OWNER], action_id).count("action.denied") == 1


def test_concurrent_votes_make_exactly_one_approval(agent: Any, people: dict) -> None:
    for _ in range(ROUNDS):
        action_id = _intercept(agent, ISSUE)["action_id"]
        results = race(
            [
                lambda u=u, a=action_id: decide(people[u], a, "approve")
                for u in ("carol", "dave", "erin")
            ]
        )
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 200, 409], [r.text for r in results]
        assert [r.json()["status"] for r in results if r.status_code == 200].count("approved") == 1
        trail = _trail(people["carol"], action_id)
        assert trail.count("action.approved") == 1 and trail.count("action.vote") == 2, trail


def test_final_vote_racing_a_deny_has_one_terminal_entry(agent: Any, people: dict) -> None:
    outcomes = set()
    for i in range(ROUNDS):
        action_id = _intercept(agent, ISSUE)["action_id"]
        assert decide(people["carol"], action_id, "approve").status_code == 200
        denier = people[OWNER] if i % 2 else people["erin"]
        results = race(
            [
                lambda a=action_id: decide(people["dave"], a, "approve"),
                lambda a=action_id, d=denier: decide(d, a, "deny"),
            ]
        )
        assert sorted(r.status_code for r in results) == [200, 409], [r.text for r in results]
        trail = _trail(people["carol"], action_id)
        assert trail.count("action.approved") + trail.count("action.denied") == 1, trail
        status = agent.get(f"/api/actions/{action_id}").json()["status"]
        assert status == ("approved" if "action.approved" in trail else "denied")
        outcomes.add(status)
    assert outcomes <= {"approved", "denied"}


# -- step-up: each approving voter steps up for their own vote ----------------------------------


def test_each_approver_of_a_step_up_quorum_steps_up(agent: Any, people: dict, admin: Any) -> None:
    action = _intercept(agent, DELETE_REPO)
    action_id = action["action_id"]
    assert action["step_up_required"] is True
    assert action["policy"]["approvers"] == {"quorum": 2, "of": ["carol", "dave"]}
    carol_secret, dave_secret = enrol_totp(people["carol"]), enrol_totp(people["dave"])

    without = decide(people["carol"], action_id, "approve")
    assert without.status_code == 401
    assert 'error="insufficient_user_authentication"' in without.headers["www-authenticate"]
    assert (
        people["bob"]
        .post("/api/approvals/stepup/trigger", json={"action_id": action_id})
        .status_code
        == 404
    )

    carol_token = step_up(people["carol"], carol_secret, action_id=action_id)
    # a token is bound to the user who stepped up: dave cannot vote with carol's
    assert (
        decide(people["dave"], action_id, "approve", step_up_token=carol_token).status_code == 401
    )
    first = decide(people["carol"], action_id, "approve", step_up_token=carol_token)
    assert first.status_code == 200 and first.json()["status"] == "pending", first.text

    dave_token = step_up(people["dave"], dave_secret, action_id=action_id)
    final = decide(people["dave"], action_id, "approve", step_up_token=dave_token)
    assert final.status_code == 200 and final.json()["status"] == "approved", final.text

    trail = _trail(people["carol"], action_id)
    assert trail.count("stepup.redeemed") == 2 and trail.count("action.approved") == 1, trail
    entries = admin.get("/api/audit/entries", params={"action_id": action_id}).json()["entries"]
    votes = [e["data"] for e in entries if e["type"] == "action.vote"]
    assert [(v["voter"], v["step_up"]) for v in votes] == [("carol", True), ("dave", True)]
    log = admin.get("/api/audit/entries").text
    for secret in (carol_secret, dave_secret, carol_token, dave_token):
        assert secret not in log


def test_a_session_pre_authorisation_never_lifts_a_quorum(agent: Any, people: dict) -> None:
    """One user's pre-authorisation cannot stand in for the other named approvers."""
    alice = people["alice"]
    session_id = agent.post("/api/approvals/sessions", json={}).json()["session_id"]
    token = step_up(alice, enrol_totp(alice), purpose=f"preauth:{session_id}")
    granted = pre_authorize(alice, session_id, step_up_token=token)
    assert granted.status_code == 200, granted.text
    held = agent.post("/api/actions/intercept", json={**ISSUE, "session_id": session_id}).json()
    assert held["status"] == "pending" and held["quorum"]["required"] == 2
