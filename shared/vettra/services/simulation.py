"""Threat simulation: the write-up's five scenarios and a prompt injection, run for real.

The scenarios are data (``vettra/data/scenarios.json``): each is an action bundle an
agent might send and what Vettra should answer. Running one intercepts it exactly
as ``POST /api/actions/intercept`` would (policy, risk, audit, deadline, live events),
as the agent :data:`SIM_AGENT` acting for the caller, so the held ones land in the
caller's own queue to be decided there. That agent has no token: nobody can fetch a
credential for a simulated action. The answer says what the scenario expects and
whether the server did that.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any, Required, TypedDict

from ..domain.identity import ADMIN, AGENT, APPROVER, Principal
from . import actions
from .deps import Deps

SIM_AGENT = "vettra-threat-simulation"
RESOURCE = "data/scenarios.json"


class PlainBundle(TypedDict, total=False):
    """The plain action bundle a scenario intercepts (docs/api.md; ``tool`` is required)."""

    tool: Required[str]
    arguments: dict[str, Any]
    resource: str
    context: dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class ScenarioOutcome:
    """What the server answered for a scenario, or what it should answer."""

    status: str
    level: str
    step_up_required: bool = False

    @classmethod
    def of(cls, view: dict[str, Any]) -> ScenarioOutcome:
        return cls(
            status=view["status"],
            level=view["risk"]["level"],
            step_up_required=view["step_up_required"],
        )


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One threat to show: the bundle an agent sends, and what Vettra should do with it."""

    name: str
    title: str
    threat: str
    bundle: PlainBundle
    expect: ScenarioOutcome

    def brief(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "title": self.title,
            "threat": self.threat,
            "tool": self.bundle["tool"],
            "expected": asdict(self.expect),
        }


def load(text: str) -> tuple[Scenario, ...]:
    """The scenarios of a ``scenarios.json`` document, every field checked."""
    doc = json.loads(text)
    if doc.get("version") != 1:
        raise ValueError(f"{RESOURCE}: version must be 1, found {doc.get('version')!r}")
    loaded = []
    for raw in doc["scenarios"]:
        expect = raw["expect"]
        loaded.append(
            Scenario(
                name=str(raw["name"]),
                title=str(raw["title"]),
                threat=str(raw["threat"]),
                bundle=raw["bundle"],
                expect=ScenarioOutcome(
                    status=str(expect["status"]),
                    level=str(expect["level"]),
                    step_up_required=bool(expect.get("step_up_required", False)),
                ),
            )
        )
    names = [s.name for s in loaded]
    if len(set(names)) != len(names):
        raise ValueError(f"{RESOURCE}: scenario names repeat: {names}")
    return tuple(loaded)


#: The write-up's five scenarios and a prompt injection (``vettra/data/scenarios.json``).
SCENARIOS = load(resources.files("vettra").joinpath(RESOURCE).read_text(encoding="utf-8"))
BY_NAME = {s.name: s for s in SCENARIOS}


def catalogue() -> dict[str, Any]:
    return {"scenarios": [s.brief() for s in SCENARIOS]}


def run(deps: Deps, principal: Principal, name: str) -> dict[str, Any]:
    """Intercept scenario ``name`` as :data:`SIM_AGENT` acting for the caller."""
    principal.require(APPROVER, ADMIN)
    scenario = BY_NAME[name]  # the route's schema admits only known names
    agent = Principal(sub=SIM_AGENT, role=AGENT, user=principal.user, tenant=principal.tenant)
    result = actions.intercept(deps, agent, dict(scenario.bundle))
    view = result.action.view(deps.clock.now())
    got = ScenarioOutcome.of(view)
    return {
        **scenario.brief(),
        "outcome": asdict(got),
        "as_expected": got == scenario.expect,
        "action": view,
    }
