"""What the policy evaluator and the risk scorer read, as plain test values, and the check of
one ``evaluate`` vector (``tests/vectors/policy``, shared with the Rust/WASM evaluator)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vettra.domain.action_bundle import ActionBundle
from vettra.domain.policy import Policy, evaluate


@dataclass(frozen=True)
class Bundle:
    """A plain action bundle value: the fields evaluation and scoring read, service and
    operation taken from the tool's name."""

    tool: str
    arguments: dict[str, Any] = field(default_factory=dict)
    framework: str | None = "plain"
    session_id: str | None = None
    resource: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def service(self) -> str:
        return self.tool.partition(".")[0]

    @property
    def operation(self) -> str:
        return self.tool.partition(".")[2]


@dataclass(frozen=True)
class Risk:
    score: int
    level: str
    category: str
    forced_high: bool = False


def vector_bundle(fields: dict[str, Any]) -> ActionBundle:
    """A vector's bundle (every field the evaluator reads, spelled out) as the real type;
    what evaluation does not read is left empty."""
    return ActionBundle(**fields, timeout_s=None, call_id=None, args_digest="")


def check_evaluate_vector(doc: dict, case: dict, *also: str) -> None:
    """``case`` decided under ``doc``'s policy gives the outcome, rule, timeout and expiry it
    wants (and the decision fields named in ``also``), with its reason when it names one."""
    decision = evaluate(
        Policy.from_payload(doc["policy"]),
        vector_bundle(case["bundle"]),
        Risk(**case["risk"]),
        agent=case.get("agent"),
    )
    want = case["want"]
    names = ("outcome", "rule_id", "timeout_s", "on_expiry", *also)
    got = {name: getattr(decision, name) for name in names}
    assert got == {k: want[k] for k in got}
    if "reason" in want:
        assert decision.reason == want["reason"]
