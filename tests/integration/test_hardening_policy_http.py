"""Issue 7, items 3-5 over real HTTP: one tool identity per call (422, nothing written),
deny rules that see through types and spellings, plain reads LOW, and MCP server pinning."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from ..policies import signed_default_with

PROBLEM = "application/problem+json"


def _chain_length(admin: httpx.Client) -> int:
    return admin.get("/api/audit/verify").json()["length"]


AMBIGUOUS = [
    (
        {
            "framework": "openai",
            "type": "function",
            "name": "user_get_profile",
            "arguments": "{}",
            "function": {"name": "github_delete_repo", "arguments": '{"repo": "acme/api"}'},
        },
        {"name", "arguments"},
    ),
    (
        {
            "framework": "openai",
            "tool_call": {
                "name": "github_delete_repo",
                "arguments": "{}",
                "function": {"name": "github_delete_repo", "arguments": "{}"},
            },
        },
        {"tool_call.name", "tool_call.arguments"},
    ),
    (
        {
            "framework": "anthropic",
            "type": "tool_use",
            "name": "user_get_profile",
            "input": {},
            "function": {"name": "github_delete_repo", "arguments": "{}"},
        },
        {"function"},
    ),
    (
        {
            "framework": "langchain",
            "name": "user_get_profile",
            "args": {},
            "input": {"repo": "acme/api"},
        },
        {"input"},
    ),
    ({"framework": "mcp", "name": "gmail.read_inbox", "server": "mail-proxy"}, {"name"}),
    ({"tool": "github.get_x.delete_repository", "arguments": {}}, {"tool"}),
]


@pytest.mark.parametrize("body, fields", AMBIGUOUS, ids=range(len(AMBIGUOUS)))
def test_a_body_naming_its_tool_two_ways_is_422_and_writes_nothing(
    agent, admin, body, fields
) -> None:
    before = _chain_length(admin)
    r = agent.post("/api/actions/intercept", json=body)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == PROBLEM
    assert {e["field"] for e in r.json()["errors"]} == fields
    assert _chain_length(admin) == before


DODGES = [
    {
        "tool": "iam.grant_role",
        "arguments": {"member": "user:m@evil.example", "role": ["roles/owner"]},
    },
    {
        "tool": "github.add_collaborator",
        "arguments": {"owner": "acme", "repo": "api", "username": "m", "permission": ["admin"]},
    },
    {"tool": "iam.grant_role", "arguments": {"member": "user:m", "role": "\u0430dmin"}},
    {
        "tool": "iam.set_iam_policy",
        "arguments": {
            "policy": json.dumps({"bindings": [{"role": "roles/OWNER", "members": ["user:m"]}]})
        },
    },
    {"tool": "org.add_member", "arguments": {"members": [{"email": "m@x", "role": "ＯＷＮＥＲ"}]}},
    {"tool": "github.add_org_admin", "arguments": {"user": "m"}},
    {
        "framework": "openai",
        "type": "function",
        "function": {"name": "slack_make_owner", "arguments": '{"user": "m"}'},
    },
]


@pytest.mark.parametrize("body", DODGES, ids=range(len(DODGES)))
def test_rewrapped_respelled_or_named_admin_grants_are_denied(agent, body) -> None:
    r = agent.post("/api/actions/intercept", json=body)
    assert r.status_code == 201, r.text
    action = r.json()
    assert action["status"] == "denied", action
    assert action["policy"]["rule_id"].startswith("deny-privilege-escalation")


def test_json_text_nested_past_the_parsers_limit_is_not_a_500(agent) -> None:
    deep = "[" * 20_000 + "]" * 20_000
    r = agent.post(
        "/api/actions/intercept", json={"tool": "iam.grant_role", "arguments": {"role": deep}}
    )
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    "tool, status, level",
    [
        ("notion.get_page", "allowed", "LOW"),
        ("jira.search_issues", "allowed", "LOW"),
        ("vault.read_secret", "pending", "MEDIUM"),
        ("notion.update_page", "pending", "HIGH"),
    ],
)
def test_plain_reads_of_unknown_tools_are_allowed_at_once(agent, tool, status, level) -> None:
    r = agent.post("/api/actions/intercept", json={"tool": tool, "arguments": {"id": "p1"}})
    assert r.status_code == 201, r.text
    assert (r.json()["status"], r.json()["risk"]["level"]) == (status, level)


@pytest.fixture
def pinned(server: Any, admin: httpx.Client) -> None:
    pin = {
        "id": "pin-mcp-servers",
        "effect": "deny",
        "tools": ["*"],
        "when": {
            "all": [
                {"field": "agent", "eq": "agent-1"},
                {"field": "server", "exists": True},
                {"field": "server", "not_in": ["github"]},
            ]
        },
        "reason": "agent-1 may only claim the github MCP server",
    }
    envelope = signed_default_with(server.runtime.deps.keys.policy_signing_key(), [pin], first=True)
    r = admin.post("/api/policy", json=envelope)
    assert r.status_code == 200, r.text


def test_a_policy_pins_the_mcp_servers_an_agent_may_claim(server, agent, pinned) -> None:
    ok = agent.post(
        "/api/actions/intercept",
        json={"framework": "mcp", "name": "list_issues", "server": "github", "arguments": {}},
    )
    assert ok.status_code == 201 and ok.json()["status"] == "allowed", ok.text
    assert any("claim, not proven" in reason for reason in ok.json()["risk"]["reasons"])
    other = agent.post(
        "/api/actions/intercept",
        json={"framework": "mcp", "name": "list_issues", "server": "gitlab", "arguments": {}},
    )
    body = other.json()
    assert (body["status"], body["policy"]["rule_id"]) == ("denied", "pin-mcp-servers")
    assert "as claimed by the agent, not verified" in body["reason"]
    with server.client("agent", "agent-2", "alice") as agent2:
        free = agent2.post(
            "/api/actions/intercept",
            json={"framework": "mcp", "name": "list_issues", "server": "gitlab", "arguments": {}},
        )
    assert free.json()["status"] == "allowed", free.text
