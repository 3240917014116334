"""The Python reference verifier: risk.assess, then policy.evaluate, in process.

It is the specification the WASM verifier (``wasm-verifier/``) is held to, and the
verifier in use whenever the module is missing, refuses to load, or fails its
self-test at boot (``vettra.adapters.wasm_verifier.load``).
"""

from __future__ import annotations

from typing import Any

from ..domain.policy import Policy, PolicyDecision, evaluate
from ..domain.risk import RiskAssessment, assess
from ..ports import Verifier

PYTHON = "python"


class ReferenceVerifier(Verifier):
    name = PYTHON

    def decide(
        self, policy: Policy, bundle: Any, catalogue: Any, agent: str | None
    ) -> tuple[RiskAssessment, PolicyDecision]:
        risk = assess(bundle, catalogue, overrides=policy.overrides)
        return risk, evaluate(policy, bundle, risk, agent=agent)
