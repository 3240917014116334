"""Audit reads and verification, scoped by role.

Admins read and verify their tenant's whole chain; approvers read the entries of
their own actions; agents read only the entries of actions they submitted.
"""

from __future__ import annotations

from typing import Any

from ..domain.audit_verify import Report, verify_entries
from ..domain.errors import NotFound, VerificationError
from ..domain.identity import ADMIN, ANY_ROLE, DECIDERS, Principal
from ..ports import EntryQuery
from .actions import get_action
from .checkpoints import verified_checkpoints
from .deps import Deps

MAX_PAGE = 1000
DEFAULT_PAGE = 100


def list_entries(
    deps: Deps,
    principal: Principal,
    *,
    after: int = 0,
    limit: int = DEFAULT_PAGE,
    action_id: str | None = None,
) -> dict[str, Any]:
    principal.require(*DECIDERS)
    limit = max(1, min(limit, MAX_PAGE))
    user = None if principal.role == ADMIN else principal.user
    if action_id is not None and principal.role != ADMIN:
        get_action(deps, principal, action_id)  # 404 unless it is the caller's own
    entries = [
        e.as_dict()
        for e in deps.store.audit_log.entries(
            principal.tenant, EntryQuery(after, limit + 1, action_id=action_id, user=user)
        )
    ]
    more = len(entries) > limit
    entries = entries[:limit]
    return {"entries": entries, "next_after": entries[-1]["seq"] if more and entries else None}


def action_entries(deps: Deps, principal: Principal, action_id: str) -> dict[str, Any]:
    principal.require(*ANY_ROLE)
    if principal.role != ADMIN:
        get_action(deps, principal, action_id)
    entries = [
        e.as_dict()
        for e in deps.store.audit_log.entries(principal.tenant, EntryQuery(action_id=action_id))
    ]
    if not entries:
        raise NotFound(f"no audit entries for action {action_id}")
    return {"action_id": action_id, "entries": entries}


def verify(deps: Deps, principal: Principal) -> dict[str, Any]:
    """Walk the tenant's whole chain against its signed checkpoints (docs/api.md §Audit).

    Reports the first bad entry and why: hash mismatch, bad HMAC, broken link,
    gap, bad checkpoint signature, inconsistent checkpoint, or rollback.
    """
    principal.require(*DECIDERS)
    chain = principal.tenant
    try:
        checkpoints = verified_checkpoints(deps, chain)
    except VerificationError as exc:
        size = exc.extra.get("seq", 0)
        return Report(False, 0, {"seq": size, "reason": exc.detail}).as_dict()
    report = verify_entries(
        deps.store.audit_log.entries(chain),
        hmac_keys=deps.keys.audit_hmac_keys(),
        checkpoints=checkpoints,
    )
    head_seq, _ = deps.store.audit_log.head(chain)
    if report.valid and head_seq > report.length:
        # Entries were removed from the end after the sequencer linked them.
        report.valid = False
        report.first_invalid = {
            "seq": report.length + 1,
            "reason": f"truncated: the sequencer linked {head_seq} entries, "
            f"the log holds {report.length}",
        }
    return report.as_dict()
