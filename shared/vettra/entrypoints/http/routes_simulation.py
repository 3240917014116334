"""Threat simulation routes: the scenarios, and running one for the caller
(:mod:`vettra.services.simulation`). Group ``simulate`` (local mode for now: no Cloud
Functions target serves it)."""

from __future__ import annotations

from typing import Any

from ...domain.identity import ADMIN, APPROVER, Principal
from ...services import simulation
from . import schemas
from .app import Route
from .types import Request, Response

GROUP = "simulate"
ROLES = (APPROVER, ADMIN)
EXPECTATION = {
    "type": "object",
    "required": ["status", "level", "step_up_required"],
    "properties": {
        "status": schemas.STATUS,
        "level": schemas.LEVEL,
        "step_up_required": {"type": "boolean"},
    },
}
_BRIEF = {
    "scenario": {"type": "string"},
    "title": {"type": "string"},
    "threat": {"type": "string"},
    "tool": {"type": "string"},
    "expected": EXPECTATION,
}
SIMULATION_LIST = schemas.register(
    "SIMULATION_LIST",
    {
        "type": "object",
        "required": ["scenarios"],
        "properties": {
            "scenarios": {
                "type": "array",
                "items": {"type": "object", "required": list(_BRIEF), "properties": _BRIEF},
            }
        },
    },
)
SIMULATION_REQUEST = schemas.register(
    "SIMULATION_REQUEST",
    {
        "type": "object",
        "required": ["scenario"],
        "additionalProperties": False,
        "properties": {"scenario": {"type": "string", "enum": list(simulation.BY_NAME)}},
    },
)
SIMULATION_RUN = schemas.register(
    "SIMULATION_RUN",
    {
        "type": "object",
        "required": [*_BRIEF, "outcome", "as_expected", "action"],
        "properties": {
            **_BRIEF,
            "outcome": EXPECTATION,
            "as_expected": {"type": "boolean"},
            "action": {"$ref": "#/components/schemas/ACTION"},
        },
    },
)


def scenarios(deps: Any, request: Request, principal: Principal | None) -> Response:
    return Response.json(simulation.catalogue())


def run(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("SIMULATION_REQUEST", request.json())
    return Response.json(simulation.run(deps, principal, body["scenario"]), status=201)


SIMULATION_ROUTES: list[Route] = [
    Route(
        "GET",
        "/api/simulations",
        scenarios,
        ROLES,
        "The threat-simulation scenarios and what each should give",
        "listSimulations",
        GROUP,
        response="SIMULATION_LIST",
    ),
    Route(
        "POST",
        "/api/simulations",
        run,
        ROLES,
        "Run one scenario: intercepted for real as the simulation agent acting for you",
        "runSimulation",
        GROUP,
        request="SIMULATION_REQUEST",
        response="SIMULATION_RUN",
        created=True,
    ),
]
