"""``@protect``: a tool function runs only after Vettra says it may, with what was approved.

::

    @protect(client)                      # tool "gmail.send_message", from the name
    def gmail_send_message(to: str, subject: str, body: str, credential: Credential) -> str:
        ...

The call's arguments, by name, are the tool's arguments: they are intercepted, the
decision is awaited (long-poll), the digest the server approved is checked against the
arguments once more just before the call, and a released credential is passed as the
keyword ``credential`` to functions that have that parameter (and redeemed only for
them). Blocked calls raise (:class:`ActionDenied` with its ``reason``...); if Vettra
cannot be reached the function does not run.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ..domain.frameworks import map_tool_name, tool_problem
from ._client import AsyncClient, Client
from ._errors import DigestMismatch
from ._flow import digest_of
from ._models import Authorization

F = TypeVar("F", bound=Callable[..., Any])

#: The parameter a released credential is passed as.
CREDENTIAL = "credential"
#: A method's receiver is not a tool argument.
_RECEIVERS = ("self", "cls")


def tool_name_for(source: str | Callable[..., Any], tool: str | None = None) -> str:
    """``tool``, or the name of ``source`` (a function or a framework's tool name) mapped
    as the server maps raw tool-call names (``gmail_send_message`` -> ``gmail.send_message``);
    a ValueError if the result is not a valid ``service.operation``."""
    raw = source if isinstance(source, str) else source.__name__
    name = tool if tool is not None else map_tool_name(raw)
    problem = tool_problem(name)
    if problem:
        raise ValueError(f"tool name {name!r} {problem}")
    return name


class ToolSignature:
    """How a function's call maps to tool arguments, and how to call it with a credential."""

    def __init__(self, func: Callable[..., Any]):
        self.full = inspect.signature(func)
        credential = self.full.parameters.get(CREDENTIAL)
        if credential is not None and credential.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
        ):
            raise TypeError(f"{func.__qualname__}: `credential` must be an ordinary parameter")
        self.wants_credential = credential is not None
        self.public = self.full.replace(
            parameters=[p for p in self.full.parameters.values() if p.name != CREDENTIAL]
        )
        params = list(self.public.parameters.values())
        self.receiver = (
            params[0].name
            if params and params[0].name in _RECEIVERS and params[0].kind != params[0].KEYWORD_ONLY
            else None
        )

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
        if CREDENTIAL in kwargs and self.wants_credential:
            raise TypeError("`credential` is released by Vettra; do not pass it yourself")
        bound = self.public.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound

    def arguments(self, bound: inspect.BoundArguments) -> dict[str, Any]:
        """The tool arguments: every named parameter (defaults applied) and ``**kwargs``."""
        out: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self.public.parameters[name].kind
            if name == self.receiver:
                continue
            if kind is inspect.Parameter.VAR_POSITIONAL:
                if value:
                    raise TypeError(
                        f"positional extras (*{name}) have no names to show an approver; "
                        "pass tool arguments by name"
                    )
                continue
            if kind is inspect.Parameter.VAR_KEYWORD:
                out.update(value)
            else:
                out[name] = value
        return out

    def call_args(
        self, bound: inspect.BoundArguments, authorization: Authorization
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Positional-only parameters by position, the rest by name, plus ``credential``."""
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            kind = self.public.parameters[name].kind
            if kind is inspect.Parameter.POSITIONAL_ONLY:
                args.append(value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                kwargs.update(value)
            elif kind is not inspect.Parameter.VAR_POSITIONAL:
                kwargs[name] = value
        if self.wants_credential:
            kwargs[CREDENTIAL] = authorization.credential
        return tuple(args), kwargs


def check_unchanged(arguments: dict[str, Any], authorization: Authorization) -> None:
    """The arguments about to run are still those approved (a mutable argument may have
    been changed by another thread while the approver was looking)."""
    digest = digest_of(arguments)
    if digest != authorization.action.args_digest:
        raise DigestMismatch(
            f"the arguments changed after approval (approved {authorization.action.args_digest}, "
            f"about to run {digest}); action {authorization.action.action_id} does not run"
        )


def protect(
    client: Client | AsyncClient,
    tool: str | None = None,
    *,
    framework: str | None = None,
    session_id: str | None = None,
    resource: str | None = None,
    context: dict[str, Any] | None = None,
    decision_timeout_s: float | None = None,
    wait: bool = True,
    on_authorized: Callable[[Authorization], None] | None = None,
) -> Callable[[F], F]:
    """Decorate a sync or async tool function so each call goes through Vettra first.

    ``tool`` defaults to the function's name mapped like raw tool calls. An
    :class:`AsyncClient` wraps async functions only; a :class:`Client` wraps both (for
    an async function its blocking calls run in a worker thread). ``on_authorized`` is
    called with each go-ahead (the decided action, its risk) just before the function
    runs, e.g. to log which action id a side effect belongs to.
    """
    options: dict[str, Any] = {
        "framework": framework,
        "session_id": session_id,
        "resource": resource,
        "context": context,
        "decision_timeout_s": decision_timeout_s,
        "wait": wait,
    }

    def decorate(func: F) -> F:
        name = tool_name_for(func, tool)
        signature = ToolSignature(func)
        is_async = inspect.iscoroutinefunction(func)
        if isinstance(client, AsyncClient) and not is_async:
            raise TypeError(
                f"@protect with an AsyncClient wraps async functions; {func.__qualname__} is "
                "synchronous: give it a Client"
            )
        want = signature.wants_credential

        if is_async:

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                bound = signature.bind(args, kwargs)
                arguments = signature.arguments(bound)
                if isinstance(client, AsyncClient):
                    authorization = await client.authorize(
                        name, arguments, want_credential=want, **options
                    )
                else:
                    authorization = await asyncio.to_thread(
                        functools.partial(
                            client.authorize, name, arguments, want_credential=want, **options
                        )
                    )
                check_unchanged(arguments, authorization)
                if on_authorized is not None:
                    on_authorized(authorization)
                call_args, call_kwargs = signature.call_args(bound, authorization)
                return await func(*call_args, **call_kwargs)

            wrapper: Callable[..., Any] = async_wrapper
        else:
            sync_client = cast(Client, client)

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                bound = signature.bind(args, kwargs)
                arguments = signature.arguments(bound)
                authorization = sync_client.authorize(
                    name, arguments, want_credential=want, **options
                )
                check_unchanged(arguments, authorization)
                if on_authorized is not None:
                    on_authorized(authorization)
                call_args, call_kwargs = signature.call_args(bound, authorization)
                return func(*call_args, **call_kwargs)

            wrapper = sync_wrapper

        # What callers (and frameworks that read signatures, like LangChain's @tool and
        # the OpenAI Agents SDK's function_tool) see: no `credential`, the model never fills it.
        wrapper.__signature__ = signature.public  # type: ignore[attr-defined]
        wrapper.__annotations__ = {
            k: v for k, v in getattr(func, "__annotations__", {}).items() if k != CREDENTIAL
        }
        wrapper.vettra_tool = name  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate
