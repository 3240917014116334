"""``vettra mcp-proxy`` (the installed CLI) in front of an ordinary MCP server, live.

The MCP host is the ``mcp`` package's own Client, launching the proxy over stdio exactly
as Claude Desktop would; the upstream is tests/e2e/sdk/upstream_mcp_server.py.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from ..conftest import vettra_command
from .conftest import Approver, LiveVettra, leave_reason, marked, two_emails, verify_receipt

pytestmark = pytest.mark.e2e

UPSTREAM = Path(__file__).with_name("upstream_mcp_server.py")


def upstream_params(calls: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=[str(UPSTREAM)],
        env={**os.environ, "UPSTREAM_CALLS": str(calls)},
    )


def proxy_params(live: LiveVettra, calls: Path, *extra: str) -> StdioServerParameters:
    command = vettra_command()
    env = {**os.environ, "VETTRA_TOKEN": live.agent_token, "UPSTREAM_CALLS": str(calls)}
    return StdioServerParameters(
        command=command[0],
        args=[*command[1:], "mcp-proxy", "--url", live.url, "--server", "gmail", *extra,
              "--", sys.executable, str(UPSTREAM)],
        env=env,
    )  # fmt: skip


def received(calls: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def text(result: Any) -> str:
    return " ".join(c.text for c in result.content if getattr(c, "type", "") == "text")


def test_the_tool_list_passes_through_unchanged(live: LiveVettra, tmp_path: Path):
    calls = tmp_path / "calls.jsonl"

    async def main() -> tuple[Any, Any, Any, Any]:
        async with Client(upstream_params(calls)) as direct:
            async with Client(proxy_params(live, calls)) as proxied:
                listed = await direct.list_tools(), await proxied.list_tools()
                assert received(calls) == []  # listing calls nothing
                return *listed, proxied.instructions, await proxied.call_tool("get_profile", {})

    direct, proxied, instructions, profile = anyio.run(main)
    assert [t.model_dump(by_alias=True) for t in proxied.tools] == [
        t.model_dump(by_alias=True) for t in direct.tools
    ]
    assert {t.name for t in direct.tools} == {"get_profile", "send_message", "modify_labels"}
    assert instructions == "A test mailbox."
    # without --pass-credential nothing is redeemed or handed to the upstream
    assert not profile.is_error and [c["credential"] for c in received(calls)] == [{}]


def test_low_runs_medium_waits_denied_and_destructive_are_tool_errors(
    live: LiveVettra, approver: Approver, tmp_path: Path
):
    calls = tmp_path / "calls.jsonl"
    ok, no = approver.approve_one_deny_one()
    relabel = f"relabel-{uuid.uuid4().hex}"
    relabelled = approver.later(marked(relabel), "deny", reason="not without step-up")

    async def main() -> list[Any]:
        async with Client(proxy_params(live, calls, "--pass-credential")) as proxied:
            return [
                await proxied.call_tool("get_profile", {}),
                *[await proxied.call_tool("send_message", email) for email in two_emails(ok, no)],
                await proxied.call_tool(
                    "modify_labels", {"message_id": relabel, "remove": ["INBOX"]}
                ),
            ]

    profile, sent, denied, destructive = anyio.run(main)
    assert not profile.is_error and text(profile) == "Alice <alice@example.com>"
    assert not sent.is_error and text(sent) == f"sent {ok} to bob@example.com with a credential"
    assert denied.is_error and leave_reason(no) in text(denied)
    assert destructive.is_error and "not without step-up" in text(destructive)
    # only the allowed and the approved calls reached the upstream
    reached = received(calls)
    assert [c["tool"] for c in reached] == ["get_profile", "send_message"]
    # each call got the user's stored Gmail token, released for its own action: the
    # receipt the upstream can check names that action and exactly those arguments
    credentials = [c["credential"] for c in reached]
    google = live.provider_tokens["google-oauth2"]
    assert [c["access_token"] for c in credentials] == [google, google]
    assert [c["connection"] for c in credentials] == ["google-oauth2"] * 2
    claims = [verify_receipt(c["receipt"], live, call["arguments"])
              for c, call in zip(credentials, reached, strict=True)]  # fmt: skip
    assert [c["tool"] for c in claims] == ["gmail.get_profile", "gmail.send_message"]
    assert len({c["action_id"] for c in claims}) == 2
    assert [c["action_id"] for c in credentials] == [c["action_id"] for c in claims]
    # the upstream's destructiveHint raised a MEDIUM relabel to HIGH, with step-up
    action = relabelled.result(timeout=5)
    assert action.tool == "gmail.modify_labels" and action.raw["framework"] == "mcp"
    assert action.risk.level == "HIGH" and action.step_up_required
    assert any("destructiveHint" in r for r in action.risk.reasons)


def test_an_unreachable_vettra_is_a_tool_error_and_calls_nothing(tmp_path: Path):
    calls = tmp_path / "calls.jsonl"
    from ..conftest import free_port

    command = vettra_command()
    params = StdioServerParameters(
        command=command[0],
        args=[*command[1:], "mcp-proxy", "--url", f"http://127.0.0.1:{free_port()}",
              "--", sys.executable, str(UPSTREAM)],
        env={**os.environ, "VETTRA_TOKEN": "t", "UPSTREAM_CALLS": str(calls)},
    )  # fmt: skip

    async def main() -> Any:
        async with Client(params) as proxied:
            return await proxied.call_tool("get_profile", {})

    result = anyio.run(main)
    assert result.is_error and "was not called" in text(result)
    assert received(calls) == []
