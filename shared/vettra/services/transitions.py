"""The terminal transitions of an action inside a unit of work, shared by single
and quorum decisions and by expiry: compare-and-set on ``pending``, audited once."""

from __future__ import annotations

from typing import Any

from ..domain import audit
from ..domain.actions import APPROVED, EXPIRED, PENDING, Action, rfc3339
from ..domain.identity import Principal


def terminal(
    uow: Any,
    principal: Principal,
    action: Action,
    status: str,
    now: Any,
    reason: str,
    *,
    step_up: bool,
    extra: dict[str, Any] | None = None,
) -> Action:
    """The one terminal transition of a decision, compare-and-set on ``pending``, audited once."""
    decided = action.decide(status, by=principal.actor, at=now, reason=reason)
    uow.actions.update(decided, expected_status=PENDING)
    uow.audit.record(
        audit.AuditEvent(
            type=audit.ACTION_APPROVED if status == APPROVED else audit.ACTION_DENIED,
            chain=action.tenant,
            actor=principal.actor,
            at=rfc3339(now),
            action_id=action.id,
            user=action.user,
            data={
                "status": status,
                "reason": decided.reason,
                "args_digest": action.args_digest,
                "step_up": step_up,
                **(extra or {}),
            },
        )
    )
    return decided


def expire_in(uow: Any, action: Action, now: Any) -> Action:
    expired = action.decide(
        EXPIRED,
        by="system:timer",
        at=now,
        reason=f"no decision before the deadline; the policy says {action.on_expiry!r} on expiry",
    )
    uow.actions.update(expired, expected_status=PENDING)
    uow.audit.record(
        audit.AuditEvent(
            type=audit.ACTION_EXPIRED,
            chain=action.tenant,
            actor="system:timer",
            at=rfc3339(now),
            action_id=action.id,
            user=action.user,
            data={
                "status": EXPIRED,
                "expires_at": rfc3339(action.expires_at),
                "on_expiry": action.on_expiry,
            },
        )
    )
    return expired
