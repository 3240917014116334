"""Policies (``vettra.policy/v1``) and the Python reference evaluator.

A policy can only make Vettra stricter than the risk levels of docs/api.md: its
thresholds may be lower than the product's (approval 20, step-up 55), and its
rules may deny, demand approval or step-up. The one relaxation is an ``allow``
rule lowering a *score-based* ``require_approval`` to ``allow``; it never
touches step-up, a deny, or an action the risk engine forced HIGH.

The Rust/WASM evaluator implements the same semantics and is checked against
the shared vectors in ``tests/vectors/policy/``. The format is documented in
``docs/policy.md``; digests are SHA-256 over RFC 8785 canonical JSON.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .canonical import sha256_digest
from .errors import PolicyRejected
from .patterns import tool_matches
from .policy_conditions import condition_holds
from .policy_schema import (
    ALLOW,
    DENY,
    PENDING_LEVEL,
    REQUIRE_APPROVAL,
    REQUIRE_STEP_UP,
    SCHEMA,
    SEVERITY,
    validate_payload,
)

__all__ = [
    "ALLOW",
    "DENY",
    "REQUIRE_APPROVAL",
    "REQUIRE_STEP_UP",
    "SCHEMA",
    "SEVERITY",
    "ActionFacts",
    "RiskFacts",
    "Thresholds",
    "Timeouts",
    "PolicyRule",
    "PolicyDecision",
    "Policy",
    "validate_payload",
    "action_facts",
    "baseline",
    "evaluate",
]


class ActionFacts(Protocol):
    """What the evaluator reads from an action bundle (``action_bundle.ActionBundle``)."""

    @property
    def tool(self) -> str: ...
    @property
    def service(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def arguments(self) -> dict[str, Any]: ...
    @property
    def framework(self) -> str | None: ...
    @property
    def session_id(self) -> str | None: ...
    @property
    def resource(self) -> str | None: ...
    @property
    def context(self) -> dict[str, Any]: ...

    # also read when present: ``server`` (the MCP server the agent claims, or None)


class RiskFacts(Protocol):
    """What the evaluator reads from a risk assessment (``risk.RiskAssessment``)."""

    @property
    def score(self) -> int: ...
    @property
    def level(self) -> str: ...
    @property
    def category(self) -> str: ...
    @property
    def forced_high(self) -> bool: ...


@dataclass(frozen=True)
class Thresholds:
    approval: int
    step_up: int


@dataclass(frozen=True)
class Timeouts:
    medium: int
    high: int
    max: int
    on_expiry: str

    def for_outcome(self, outcome: str) -> int:
        return self.medium if PENDING_LEVEL[outcome] == "MEDIUM" else self.high


@dataclass(frozen=True)
class PolicyRule:
    id: str
    effect: str
    tools: tuple[str, ...]
    reason: str
    when: Mapping[str, Any] | None = None
    timeout_s: int | None = None
    approvers: Mapping[str, Any] | None = None  # {"quorum": k, "of": [user ids]}

    def matches(self, tool: str, facts: Mapping[str, Any]) -> bool:
        if not any(tool_matches(pattern, tool) for pattern in self.tools):
            return False
        return self.when is None or condition_holds(self.when, facts)


@dataclass(frozen=True)
class PolicyDecision:
    """The policy's verdict on one action.

    ``timeout_s`` is set only for the pending outcomes (``require_approval``,
    ``require_step_up``); the caller may shorten it further (an agent's own
    ``timeout_s``), never lengthen it. ``approvers`` is the quorum the pending
    action needs (``{"quorum": k, "of": [sorted user ids]}``), or ``None`` when
    the owner alone decides.
    """

    outcome: str
    rule_id: str | None
    reason: str
    timeout_s: int | None
    on_expiry: str
    approvers: dict[str, Any] | None = None


@dataclass(frozen=True)
class Policy:
    """A validated policy. Build it with :meth:`from_payload`; treat it as read-only."""

    policy_id: str
    version: int
    description: str
    thresholds: Thresholds
    timeouts: Timeouts
    overrides: tuple[dict[str, Any], ...]
    rules: tuple[PolicyRule, ...]
    digest: str
    payload: dict[str, Any]

    @classmethod
    def from_payload(cls, payload: Any) -> Policy:
        """Validate ``payload`` strictly; raise :class:`PolicyRejected` listing every problem."""
        errors = validate_payload(payload)
        if errors:
            raise PolicyRejected(
                f"policy payload is invalid ({len(errors)} problem(s))", errors=errors
            )
        payload = copy.deepcopy(payload)
        t, o = payload["thresholds"], payload["timeouts"]
        rules = tuple(
            PolicyRule(
                id=r["id"],
                effect=r["effect"],
                tools=tuple(r["tools"]),
                reason=r["reason"],
                when=r.get("when"),
                timeout_s=r.get("timeout_s"),
                approvers=r.get("approvers"),
            )
            for r in payload["rules"]
        )
        return cls(
            policy_id=payload["policy_id"],
            version=payload["version"],
            description=payload.get("description", ""),
            thresholds=Thresholds(t["approval"], t["step_up"]),
            timeouts=Timeouts(o["MEDIUM"], o["HIGH"], o["max"], o["on_expiry"]),
            overrides=tuple(payload.get("overrides", [])),
            rules=rules,
            digest=sha256_digest(payload),
            payload=payload,
        )


# --------------------------------------------------------------------------- evaluation


def action_facts(bundle: ActionFacts, risk: RiskFacts, agent: str | None = None) -> dict[str, Any]:
    """The flat view conditions read (``docs/policy.md`` lists the field paths).

    ``agent`` is the authenticated agent's subject (the token's ``sub``); ``server`` is
    the MCP server the agent *claims* (unverified), so a policy can pin which servers an
    agent may claim.
    """
    return {
        "tool": bundle.tool,
        "service": bundle.service,
        "operation": bundle.operation,
        "resource": bundle.resource,
        "framework": bundle.framework,
        "session_id": bundle.session_id,
        "arguments": bundle.arguments,
        "context": bundle.context,
        "risk.score": risk.score,
        "risk.level": risk.level,
        "risk.category": risk.category,
        "server": getattr(bundle, "server", None),
        "agent": agent,
    }


def baseline(policy: Policy, risk: RiskFacts) -> tuple[str, str]:
    """Outcome the risk alone calls for under this policy's thresholds, and why."""
    score, level = risk.score, risk.level
    if risk.forced_high:
        return REQUIRE_STEP_UP, (
            f"{risk.category} actions are always high risk: step-up "
            "authentication and approval are required"
        )
    if score >= policy.thresholds.step_up:
        return REQUIRE_STEP_UP, (
            f"risk score {score} ({level}) is at or above the step-up "
            f"threshold {policy.thresholds.step_up}"
        )
    if score >= policy.thresholds.approval:
        return REQUIRE_APPROVAL, (
            f"risk score {score} ({level}) is at or above the approval "
            f"threshold {policy.thresholds.approval}"
        )
    return ALLOW, f"risk score {score} ({level}) is below the approval threshold"


def evaluate(
    policy: Policy, bundle: ActionFacts, risk: RiskFacts, agent: str | None = None
) -> PolicyDecision:
    """Decide one action: any matching deny wins, else the most severe requirement.

    Deterministic and total: it reads only its arguments and never raises on
    odd argument values (conditions treat mismatches as false). ``agent`` is the
    authenticated agent's subject, the ``agent`` field of conditions.
    """
    facts = action_facts(bundle, risk, agent)
    matched = [rule for rule in policy.rules if rule.matches(bundle.tool, facts)]
    base, base_reason = baseline(policy, risk)
    if (
        base == REQUIRE_APPROVAL
        and not risk.forced_high
        and any(rule.effect == ALLOW for rule in matched)
    ):
        base = ALLOW  # an explicit allow rule may waive a score-based approval only
    outcome = max(
        [base] + [r.effect for r in matched if r.effect != ALLOW], key=SEVERITY.__getitem__
    )
    named = next((r for r in matched if r.effect == outcome), None)
    reason = named.reason if named else base_reason
    if (server := facts["server"]) is not None:
        reason += f" (MCP server {server!r} as claimed by the agent, not verified)"
    timeout = None
    if outcome in PENDING_LEVEL:
        # every matching hold rule may shorten the wait; the strictest wins
        candidates = [policy.timeouts.for_outcome(outcome), policy.timeouts.max]
        candidates += [r.timeout_s for r in matched if r.timeout_s is not None]
        timeout = min(candidates)
    approvers = None
    if outcome in PENDING_LEVEL:
        quorum_rules = [r for r in matched if r.effect in PENDING_LEVEL and r.approvers is not None]
        if quorum_rules:
            approvers = combine_quorums(quorum_rules)
            if approvers is None:
                return _unsatisfiable(policy, quorum_rules)
    return PolicyDecision(
        outcome=outcome,
        rule_id=named.id if named else None,
        reason=reason,
        timeout_s=timeout,
        on_expiry=policy.timeouts.on_expiry,
        approvers=approvers,
    )


def combine_quorums(rules: list[PolicyRule]) -> dict[str, Any] | None:
    """The one quorum satisfying every matching quorum rule, or ``None`` if none can.

    Every rule must be satisfied by the same approvals, so an approver counts only
    if every rule names them (the intersection of the ``of`` lists, sorted by code
    point) and the quorum is the highest ``k``. When fewer people are named by all
    rules than that ``k``, no set of approvals could ever satisfy them all.
    """
    # the ignores below: every rule passed here has approvers (evaluate filters them)
    names = set(rules[0].approvers["of"])  # type: ignore[index]
    for rule in rules[1:]:
        names &= set(rule.approvers["of"])  # type: ignore[index]
    quorum = max(rule.approvers["quorum"] for rule in rules)  # type: ignore[index]
    if quorum > len(names):
        return None
    return {"quorum": quorum, "of": sorted(names)}


def _unsatisfiable(policy: Policy, rules: list[PolicyRule]) -> PolicyDecision:
    # Fail closed: holding an action nobody can approve would only end in expiry.
    # (the rules are combine_quorums' rules: each has approvers)
    strictest = max(rules, key=lambda r: r.approvers["quorum"])  # type: ignore[index]
    ids = ", ".join(r.id for r in rules)
    return PolicyDecision(
        outcome=DENY,
        rule_id=strictest.id,
        timeout_s=None,
        on_expiry=policy.timeouts.on_expiry,
        reason=f"the approver quorums of rules {ids} cannot all be met: "
        "too few approvers are named by every one of them",
    )
