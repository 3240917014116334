"""``Client`` and ``AsyncClient``: thin drivers of the flows in :mod:`._flow` over httpx.

Everything that decides is in the flows; here are the connection, the headers (bearer
token, ``User-Agent: vettra-sdk-python/<version>``), the explicit timeouts, and the
retries (tenacity) that end in :class:`VettraUnavailable` when Vettra cannot be reached.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Generic, Literal, TypedDict, TypeVar, Unpack, cast

import httpx
import tenacity

from .. import __version__
from . import _flow
from ._errors import ActionDenied, VettraSDKError, VettraUnavailable
from ._flow import Flow, Gate, Request, Sleep
from ._models import Action, Authorization, Credential
from ._retry import RETRY_STATUSES, RetryableStatus, policy

T = TypeVar("T")

USER_AGENT = f"vettra-sdk-python/{__version__}"
#: Seconds for connecting, sending and reading one answer (a long-poll adds its hold).
DEFAULT_TIMEOUT_S = 10.0
#: Seconds an action may wait for a person before the SDK gives up (and asks the server
#: to expire it then). Policies allow up to 15 minutes for MEDIUM by default.
DEFAULT_DECISION_TIMEOUT_S = 300.0
DEFAULT_RETRIES = 3
#: Upper bound on the time spent retrying one request, on top of its own timeout.
RETRY_BUDGET_S = 30.0
OnUnavailable = Literal["raise", "deny"]
_ON_UNAVAILABLE = ("raise", "deny")


def new_idempotency_key() -> str:
    """One key per logical call; every resend of that call carries the same key."""
    return "vsdk-" + uuid.uuid4().hex


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of :class:`Client` and :class:`AsyncClient`."""

    timeout: float  # seconds per request (default 10); a long-poll adds its hold
    decision_timeout_s: float | None  # seconds to wait for a person (default 300)
    retries: int  # resends after a transient failure (default 3)
    on_unavailable: OnUnavailable  # "raise" (default) or "deny"


@dataclass(frozen=True)
class _Settings:
    """What both clients are configured with, checked once."""

    base_url: str
    token: str = field(repr=False)  # a bearer token: never in a repr or a log line
    _: KW_ONLY
    timeout: float = DEFAULT_TIMEOUT_S
    decision_timeout_s: float | None = DEFAULT_DECISION_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    on_unavailable: OnUnavailable = "raise"

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must be an http(s) URL, found {self.base_url!r}")
        if not self.token:
            raise ValueError("token is required (a bearer token from `vettra token` or Auth0)")
        if self.on_unavailable not in _ON_UNAVAILABLE:
            raise ValueError(
                f"on_unavailable must be 'raise' or 'deny', found {self.on_unavailable!r}: "
                "when Vettra cannot be asked, the tool never runs"
            )
        if self.timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, found {self.timeout!r}")
        if self.decision_timeout_s is not None and self.decision_timeout_s <= 0:
            raise ValueError(
                "decision_timeout_s must be positive seconds or None, "
                f"found {self.decision_timeout_s!r}"
            )
        if self.retries < 0:
            raise ValueError(f"retries must be 0 or more, found {self.retries!r}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))

    @property
    def headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.token}",
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
        }

    def http_options(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "headers": self.headers,
            "timeout": self.timeout,
            "follow_redirects": False,
        }

    def request_options(self, request: Request) -> dict[str, Any]:
        """``httpx`` arguments of one request; a long-poll's read timeout covers its hold."""
        return {
            "method": request.method,
            "url": request.path,
            "json": request.json,
            "params": request.params,
            "headers": request.headers,
            "timeout": httpx.Timeout(self.timeout, read=self.timeout + request.hold_s),
        }

    def gate(
        self, body: dict[str, Any], arguments: dict[str, Any], options: AuthorizeOptions
    ) -> Gate:
        """What an authorization runs: the body (with the deadline as ``timeout_s``)."""
        budget = options.get("decision_timeout_s")
        budget = self.decision_timeout_s if budget is None else budget
        timeout_s = _flow.deadline_timeout_s(budget)
        if timeout_s is not None and "timeout_s" not in body:
            body = {**body, "timeout_s": timeout_s}
        return Gate(
            body=body,
            arguments=arguments,
            idempotency_key=options.get("idempotency_key") or new_idempotency_key(),
            want_credential=bool(options.get("want_credential", False)),
            wait=bool(options.get("wait", True)),
            decision_timeout_s=budget,
        )

    def unavailable(self, exc: VettraUnavailable, body: dict[str, Any]) -> Exception:
        """What an unreachable Vettra means for an authorization: the error, or a denial."""
        if self.on_unavailable == "deny":
            tool = body.get("tool") or "the tool call"
            reason = f"Vettra is unavailable ({exc}); denied without asking"
            denied = ActionDenied(f"Vettra denied {tool}: {reason}", reason=reason)
            denied.__cause__ = exc
            return denied
        return exc


class Envelope(TypedDict, total=False):
    """The optional fields of an intercept besides the call (docs/api.md "Actions")."""

    session_id: str | None
    resource: str | None
    context: dict[str, Any] | None


class InterceptOptions(Envelope, total=False):
    framework: str | None  # a plain bundle's origin label (openai, langchain...)
    timeout_s: int | None  # ask the server to expire the action sooner than policy
    idempotency_key: str | None  # default: a new key (resends of this call reuse it)


class AuthorizeOptions(Envelope, total=False):
    want_credential: bool  # redeem the released credential (default False)
    wait: bool  # wait for a pending decision (default True)
    decision_timeout_s: float | None  # default: the client's
    idempotency_key: str | None


class PlainAuthorizeOptions(AuthorizeOptions, total=False):
    framework: str | None


_ENVELOPE_KEYS = ("session_id", "resource", "context", "timeout_s")


def _body(head: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    """An intercept body: the call, then every envelope option that is set."""
    return {**head, **{k: options[k] for k in _ENVELOPE_KEYS if options.get(k) is not None}}


def _plain(tool: str, arguments: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    head: dict[str, Any] = {"tool": tool, "arguments": arguments}
    if options.get("framework") is not None:
        head["framework"] = options["framework"]
    return _body(head, options)


def _raw(framework: str, tool_call: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    return _body({"framework": framework, "tool_call": tool_call}, options)


def _key(options: Mapping[str, Any]) -> str:
    return options.get("idempotency_key") or new_idempotency_key()


def _checked(request: Request, response: httpx.Response) -> httpx.Response:
    """The answer a flow may read; 429/502/503/504 are retried, any other 5xx fails closed."""
    if response.status_code in RETRY_STATUSES:
        raise RetryableStatus(response)
    if response.status_code >= 500:
        raise VettraUnavailable(f"{request.method} {request.path}: HTTP {response.status_code}")
    return response


def _unavailable(request: Request, exc: BaseException) -> VettraUnavailable:
    what = f"{request.method} {request.path}"
    if isinstance(exc, RetryableStatus):
        return VettraUnavailable(f"{what}: {exc}")
    return VettraUnavailable(f"{what}: {type(exc).__name__}: {exc}")


TransportT = TypeVar("TransportT")
HttpT = TypeVar("HttpT")


class _Connected(Generic[TransportT, HttpT]):
    """What both clients are built from: the settings, checked, and the httpx client."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        transport: TransportT | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        self.settings = _Settings(base_url, token, **options)
        self._http = self._connect(transport, self.settings.http_options())

    def _connect(self, transport: TransportT | None, options: dict[str, Any]) -> HttpT:
        raise NotImplementedError


class _Done(Generic[T]):
    """A flow's result (it raised ``StopIteration``)."""

    def __init__(self, value: T) -> None:
        self.value = value


def _feed(
    flow: Flow[T], outcome: httpx.Response | VettraSDKError | None
) -> Request | Sleep | _Done[T]:
    """Resume a flow with what its last step came to (an error is thrown into it, so
    the flow may turn it into its own); its next step, or its result."""
    try:
        if isinstance(outcome, VettraSDKError):
            return flow.throw(outcome)
        return flow.send(outcome)
    except StopIteration as stop:
        return _Done(cast(T, stop.value))


class Client(_Connected[httpx.BaseTransport, httpx.Client]):
    """Synchronous client. ``Client(base_url, token=...)``; close it, or use ``with``.

    ``timeout`` bounds every request (a long-poll adds the time the server holds it);
    ``decision_timeout_s`` bounds how long an authorization waits for a person (the
    server is asked to expire the action then); ``on_unavailable="deny"`` turns an
    unreachable Vettra into :class:`ActionDenied` instead of :class:`VettraUnavailable`.
    There is no setting under which a tool runs without Vettra's go-ahead.
    ``transport``: an ``httpx.BaseTransport`` (tests, proxies).
    """

    def _connect(
        self, transport: httpx.BaseTransport | None, options: dict[str, Any]
    ) -> httpx.Client:
        return httpx.Client(transport=transport, **options)

    # --- plumbing ---------------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send_once(self, request: Request) -> httpx.Response:
        response = self._http.request(**self.settings.request_options(request))
        return _checked(request, response)

    def _send(self, request: Request) -> httpx.Response:
        retrying = tenacity.Retrying(**policy(request, self.settings.retries, RETRY_BUDGET_S))  # type: ignore[arg-type]
        try:
            return retrying(self._send_once, request)
        except (RetryableStatus, httpx.TransportError) as exc:
            raise _unavailable(request, exc) from exc

    def _perform(self, step: Request | Sleep) -> httpx.Response | VettraSDKError | None:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        try:
            return self._send(step)
        except VettraSDKError as exc:
            return exc

    def _run(self, flow: Flow[T]) -> T:
        step = _feed(flow, None)
        while not isinstance(step, _Done):
            step = _feed(flow, self._perform(step))
        return step.value

    # --- the API ----------------------------------------------------------------------

    def intercept(
        self, tool: str, arguments: dict[str, Any], **options: Unpack[InterceptOptions]
    ) -> Action:
        """Submit one tool call; the answer's ``status`` is allowed, pending or denied."""
        return self._run(_flow.intercept(_plain(tool, arguments, options), _key(options)))

    def get_action(self, action_id: str, *, wait_s: int = 0) -> Action:
        """One action; ``wait_s`` (0-60) long-polls for it to leave ``pending``."""
        return self._run(_flow.get_action(action_id, wait_s))

    def wait_for_decision(self, action_id: str, *, timeout_s: float) -> Action:
        """Long-poll until the action is decided or ``timeout_s`` passes (then still pending)."""
        action = self.get_action(action_id)
        return self._run(_flow.wait_for_decision(action, time.monotonic() + timeout_s))

    def redeem_credential(self, action_id: str, args_digest: str) -> Credential:
        """The credential released for an allowed/approved action, once."""
        return self._run(_flow.redeem_credential(action_id, args_digest))

    def authorize(
        self, tool: str, arguments: dict[str, Any], **options: Unpack[PlainAuthorizeOptions]
    ) -> Authorization:
        """Intercept, wait for the decision and (if asked) redeem the credential.

        Returns only when the call may run; raises :class:`ActionDenied`,
        :class:`ActionExpired`, :class:`ApprovalPending`/:class:`StepUpPending`, or
        :class:`VettraUnavailable` (fail closed) otherwise.
        """
        gate = self.settings.gate(_plain(tool, arguments, options), arguments, options)
        return self._authorize(gate)

    def authorize_raw(
        self,
        framework: str,
        tool_call: dict[str, Any],
        arguments: dict[str, Any],
        **options: Unpack[AuthorizeOptions],
    ) -> Authorization:
        """:meth:`authorize` for a framework's raw tool call (the server maps its name);
        ``arguments`` are the call's arguments as the tool will receive them."""
        gate = self.settings.gate(_raw(framework, tool_call, options), arguments, options)
        return self._authorize(gate)

    def _authorize(self, gate: Gate) -> Authorization:
        try:
            return self._run(_flow.authorize(gate))
        except VettraUnavailable as exc:
            raise self.settings.unavailable(exc, gate.body) from exc.__cause__

    # --- approver side ------------------------------------------------------------------

    def pending(self) -> list[Action]:
        """The approver's own pending actions."""
        return self._run(_flow.pending())

    def approve(
        self, action_id: str, *, reason: str | None = None, step_up_token: str | None = None
    ) -> Action:
        return self._run(_flow.decide(action_id, "approve", reason, step_up_token))

    def deny(self, action_id: str, *, reason: str | None = None) -> Action:
        return self._run(_flow.decide(action_id, "deny", reason, None))


class AsyncClient(_Connected[httpx.AsyncBaseTransport, httpx.AsyncClient]):
    """The asynchronous twin of :class:`Client`: the same arguments and methods, awaited
    (their documentation is on :class:`Client`); ``transport`` is an
    ``httpx.AsyncBaseTransport``."""

    def _connect(
        self, transport: httpx.AsyncBaseTransport | None, options: dict[str, Any]
    ) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=transport, **options)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send_once(self, request: Request) -> httpx.Response:
        response = await self._http.request(**self.settings.request_options(request))
        return _checked(request, response)

    async def _send(self, request: Request) -> httpx.Response:
        retrying = tenacity.AsyncRetrying(**policy(request, self.settings.retries, RETRY_BUDGET_S))  # type: ignore[arg-type]
        try:
            return await retrying(self._send_once, request)
        except (RetryableStatus, httpx.TransportError) as exc:
            raise _unavailable(request, exc) from exc

    async def _perform(self, step: Request | Sleep) -> httpx.Response | VettraSDKError | None:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        try:
            return await self._send(step)
        except VettraSDKError as exc:
            return exc

    async def _run(self, flow: Flow[T]) -> T:
        step = _feed(flow, None)
        while not isinstance(step, _Done):
            step = _feed(flow, await self._perform(step))
        return step.value

    async def intercept(
        self, tool: str, arguments: dict[str, Any], **options: Unpack[InterceptOptions]
    ) -> Action:
        return await self._run(_flow.intercept(_plain(tool, arguments, options), _key(options)))

    async def get_action(self, action_id: str, *, wait_s: int = 0) -> Action:
        return await self._run(_flow.get_action(action_id, wait_s))

    async def wait_for_decision(self, action_id: str, *, timeout_s: float) -> Action:
        action = await self.get_action(action_id)
        return await self._run(_flow.wait_for_decision(action, time.monotonic() + timeout_s))

    async def redeem_credential(self, action_id: str, args_digest: str) -> Credential:
        return await self._run(_flow.redeem_credential(action_id, args_digest))

    async def authorize(
        self, tool: str, arguments: dict[str, Any], **options: Unpack[PlainAuthorizeOptions]
    ) -> Authorization:
        gate = self.settings.gate(_plain(tool, arguments, options), arguments, options)
        return await self._authorize(gate)

    async def authorize_raw(
        self,
        framework: str,
        tool_call: dict[str, Any],
        arguments: dict[str, Any],
        **options: Unpack[AuthorizeOptions],
    ) -> Authorization:
        gate = self.settings.gate(_raw(framework, tool_call, options), arguments, options)
        return await self._authorize(gate)

    async def _authorize(self, gate: Gate) -> Authorization:
        try:
            return await self._run(_flow.authorize(gate))
        except VettraUnavailable as exc:
            raise self.settings.unavailable(exc, gate.body) from exc.__cause__

    async def pending(self) -> list[Action]:
        return await self._run(_flow.pending())

    async def approve(
        self, action_id: str, *, reason: str | None = None, step_up_token: str | None = None
    ) -> Action:
        return await self._run(_flow.decide(action_id, "approve", reason, step_up_token))

    async def deny(self, action_id: str, *, reason: str | None = None) -> Action:
        return await self._run(_flow.decide(action_id, "deny", reason, None))
