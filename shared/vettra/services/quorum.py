"""Quorum approvals: k of n named approvers decide an action (policy rule ``approvers``)."""

from __future__ import annotations

from typing import Any

from ..domain.actions import APPROVED, PENDING, Action
from ..domain.errors import Forbidden, NotFound
from ..domain.identity import Principal
from .action_events import ACTION_VOTED, ACTIONS_TOPIC, addressed
from .deps import Deps
from .transitions import action_entry, terminal

ACTION_VOTE = "action.vote"  # audit: one approver's vote on a quorum action


def quorum_policy(decision: Any) -> dict[str, Any]:
    """What intercept adds to ``action.policy`` when the policy names approvers."""
    approvers = getattr(decision, "approvers", None)
    return {"approvers": approvers} if approvers else {}


def vote(
    deps: Deps,
    uow: Any,
    principal: Principal,
    action: Action,
    status: str,
    reason: str | None,
    step_up_token: str | None,
    now: Any,
) -> Action:
    """One vote on a quorum action, inside ``uow``; returns the action as it now stands.

    Only named approvers approve, each once (a repeat returns ``action`` unchanged);
    ``k`` distinct approvals approve the action in the same unit of work. A deny by a
    named approver or by the owner ends it. Every vote is audited (``action.vote``);
    the terminal transition is audited once, as for a single approver. Votes are
    read-modify-write of the action inside one unit of work, and the write is a
    compare-and-set on ``pending``, so racing final votes make one terminal entry.
    """
    voter, quorum = principal.user, action.quorum or {}
    named = voter in action.named_approvers
    if status == APPROVED:
        if not named:
            raise Forbidden(
                f"approving {action.id} needs {quorum['quorum']} of the named approvers "
                f"{quorum['of']}; {voter!r} is not one of them (the owner may deny)"
            )
        if voter in action.approvals:
            return action
        if action.step_up_required:  # each approving voter steps up for themselves
            deps.step_up.require(principal, action, step_up_token, uow=uow)
        voted = action.with_approval(voter)
    elif named or voter == action.user:
        voted = action
    else:  # pragma: no cover - _owned admits only the owner and the named approvers
        raise NotFound(f"no action {action.id}")
    required = quorum["quorum"]
    step_up = bool(action.step_up_required and status == APPROVED)
    uow.audit.record(
        action_entry(
            ACTION_VOTE,
            action,
            principal.actor,
            now,
            {
                "voter": voter,
                "vote": "approve" if status == APPROVED else "deny",
                "named": named,
                "approvals": list(voted.approvals),
                "required": required,
                "reason": reason,
                "args_digest": action.args_digest,
                "step_up": step_up,
            },
        )
    )
    if status == APPROVED and len(voted.approvals) < required:
        uow.actions.update(voted, expected_status=PENDING)
        return voted
    default_reason = (
        f"approved by {required} of the named approvers ({', '.join(voted.approvals)})"
        if status == APPROVED
        else f"denied by {voter}"
    )
    return terminal(
        uow,
        principal,
        voted,
        status,
        now,
        reason or default_reason,
        step_up=step_up,
        extra={"quorum": {"required": required, "approvals": list(voted.approvals)}},
    )


def publish_vote(deps: Deps, action: Action) -> None:
    # Only the dashboards' topic: the action's own topic wakes long-polls waiting for
    # the status to leave pending, which a non-final vote does not do. Addressed to the
    # owner and every named approver, so each open card shows the vote.
    deps.bus.publish(
        ACTIONS_TOPIC, {**addressed(ACTION_VOTED, action), "approvals": list(action.approvals)}
    )
