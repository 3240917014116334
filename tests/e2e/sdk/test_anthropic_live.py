"""Anthropic's ``tool_use`` loop (the anthropic package from PyPI) through Vettra, live.

The real ``anthropic.Anthropic`` client talks to a scripted Messages API at its one
transport seam (``httpx2.MockTransport``): each turn answers with the ``tool_use`` blocks
a model would send, and the next request shows what the model was told.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import anthropic
import httpx2
import pytest

from vettra.sdk import Credential
from vettra.sdk.anthropic import AsyncToolRunner, ToolRunner

from .conftest import Approver, LiveVettra, leave_reason, marked, two_emails

pytestmark = pytest.mark.e2e

MODEL = "claude-scripted"


def message(content: list[dict[str, Any]], stop_reason: str) -> dict[str, Any]:
    return {
        "id": "msg_" + uuid.uuid4().hex[:12], "type": "message", "role": "assistant",
        "model": MODEL, "content": content, "stop_reason": stop_reason, "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }  # fmt: skip


def tool_use(name: str, **input: Any) -> dict[str, Any]:
    return {
        "type": "tool_use",
        "id": "toolu_" + uuid.uuid4().hex[:16],
        "name": name,
        "input": input,
    }


class ScriptedMessagesApi:
    """``POST /v1/messages`` answered from a script; every request body kept."""

    def __init__(self, turns: list[list[dict[str, Any]]]):
        self.turns = list(turns)
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        assert request.url.path == "/v1/messages", request.url
        self.requests.append(json.loads(request.content))
        if self.turns:
            return httpx2.Response(200, json=message(self.turns.pop(0), "tool_use"))
        return httpx2.Response(200, json=message([{"type": "text", "text": "done"}], "end_turn"))

    def tool_results(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for body in self.requests:
            for turn in body["messages"]:
                content = turn["content"] if isinstance(turn["content"], list) else []
                for block in content:
                    if block.get("type") == "tool_result":
                        out[block["tool_use_id"]] = block
        return out


TOOLS = [
    {"name": "user_get_profile", "description": "Read the profile", "input_schema": {"type": "object"}},
    {"name": "gmail_send_message", "description": "Send an e-mail", "input_schema": {"type": "object"}},
]  # fmt: skip


def test_low_runs_medium_waits_denied_reason_goes_back_to_the_model(
    live: LiveVettra, approver: Approver
):
    ran: list[tuple[str, Any]] = []

    def user_get_profile() -> dict[str, str]:
        ran.append(("profile", None))
        return {"name": "Alice"}

    def gmail_send_message(to: str, subject: str, body: str, credential: Credential) -> str:
        ran.append((subject, credential))
        return f"sent {subject}"

    ok, no = approver.approve_one_deny_one()
    uses = [tool_use("user_get_profile")]
    uses += [tool_use("gmail_send_message", **email) for email in two_emails(ok, no)]
    api = ScriptedMessagesApi([uses])
    model = anthropic.Anthropic(
        api_key="test-key", base_url="http://scripted.test", max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(api)),
    )  # fmt: skip
    runner = ToolRunner(live.agent(), [user_get_profile, gmail_send_message])
    response, conversation = runner.loop(
        model,
        model=MODEL,
        max_tokens=256,
        tools=TOOLS,
        messages=[{"role": "user", "content": "Tell Bob the numbers"}],
    )
    assert response.stop_reason == "end_turn" and len(conversation) == 3
    results = api.tool_results()
    assert json.loads(results[uses[0]["id"]]["content"]) == {"name": "Alice"}
    assert results[uses[1]["id"]]["content"] == f"sent {ok}"
    assert "is_error" not in results[uses[1]["id"]]
    denied = results[uses[2]["id"]]
    assert denied["is_error"] is True and leave_reason(no) in denied["content"]
    assert [subject for subject, _ in ran] == ["profile", ok]
    assert isinstance(ran[1][1], Credential) and ran[1][1].access_token
    # the server mapped the raw tool_use name itself: it scored gmail.send_message
    assert {a.tool for a in approver.seen} == {"gmail.send_message"}
    assert {a.raw["framework"] for a in approver.seen} == {"anthropic"}


def test_unknown_tools_and_failing_tools_are_errors_for_the_model(live: LiveVettra):
    def user_get_profile() -> str:
        raise RuntimeError("profile service down")

    runner = ToolRunner(live.agent(), [user_get_profile])
    blocks = [tool_use("user_get_profile"), tool_use("rm_rf")]
    failing, unknown = runner.run(blocks)
    assert failing["is_error"] and "profile service down" in failing["content"]
    assert unknown["is_error"] and "no tool named 'rm_rf'" in unknown["content"]


def test_the_async_runner(live: LiveVettra, approver: Approver):
    marker = uuid.uuid4().hex
    approver.later(marked(marker), "approve")

    async def gmail_send_message(to: str, subject: str, body: str) -> str:
        return f"sent {subject}"

    async def main() -> list[dict[str, Any]]:
        async with live.async_agent() as client:
            runner = AsyncToolRunner(client, [gmail_send_message])
            block = tool_use("gmail_send_message", to="bob@example.com", subject=marker, body="x")
            return await runner.run([block])

    (result,) = asyncio.run(main())
    assert result["content"] == f"sent {marker}" and "is_error" not in result
