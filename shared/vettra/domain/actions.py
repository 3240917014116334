"""The action: one intercepted tool call and its life.

States (docs/api.md): ``allowed`` and ``denied`` are decided at intercept time;
``pending`` waits for a person and ends ``approved``, ``denied`` or ``expired``
exactly once. Transitions live here so every adapter enforces the same rules.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, overload

from .errors import Conflict
from .policy_schema import ON_EXPIRY_DENY
from .statuses import ALLOWED as ALLOWED
from .statuses import APPROVED as APPROVED
from .statuses import DENIED as DENIED
from .statuses import EXPIRED as EXPIRED
from .statuses import PENDING as PENDING
from .statuses import TERMINAL as TERMINAL

# keyed by the stored value, which older records may lack
_LEGACY_ON_EXPIRY: dict[str | None, str] = {"denied": ON_EXPIRY_DENY}

ACTION_ID_PREFIX = "act_"
_ID_BYTES = 16


def new_action_id() -> str:
    """An unguessable id: ids double as capability hints in URLs, so 128 random bits."""
    return ACTION_ID_PREFIX + secrets.token_hex(_ID_BYTES)


@overload
def rfc3339(moment: datetime) -> str: ...
@overload
def rfc3339(moment: None) -> None: ...
def rfc3339(moment: datetime | None) -> str | None:
    """UTC RFC 3339 with millisecond precision and a ``Z`` suffix."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@overload
def parse_rfc3339(text: str) -> datetime: ...
@overload
def parse_rfc3339(text: None) -> None: ...
def parse_rfc3339(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Action:
    """An intercepted tool call. Frozen: every change makes a new value."""

    id: str
    tenant: str
    user: str
    agent: str
    tool: str
    arguments: dict[str, Any]
    args_digest: str
    framework: str
    risk: dict[str, Any]
    status: str
    step_up_required: bool
    created_at: datetime
    policy: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    session_id: str | None = None
    resource: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    expires_at: datetime | None = None
    on_expiry: str = ON_EXPIRY_DENY  # the policy's verb (timeouts.on_expiry)
    decided_at: datetime | None = None
    decided_by: str | None = None
    audit_seq: int | None = None
    #: The outbox event an answer produced where ``seq`` comes later (Firestore); answers only.
    audit_event_id: str | None = None
    approvals: tuple[str, ...] = ()  # named approvers who approved, in vote order

    @property
    def quorum(self) -> dict[str, Any] | None:
        """The policy's ``{"quorum": k, "of": [...]}`` when k named approvers must approve."""
        return self.policy.get("approvers") or None

    @property
    def named_approvers(self) -> tuple[str, ...]:
        quorum = self.quorum
        return tuple(quorum["of"]) if quorum else ()

    def visible_to(self, tenant: str, user: str) -> bool:
        """The owner, and for a quorum action each named approver (same tenant only)."""
        return tenant == self.tenant and (user == self.user or user in self.named_approvers)

    def with_approval(self, approver: str) -> Action:
        """Count one named approver's approval (once); the action stays pending."""
        if self.status != PENDING:
            raise Conflict(
                f"action {self.id} is already {self.status}", extra={"action_status": self.status}
            )
        if approver not in self.named_approvers:
            raise ValueError(f"{approver!r} is not a named approver of {self.id}")
        if approver in self.approvals:
            return self
        return replace(self, approvals=self.approvals + (approver,))

    def overdue(self, now: datetime) -> bool:
        """Pending past its deadline: readers treat it as expired even if no timer fired."""
        return self.status == PENDING and self.expires_at is not None and now >= self.expires_at

    def decide(self, status: str, *, by: str, at: datetime, reason: str | None) -> Action:
        """The one terminal transition out of ``pending``; anything else is a conflict."""
        if status not in (APPROVED, DENIED, EXPIRED):
            raise ValueError(f"not a decision: {status!r}")
        if self.status != PENDING:
            raise Conflict(
                f"action {self.id} is already {self.status}", extra={"action_status": self.status}
            )
        return replace(
            self,
            status=status,
            decided_by=by,
            decided_at=at,
            reason=reason if reason is not None else self.reason,
        )

    def view(self, now: datetime | None = None) -> dict[str, Any]:
        """The API representation (docs/api.md), expiry applied lazily when ``now`` is given."""
        status = self.status
        if now is not None and self.overdue(now):
            status = EXPIRED
        return {
            "action_id": self.id,
            "status": status,
            "tool": self.tool,
            "arguments": self.arguments,
            "args_digest": self.args_digest,
            "framework": self.framework,
            "risk": self.risk,
            "step_up_required": self.step_up_required,
            "expires_at": rfc3339(self.expires_at),
            "reason": self.reason,
            "policy": self.policy,
            "session_id": self.session_id,
            "resource": self.resource,
            "context": self.context,
            "call_id": self.call_id,
            "user": self.user,
            "agent": self.agent,
            "created_at": rfc3339(self.created_at),
            "decided_at": rfc3339(self.decided_at),
            "decided_by": self.decided_by,
            "on_expiry": self.on_expiry,
            "audit_seq": self.audit_seq,
            "audit_event_id": self.audit_event_id,
            **self._quorum_view(),
        }

    def _quorum_view(self) -> dict[str, Any]:
        quorum = self.quorum
        if not quorum:
            return {}
        return {
            "quorum": {
                "required": quorum["quorum"],
                "approvals": list(self.approvals),
                "of": list(quorum["of"]),
            }
        }

    def to_record(self) -> dict[str, Any]:
        """A storable document (JSON-ready); inverse of :meth:`from_record`."""
        record = self.view()
        record["tenant"] = self.tenant
        record["status"] = self.status
        return record

    def to_record_json(self) -> str:
        """:meth:`to_record` as compact JSON (what a document store keeps)."""
        return json.dumps(self.to_record(), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Action:
        return cls(
            id=record["action_id"],
            tenant=record["tenant"],
            user=record["user"],
            agent=record["agent"],
            tool=record["tool"],
            arguments=record["arguments"],
            args_digest=record["args_digest"],
            framework=record["framework"],
            risk=record["risk"],
            status=record["status"],
            step_up_required=record["step_up_required"],
            created_at=parse_rfc3339(record["created_at"]),
            policy=record.get("policy") or {},
            reason=record.get("reason"),
            session_id=record.get("session_id"),
            resource=record.get("resource"),
            context=record.get("context") or {},
            call_id=record.get("call_id"),
            expires_at=parse_rfc3339(record.get("expires_at")),
            # records of older builds said "denied" for the same rule
            on_expiry=_LEGACY_ON_EXPIRY.get(record.get("on_expiry"), record.get("on_expiry"))
            or ON_EXPIRY_DENY,
            decided_at=parse_rfc3339(record.get("decided_at")),
            decided_by=record.get("decided_by"),
            audit_seq=record.get("audit_seq"),
            approvals=tuple((record.get("quorum") or {}).get("approvals", ())),
        )
