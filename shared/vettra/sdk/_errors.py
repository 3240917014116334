"""What the SDK raises: one root, flat subclasses grouped by cause (as httpx groups its own).

Two families matter to agent code:

- *the action did not run because of a decision*: :class:`ActionDenied` (the approver's
  or the policy's ``reason``), :class:`ActionExpired`, :class:`ApprovalPending` and its
  :class:`StepUpPending` (no decision before the deadline);
- *Vettra could not be asked*: :class:`VettraUnavailable` (connection failures, timeouts,
  5xx after the retries). The protected function never runs then: the SDK fails closed.

Everything else the API answers with a problem document (RFC 9457) is an :class:`ApiError`
subclass named after its status. A refused credential release (problem type
``…/credential-refused``, docs/credentials.md) is also a :class:`CredentialRefused`
carrying the server's ``refusal`` code (``not-permitted``, ``already-released``,
``args-mismatch`` …) and the ``connection``/``missing_scopes`` it names. Messages never
carry the bearer token or a credential.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._models import Action


class VettraSDKError(Exception):
    """Root of every error the SDK raises on purpose."""


# --- the decision said no (or has not said yes) -------------------------------------------


class ActionBlocked(VettraSDKError):
    """The tool call was not allowed to run; ``action`` is the server's view, when known."""

    def __init__(self, message: str, *, action: Action | None = None, reason: str | None = None):
        super().__init__(message)
        self.action = action
        self.reason = reason

    @property
    def action_id(self) -> str | None:
        return self.action.action_id if self.action is not None else None


class ActionDenied(ActionBlocked):
    """Denied by the policy at intercept time or by the approver; ``reason`` says why."""


class ActionExpired(ActionBlocked):
    """Nobody decided before the action's deadline, and an expired action never runs."""


class ApprovalPending(ActionBlocked):
    """Still pending when the SDK's decision deadline passed (or waiting was not asked for).

    The action stays on the approver's queue: wait again with
    ``client.wait_for_decision(err.action_id, ...)``.
    """


class StepUpPending(ApprovalPending):
    """Still pending, and approving it needs the approver's step-up authentication."""


class DigestMismatch(VettraSDKError):
    """The server digested other arguments than the SDK sent (or they changed since).

    What was approved must be what runs; the SDK refuses to go on rather than guess.
    """


# --- Vettra could not be asked ------------------------------------------------------------


class VettraUnavailable(VettraSDKError):
    """No answer from Vettra after the retries: connection refused, timeout, 5xx, 429.

    The cause is chained (``__cause__``); the protected function did not run.
    """


# --- Vettra answered with a problem -------------------------------------------------------


class ApiError(VettraSDKError):
    """An RFC 9457 problem answer. ``problem`` is the parsed document (may be empty)."""

    def __init__(self, status: int, problem: dict[str, Any]):
        self.status = status
        self.problem = problem
        #: the credential release's refusal code (docs/credentials.md), else None
        self.refusal: str | None = _text(problem.get("refusal"))
        self.detail = str(problem.get("detail") or problem.get("title") or f"HTTP {status}")
        self.errors: list[dict[str, Any]] = list(problem.get("errors") or [])
        fields = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in self.errors)
        super().__init__(f"{status} {self.detail}" + (f" ({fields})" if fields else ""))


class InvalidRequest(ApiError):
    """400/413/415/422: the request was refused as malformed; ``errors`` names the fields."""


class AuthenticationFailed(ApiError):
    """401: the bearer token is missing, expired or not accepted by this server."""


class PermissionDenied(ApiError):
    """403: the token's role may not call this endpoint, or (a release's ``not-permitted``)
    the user has not granted this agent the connection."""


class NotFound(ApiError):
    """404: no such action for this token (or the endpoint is not configured)."""


class Conflict(ApiError):
    """409: the action is not in a state that allows this (decided, already redeemed…)."""


CREDENTIAL_REFUSED_TYPE = "/credential-refused"  # the end of the problem type's URI


class CredentialRefused(ApiError):
    """The server held a credential release back by one of its rules (docs/credentials.md
    "The rules, in order"). ``refusal`` says which; each concrete class is also the
    status class (``PermissionDenied`` for 403 ``not-permitted``, ``Conflict`` for the
    409s, ``NotFound`` for 404 ``not-found``/``not-configured``)."""

    def __init__(self, status: int, problem: dict[str, Any]):
        super().__init__(status, problem)
        self.connection: str | None = _text(problem.get("connection"))
        scopes = problem.get("missing_scopes")
        self.missing_scopes: list[str] = (
            [str(s) for s in scopes] if isinstance(scopes, list) else []
        )
        self.action_status: str | None = _text(problem.get("action_status"))


class CredentialNotPermitted(CredentialRefused, PermissionDenied):
    """403 ``not-permitted``: the user's grant to this agent for the connection is absent,
    revoked or lacks a scope; the user grants it (``POST /api/inventory/permissions``)."""


class CredentialConflict(CredentialRefused, Conflict):
    """409: the action, its session or the user's stored credential does not allow a
    release now (``already-released``, ``args-mismatch``, ``not-linked`` …)."""


class CredentialNotFound(CredentialRefused, NotFound):
    """404: no such action for this agent, or the deployment releases nothing
    (``not-configured``)."""


class CredentialUnavailable(VettraSDKError):
    """The action was allowed but its credential could not be released; nothing ran.

    The cause (``__cause__``) is the server's answer; for a refusal, ``refusal``,
    ``connection`` and ``missing_scopes`` repeat what it said, so agent code can tell
    the user what to link or grant.
    """

    def __init__(self, message: str, *, action: Action | None = None):
        super().__init__(message)
        self.action = action

    @property
    def _refused(self) -> CredentialRefused | None:
        cause = self.__cause__
        return cause if isinstance(cause, CredentialRefused) else None

    @property
    def refusal(self) -> str | None:
        return self._refused.refusal if self._refused else None

    @property
    def connection(self) -> str | None:
        return self._refused.connection if self._refused else None

    @property
    def missing_scopes(self) -> list[str]:
        return self._refused.missing_scopes if self._refused else []


_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
}


_REFUSED_BY_STATUS: dict[int, type[CredentialRefused]] = {
    403: CredentialNotPermitted,
    404: CredentialNotFound,
    409: CredentialConflict,
}


def api_error(status: int, problem: dict[str, Any]) -> ApiError:
    """The :class:`ApiError` subclass for ``status`` (a lookup, not an if-chain); a
    credential refusal's is also a :class:`CredentialRefused`."""
    kind = problem.get("type")
    if isinstance(kind, str) and kind.endswith(CREDENTIAL_REFUSED_TYPE):
        return _REFUSED_BY_STATUS.get(status, CredentialRefused)(status, problem)
    return _BY_STATUS.get(status, ApiError)(status, problem)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
