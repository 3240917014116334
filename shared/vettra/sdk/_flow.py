"""The SDK's conversations with the API, written once for the sync and the async client.

Each flow is a generator that yields what it needs done, a :class:`Request` (answered with
the ``httpx.Response``) or a :class:`Sleep`, and returns its result: the sans-I/O shape
h11 and httpx's own internals use, so :class:`~vettra.sdk.Client` and
:class:`~vettra.sdk.AsyncClient` are thin drivers and cannot drift apart.

The drivers deliver only answers below 500 (and not 429): transient failures are retried
there and end as :class:`VettraUnavailable`. Flows turn problem answers into typed errors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from ..domain import statuses
from ..domain.canonical import sha256_digest
from ._errors import (
    ActionBlocked,
    ActionDenied,
    ActionExpired,
    ApprovalPending,
    CredentialUnavailable,
    DigestMismatch,
    StepUpPending,
    VettraSDKError,
    api_error,
)
from ._models import Action, Authorization, Credential

T = TypeVar("T")

#: ``GET /api/actions/{id}?wait=N`` holds the answer at most this long (docs/api.md).
MAX_WAIT_S = 60
#: Intercept's ``timeout_s`` bounds (docs/action-bundle.md).
MIN_TIMEOUT_S, MAX_TIMEOUT_S = 1, 86_400
#: After asking the server to expire an action at the SDK's deadline, wait this much
#: longer for the expiry itself, so the answer is "expired" rather than "still pending".
EXPIRY_GRACE_S = 2.0
#: A pending answer sooner than this after the poll began means the server did not hold
#: it (an old server, a spurious wake-up): pause the rest, so waiting is never a busy loop.
MIN_POLL_INTERVAL_S = 0.25
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Request:
    """One API call. ``resend_safe``: the driver may resend it after it may have arrived."""

    method: str
    path: str
    json: Any = None
    params: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hold_s: float = 0.0  # a long-poll: the server holds the answer up to this long
    resend_safe: bool = True


@dataclass(frozen=True)
class Sleep:
    seconds: float


Flow = Generator[Request | Sleep, httpx.Response | None, T]


def _answer(response: httpx.Response | None) -> dict[str, Any]:
    """The JSON body of a 2xx answer, or the typed error of a problem answer."""
    assert response is not None, "a Request is always answered with a response"
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    if response.is_success:
        if not isinstance(body, dict):
            raise VettraSDKError(
                f"expected a JSON object from {response.request.url.path}, "
                f"found {type(body).__name__}"
            )
        return body
    raise api_error(response.status_code, body if isinstance(body, dict) else {})


def intercept(body: dict[str, Any], idempotency_key: str) -> Flow[Action]:
    """``POST /api/actions/intercept``; the key makes a resend return the same action."""
    response = yield Request(
        "POST", "/api/actions/intercept", json=body, headers={"Idempotency-Key": idempotency_key}
    )
    return Action.from_json(_answer(response))


def get_action(action_id: str, wait_s: int = 0) -> Flow[Action]:
    params = {"wait": wait_s} if wait_s else None
    response = yield Request("GET", _action_path(action_id), params=params, hold_s=wait_s)
    return Action.from_json(_answer(response))


def wait_for_decision(
    action: Action, deadline: float, clock: Callable[[], float] = time.monotonic
) -> Flow[Action]:
    """Long-poll until the action leaves ``pending`` or the monotonic ``deadline`` passes.

    Each poll asks the server to hold the answer (``?wait=N``, N <= 60); the server answers
    as soon as the action changes, so a decision reaches the agent at once.
    """
    while action.status == statuses.PENDING:
        remaining = deadline - clock()
        if remaining <= 0:
            return action
        started = clock()
        hold = MAX_WAIT_S if remaining >= MAX_WAIT_S else math.ceil(remaining)
        action = yield from get_action(action.action_id, hold)
        if action.status == statuses.PENDING:
            early = MIN_POLL_INTERVAL_S - (clock() - started)
            if early > 0:
                yield Sleep(early)
    return action


def redeem_credential(action_id: str, args_digest: str) -> Flow[Credential]:
    """``POST /api/actions/{id}/credential``: released once, so never resent blindly."""
    response = yield Request(
        "POST",
        _action_path(action_id) + "/credential",
        json={"args_digest": args_digest},
        resend_safe=False,
    )
    return Credential.from_json(_answer(response))


def decide(action_id: str, decision: str, reason: str | None, step_up: str | None) -> Flow[Action]:
    """``POST /api/actions/approve`` (an approver's token)."""
    body: dict[str, Any] = {"action_id": action_id, "decision": decision}
    if reason is not None:
        body["reason"] = reason
    if step_up is not None:
        body["step_up_token"] = step_up
    response = yield Request("POST", "/api/actions/approve", json=body, resend_safe=False)
    return Action.from_json(_answer(response))


def pending() -> Flow[list[Action]]:
    response = yield Request("GET", "/api/actions/pending")
    return [Action.from_json(a) for a in _answer(response).get("actions", [])]


@dataclass(frozen=True)
class Gate:
    """What :func:`authorize` needs: the intercept body and the arguments the tool gets."""

    body: dict[str, Any]
    arguments: dict[str, Any]
    idempotency_key: str
    want_credential: bool = False
    wait: bool = True
    decision_timeout_s: float | None = None


def digest_of(arguments: dict[str, Any]) -> str:
    """The ``args_digest`` the server computes (RFC 8785, ``vettra.domain.canonical``)."""
    try:
        return sha256_digest(arguments)
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise TypeError(
            f"tool arguments must be JSON values (objects, arrays, strings, finite numbers "
            f"within ±(2^53-1), booleans, null): {exc}"
        ) from exc


def deadline_timeout_s(decision_timeout_s: float | None) -> int | None:
    """The intercept ``timeout_s`` that makes the server expire the action when the SDK
    stops waiting, so a late approval cannot release anything to an agent that gave up."""
    if decision_timeout_s is None:
        return None
    return max(MIN_TIMEOUT_S, min(MAX_TIMEOUT_S, math.ceil(decision_timeout_s)))


def authorize(gate: Gate, clock: Callable[[], float] = time.monotonic) -> Flow[Authorization]:
    """Intercept, wait for the decision, check the digest, redeem the credential.

    Returns only for an allowed or approved action; raises :class:`ActionBlocked`
    subclasses otherwise. The function behind the gate runs only after this returns.
    """
    digest = digest_of(gate.arguments)
    started = clock()
    action = yield from intercept(gate.body, gate.idempotency_key)
    if action.args_digest != digest:
        raise DigestMismatch(
            f"the server digested the arguments as {action.args_digest}, the SDK as {digest}; "
            f"refusing to run action {action.action_id}"
        )
    if action.status == statuses.PENDING and gate.wait:
        budget = gate.decision_timeout_s
        deadline = math.inf if budget is None else started + budget + EXPIRY_GRACE_S
        action = yield from wait_for_decision(action, deadline, clock)
    blocked = blocked_error(action)
    if blocked is not None:
        raise blocked
    credential = None
    if gate.want_credential:
        try:
            credential = yield from redeem_credential(action.action_id, digest)
        except VettraSDKError as exc:
            raise CredentialUnavailable(
                f"action {action.action_id} was {action.status} but its credential was not "
                f"released: {exc}",
                action=action,
            ) from exc
    return Authorization(action=action, arguments=gate.arguments, credential=credential)


def blocked_error(action: Action) -> ActionBlocked | None:
    """The error for an action that may not run, or None when it may."""
    if action.status in (statuses.ALLOWED, statuses.APPROVED):
        return None
    tool = action.tool or "the tool call"
    reason = action.reason
    why = f": {reason}" if reason else ""
    if action.status == statuses.DENIED:
        return ActionDenied(f"Vettra denied {tool}{why}", action=action, reason=reason)
    if action.status == statuses.EXPIRED:
        return ActionExpired(
            f"{tool} expired before anyone decided{why}", action=action, reason=reason
        )
    if action.status == statuses.PENDING:
        kind = StepUpPending if action.step_up_required else ApprovalPending
        needs = "approval with step-up authentication" if action.step_up_required else "approval"
        return kind(
            f"{tool} is still waiting for {needs} (action {action.action_id})",
            action=action,
            reason=reason,
        )
    return ActionBlocked(
        f"{tool} is {action.status!r}, which is not a go-ahead", action=action, reason=reason
    )


def _action_path(action_id: str) -> str:
    return "/api/actions/" + quote(action_id, safe="")
