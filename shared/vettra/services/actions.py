"""Action services: intercept, decide, expire, and the owner-scoped reads.

Each is a plain function taking its dependencies: parse → score → evaluate →
one unit of work that writes the action and its audit event together → after the
commit, arm the timer and publish. Nothing here knows HTTP or any cloud SDK.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from ..domain import audit
from ..domain.action_bundle import parse_bundle
from ..domain.actions import (
    ALLOWED,
    APPROVED,
    DENIED,
    EXPIRED,
    PENDING,
    Action,
    new_action_id,
    rfc3339,
)
from ..domain.canonical import sha256_digest
from ..domain.errors import Conflict, NotFound, StepUpRequired, Unavailable
from ..domain.identity import AGENT, DECIDERS, Principal
from ..domain.policy_schema import ON_EXPIRY_DENY
from ..ports import IdempotencyRecord
from .action_events import ACTION_CREATED, ACTION_DECIDED, publish_action
from .contention import retried
from .deps import Deps
from .quorum import publish_vote, quorum_policy, vote
from .transitions import action_entry, expire_in, terminal

log = logging.getLogger("vettra.actions")

EXPIRE_KIND = "expire"
MAX_PENDING_LIST = 500
_OUTCOME_STATUS = {
    "allow": ALLOWED,
    "deny": DENIED,
    "require_approval": PENDING,
    "require_step_up": PENDING,
}
_DECISIONS = {"approve": APPROVED, "deny": DENIED}


@dataclass(frozen=True)
class Intercepted:
    action: Action
    created: bool  # False when an idempotent retry returned the earlier action


def _timer_name(action_id: str) -> str:
    return f"expire-{action_id}"


def intercept(
    deps: Deps, principal: Principal, body: Any, idempotency_key: str | None = None
) -> Intercepted:
    """Flow 1 (docs/architecture.md): score, evaluate, record; idempotent on ``idempotency_key``."""
    principal.require(AGENT)
    bundle = parse_bundle(body)
    policy = deps.policies.active(principal.tenant)
    risk, decision = deps.verifier.decide(policy, bundle, deps.catalogue, principal.sub)
    now = deps.clock.now()
    status = _OUTCOME_STATUS[decision.outcome]

    expires_at = None
    if status == PENDING:
        limits = [t for t in (decision.timeout_s, bundle.timeout_s) if t]
        expires_at = now + timedelta(seconds=min(limits)) if limits else None

    action = Action(
        id=new_action_id(),
        tenant=principal.tenant,
        user=principal.user,
        agent=principal.sub,
        tool=bundle.tool,
        arguments=bundle.arguments,
        args_digest=bundle.args_digest,
        framework=bundle.framework,
        risk=risk.as_dict(),
        status=status,
        step_up_required=decision.outcome == "require_step_up",
        created_at=now,
        policy={
            "id": policy.policy_id,
            "version": policy.version,
            "rule_id": decision.rule_id,
            "outcome": decision.outcome,
            **quorum_policy(decision),
        },
        reason=decision.reason,
        session_id=bundle.session_id,
        resource=bundle.resource,
        context=bundle.context,
        call_id=bundle.call_id,
        expires_at=expires_at,
        on_expiry=getattr(decision, "on_expiry", None) or ON_EXPIRY_DENY,
    )
    scope = idempotency_scope(principal, bundle.session_id) if idempotency_key else ""
    request_digest = sha256_digest(body) if idempotency_key else ""

    # Serialised before the store's write lock is taken: the critical section only links.
    first_event = _intercept_event(principal, action, now)
    first_json: str | None = action.to_record_json()

    def record() -> tuple[Intercepted, tuple[str, int | str] | None]:
        """One transaction; run again whole if the store aborts it (:mod:`.contention`)."""
        recorded, event, record_json = action, first_event, first_json
        with deps.store.unit_of_work() as uow:
            if idempotency_key:
                seen = uow.idempotency.get(scope, idempotency_key)
                if seen is not None:
                    if seen[0] != request_digest:
                        # only this principal's own keys reach here: the scope names all of it
                        raise Conflict(
                            "Idempotency-Key was already used with a different request body"
                        )
                    earlier = uow.actions.get(seen[1])
                    if earlier is None:  # pragma: no cover - written in one transaction
                        raise Conflict("Idempotency-Key refers to a missing action")
                    return Intercepted(earlier, created=False), None
                uow.idempotency.put(
                    IdempotencyRecord(scope, idempotency_key, request_digest, action.id, at=now)
                )
            if bundle.session_id:
                lifted = _apply_session(
                    uow, principal, action, bundle.session_id, now, decision, risk
                )
                if lifted is not action:
                    recorded, event, record_json = (
                        lifted,
                        _intercept_event(principal, lifted, now),
                        None,
                    )
            uow.actions.add(recorded, record_json=record_json)
            uow.audit.record(event)
            uow.commit()
            return Intercepted(recorded, created=True), _audit_citation(uow.audit)

    intercepted, cited = retried(record, what="record the action")
    if not intercepted.created:
        return intercepted
    action = intercepted.action
    if cited is not None:
        action = _with_audit(action, cited)
    if action.status == PENDING and action.expires_at is not None:
        deps.scheduler.schedule(
            _timer_name(action.id), action.expires_at, {"kind": EXPIRE_KIND, "action_id": action.id}
        )
    publish_action(deps.bus, ACTION_CREATED, action)
    return Intercepted(action, created=True)


def idempotency_scope(principal: Principal, session_id: str | None) -> str:
    """Everything that says who acts for whom: a key is one principal's, never shared.

    Tenant, role, the agent's ``sub``, the user it acts for and the session: an agent
    reusing a key for another user or session gets a new action, and the 409 for
    "same key, other body" can only ever describe the caller's own request
    (docs/approvals.md, *Idempotency*). Hashed so no part can spill into another.
    """
    return sha256_digest(
        [principal.tenant, principal.role, principal.sub, principal.user, session_id or ""]
    )


def _apply_session(
    uow: Any,
    principal: Principal,
    action: Action,
    session_id: str,
    now: Any,
    decision: Any,
    risk: Any,
) -> Action:
    """Read the session inside this transaction: a revoke counts from the next intercept on."""
    from dataclasses import replace

    from .sessions import apply_to_intercept

    outcome, reason = apply_to_intercept(
        uow,
        principal,
        session_id,
        now,
        decision.outcome,
        risk,
        quorum=bool(getattr(decision, "approvers", None)),
    )
    if reason is None:
        return action
    status = _OUTCOME_STATUS[outcome]
    return replace(
        action,
        status=status,
        reason=reason,
        step_up_required=False,
        expires_at=None,
        policy={**action.policy, "session_outcome": outcome},
    )


def _audit_citation(recorder: Any) -> tuple[str, int | str] | None:
    """What the answer cites of the entry its commit produced: ``("seq", n)`` where the
    commit linked it, ``("event", id)`` where linking is deferred (Firestore's outbox:
    the entry and its seq follow within about a second, docs/firestore.md)."""
    linked = recorder.linked
    if linked:
        return ("seq", linked[-1].seq)
    event_ids = recorder.event_ids
    return ("event", event_ids[-1]) if event_ids else None


def _with_audit(action: Action, cited: tuple[str, int | str]) -> Action:
    # A shallow copy with one field set: dataclasses.replace re-runs __init__ over
    # two dozen fields, a measurable share of an intercept.
    out = copy.copy(action)
    kind, value = cited
    object.__setattr__(out, "audit_seq" if kind == "seq" else "audit_event_id", value)
    return out


def _intercept_event(principal: Principal, action: Action, now: Any) -> audit.AuditEvent:
    return action_entry(
        audit.ACTION_INTERCEPTED, action, principal.actor, now, _intercept_audit_data(action)
    )


def _intercept_audit_data(action: Action) -> dict[str, Any]:
    # Arguments themselves stay out of the log (they may hold personal data or
    # secrets); their digest binds the entry to exactly what was asked.
    return {
        "tool": action.tool,
        "args_digest": action.args_digest,
        "status": action.status,
        "risk": {k: action.risk.get(k) for k in ("score", "level", "category")},
        "step_up_required": action.step_up_required,
        "policy": action.policy,
        "reason": action.reason,
        "expires_at": rfc3339(action.expires_at),
        "framework": action.framework,
        "session_id": action.session_id,
        "agent": action.agent,
    }


def _owned(action: Action | None, principal: Principal, action_id: str) -> Action:
    """Users see only their own actions (and those a quorum names them on, docs/approvals.md);
    a foreign id is indistinguishable from none."""
    if action is None:
        raise NotFound(f"no action {action_id}")
    if principal.role == AGENT:
        visible = (action.tenant, action.user, action.agent) == (
            principal.tenant,
            principal.user,
            principal.sub,
        )
    else:
        visible = action.visible_to(principal.tenant, principal.user)
    if not visible:
        raise NotFound(f"no action {action_id}")
    return action


def get_action(deps: Deps, principal: Principal, action_id: str) -> dict[str, Any]:
    with deps.store.unit_of_work(readonly=True) as uow:
        action = _owned(uow.actions.get(action_id), principal, action_id)
    return action.view(deps.clock.now())


def list_pending(
    deps: Deps, principal: Principal, limit: int = MAX_PENDING_LIST
) -> list[dict[str, Any]]:
    principal.require(*DECIDERS)
    now = deps.clock.now()
    with deps.store.unit_of_work(readonly=True) as uow:
        actions = uow.actions.pending(
            principal.tenant, principal.user, now, min(limit, MAX_PENDING_LIST)
        )
    return [a.view(now) for a in actions]


def _decide(
    deps: Deps,
    principal: Principal,
    action_id: str,
    status: str,
    reason: str | None,
    step_up_token: str | None,
) -> dict[str, Any]:
    """Flow 3: the owner approves or denies (``status``); exactly one terminal decision wins.

    A quorum action (``action.quorum``) is decided by votes instead: see :func:`vettra.services.quorum.vote`.
    """
    now = deps.clock.now()
    with deps.store.unit_of_work() as uow:
        action = _owned(uow.actions.get(action_id), principal, action_id)
        if action.overdue(now):
            expired = expire_in(uow, action, now)
            uow.commit()
            _after_decision(deps, expired)
            raise Conflict(
                f"action {action_id} expired at {rfc3339(action.expires_at)}",
                extra={"action_status": EXPIRED},
            )
        if action.status != PENDING:
            raise Conflict(
                f"action {action_id} is already {action.status}",
                extra={"action_status": action.status},
            )
        if action.quorum is not None:
            decided = vote(deps, uow, principal, action, status, reason, step_up_token, now)
            if decided is action:  # a repeated approval counts once: nothing to write
                return action.view(now)
        else:
            if status == APPROVED and action.step_up_required:
                deps.step_up.require(principal, action, step_up_token, uow=uow)
            default_reason = "approved by the user" if status == APPROVED else "denied by the user"
            decided = terminal(
                uow,
                principal,
                action,
                status,
                now,
                reason or default_reason,
                step_up=bool(action.step_up_required and status == APPROVED),
            )
        uow.commit()
        cited = _audit_citation(uow.audit)
    if cited is not None:
        decided = _with_audit(decided, cited)
    if decided.status == PENDING:
        publish_vote(deps, decided)
    else:
        _after_decision(deps, decided)
    return decided.view(now)


def _after_decision(deps: Deps, action: Action) -> None:
    """After the commit: the decision stands whatever happens here.

    Cancelling the timer is an optimisation (the expire handler ignores decided
    actions), so a scheduler outage must not turn a saved decision into a 503.
    """
    try:
        deps.scheduler.cancel(_timer_name(action.id))
    except Unavailable:
        log.warning(
            "timer cancel failed; the expire handler will skip the decided action",
            extra={"action_id": action.id},
        )
    publish_action(deps.bus, ACTION_DECIDED, action)


def expire(deps: Deps, action_id: str) -> str:
    """Timer target (Cloud Tasks or local): idempotent, tolerant of early and duplicate calls.

    Returns what it did: ``expired``, ``not-pending``, ``missing`` or ``early``.
    """
    now = deps.clock.now()
    with deps.store.unit_of_work() as uow:
        action = uow.actions.get(action_id)
        if action is None:
            return "missing"
        if action.status != PENDING:
            return "not-pending"
        if not action.overdue(now):
            due = action.expires_at
        else:
            expired = expire_in(uow, action, now)
            uow.commit()
            due = None
    if due is not None:  # delivered early: arm again for the real deadline
        deps.scheduler.schedule(
            _timer_name(action_id), due, {"kind": EXPIRE_KIND, "action_id": action_id}
        )
        return "early"
    publish_action(deps.bus, ACTION_DECIDED, expired)
    return "expired"


def rearm_timers(deps: Deps, limit: int = 100_000) -> int:
    """At boot: every pending action with a deadline gets its timer (idempotent by name)."""
    with deps.store.unit_of_work(readonly=True) as uow:
        actions = uow.actions.pending_with_deadline(limit)
    for action in actions:  # pending_with_deadline: expires_at is set on each (ignore below)
        deps.scheduler.schedule(
            _timer_name(action.id),
            action.expires_at,  # type: ignore[arg-type]
            {"kind": EXPIRE_KIND, "action_id": action.id},
        )
    return len(actions)


DECISION_REJECTED = "action.decision_rejected"


def decide(
    deps: Deps,
    principal: Principal,
    action_id: str,
    decision: str,
    reason: str | None = None,
    step_up_token: str | None = None,
) -> dict[str, Any]:
    """Approve or deny (flow 3 of the design); a refused attempt leaves its own audit entry.

    A decision on an action that is no longer pending, or an approval without a
    valid step-up, changes nothing, but the attempt is evidence: it is recorded
    in a transaction of its own (the refused one rolled back). A decision the store
    aborted under contention (two approvers at once on Firestore) is run again, so
    the loser hears who won rather than "conflicting write" (:mod:`.contention`).
    """
    principal.require(*DECIDERS)
    status = _DECISIONS[decision]
    try:
        return retried(
            lambda: _decide(deps, principal, action_id, status, reason, step_up_token),
            what=f"decide action {action_id}",
        )
    except (Conflict, StepUpRequired) as refused:
        record_refusal(
            deps,
            principal,
            DECISION_REJECTED,
            action_id,
            {"decision": decision, "status": refused.status, "why": refused.detail},
        )
        raise


def record_refusal(
    deps: Deps, principal: Principal, kind: str, action_id: str | None, data: dict[str, Any]
) -> None:
    with deps.store.unit_of_work() as uow:
        uow.audit.record(
            audit.event_by(principal, kind, deps.clock.now(), data, action_id=action_id)
        )
        uow.commit()
