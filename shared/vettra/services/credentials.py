"""Flow 4 (docs/architecture.md): one credential, once, after the decision, for what was decided.

``POST /api/actions/{id}/credential`` with ``{"args_digest"}``. In order:

1. a read-only unit of work reads the action (the submitting agent's own, else 404),
   the single-use marker, the session, the catalogue's need, the user's grant and the
   stored secret, and :func:`~vettra.domain.credentials.refusal` decides;
2. outside any transaction the vault exchanges the secret (Auth0 Token Vault over
   HTTP, or the local vault), the token's scopes are checked against the need, and the
   receipt is signed;
3. one write unit of work reads everything again and applies the same rules (a
   permission or session revoked during the exchange wins), creates the marker
   (``create``: a second release of the action conflicts), moves the grant's
   ``last_used_at`` and records ``credential.released``; only after that commit does
   the token leave. So nothing is released unaudited, and a release that lost a race
   is refused with the exchanged token thrown away.

Every refusal (and a vault that did not answer) is audited as ``credential.refused``
in a transaction of its own, naming the rule, never the secret.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from ..domain import audit, receipts
from ..domain.actions import Action, rfc3339
from ..domain.credentials import (
    INSUFFICIENT_SCOPE,
    TOKEN_EXPIRED,
    CredentialNeed,
    CredentialRefused,
    CredentialSettings,
    NotLinked,
    ProviderToken,
    ReleaseFacts,
    refusal,
)
from ..domain.errors import Conflict, NotConfigured, NotFound, Unavailable
from ..domain.identity import AGENT, Principal
from ..domain.scopes import ScopeBook
from . import inventory, vault
from .actions import record_refusal
from .contention import retried
from .deps import Deps
from .sessions import COLLECTION as SESSIONS

RELEASES = "credential_releases"
RELEASED = "credential.released"
REFUSED = "credential.refused"
RECEIPT_PREFIX = "rcpt_"
_T = TypeVar("_T")


def release(
    deps: Deps, principal: Principal, action_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """The credential answer (docs/api.md, *Credential release*); refusals audited."""
    principal.require(AGENT)
    seen: list[Action] = []
    try:
        return _release(deps, principal, action_id, body, seen)
    except (CredentialRefused, NotFound, Unavailable) as refused:
        # an action the caller may not see is named only in the data: its own trail
        # (GET /api/audit/action/{id}) belongs to its owner
        if seen:
            _record_refusal(deps, principal, action_id, refused)
        else:
            _record_refusal(deps, principal, None, refused, requested=action_id)
        raise


def _record_refusal(
    deps: Deps,
    principal: Principal,
    action_id: str | None,
    error: Any,
    requested: str | None = None,
) -> None:
    data: dict[str, Any] = {
        "refusal": getattr(error, "refusal", error.slug),
        "status": error.status,
        "why": error.detail,
    }
    for key in ("connection", "missing_scopes", "action_status"):
        if key in error.extra:
            data[key] = error.extra[key]
    if requested is not None:
        data["requested_action_id"] = requested
    record_refusal(deps, principal, REFUSED, action_id, data)


def _settings(deps: Deps) -> CredentialSettings:
    return (
        deps.credentials
        if isinstance(deps.credentials, CredentialSettings)
        else (CredentialSettings())
    )


def _need(deps: Deps, tool: str) -> CredentialNeed | None:
    found = deps.catalogue.credential_need(tool)
    return CredentialNeed(connection=found[0], scopes=tuple(found[1])) if found else None


def _own(uow: Any, principal: Principal, action_id: str) -> Action:
    action: Action | None = uow.actions.get(action_id)
    if action is None or (action.tenant, action.user, action.agent) != (
        principal.tenant,
        principal.user,
        principal.sub,
    ):
        raise NotFound(f"no action {action_id}")
    return action


def _facts(
    deps: Deps, uow: Any, action: Action, digest: str, now: datetime
) -> tuple[ReleaseFacts, dict[str, Any] | None]:
    """What the rules read, in ``uow``; and the grant they read, to touch on release."""
    need = _need(deps, action.tool)
    permission = (
        inventory.find(uow, action.tenant, action.user, action.agent, need.connection)
        if need
        else None
    )
    facts = ReleaseFacts(
        action=action,
        presented_digest=digest,
        now=now,
        window_s=_settings(deps).window_s,
        released=uow.docs.get(RELEASES, action.id) is not None,
        session=uow.docs.get(SESSIONS, action.session_id) if action.session_id else None,
        need=need,
        permission=permission,
    )
    return facts, permission


def _release(
    deps: Deps, principal: Principal, action_id: str, body: dict[str, Any], seen: list[Action]
) -> dict[str, Any]:
    digest = body["args_digest"]
    with deps.store.unit_of_work(readonly=True) as uow:
        action = _own(uow, principal, action_id)
        seen.append(action)
        facts, _ = _facts(deps, uow, action, digest, deps.clock.now())
        stored = (
            vault.stored(uow, action.tenant, action.user, facts.need.connection)
            if facts.need
            else None
        )
    refused = refusal(facts)
    if refused is not None:
        raise refused
    need = facts.need
    assert need is not None  # refusal() says no-credential otherwise
    if stored is None:
        raise NotLinked(
            need.connection,
            f"user {action.user} has linked no {need.connection} account to Vettra "
            f"(vettra vault link, or vault put for the local vault)",
        )
    vault_ = deps.vaults.get(stored["kind"])
    if vault_ is None:
        raise NotConfigured(
            f"user {action.user} linked {need.connection} through Auth0 Token Vault, which "
            "this deployment is not configured for (VETTRA_AUTH0_ISSUER, "
            "VETTRA_AUTH0_CLIENT_ID, VETTRA_AUTH0_CLIENT_SECRET)"
        )
    signer = deps.keys.receipt_signing_key()  # NotConfigured before anything is exchanged
    try:
        subject = vault.open_secret(deps.keys, stored)
    except ValueError:
        raise NotLinked(
            need.connection,
            f"the credential stored for {need.connection} does not open with this "
            "deployment's keys; link it again",
        ) from None
    token = vault_.exchange(subject, need.connection, login_hint=stored.get("login_hint"))
    now = deps.clock.now()
    scope_checked = _check_token(token, need, now)
    receipt, claims = _receipt(deps, signer, action, need, token, body.get("audience"), now)

    def commit(uow: Any) -> None:
        current = _own(uow, principal, action_id)
        again, permission = _facts(deps, uow, current, digest, now)
        refused = refusal(again)
        if refused is not None:
            raise refused
        assert permission is not None
        uow.docs.create(
            RELEASES,
            action.id,
            {
                "action_id": action.id,
                "released_at": rfc3339(now),
                "agent": action.agent,
                "connection": need.connection,
                "receipt_jti": claims["jti"],
            },
        )
        inventory.touch(uow, permission, now)
        uow.audit.record(
            audit.AuditEvent(
                type=RELEASED,
                chain=action.tenant,
                actor=principal.actor,
                at=rfc3339(now),
                action_id=action.id,
                user=action.user,
                data={
                    "tool": action.tool,
                    "args_digest": action.args_digest,
                    "connection": need.connection,
                    "scope": list(need.scopes),
                    "scope_checked": scope_checked,
                    "expires_at": rfc3339(token.expires_at),
                    "vault": stored["kind"],
                    "permission_id": permission["permission_id"],
                    "receipt": {"jti": claims["jti"], "aud": claims["aud"], "exp": claims["exp"]},
                },
            )
        )
        uow.commit()

    _once(deps, action.id, commit)
    return {
        "action_id": action.id,
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_at": rfc3339(token.expires_at),
        "scope": " ".join(need.scopes),
        "connection": need.connection,
        "receipt": receipt,
        "receipt_expires_at": rfc3339(datetime.fromtimestamp(claims["exp"], now.tzinfo)),
    }


def _once(deps: Deps, action_id: str, commit: Callable[[Any], None]) -> None:
    """Run ``commit`` in a write unit of work, again after any :class:`Conflict` but a
    verdict (:class:`CredentialRefused`).

    A conflict says only that the store refused this transaction: another redemption
    created the single-use marker first (SQLite at ``create``, Firestore at commit), or
    Firestore aborted it under contention while *nobody* won. ``commit`` reads the
    action and the marker afresh each time, so the next attempt answers
    ``already-released`` when another won, or releases when none did; it is never
    assumed (:func:`vettra.services.contention.retried`: 503 when every attempt fails).
    """

    def once() -> None:
        with deps.store.unit_of_work() as uow:
            commit(uow)

    def refused_transaction(exc: Exception) -> bool:
        return isinstance(exc, Conflict) and not isinstance(exc, CredentialRefused)

    retried(once, what=f"record the release of action {action_id}", retry_if=refused_transaction)


def _check_token(token: ProviderToken, need: CredentialNeed, now: datetime) -> bool:
    """The token is alive and carries what the tool needs; False when the vault did not
    say which scopes it carries (Auth0 omits ``scope`` when it is what the account granted)."""
    if token.expires_at is not None and token.expires_at <= now:
        raise CredentialRefused(
            TOKEN_EXPIRED,
            f"the {need.connection} token in the vault expired at {rfc3339(token.expires_at)}; "
            "store a fresh one",
            connection=need.connection,
        )
    if token.scope is None:
        return False
    book = ScopeBook.default()
    missing = book.covers(book.provider_of(need.connection), token.scope, need.scopes)
    if missing:
        raise CredentialRefused(
            INSUFFICIENT_SCOPE,
            f"the user's {need.connection} account does not grant what this tool needs "
            f"({', '.join(missing)}): have them connect it again with those scopes",
            connection=need.connection,
            missing_scopes=missing,
        )
    return True


def _receipt(
    deps: Deps,
    signer: Any,
    action: Action,
    need: CredentialNeed,
    token: ProviderToken,
    audience: str | None,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    expires = now + timedelta(seconds=_settings(deps).receipt_ttl_s)
    if token.expires_at is not None:
        expires = min(expires, token.expires_at)
    claims = {
        "iss": receipts.ISSUER_PREFIX + action.tenant,
        "sub": action.agent,
        "aud": audience or action.tool,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int(expires.timestamp()),
        "jti": RECEIPT_PREFIX + secrets.token_hex(16),
        "action_id": action.id,
        "args_digest": action.args_digest,
        "tool": action.tool,
        "user": action.user,
        "connection": need.connection,
        "scope": " ".join(need.scopes),
        "decision": action.status,
        "decided_by": action.decided_by,
    }
    return receipts.issue(signer, claims), claims
