"""Audit events for the tests that need entries in a log rather than particular ones."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from vettra.domain.audit import GENESIS_HASH, AuditEntry, AuditEvent, link_all


def audit_event(**changes: Any) -> AuditEvent:
    """An intercept by ``agent:bot`` for alice on the default chain, with ``changes``."""
    fields: dict[str, Any] = {
        "type": "action.intercepted",
        "chain": "default",
        "actor": "agent:bot",
        "at": "2026-01-01T00:00:00.000Z",
        "action_id": None,
        "user": "alice",
        "data": {},
    }
    return AuditEvent(**{**fields, **changes})


def linked(events: Iterable[AuditEvent], key_id: str, key: bytes) -> list[AuditEntry]:
    """``events`` linked into a new chain under the HMAC key ``key_id``."""
    return link_all(events, head_seq=0, head_hash=GENESIS_HASH, key_id=key_id, key=key)
