"""The terminal transitions of an action inside a unit of work, shared by single
and quorum decisions and by expiry: compare-and-set on ``pending``, audited once."""

from __future__ import annotations

from typing import Any

from ..domain import audit
from ..domain.actions import APPROVED, EXPIRED, PENDING, Action, rfc3339
from ..domain.identity import Principal


def action_entry(
    kind: str, action: Action, actor: str, now: Any, data: dict[str, Any]
) -> audit.AuditEvent:
    """An audit event about ``action``: on its tenant's chain, under its owner's name."""
    return audit.AuditEvent(
        type=kind,
        chain=action.tenant,
        actor=actor,
        at=rfc3339(now),
        action_id=action.id,
        user=action.user,
        data=data,
    )


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
        action_entry(
            audit.ACTION_APPROVED if status == APPROVED else audit.ACTION_DENIED,
            action,
            principal.actor,
            now,
            {
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
        action_entry(
            audit.ACTION_EXPIRED,
            action,
            "system:timer",
            now,
            {
                "status": EXPIRED,
                "expires_at": rfc3339(action.expires_at),
                "on_expiry": action.on_expiry,
            },
        )
    )
    return expired
