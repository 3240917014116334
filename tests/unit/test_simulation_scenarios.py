"""The threat-simulation scenarios are data (vettra/data/scenarios.json), read and checked."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from vettra.domain.action_bundle import parse_bundle
from vettra.services import simulation


def _doc() -> dict:
    text = resources.files("vettra").joinpath(simulation.RESOURCE).read_text("utf-8")
    return json.loads(text)


def test_every_scenario_is_a_bundle_intercept_accepts() -> None:
    for scenario in simulation.SCENARIOS:
        bundle = parse_bundle(dict(scenario.bundle))
        assert bundle.tool == scenario.bundle["tool"]
        assert scenario.expect.status in {"allowed", "pending", "denied"}
        assert scenario.expect.level in {"LOW", "MEDIUM", "HIGH"}


def test_a_brief_shows_what_is_expected_not_the_arguments() -> None:
    brief = simulation.BY_NAME["charge-500"].brief()
    assert brief["expected"] == {"status": "pending", "level": "HIGH", "step_up_required": True}
    assert "arguments" not in brief and "bundle" not in brief


def test_an_unknown_version_is_refused() -> None:
    doc = _doc() | {"version": 2}
    with pytest.raises(ValueError, match="version must be 1"):
        simulation.load(json.dumps(doc))


def test_repeated_names_are_refused() -> None:
    doc = _doc()
    doc["scenarios"].append(doc["scenarios"][0])
    with pytest.raises(ValueError, match="names repeat"):
        simulation.load(json.dumps(doc))


def test_a_missing_field_is_refused() -> None:
    doc = _doc()
    del doc["scenarios"][0]["expect"]
    with pytest.raises(KeyError):
        simulation.load(json.dumps(doc))
