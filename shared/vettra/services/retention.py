"""Retention: what the store keeps only as long as it can matter, and the sweeper.

Each rule says how long a kind of record can still change an answer; after that it is
deleted in bounded batches, one short unit of work per batch, so the sweep never holds
the write lock for long (an intercept waits at most one batch). Times come from the
injected clock. Nothing the audit log needs is swept: audit entries, checkpoints,
actions and policies stay (docs/approvals.md, *Retention*).

| record | kept until |
|---|---|
| idempotency key | 24 h after first use (:data:`IDEMPOTENCY_WINDOW_S`) |
| pending enrolment, challenge, step-up grant | its own ``expires_at`` |
| used-challenge marker | the challenge's TTL after use (the challenge has expired by then) |
| used TOTP step | four TOTP periods (a code is accepted one step either side) |
| used-grant marker | ``max_age`` after use (the grant it guards has expired by then) |
| spent OIDC ID token | the challenge TTL or ``max_age``, whichever is longer, plus leeway |
| quorum approver row | the action leaving ``pending`` (rows only feed the pending list) |
| dashboard sign-in link, dashboard session | its own ``expires_at`` |
| connect-an-account state (``vault_link_states``) | its own ``expires_at`` |
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..domain import stepup as rules
from . import dashboard_sessions, vault_link
from . import stepup as collections
from .periodic import Periodic

log = logging.getLogger("vettra.retention")

IDEMPOTENCY_WINDOW_S = 24 * 3600
SWEEP_INTERVAL_S = 60.0
SWEEP_BATCH = 500  # rows per unit of work: a few milliseconds of write lock
MAX_BATCHES_PER_RULE = 200  # per pass, so one pass ends; the next picks up the rest
OIDC_LEEWAY_S = 60


@dataclass(frozen=True)
class DocRule:
    """Documents of ``collection`` whose ``field`` is older than ``keep_s`` go."""

    collection: str
    field: str
    keep_s: int


def doc_rules(max_age_s: int) -> tuple[DocRule, ...]:
    replay_steps = (2 * rules.TOTP_DRIFT_STEPS + 2) * rules.TOTP_PERIOD_S
    return (
        DocRule(collections.PENDING_ENROLMENTS, "expires_at", 0),
        DocRule(collections.CHALLENGES, "expires_at", 0),
        DocRule(collections.USED_CHALLENGES, "at", rules.CHALLENGE_TTL_S),
        DocRule(collections.USED_TOTP_STEPS, "at", replay_steps),
        DocRule(collections.GRANTS, "expires_at", 0),
        DocRule(collections.USED_GRANTS, "at", max_age_s),
        DocRule(
            collections.USED_ID_TOKENS, "at", max(rules.CHALLENGE_TTL_S, max_age_s) + OIDC_LEEWAY_S
        ),
        DocRule(dashboard_sessions.LINKS, "expires_at", 0),
        DocRule(dashboard_sessions.SESSIONS, "expires_at", 0),
        DocRule(vault_link.STATES, "expires_at", 0),
    )


def sweep_once(
    deps: Any, *, batch: int = SWEEP_BATCH, max_batches: int = MAX_BATCHES_PER_RULE
) -> dict[str, int]:
    """One pass over every rule at ``deps.clock.now()``; returns rows deleted per rule."""
    now = deps.clock.now()
    store = deps.store
    done: dict[str, int] = {}

    def drain(name: str, delete: Any) -> None:
        total = 0
        for _ in range(max_batches):
            with store.unit_of_work() as uow:
                gone = delete(uow)
                uow.commit()
            total += gone
            if gone < batch:
                break
        done[name] = total

    cutoff = now - timedelta(seconds=IDEMPOTENCY_WINDOW_S)
    drain("idempotency", lambda uow: uow.idempotency.sweep(cutoff, batch))
    drain("quorum_rows", lambda uow: uow.actions.sweep_quorum_rows(batch))
    for rule in doc_rules(deps.step_up.max_age_s):
        before = now - timedelta(seconds=rule.keep_s)
        drain(
            rule.collection,
            lambda uow, r=rule, b=before: uow.docs.sweep(r.collection, r.field, b, batch),
        )
    return done


class Sweeper(Periodic):
    """Runs :func:`sweep_once` every ``interval_s`` on a daemon thread (the embedded default;
    in the cloud a scheduled job calls :func:`sweep_once`)."""

    def __init__(self, deps: Any, *, interval_s: float = SWEEP_INTERVAL_S):
        super().__init__("vettra-sweeper", interval_s)
        self._deps = deps
        self.interval_s = interval_s
        self.swept: dict[str, int] = {}

    def tick(self) -> None:
        try:
            for name, gone in sweep_once(self._deps).items():
                self.swept[name] = self.swept.get(name, 0) + gone
        except Exception:  # noqa: BLE001 - a failed pass is retried next interval
            log.exception("retention sweep failed; retrying next interval")
