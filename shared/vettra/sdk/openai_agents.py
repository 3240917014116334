"""OpenAI Agents SDK: human-in-the-loop approvals decided in Vettra.

::

    from agents import Agent, Runner, function_tool
    from vettra.sdk.openai_agents import VettraApprovals

    approvals = VettraApprovals(client)

    @approvals.function_tool                   # or approvals.protect(existing_function_tool)
    def gmail_send_message(to: str, subject: str, body: str, credential: Credential) -> str:
        ...

    agent = Agent(name="mail", tools=[gmail_send_message])
    result = await Runner.run(agent, "Tell Bob the numbers")
    result = await approvals.resolve(agent, result)   # waits for the approver in Vettra

Each guarded tool gets a ``needs_approval`` callable backed by Vettra: it intercepts the
call (``framework: "openai"``, keyed by the model's call id so asking again returns the
same action). An ``allowed`` call runs without interrupting the run; anything else
interrupts it, and :meth:`VettraApprovals.resolve` waits for Vettra's decision (long-poll),
approves the interruption or rejects it with a ``rejection_message`` naming the reason
(what the model reads), and resumes the run. The tool itself checks Vettra again when it
is invoked, so approving an interruption locally without Vettra's go-ahead runs nothing,
and it redeems the credential for functions with a ``credential`` parameter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from ..extras import install_hint

try:
    from agents import Agent, FunctionTool, RunConfig, RunContextWrapper, Runner, RunResult
    from agents import function_tool as agents_function_tool
    from agents.items import ToolApprovalItem
    from agents.run_state import RunState
    from agents.tool_context import ToolContext
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(f"vettra.sdk.openai_agents {install_hint('openai-agents')}") from exc

from ..domain.statuses import ALLOWED
from ._client import AsyncClient, Client
from ._errors import ActionBlocked, DigestMismatch
from ._flow import EXPIRY_GRACE_S, blocked_error, deadline_timeout_s, digest_of
from ._models import Action, Authorization, Credential
from ._protect import CREDENTIAL, ToolSignature, tool_name_for

FRAMEWORK = "openai"
T = TypeVar("T")

_credential: ContextVar[Credential | None] = ContextVar("vettra_credential", default=None)


def current_credential() -> Credential | None:
    """The credential released for the tool call running now (inside a guarded tool)."""
    return _credential.get()


class VettraApprovals:
    """Vettra-backed approvals for the Agents SDK's function tools (module docstring)."""

    def __init__(self, client: Client | AsyncClient, *, decision_timeout_s: float | None = None):
        self.client = client
        self.decision_timeout_s = (
            client.settings.decision_timeout_s if decision_timeout_s is None else decision_timeout_s
        )
        self._actions: dict[str, Action] = {}  # model call id -> its action

    async def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a client method: awaited on an AsyncClient, in a thread on a Client."""
        if isinstance(self.client, AsyncClient):
            return await method(*args, **kwargs)
        return await asyncio.to_thread(functools.partial(method, *args, **kwargs))

    @staticmethod
    def _key(call_id: str) -> str:
        return f"openai-agents:{call_id}"

    # --- guarding tools -----------------------------------------------------------------

    def protect(
        self, tool: FunctionTool, *, tool_name: str | None = None, want_credential: bool = False
    ) -> FunctionTool:
        """The same tool with Vettra's ``needs_approval`` and a Vettra check on invocation.

        ``want_credential``: redeem the released credential for each run; the tool reads
        it with :func:`current_credential` (``function_tool`` below passes it instead).
        """
        name = tool_name_for(tool.name, tool_name)
        invoke = tool.on_invoke_tool

        async def needs_approval(_ctx: RunContextWrapper[Any], params: Any, call_id: str) -> bool:
            arguments = dict(params or {})
            action: Action = await self._call(
                self.client.intercept,
                name,
                arguments,
                framework=FRAMEWORK,
                idempotency_key=self._key(call_id),
                timeout_s=self._timeout_s(),
            )
            if action.args_digest != digest_of(arguments):
                raise DigestMismatch(f"the server digested other arguments for {call_id}")
            self._actions[call_id] = action
            return action.status != ALLOWED

        async def on_invoke_tool(ctx: ToolContext[Any], input_json: str) -> Any:
            arguments = json.loads(input_json) if input_json.strip() else {}
            try:
                authorization: Authorization = await self._call(
                    self.client.authorize,
                    name,
                    arguments,
                    framework=FRAMEWORK,
                    want_credential=want_credential,
                    decision_timeout_s=self.decision_timeout_s,
                    idempotency_key=self._key(ctx.tool_call_id),
                )
            except ActionBlocked as err:
                return str(err)  # the model reads why; the tool did not run
            token = _credential.set(authorization.credential)
            try:
                return await invoke(ctx, input_json)
            finally:
                _credential.reset(token)

        return dataclasses.replace(
            tool, needs_approval=needs_approval, on_invoke_tool=on_invoke_tool
        )

    def _wait_s(self) -> float:
        """How long :meth:`decide` waits for one decision: the deadline the action was
        given (plus the grace for its expiry to arrive), or until it is decided."""
        if self.decision_timeout_s is None:
            return math.inf
        return self.decision_timeout_s + EXPIRY_GRACE_S

    def _timeout_s(self) -> int | None:
        return deadline_timeout_s(self.decision_timeout_s)

    def function_tool(
        self, func: Callable[..., Any] | None = None, *, tool_name: str | None = None, **kwargs: Any
    ) -> Any:
        """``agents.function_tool`` guarded by Vettra; a ``credential`` parameter is hidden
        from the model's schema and receives the released credential."""

        def build(f: Callable[..., Any]) -> FunctionTool:
            signature = ToolSignature(f)
            target: Callable[..., Any] = f
            if signature.wants_credential:
                target = _with_credential(f, signature)
            built = agents_function_tool(target, **kwargs)
            return self.protect(
                built, tool_name=tool_name, want_credential=signature.wants_credential
            )

        return build if func is None else build(func)

    # --- resolving interruptions -------------------------------------------------------

    async def decide(
        self, state: RunState[Any], interruptions: list[ToolApprovalItem]
    ) -> list[ToolApprovalItem]:
        """Wait for Vettra's decision on each of our interruptions and record it in
        ``state`` (approve, or reject with the reason); returns the ones not ours."""
        foreign: list[ToolApprovalItem] = []
        for item in interruptions:
            action = self._actions.get(item.call_id or "")
            if action is None:
                foreign.append(item)
                continue
            decided: Action = await self._call(
                self.client.wait_for_decision,
                action.action_id,
                timeout_s=self._wait_s(),
            )
            blocked = blocked_error(decided)
            if blocked is None:
                state.approve(item)
            else:
                state.reject(item, rejection_message=str(blocked))
        return foreign

    async def resolve(
        self, agent: Agent[Any], result: RunResult, *, run_config: RunConfig | None = None
    ) -> RunResult:
        """Resume the run until no Vettra-guarded interruption is left."""
        while result.interruptions:
            state = result.to_state()
            foreign = await self.decide(state, result.interruptions)
            if foreign:
                names = ", ".join(sorted({i.name or "?" for i in foreign}))
                raise ValueError(
                    f"interruptions of tools not guarded by Vettra ({names}): call "
                    "approvals.decide(state, ...) and resolve those yourself"
                )
            result = await Runner.run(agent, state, run_config=run_config)
        return result


def _with_credential(func: Callable[..., T], signature: ToolSignature) -> Callable[..., Any]:
    """``func`` without its ``credential`` parameter; the running call's credential is
    passed to it (the Agents SDK builds the model's schema from what it sees)."""
    if asyncio.iscoroutinefunction(func):
        coroutine: Callable[..., Awaitable[Any]] = func

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            return await coroutine(*args, **kwargs, **{CREDENTIAL: current_credential()})

        wrapper: Callable[..., Any] = async_wrapper
    else:

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            return func(*args, **kwargs, **{CREDENTIAL: current_credential()})

        wrapper = sync_wrapper
    wrapper.__signature__ = signature.public  # type: ignore[attr-defined]
    wrapper.__annotations__ = {
        k: v for k, v in getattr(func, "__annotations__", {}).items() if k != CREDENTIAL
    }
    return wrapper
