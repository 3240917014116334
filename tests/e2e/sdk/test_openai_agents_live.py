"""The OpenAI Agents SDK (openai-agents from PyPI) with Vettra's approvals, live.

The model is a scripted ``agents.models.interface.Model``: it emits the function calls an
LLM would and records what it is shown, so the test can check the rejection reason
reaches the model. No network: tracing is off and no OpenAI client is built.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, function_tool
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

from vettra.sdk import Credential
from vettra.sdk.openai_agents import VettraApprovals, current_credential

from .conftest import Approver, LiveVettra, leave_reason, marked, two_emails

pytestmark = pytest.mark.e2e

NO_TRACING = RunConfig(tracing_disabled=True)


class ScriptedModel(Model):
    """Answers each turn from a script; remembers every input it was given."""

    def __init__(self, turns: list[list[Any]]):
        self.turns = list(turns)
        self.inputs: list[Any] = []

    async def get_response(self, system_instructions, input, *args: Any, **kwargs: Any):
        self.inputs.append(input)
        output = self.turns.pop(0) if self.turns else [text("done")]
        return ModelResponse(output=output, usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        raise NotImplementedError


def call(name: str, **arguments: Any) -> ResponseFunctionToolCall:
    call_id = "call_" + uuid.uuid4().hex[:12]
    return ResponseFunctionToolCall(
        type="function_call", call_id=call_id, id="fc_" + call_id, name=name,
        arguments=json.dumps(arguments),
    )  # fmt: skip


def text(value: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id="msg_" + uuid.uuid4().hex[:8], type="message", role="assistant", status="completed",
        content=[ResponseOutputText(type="output_text", text=value, annotations=[])],
    )  # fmt: skip


def tool_outputs(model: ScriptedModel) -> dict[str, str]:
    """call id -> the output the model was shown for it."""
    out: dict[str, str] = {}
    for given in model.inputs:
        for item in given if isinstance(given, list) else []:
            if isinstance(item, dict) and item.get("type") == "function_call_output":
                out[item["call_id"]] = str(item["output"])
    return out


def test_low_runs_medium_waits_denied_reason_goes_back_to_the_model(
    live: LiveVettra, approver: Approver
):
    approvals = VettraApprovals(live.async_agent())
    ran: list[tuple[str, Any]] = []

    @approvals.function_tool
    def user_get_profile() -> str:
        """Read the user's profile."""
        ran.append(("profile", None))
        return "Alice"

    @approvals.function_tool
    def gmail_send_message(to: str, subject: str, body: str, credential: Credential) -> str:
        """Send an e-mail."""
        ran.append((subject, credential))
        return f"sent {subject}"

    assert "credential" not in json.dumps(gmail_send_message.params_json_schema)
    ok, no = approver.approve_one_deny_one()
    calls = [call("user_get_profile")]
    calls += [call("gmail_send_message", **email) for email in two_emails(ok, no)]
    model = ScriptedModel([calls, [text("done")]])
    agent = Agent(name="mail", model=model, tools=[user_get_profile, gmail_send_message])

    async def main() -> Any:
        first = await Runner.run(agent, "Tell Bob the numbers", run_config=NO_TRACING)
        # the LOW read did not interrupt; both e-mails are waiting for the person
        assert sorted(i.name for i in first.interruptions) == ["gmail_send_message"] * 2
        return await approvals.resolve(agent, first, run_config=NO_TRACING)

    result = asyncio.run(main())
    assert result.final_output == "done"
    outputs = tool_outputs(model)
    assert outputs[calls[0].call_id] == "Alice"
    assert outputs[calls[1].call_id] == f"sent {ok}"
    assert leave_reason(no) in outputs[calls[2].call_id]
    # the denied e-mail never ran; the approved one ran with its released credential
    assert [subject for subject, _ in ran] == ["profile", ok]
    credential = ran[1][1]
    assert isinstance(credential, Credential) and credential.access_token


def test_a_local_approval_without_vettras_go_ahead_runs_nothing(live: LiveVettra):
    approvals = VettraApprovals(live.agent(decision_timeout_s=1))
    ran: list[str] = []

    def send(to: str, subject: str) -> str:
        ran.append(subject)
        return "sent"

    tool = approvals.protect(function_tool(send, name_override="gmail_send_message"))
    marker = uuid.uuid4().hex
    model = ScriptedModel([[call("gmail_send_message", to="bob@example.com", subject=marker)]])
    agent = Agent(name="mail", model=model, tools=[tool])

    async def main() -> Any:
        first = await Runner.run(agent, "go", run_config=NO_TRACING)
        state = first.to_state()
        for item in first.interruptions:
            state.approve(item)  # the app approves on its own; nobody approved in Vettra
        return await Runner.run(agent, state, run_config=NO_TRACING)

    asyncio.run(main())
    assert ran == []
    (output,) = tool_outputs(model).values()
    assert "expired" in output or "waiting" in output


def test_protect_passes_the_credential_through_current_credential(
    live: LiveVettra, approver: Approver
):
    approvals = VettraApprovals(live.agent())
    seen: list[Credential | None] = []

    def slack_post_message(channel: str, text: str) -> str:
        seen.append(current_credential())
        return "posted"

    tool = approvals.protect(function_tool(slack_post_message), want_credential=True)
    marker = uuid.uuid4().hex
    approver.later(marked(marker), "approve")
    model = ScriptedModel([[call("slack_post_message", channel="#general", text=marker)]])
    agent = Agent(name="chat", model=model, tools=[tool])

    async def main() -> Any:
        result = await Runner.run(agent, "go", run_config=NO_TRACING)
        return await approvals.resolve(agent, result, run_config=NO_TRACING)

    asyncio.run(main())
    assert len(seen) == 1 and seen[0] is not None and seen[0].access_token
    assert current_credential() is None  # only inside the call
