"""Credential release: the rules that let one scoped credential out, once, for what was approved.

The agent never holds a user's provider credentials. After an action is ``allowed`` or
``approved``, the submitting agent may redeem it (``POST /api/actions/{id}/credential``)
for one access token of the connection the tool's catalogue entry names, carrying the
scopes that entry needs (docs/credentials.md). :func:`refusal` is the whole rule set,
as a pure function of what the service read, so the same rules run before the
exchange and again in the transaction that marks the release.

Refusals are :class:`CredentialRefused`: one problem type, a ``refusal`` code saying
which rule held the release back, and the status the rule maps to (404 for an action
the caller may not see, 403 when the user granted no such permission, 409 for every
state the action or the user's vault is in).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .actions import ALLOWED, APPROVED, DENIED, EXPIRED, PENDING, Action
from .errors import Conflict

#: What the user stored for a connection, and so which vault exchanges it.
REFRESH_TOKEN = "refresh_token"  # an Auth0 refresh token: Auth0 Token Vault exchanges it
ACCESS_TOKEN = "access_token"  # a provider token stored with ``vettra vault put`` (local vault)
SECRET_KINDS = (REFRESH_TOKEN, ACCESS_TOKEN)

DEFAULT_WINDOW_S = 300
MAX_WINDOW_S = 24 * 3600
DEFAULT_RECEIPT_TTL_S = 300

# -- refusal codes (the problem's ``refusal`` member) ---------------------------------------
PENDING_DECISION = "pending"
WAS_DENIED = "denied"
WAS_EXPIRED = "expired"
ALREADY_RELEASED = "already-released"
WINDOW_CLOSED = "window-closed"
ARGS_MISMATCH = "args-mismatch"
SESSION_ENDED = "session-ended"
NO_CREDENTIAL = "no-credential"
NOT_PERMITTED = "not-permitted"
NOT_LINKED = "not-linked"
INSUFFICIENT_SCOPE = "insufficient-scope"
TOKEN_EXPIRED = "token-expired"
#: The statuses other than 409: a permission the user never granted (or revoked) is 403.
_STATUS = {NOT_PERMITTED: 403}


class CredentialRefused(Conflict):
    """A release held back by one rule; ``refusal`` names it (module docstring)."""

    slug = "credential-refused"
    title = "Credential not released"

    def __init__(
        self,
        refusal: str,
        detail: str,
        *,
        connection: str | None = None,
        missing_scopes: list[str] | None = None,
        **kw: Any,
    ):
        """``connection`` and ``missing_scopes``, where given, are problem fields too."""
        named = {"connection": connection, "missing_scopes": missing_scopes}
        extra = {"refusal": refusal, **{k: v for k, v in named.items() if v is not None}}
        super().__init__(detail, extra={**extra, **kw.pop("extra", {})}, **kw)
        self.refusal = refusal
        self.status = _STATUS.get(refusal, Conflict.status)


class NotLinked(CredentialRefused):
    """The user has no usable link to ``connection`` (nothing stored, or the provider no
    longer accepts it): the agent is told which connection to have the user link."""

    def __init__(self, connection: str, detail: str):
        super().__init__(NOT_LINKED, detail, connection=connection)
        self.connection = connection


@dataclass(frozen=True)
class ProviderToken:
    """An access token a vault handed out. ``scope`` is what the provider says it carries
    (None when it did not say); the token itself never appears in ``repr``."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: datetime | None
    scope: tuple[str, ...] | None


@dataclass(frozen=True)
class CredentialNeed:
    """What a tool needs: the Auth0 connection (``google-oauth2``, ``github`` …) and the
    provider scopes of its catalogue entry."""

    connection: str
    scopes: tuple[str, ...]


@dataclass(frozen=True)
class CredentialSettings:
    """How long after the decision a credential may still be released, and how long the
    receipt that comes with it is good for (``VETTRA_CREDENTIAL_WINDOW_S``,
    ``VETTRA_RECEIPT_TTL_S``)."""

    window_s: int = DEFAULT_WINDOW_S
    receipt_ttl_s: int = DEFAULT_RECEIPT_TTL_S

    def __post_init__(self) -> None:
        for name in ("window_s", "receipt_ttl_s"):
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= MAX_WINDOW_S:
                raise ValueError(f"{name} must be 1..{MAX_WINDOW_S} seconds, found {value!r}")

    @classmethod
    def from_sources(
        cls, extra: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> CredentialSettings:
        """``Config.extra`` wins over the environment, then the defaults."""
        extra, env = dict(extra or {}), dict(env or {})

        def number(key: str, var: str, default: int) -> int:
            raw = extra.get(key) or env.get(var) or default
            try:
                return int(raw)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{var} must be a whole number of seconds, found {raw!r}"
                ) from None

        return cls(
            window_s=number("credential_window_s", "VETTRA_CREDENTIAL_WINDOW_S", DEFAULT_WINDOW_S),
            receipt_ttl_s=number("receipt_ttl_s", "VETTRA_RECEIPT_TTL_S", DEFAULT_RECEIPT_TTL_S),
        )


@dataclass(frozen=True)
class ReleaseFacts:
    """What the service read in one unit of work, for :func:`refusal`."""

    action: Action
    presented_digest: str
    now: datetime
    window_s: int
    released: bool  # the single-use marker exists
    session: dict[str, Any] | None  # the action's session document, if it names one
    need: CredentialNeed | None
    permission: dict[str, Any] | None  # the user's grant to this agent for need.connection


def decided_at(action: Action) -> datetime:
    """When the release window opened: the decision, or the intercept for an allowed call."""
    return action.decided_at or action.created_at


def refusal(facts: ReleaseFacts) -> CredentialRefused | None:
    """The first rule that holds the release back, or None when it may go ahead.

    Order: the action's state, the single-use marker, the window, the arguments, the
    session, the catalogue's need and the user's permission. The caller has already
    checked that the action is the caller's own (anything else is 404).
    """
    action, now = facts.action, facts.now
    status = EXPIRED if action.overdue(now) else action.status
    if status not in (ALLOWED, APPROVED):
        detail = {
            PENDING: "it is still pending: wait for the decision (GET /api/actions/{id}?wait=N)",
            DENIED: "it was denied",
            EXPIRED: "it expired without a decision",
        }.get(status, f"it is {status}")
        code = {PENDING: PENDING_DECISION, DENIED: WAS_DENIED, EXPIRED: WAS_EXPIRED}.get(
            status, status
        )
        return CredentialRefused(
            code,
            f"no credential for action {action.id}: {detail}",
            extra={"action_status": status},
        )
    if facts.released:
        return CredentialRefused(
            ALREADY_RELEASED, f"the credential of action {action.id} was already released (once)"
        )
    closes = decided_at(action) + timedelta(seconds=facts.window_s)
    if now >= closes:
        return CredentialRefused(
            WINDOW_CLOSED,
            f"the release window of action {action.id} closed {facts.window_s} s after the "
            f"decision; submit the call again",
        )
    if not hmac.compare_digest(facts.presented_digest.encode(), action.args_digest.encode()):
        return CredentialRefused(
            ARGS_MISMATCH,
            f"args_digest does not match the arguments action {action.id} was decided for",
        )
    session = facts.session
    if action.session_id is not None and (
        session is None or session.get("revoked_at") is not None or _ended(session, now)
    ):
        return CredentialRefused(
            SESSION_ENDED,
            f"session {action.session_id} of action {action.id} was revoked or has ended",
        )
    need = facts.need
    if need is None:
        return CredentialRefused(
            NO_CREDENTIAL,
            f"the catalogue names no connection and scopes for {action.tool}: "
            "there is no credential to release",
        )
    permission = facts.permission
    if permission is None or permission.get("revoked_at") is not None:
        return CredentialRefused(
            NOT_PERMITTED,
            f"user {action.user} has not granted agent {action.agent} the connection "
            f"{need.connection} (POST /api/inventory/permissions)",
            connection=need.connection,
        )
    missing = sorted(set(need.scopes) - set(permission.get("scopes") or ()))
    if missing:
        return CredentialRefused(
            NOT_PERMITTED,
            f"user {action.user}'s grant to agent {action.agent} for {need.connection} lacks "
            f"the scope(s) {action.tool} needs: {', '.join(missing)}",
            connection=need.connection,
            missing_scopes=missing,
        )
    return None


def _ended(session: dict[str, Any], now: datetime) -> bool:
    from .actions import parse_rfc3339

    expires = session.get("expires_at")
    return isinstance(expires, str) and now >= parse_rfc3339(expires)


def secret_context(tenant: str, user: str, connection: str, kind: str) -> str:
    """The AEAD associated data of a stored secret: a sealed token opens only where it was
    stored (another user's, connection's or kind's document does not open it)."""
    return f"vault/{len(tenant)}:{tenant}/{len(user)}:{user}/{connection}/{kind}"
