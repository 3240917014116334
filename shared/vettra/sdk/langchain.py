"""LangChain: wrap any ``BaseTool`` (``@tool`` functions included) so it runs through Vettra.

::

    from langchain_core.tools import InjectedToolArg, tool
    from vettra.sdk.langchain import protect_tool

    @tool
    def gmail_send_message(
        to: str, subject: str, body: str,
        credential: Annotated[Credential | None, InjectedToolArg] = None,
    ) -> str:
        "Send an e-mail."
        ...

    send = protect_tool(gmail_send_message, client)   # same name, schema, description

The wrapper keeps the tool's name, description and model-facing schema. Each run is
intercepted (``framework: "langchain"``, the name mapped as the server maps raw LangChain
calls), waits for the decision, and only then runs the tool. A tool that declares
``credential`` as an ``InjectedToolArg`` gets the released credential; the model never
sees or fills that argument. A blocked call becomes the tool's error message (a
``ToolMessage`` with ``status="error"`` naming the reason), so an agent loop can tell the
model; ``on_blocked="raise"`` raises the SDK's error instead.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any, Literal

from ..extras import install_hint

try:
    from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
    from langchain_core.messages import ToolMessage
    from langchain_core.tools import BaseTool, ToolException
    from pydantic import ConfigDict
    from pydantic_core import to_jsonable_python
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(f"vettra.sdk.langchain {install_hint('langchain')}") from exc

from ._client import AsyncClient, Client
from ._errors import ActionBlocked
from ._models import Authorization
from ._protect import CREDENTIAL, check_unchanged, tool_name_for

FRAMEWORK = "langchain"
OnBlocked = Literal["message", "raise"]


def _fields(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        return set(schema.get("properties", {}))
    return set(getattr(schema, "model_fields", {}))


class VettraTool(BaseTool):
    """A LangChain tool that asks Vettra before its inner tool runs."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool
    client: Client | AsyncClient
    vettra_tool: str
    on_blocked: OnBlocked = "message"
    decision_timeout_s: float | None = None
    injected: frozenset[str] = frozenset()

    def _named(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if args:  # a single-string input: LangChain passes it positionally
            first = next(iter(_fields(self.args_schema)), "input")
            return {first: args[0], **kwargs}
        return kwargs

    def _arguments(self, named: dict[str, Any]) -> dict[str, Any]:
        """The tool arguments as JSON (validated models dumped), injected ones left out."""
        return dict(to_jsonable_python({k: v for k, v in named.items() if k not in self.injected}))

    def _blocked(self, err: ActionBlocked) -> ToolException:
        if self.on_blocked == "raise":
            raise err
        return ToolException(str(err))

    def _inner_input(self, named: dict[str, Any], authorization: Authorization) -> dict[str, Any]:
        check_unchanged(self._arguments(named), authorization)
        tool_input = dict(named)
        if CREDENTIAL in self.injected:  # whatever the model put there, Vettra's wins
            tool_input[CREDENTIAL] = authorization.credential
        return tool_input

    def _output(self, result: Any) -> Any:
        if self.response_format == "content_and_artifact" and isinstance(result, ToolMessage):
            return result.content, result.artifact
        return result

    def _run(
        self, *args: Any, run_manager: CallbackManagerForToolRun | None = None, **kwargs: Any
    ) -> Any:
        if not isinstance(self.client, Client):
            raise TypeError(f"{self.name} is guarded by an AsyncClient: call ainvoke/arun")
        named = self._named(args, kwargs)
        arguments = self._arguments(named)
        try:
            authorization = self.client.authorize(
                self.vettra_tool,
                arguments,
                framework=FRAMEWORK,
                want_credential=CREDENTIAL in self.injected,
                decision_timeout_s=self.decision_timeout_s,
            )
        except ActionBlocked as err:
            raise self._blocked(err) from err
        tool_input = self._inner_input(named, authorization)
        callbacks = run_manager.get_child() if run_manager else None
        return self._output(self.inner.run(tool_input, callbacks=callbacks, **self._call_id()))

    async def _arun(
        self,
        *args: Any,
        run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        named = self._named(args, kwargs)
        arguments = self._arguments(named)
        options: dict[str, Any] = {
            "framework": FRAMEWORK,
            "want_credential": CREDENTIAL in self.injected,
            "decision_timeout_s": self.decision_timeout_s,
        }
        try:
            if isinstance(self.client, AsyncClient):
                authorization = await self.client.authorize(self.vettra_tool, arguments, **options)
            else:
                authorization = await asyncio.to_thread(
                    functools.partial(self.client.authorize, self.vettra_tool, arguments, **options)
                )
        except ActionBlocked as err:
            raise self._blocked(err) from err
        tool_input = self._inner_input(named, authorization)
        callbacks = run_manager.get_child() if run_manager else None
        result = await self.inner.arun(tool_input, callbacks=callbacks, **self._call_id())
        return self._output(result)

    def _call_id(self) -> dict[str, Any]:
        # content_and_artifact tools return the artifact only inside a ToolMessage
        return {"tool_call_id": "vettra"} if self.response_format == "content_and_artifact" else {}


def protect_tool(
    tool: BaseTool,
    client: Client | AsyncClient,
    *,
    tool_name: str | None = None,
    on_blocked: OnBlocked = "message",
    decision_timeout_s: float | None = None,
) -> VettraTool:
    """Wrap ``tool`` so every run is authorized by Vettra first (see the module docstring).

    ``tool_name`` is the Vettra ``service.operation``; by default the tool's name mapped
    like a raw LangChain call (``gmail_send_message`` -> ``gmail.send_message``).
    """
    schema = tool.get_input_schema() if tool.args_schema is None else tool.args_schema
    injected = frozenset(_fields(schema) - _fields(tool.tool_call_schema))
    if CREDENTIAL in _fields(tool.tool_call_schema):
        raise TypeError(
            f"{tool.name}: the model could fill `credential`; annotate it "
            "`Annotated[Credential | None, InjectedToolArg] = None`"
        )
    name = tool_name_for(tool.name, tool_name)
    return VettraTool(
        name=tool.name,
        description=tool.description,
        args_schema=schema,
        return_direct=tool.return_direct,
        response_format=tool.response_format,
        handle_tool_error=on_blocked == "message",
        inner=tool,
        client=client,
        vettra_tool=name,
        on_blocked=on_blocked,
        decision_timeout_s=decision_timeout_s,
        injected=injected,
    )
