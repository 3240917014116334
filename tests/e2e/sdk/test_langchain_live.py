"""LangChain (langchain-core from PyPI) through Vettra on a live server.

The "model" is langchain-core's own scripted chat model: it answers with the tool calls
an LLM would make, and a minimal agent loop runs them as LangGraph's ToolNode does
(``tool.invoke(tool_call)`` -> ``ToolMessage``).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, InjectedToolArg, tool
from langchain_core.utils.function_calling import convert_to_openai_tool

from vettra.sdk import ActionDenied, Credential
from vettra.sdk.langchain import protect_tool

from .conftest import Approver, LiveVettra, leave_reason, marked, two_emails

pytestmark = pytest.mark.e2e

RAN: list[dict] = []


@tool
def user_get_profile() -> str:
    """Read the user's profile."""
    RAN.append({"tool": "user_get_profile"})
    return "Alice <alice@example.com>"


@tool
def gmail_send_message(
    to: str,
    subject: str,
    body: str,
    credential: Annotated[Credential | None, InjectedToolArg] = None,
) -> str:
    """Send an e-mail from the user's mailbox."""
    RAN.append({"tool": "gmail_send_message", "subject": subject, "credential": credential})
    assert credential is not None, "Vettra passes the released credential"
    return f"sent '{subject}' to {to}"


def run_agent(model: FakeMessagesListChatModel, tools: list[BaseTool]) -> list[BaseMessage]:
    """The smallest agent loop: ask the model, run its tool calls, until it stops calling."""
    by_name = {t.name: t for t in tools}
    messages: list[BaseMessage] = [HumanMessage("Tell Bob the numbers")]
    while True:
        ai = model.invoke(messages)
        messages.append(ai)
        if not isinstance(ai, AIMessage) or not ai.tool_calls:
            return messages
        for call in ai.tool_calls:
            messages.append(by_name[call["name"]].invoke(call))


def script(*calls: dict) -> FakeMessagesListChatModel:
    tool_turns = [
        AIMessage(content="", tool_calls=[{**c, "id": f"call_{i}", "type": "tool_call"}])
        for i, c in enumerate(calls)
    ]
    return FakeMessagesListChatModel(responses=[*tool_turns, AIMessage(content="done")])


def test_the_model_never_sees_the_credential_argument(live: LiveVettra):
    wrapped = protect_tool(gmail_send_message, live.agent())
    params = convert_to_openai_tool(wrapped)["function"]["parameters"]["properties"]
    assert set(params) == {"to", "subject", "body"}
    assert wrapped.name == "gmail_send_message" and wrapped.vettra_tool == "gmail.send_message"
    assert wrapped.description == gmail_send_message.description


def test_low_runs_medium_waits_for_approval_denied_tells_the_model(
    live: LiveVettra, approver: Approver
):
    client = live.agent()
    tools = [protect_tool(user_get_profile, client), protect_tool(gmail_send_message, client)]
    ok, no = approver.approve_one_deny_one()
    RAN.clear()
    model = script(
        {"name": "user_get_profile", "args": {}},
        *({"name": "gmail_send_message", "args": email} for email in two_emails(ok, no)),
    )
    messages = run_agent(model, tools)
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert [r.status for r in results] == ["success", "success", "error"]
    assert results[0].content == "Alice <alice@example.com>"
    assert results[1].content == f"sent '{ok}' to bob@example.com"
    assert leave_reason(no) in str(results[2].content)
    assert "denied" in str(results[2].content)
    # the denied call never ran; the approved one ran once, with a released credential
    assert [r.get("subject") for r in RAN] == [None, ok]
    credential = RAN[1]["credential"]
    assert isinstance(credential, Credential) and credential.access_token
    assert [a.risk.level for a in approver.seen] == ["MEDIUM", "MEDIUM"]


def test_the_model_cannot_forge_the_credential(live: LiveVettra, approver: Approver):
    marker = uuid.uuid4().hex
    approver.later(marked(marker), "approve")
    wrapped = protect_tool(gmail_send_message, live.agent())
    RAN.clear()
    forged = {"to": "bob@example.com", "subject": marker, "body": "x",
              "credential": {"access_token": "forged", "token_type": "Bearer",
                             "expires_at": None, "scope": None, "connection": None}}  # fmt: skip
    out = wrapped.invoke(
        {"name": "gmail_send_message", "args": forged, "id": "c1", "type": "tool_call"}
    )
    assert out.status == "success"
    assert RAN[0]["credential"].access_token != "forged"
    # the forged key was not sent to Vettra as an argument either
    assert "credential" not in approver.seen[0].raw["arguments"]


def test_on_blocked_raise_and_the_async_path(live: LiveVettra, approver: Approver):
    marker = uuid.uuid4().hex
    approver.later(marked(marker), "deny", reason=f"no ({marker})")
    wrapped = protect_tool(gmail_send_message, live.async_agent(), on_blocked="raise")
    with pytest.raises(ActionDenied) as caught:
        asyncio.run(wrapped.ainvoke({"to": "bob@example.com", "subject": marker, "body": "x"}))
    assert caught.value.reason == f"no ({marker})"
