"""Anthropic Messages API: run a response's ``tool_use`` blocks through Vettra.

::

    import anthropic
    from vettra.sdk.anthropic import ToolRunner

    runner = ToolRunner(client, [gmail_send_message, user_get_profile])   # your functions
    response, messages = runner.loop(
        anthropic.Anthropic(), model=..., max_tokens=1024, tools=TOOL_SCHEMAS,
        messages=[{"role": "user", "content": "Tell Bob the numbers"}],
    )

Each ``tool_use`` block is sent to Vettra as it is (``framework: "anthropic"``: the server
maps its name, ``gmail_send_message`` -> ``gmail.send_message``, and digests its
``input``); the function named by the block runs only on a go-ahead, with the released
credential when it has a ``credential`` parameter. The answer is the ``tool_result``
block for the next user turn: the function's result, or ``is_error`` with Vettra's
reason (denied, expired, still pending) or the function's exception. Blocks are duck-typed
(SDK objects or dicts), so this module does not import ``anthropic`` itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Iterable
from typing import Any

from ._client import AsyncClient, Client
from ._errors import ActionBlocked
from ._models import Authorization
from ._protect import ToolSignature, check_unchanged

FRAMEWORK = "anthropic"
TOOL_USE = "tool_use"
DEFAULT_MAX_TURNS = 16


def _block(block: Any) -> dict[str, Any]:
    """A content block as the API's JSON (SDK models have ``model_dump``)."""
    if isinstance(block, dict):
        return block
    dumped: dict[str, Any] = block.model_dump(mode="json", exclude_none=True)
    return dumped


def tool_uses(content: Any) -> list[dict[str, Any]]:
    """The ``tool_use`` blocks of a message (or of its ``content`` list)."""
    blocks = getattr(content, "content", content)
    return [b for b in (_block(x) for x in blocks) if b.get("type") == TOOL_USE]


def _result(tool_use_id: str, value: Any, *, error: bool = False) -> dict[str, Any]:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_use_id, "content": text}
    if error:
        result["is_error"] = True
    return result


class _Tools:
    """The functions a model may call, by the name the model uses, and what one
    ``tool_use`` block needs from Vettra and gives back (shared by both runners)."""

    def __init__(self, functions: Iterable[Callable[..., Any]], options: dict[str, Any]):
        self.functions = {f.__name__: f for f in functions}
        self.signatures = {name: ToolSignature(f) for name, f in self.functions.items()}
        self.options = options  # for authorize_raw: session_id, decision_timeout_s...

    def unknown(self, block: dict[str, Any]) -> dict[str, Any] | None:
        """An error result for a block naming no function, else None."""
        if block.get("name") in self.functions:
            return None
        return _result(block.get("id", ""), f"no tool named {block.get('name')!r}", error=True)

    def request(self, block: dict[str, Any]) -> dict[str, Any]:
        """``authorize_raw``'s arguments: the block as it is, keyed by its id."""
        return {
            "framework": FRAMEWORK,
            "tool_call": block,
            "arguments": dict(block.get("input") or {}),
            "want_credential": self.signatures[block["name"]].wants_credential,
            "idempotency_key": f"anthropic:{block['id']}",
            **self.options,
        }

    def prepared(self, block: dict[str, Any], authorization: Authorization) -> Callable[[], Any]:
        """The approved call, checked against the approved digest, ready to run."""
        signature = self.signatures[block["name"]]
        bound = signature.bind((), dict(block.get("input") or {}))
        check_unchanged(signature.arguments(bound), authorization)
        args, kwargs = signature.call_args(bound, authorization)
        return functools.partial(self.functions[block["name"]], *args, **kwargs)


def _failed(block: dict[str, Any], exc: Exception) -> dict[str, Any]:
    """The function raised: the model is told, as Anthropic's own tool runner does."""
    return _result(block["id"], f"{type(exc).__name__}: {exc}", error=True)


def _next_turn(messages: list[Any], response: Any, results: list[dict[str, Any]]) -> None:
    messages.append({"role": "assistant", "content": response.content})
    messages.append({"role": "user", "content": results})


class ToolRunner:
    """Synchronous: a :class:`Client` and plain functions."""

    def __init__(self, client: Client, functions: Iterable[Callable[..., Any]], **options: Any):
        self.client = client
        self.tools = _Tools(functions, options)

    def run(self, message: Any) -> list[dict[str, Any]]:
        """The ``tool_result`` blocks answering every ``tool_use`` of ``message``."""
        return [self._one(block) for block in tool_uses(message)]

    def _one(self, block: dict[str, Any]) -> dict[str, Any]:
        if (unknown := self.tools.unknown(block)) is not None:
            return unknown
        try:
            call = self.tools.prepared(
                block, self.client.authorize_raw(**self.tools.request(block))
            )
        except ActionBlocked as err:
            return _result(block["id"], str(err), error=True)
        try:
            return _result(block["id"], call())
        except Exception as exc:
            return _failed(block, exc)

    def loop(
        self, anthropic_client: Any, *, max_turns: int = DEFAULT_MAX_TURNS, **create: Any
    ) -> tuple[Any, list[Any]]:
        """Call ``messages.create`` and answer its tool uses until the model stops;
        returns the last response and the whole conversation."""
        messages = list(create.pop("messages"))
        for _ in range(max_turns):
            response = anthropic_client.messages.create(messages=messages, **create)
            if response.stop_reason != TOOL_USE:
                return response, messages
            _next_turn(messages, response, self.run(response))
        raise RuntimeError(f"the model still calls tools after {max_turns} turns")


class AsyncToolRunner:
    """Asynchronous: an :class:`AsyncClient`; functions may be async or plain."""

    def __init__(
        self, client: AsyncClient, functions: Iterable[Callable[..., Any]], **options: Any
    ):
        self.client = client
        self.tools = _Tools(functions, options)

    async def run(self, message: Any) -> list[dict[str, Any]]:
        return [await self._one(block) for block in tool_uses(message)]

    async def _one(self, block: dict[str, Any]) -> dict[str, Any]:
        if (unknown := self.tools.unknown(block)) is not None:
            return unknown
        try:
            authorization = await self.client.authorize_raw(**self.tools.request(block))
            call = self.tools.prepared(block, authorization)
        except ActionBlocked as err:
            return _result(block["id"], str(err), error=True)
        try:
            value = call()
            return _result(block["id"], await value if asyncio.iscoroutine(value) else value)
        except Exception as exc:
            return _failed(block, exc)

    async def loop(
        self, anthropic_client: Any, *, max_turns: int = DEFAULT_MAX_TURNS, **create: Any
    ) -> tuple[Any, list[Any]]:
        messages = list(create.pop("messages"))
        for _ in range(max_turns):
            response = await anthropic_client.messages.create(messages=messages, **create)
            if response.stop_reason != TOOL_USE:
                return response, messages
            _next_turn(messages, response, await self.run(response))
        raise RuntimeError(f"the model still calls tools after {max_turns} turns")
