"""The audit events the benches chain: the envelope of a real intercept entry (the bench
agent acting for alice), with each bench's own ``data``, sealed under one bench key."""

from __future__ import annotations

from typing import Any

from vettra.domain.audit import AuditEvent

KEY_ID, KEY = "hk_bench", b"k" * 32
#: a signed checkpoint (or a checked root) every this many entries
CHECKPOINT_EVERY = 1000


def intercepted(i: int, data: dict[str, Any]) -> AuditEvent:
    """The ``i``-th ``action.intercepted`` entry of the default chain."""
    return AuditEvent(
        type="action.intercepted",
        chain="default",
        actor="agent:bench",
        at="2026-11-30T00:00:00.000Z",
        action_id=f"act_{i:032x}",
        user="alice",
        data=data,
    )
