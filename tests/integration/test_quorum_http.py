"""Quorum approvals over HTTP (docs/approvals.md): a real server, real tokens, real races.

The policy is activated as an admin would: the shipped default plus quorum rules,
a newer version, signed with the home's policy key, sent to ``POST /api/policy``.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pyotp
import pytest

from vettra.domain.policy_envelope import load_default_payload, sign_bundle

OWNER = "alice"
ISSUE = {"tool": "github.create_issue", "arguments": {"repo": "acme/api", "title": "flaky test"}}
DELETE_REPO = {"tool": "github.delete_repo", "arguments": {"repo": "acme/old-api"}}
QUORUM_RULES = [
    {
        "id": "two-of-three-issues",
        "effect": "require_approval",
        "tools": ["github.create_issue"],
        "approvers": {"quorum": 2, "of": ["erin", "carol", "dave"]},
        "reason": "issues need two of the maintainers",
    },
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
    payload = load_default_payload()
    payload["version"] += 1
    payload["rules"] = payload["rules"] + QUORUM_RULES
    envelope = sign_bundle(payload, server.runtime.deps.keys.policy_signing_key())
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


def _decide(client: httpx.Client, action_id: str, decision: str, **extra: Any) -> httpx.Response:
    return client.post(
        "/api/actions/approve", json={"action_id": action_id, "decision": decision, **extra}
    )


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
    assert _decide(people["bob"], action_id, "deny").status_code == 404
    # the owner is not named: may not approve (403), may deny
    refused = _decide(people[OWNER], action_id, "approve")
    assert refused.status_code == 403 and refused.headers["content-type"].startswith(
        "application/problem+json"
    )

    first = _decide(people["carol"], action_id, "approve")
    assert first.status_code == 200 and first.json()["status"] == "pending"
    assert first.json()["quorum"]["approvals"] == ["carol"]
    again = _decide(people["carol"], action_id, "approve")
    assert again.status_code == 200 and again.json()["quorum"]["approvals"] == ["carol"]
    assert agent.get(f"/api/actions/{action_id}").json()["status"] == "pending"

    final = _decide(people["dave"], action_id, "approve")
    assert final.status_code == 200 and final.json()["status"] == "approved", final.text
    assert final.json()["quorum"] == {
        "required": 2,
        "approvals": ["carol", "dave"],
        "of": ["carol", "dave", "erin"],
    }
    assert _decide(people["erin"], action_id, "approve").status_code == 409
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
    assert _decide(people["erin"], action_id, "approve").json()["status"] == "pending"
    denied = _decide(people[OWNER], action_id, "deny", reason="duplicate of #12")
    assert denied.status_code == 200 and denied.json()["status"] == "denied"
    assert agent.get(f"/api/actions/{action_id}").json()["reason"] == "duplicate of #12"
    assert _decide(people["dave"], action_id, "approve").status_code == 409
    assert _trail(people[OWNER], action_id).count("action.denied") == 1


def _race(calls: list[Any]) -> list[httpx.Response]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = calls[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_votes_make_exactly_one_approval(agent: Any, people: dict) -> None:
    for _ in range(ROUNDS):
        action_id = _intercept(agent, ISSUE)["action_id"]
        results = _race(
            [
                lambda u=u, a=action_id: _decide(people[u], a, "approve")
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
        assert _decide(people["carol"], action_id, "approve").status_code == 200
        denier = people[OWNER] if i % 2 else people["erin"]
        results = _race(
            [
                lambda a=action_id: _decide(people["dave"], a, "approve"),
                lambda a=action_id, d=denier: _decide(d, a, "deny"),
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


def _code(secret: str, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + steps * 30)


def _enrol_totp(client: httpx.Client) -> str:
    started = client.post("/api/approvals/stepup/enroll", json={"method": "totp"}).json()
    done = client.post(
        "/api/approvals/stepup/enroll",
        json={
            "method": "totp",
            "enrollment_id": started["enrollment_id"],
            "code": _code(started["secret"]),
        },
    )
    assert done.status_code == 200, done.text
    return started["secret"]


def _step_up(client: httpx.Client, secret: str, action_id: str) -> str:
    challenge = client.post("/api/approvals/stepup/trigger", json={"action_id": action_id})
    assert challenge.status_code == 200, challenge.text
    verified = client.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": challenge.json()["challenge_id"], "code": _code(secret, 1)},
    )
    assert verified.status_code == 200, verified.text
    return verified.json()["step_up_token"]


def test_each_approver_of_a_step_up_quorum_steps_up(agent: Any, people: dict, admin: Any) -> None:
    action = _intercept(agent, DELETE_REPO)
    action_id = action["action_id"]
    assert action["step_up_required"] is True
    assert action["policy"]["approvers"] == {"quorum": 2, "of": ["carol", "dave"]}
    carol_secret, dave_secret = _enrol_totp(people["carol"]), _enrol_totp(people["dave"])

    without = _decide(people["carol"], action_id, "approve")
    assert without.status_code == 401
    assert 'error="insufficient_user_authentication"' in without.headers["www-authenticate"]
    assert (
        people["bob"]
        .post("/api/approvals/stepup/trigger", json={"action_id": action_id})
        .status_code
        == 404
    )

    carol_token = _step_up(people["carol"], carol_secret, action_id)
    # a token is bound to the user who stepped up: dave cannot vote with carol's
    assert (
        _decide(people["dave"], action_id, "approve", step_up_token=carol_token).status_code == 401
    )
    first = _decide(people["carol"], action_id, "approve", step_up_token=carol_token)
    assert first.status_code == 200 and first.json()["status"] == "pending", first.text

    dave_token = _step_up(people["dave"], dave_secret, action_id)
    final = _decide(people["dave"], action_id, "approve", step_up_token=dave_token)
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
    start = alice.post("/api/approvals/stepup/enroll", json={"method": "totp"}).json()
    totp = pyotp.TOTP(start["secret"])
    alice.post(
        "/api/approvals/stepup/enroll",
        json={"method": "totp", "enrollment_id": start["enrollment_id"], "code": totp.now()},
    )
    challenge = alice.post(
        "/api/approvals/stepup/trigger", json={"purpose": f"preauth:{session_id}"}
    ).json()["challenge_id"]
    token = alice.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": challenge, "code": totp.at(time.time() + 30)},
    ).json()["step_up_token"]
    granted = alice.post(
        "/api/approvals/sessions/pre-authorize",
        json={
            "session_id": session_id,
            "max_level": "MEDIUM",
            "duration_s": 600,
            "step_up_token": token,
        },
    )
    assert granted.status_code == 200, granted.text
    held = agent.post("/api/actions/intercept", json={**ISSUE, "session_id": session_id}).json()
    assert held["status"] == "pending" and held["quorum"]["required"] == 2
