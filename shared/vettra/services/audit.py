"""Audit reads and verification, scoped by role.

Admins read and verify their tenant's whole chain; approvers read the entries of
their own actions; agents read only the entries of actions they submitted.
"""

from __future__ import annotations

from typing import Any

from ..domain.audit import verify_chain
from ..domain.errors import NotFound
from ..domain.identity import ADMIN, AGENT, APPROVER, Principal
from .actions import get_action
from .deps import Deps

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def list_entries(deps: Deps, principal: Principal, *, after: int = 0, limit: int = DEFAULT_PAGE,
                 action_id: str | None = None) -> dict[str, Any]:
    principal.require(APPROVER, ADMIN)
    limit = max(1, min(limit, MAX_PAGE))
    user = None if principal.role == ADMIN else principal.user
    if action_id is not None and principal.role != ADMIN:
        get_action(deps, principal, action_id)  # 404 unless it is the caller's own
    entries = [e.as_dict() for e in deps.store.audit_log.entries(
        principal.tenant, after=after, limit=limit + 1, action_id=action_id, user=user)]
    more = len(entries) > limit
    entries = entries[:limit]
    return {"entries": entries,
            "next_after": entries[-1]["seq"] if more and entries else None}


def action_entries(deps: Deps, principal: Principal, action_id: str) -> dict[str, Any]:
    principal.require(AGENT, APPROVER, ADMIN)
    if principal.role != ADMIN:
        get_action(deps, principal, action_id)
    entries = [e.as_dict() for e in deps.store.audit_log.entries(principal.tenant, action_id=action_id)]
    if not entries:
        raise NotFound(f"no audit entries for action {action_id}")
    return {"action_id": action_id, "entries": entries}


def verify(deps: Deps, principal: Principal) -> dict[str, Any]:
    """Walk the tenant's whole chain; report the first bad entry and why (API.md)."""
    principal.require(APPROVER, ADMIN)
    report = verify_chain((e.as_dict() for e in deps.store.audit_log.entries(principal.tenant)),
                          deps.keys.audit_hmac_keys())
    head_seq, _ = deps.store.audit_log.head(principal.tenant)
    out = report.as_dict()
    if report.valid and head_seq != report.length:
        # Entries were removed from the end: the head remembers more than the log holds.
        out.update(valid=False, first_invalid={"seq": report.length + 1,
                                               "reason": f"truncated: head says {head_seq} entries, log has {report.length}"})
    return out
