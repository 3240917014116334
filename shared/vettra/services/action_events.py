"""Event names and the after-commit publishing the services share."""

from __future__ import annotations

from typing import Any

from ..domain.actions import Action
from ..ports import EventBus

ACTIONS_TOPIC = "actions"
ACTION_CREATED = "action.created"
ACTION_DECIDED = "action.decided"
ACTION_VOTED = "action.voted"  # a quorum vote that left the action pending


def action_topic(action_id: str) -> str:
    """Per-action topic, so a waiting request wakes only for its own action."""
    return f"action.{action_id}"


def action_summary(kind: str, action: Action) -> dict[str, Any]:
    """What every live event about an action says (docs/api.md, ``GET /api/events``)."""
    return {
        "type": kind,
        "action_id": action.id,
        "status": action.status,
        "tenant": action.tenant,
        "user": action.user,
        "risk_level": action.risk.get("level"),
        "tool": action.tool,
    }


def addressed(kind: str, action: Action) -> dict[str, Any]:
    """The summary and whom a dashboard event is for: the owner and the named approvers."""
    return {
        **action_summary(kind, action),
        "approvers": list((action.policy.get("approvers") or {}).get("of", [])),
    }


def publish_action(bus: EventBus, kind: str, action: Action) -> None:
    event = addressed(kind, action)
    bus.publish(action_topic(action.id), event)
    bus.publish(ACTIONS_TOPIC, event)
