"""Agent sessions and pre-authorisation ("approve all MEDIUM for 30 minutes").

A session groups an agent's actions for one user. The user may pre-authorise a
session up to a risk level after one step-up bound to that session; while it
holds, intercepts in the session whose policy outcome is "require approval"
run at once. A pre-authorisation never covers HIGH (nor anything forced HIGH,
nor a step-up outcome) and never lifts a deny; revoking the session takes
effect on the very next intercept, which reads the session in its own
transaction.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from ..domain import audit
from ..domain.actions import parse_rfc3339, rfc3339
from ..domain.errors import Conflict, FieldError, NotFound, StepUpRequired, ValidationFailed
from ..domain.identity import AGENT, ANY_ROLE, DECIDERS, Principal
from ..domain.stepup import PREAUTH_PREFIX
from .deps import Deps

COLLECTION = "sessions"
SESSION_PREFIX = "ses_"
DEFAULT_TTL_S = 24 * 3600
MAX_TTL_S = 7 * 24 * 3600
MAX_PREAUTH_S = 24 * 3600
PREAUTH_LEVELS = ("LOW", "MEDIUM")  # HIGH can never be pre-authorised
_LEVEL_RANK = {"LOW": 0, "MEDIUM": 1, "HIGH": 2}
MAX_LIST = 200


def _owner(tenant: str, user: str) -> str:
    return f"{tenant}:{user}"


def preauth_purpose(session_id: str) -> str:
    """The step-up purpose a pre-authorisation must be bound to."""
    return PREAUTH_PREFIX + session_id


def _view(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    out = dict(doc)
    expires = parse_rfc3339(doc.get("expires_at"))
    out["active"] = doc.get("revoked_at") is None and (expires is None or now < expires)
    pre = doc.get("preauth")
    out["preauth_active"] = bool(pre and out["active"] and now < parse_rfc3339(pre["until"]))
    return out


def create(deps: Deps, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    principal.require(*ANY_ROLE)
    now = deps.clock.now()
    ttl = int(body.get("ttl_s") or DEFAULT_TTL_S)
    agent = principal.sub if principal.role == AGENT else body.get("agent")
    session_id = SESSION_PREFIX + secrets.token_hex(12)
    doc = {
        "session_id": session_id,
        "tenant": principal.tenant,
        "user": principal.user,
        "agent": agent,
        "label": body.get("label"),
        "created_by": principal.actor,
        "created_at": rfc3339(now),
        "expires_at": rfc3339(now + timedelta(seconds=ttl)),
        "revoked_at": None,
        "preauth": None,
    }
    with deps.store.unit_of_work() as uow:
        uow.docs.create(COLLECTION, session_id, doc, owner=_owner(principal.tenant, principal.user))
        _audit(
            uow,
            "session.created",
            principal,
            doc,
            now,
            {"agent": agent, "expires_at": doc["expires_at"]},
        )
        uow.commit()
    return _view(doc, now)


def _visible(doc: dict[str, Any] | None, principal: Principal, session_id: str) -> dict[str, Any]:
    if (
        doc is None
        or doc["tenant"] != principal.tenant
        or doc["user"] != principal.user
        or (principal.role == AGENT and doc.get("agent") not in (None, principal.sub))
    ):
        raise NotFound(f"no session {session_id}")
    return doc


def get(deps: Deps, principal: Principal, session_id: str) -> dict[str, Any]:
    principal.require(*ANY_ROLE)
    with deps.store.unit_of_work(readonly=True) as uow:
        doc = _visible(uow.docs.get(COLLECTION, session_id), principal, session_id)
    return _view(doc, deps.clock.now())


def list_sessions(deps: Deps, principal: Principal) -> dict[str, Any]:
    principal.require(*ANY_ROLE)
    now = deps.clock.now()
    with deps.store.unit_of_work(readonly=True) as uow:
        docs = uow.docs.list(COLLECTION, _owner(principal.tenant, principal.user), MAX_LIST)
    if principal.role == AGENT:
        docs = [d for d in docs if d.get("agent") in (None, principal.sub)]
    return {"sessions": [_view(d, now) for d in docs]}


def revoke(deps: Deps, principal: Principal, session_id: str) -> dict[str, Any]:
    """The user ends a session; its pre-authorisation dies with it."""
    principal.require(*DECIDERS)
    now = deps.clock.now()
    with deps.store.unit_of_work() as uow:
        doc = _visible(uow.docs.get(COLLECTION, session_id), principal, session_id)
        if doc.get("revoked_at") is None:
            doc = {**doc, "revoked_at": rfc3339(now), "preauth": None}
            uow.docs.put(COLLECTION, session_id, doc, owner=_owner(doc["tenant"], doc["user"]))
            _audit(uow, "session.revoked", principal, doc, now, {})
            uow.commit()
    return _view(doc, now)


def pre_authorize(deps: Deps, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """One step-up, then the session's approval-level actions run until ``duration_s`` ends.

    An attempt without a valid step-up changes nothing but is audited (in its own
    transaction, after the refused one rolled back).
    """
    try:
        return _pre_authorize(deps, principal, body)
    except StepUpRequired as refused:
        from .actions import record_refusal

        record_refusal(
            deps,
            principal,
            "session.preauthorize_rejected",
            None,
            {"session_id": body.get("session_id"), "why": refused.detail},
        )
        raise


def _pre_authorize(deps: Deps, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    principal.require(*DECIDERS)
    session_id, level, duration = body["session_id"], body["max_level"], int(body["duration_s"])
    if level not in PREAUTH_LEVELS:
        raise ValidationFailed(
            "a pre-authorisation never covers HIGH actions",
            errors=[FieldError("max_level", f"expected one of {', '.join(PREAUTH_LEVELS)}")],
        )
    now = deps.clock.now()
    with deps.store.unit_of_work() as uow:
        doc = _visible(uow.docs.get(COLLECTION, session_id), principal, session_id)
        view = _view(doc, now)
        if not view["active"]:
            raise Conflict(f"session {session_id} is revoked or expired")
        deps.step_up.require_purpose(
            principal, preauth_purpose(session_id), body.get("step_up_token"), uow=uow
        )
        until = min(now + timedelta(seconds=duration), parse_rfc3339(doc["expires_at"]))
        doc = {
            **doc,
            "preauth": {
                "max_level": level,
                "until": rfc3339(until),
                "granted_by": principal.actor,
                "granted_at": rfc3339(now),
            },
        }
        uow.docs.put(COLLECTION, session_id, doc, owner=_owner(doc["tenant"], doc["user"]))
        _audit(
            uow,
            "session.preauthorized",
            principal,
            doc,
            now,
            {"max_level": level, "until": rfc3339(until)},
        )
        uow.commit()
    return _view(doc, now)


def _audit(
    uow: Any,
    kind: str,
    principal: Principal,
    doc: dict[str, Any],
    now: datetime,
    data: dict[str, Any],
) -> None:
    data = {"session_id": doc["session_id"], **data}
    uow.audit.record(
        audit.event_by(principal, kind, now, data, chain=doc["tenant"], user=doc["user"])
    )


def apply_to_intercept(
    uow: Any,
    principal: Principal,
    session_id: str,
    now: datetime,
    outcome: str,
    risk: Any,
    *,
    quorum: bool = False,
) -> tuple[str, str | None]:
    """What the session changes about an intercept decided ``outcome``.

    Returns ``(outcome, reason)``: unchanged with ``None``; ``"allow"`` with the
    pre-authorisation as reason; ``"deny"`` if the session was revoked or expired.
    A quorum action (k-of-n named approvers) is never lifted: one user's
    pre-authorisation cannot stand in for the other approvers.
    Raises :class:`ValidationFailed` for a session the caller may not use.
    """
    doc = uow.docs.get(COLLECTION, session_id)
    if (
        doc is None
        or doc["tenant"] != principal.tenant
        or doc["user"] != principal.user
        or doc.get("agent") not in (None, principal.sub)
    ):
        raise ValidationFailed(
            "unknown session",
            errors=[FieldError("session_id", f"no session {session_id} for this agent and user")],
        )
    view = _view(doc, now)
    if not view["active"]:
        when = doc.get("revoked_at") or doc.get("expires_at")
        state = "revoked" if doc.get("revoked_at") else "expired"
        return "deny", f"session {session_id} was {state} at {when}; its actions are refused"
    pre = doc.get("preauth")
    if (
        outcome == "require_approval"
        and view["preauth_active"]
        and not risk.forced_high
        and not quorum
        and _LEVEL_RANK[risk.level] <= _LEVEL_RANK[pre["max_level"]]
    ):
        return "allow", (
            f"pre-authorised: session {session_id} allows {pre['max_level']} actions "
            f"until {pre['until']} (granted by {pre['granted_by']})"
        )
    return outcome, None
