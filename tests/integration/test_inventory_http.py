"""The permission inventory and scope translation over the real server."""

from __future__ import annotations

import pytest

PERMS = "/api/inventory/permissions"
TRANSLATE = "/api/inventory/scope-translate"
PROBLEM = "application/problem+json"


def _grant(client, agent="agent-1", connection="github", scopes=("repo",)):
    r = client.post(PERMS, json={"agent": agent, "connection": connection, "scopes": list(scopes)})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{PERMS}/{r.json()['permission_id']}"
    return r.json()


def test_grants_are_per_user_and_agents_see_their_own(server, agent, alice, bob) -> None:
    mine = _grant(alice, scopes=["repo", "delete_repo"])
    _grant(alice, agent="agent-2", connection="google-oauth2", scopes=["openid"])
    _grant(bob, scopes=["read:org"])
    listed = alice.get(PERMS).json()["permissions"]
    assert [(p["agent"], p["connection"]) for p in listed] == [
        ("agent-1", "github"),
        ("agent-2", "google-oauth2"),
    ]
    assert [p["connection"] for p in bob.get(PERMS).json()["permissions"]] == ["github"]
    seen_by_agent = agent.get(PERMS).json()["permissions"]
    assert [p["permission_id"] for p in seen_by_agent] == [mine["permission_id"]]
    first = listed[0]
    assert first["active"] is True and first["last_used_at"] is None and first["uses"] == 0
    assert first["granted_by"] == "approver:alice" and first["granted_at"].endswith("Z")
    explained = {s["scope"]: s for s in first["scopes_explained"]}
    assert explained["delete_repo"]["risk"] == "high"
    assert "Delete repositories" in explained["delete_repo"]["text"]


def test_granting_again_replaces_and_revoking_is_final_and_idempotent(alice, bob) -> None:
    first = _grant(alice, scopes=["repo"])
    again = _grant(alice, scopes=["public_repo"])
    assert again["permission_id"] == first["permission_id"] and again["scopes"] == ["public_repo"]
    pid = first["permission_id"]
    assert bob.delete(f"{PERMS}/{pid}").status_code == 404  # not bob's
    revoked = alice.delete(f"{PERMS}/{pid}")
    assert revoked.status_code == 200 and revoked.json()["active"] is False
    at = revoked.json()["revoked_at"]
    assert alice.delete(f"{PERMS}/{pid}").json()["revoked_at"] == at  # once
    assert alice.delete(f"{PERMS}/perm_missing").status_code == 404
    entries = alice.get("/api/audit/entries", params={"limit": 100}).json()["entries"]
    assert [e["type"] for e in entries if e["type"].startswith("permission.")] == [
        "permission.granted",
        "permission.granted",
        "permission.revoked",
    ]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"agent": "a", "connection": "github"}, "scopes"),
        ({"agent": "a", "connection": "github", "scopes": []}, "scopes"),
        ({"agent": "a", "connection": "git hub", "scopes": ["repo"]}, "connection"),
        ({"agent": "a b", "connection": "github", "scopes": ["repo"]}, "agent"),
        ({"agent": "a", "connection": "github", "scopes": ["has space"]}, "scopes.0"),
        ({"agent": "a", "connection": "github", "scopes": ["r"] * 51}, "scopes"),
        ({"agent": "a", "connection": "github", "scopes": ["repo"], "admin": True}, "admin"),
    ],
)
def test_a_bad_grant_is_422_and_grants_nothing(alice, body, field) -> None:
    r = alice.post(PERMS, json=body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert alice.get(PERMS).json()["permissions"] == []


def test_agents_may_not_grant_or_revoke(agent, alice) -> None:
    pid = _grant(alice)["permission_id"]
    r = agent.post(PERMS, json={"agent": "agent-1", "connection": "github", "scopes": ["repo"]})
    assert r.status_code == 403
    assert agent.delete(f"{PERMS}/{pid}").status_code == 403
    assert alice.get(PERMS).json()["permissions"][0]["active"] is True


def test_scopes_are_translated_with_a_risk_and_unknown_ones_said_so(agent) -> None:
    r = agent.get(
        TRANSLATE,
        params={
            "scope": "https://www.googleapis.com/auth/gmail.send repo chat:write read_write "
            "Mail.Send made:up"
        },
    )
    assert r.status_code == 200, r.text
    by_scope = {a["scope"]: a for a in r.json()["scopes"]}
    assert {s: a["provider"] for s, a in by_scope.items() if a["known"]} == {
        "https://www.googleapis.com/auth/gmail.send": "google",
        "repo": "github",
        "chat:write": "slack",
        "read_write": "stripe",
        "Mail.Send": "microsoft",
    }
    assert r.json()["unknown"] == ["made:up"]
    assert (
        by_scope["made:up"]["risk"] == "unknown" and "does not know" in by_scope["made:up"]["text"]
    )
    scoped = agent.get(TRANSLATE, params={"scope": "openid", "provider": "google"}).json()
    assert [m["provider"] for m in scoped["scopes"][0]["matches"]] == ["google"]


@pytest.mark.parametrize(
    "params",
    [{}, {"scope": ""}, {"scope": "  "}, {"scope": "a" * 201}, {"scope": "repo", "provider": "x"}],
    ids=["missing", "empty", "spaces", "too-long", "bad-provider"],
)
def test_bad_translation_queries_are_400(agent, params) -> None:
    r = agent.get(TRANSLATE, params=params)
    assert r.status_code == 400 and r.headers["content-type"] == PROBLEM, r.text
