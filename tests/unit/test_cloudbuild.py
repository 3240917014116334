"""cloudbuild.yaml: every step runs something that exists in this tree.

Cloud Build cannot run here, so the file is read as Cloud Build reads it (YAML) and
held to what it names: Makefile targets it calls exist, folders it enters exist or are
tested for first (web/ and wasm-verifier/ arrive with later work), substitutions are
declared and used, Terraform only plans unless told to apply and gets every
variable that has no default, and the steps wait for what they consume.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import hcl2
import yaml

REPO = Path(__file__).resolve().parents[2]
BUILD = yaml.safe_load((REPO / "cloudbuild.yaml").read_text())
STEPS: dict[str, dict[str, Any]] = {step["id"]: step for step in BUILD["steps"]}
#: the top-level folders DESIGN.md fixes; a step may name one only if it exists or is guarded
TOP_FOLDERS = ("functions", "shared", "web", "wasm-verifier", "terraform", "tests")
#: Cloud Build's own substitutions
BUILT_IN = {"PROJECT_ID", "BUILD_ID", "PROJECT_NUMBER", "LOCATION", "COMMIT_SHA", "SHORT_SHA"}


def _script(step: dict[str, Any]) -> str:
    return "\n".join(str(a) for a in step.get("args", []))


def _make_targets() -> set[str]:
    text = (REPO / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", text, re.MULTILINE))


def test_steps_have_unique_ids_and_wait_for_real_steps() -> None:
    ids = [step["id"] for step in BUILD["steps"]]
    assert len(ids) == len(set(ids)), ids
    for step in BUILD["steps"]:
        for dep in step.get("waitFor", []):
            assert dep == "-" or dep in STEPS, (step["id"], dep)
        image = step["name"]
        assert ":" in image and not image.endswith(":latest"), f"pin a tag: {image}"


def test_make_calls_name_makefile_targets() -> None:
    targets = _make_targets()
    called = {
        t for step in STEPS.values() for t in re.findall(r"\bmake\s+([\w.-]+)", _script(step))
    }
    assert {"test", "functions-bundle"} <= called, called
    assert called <= targets, f"not in the Makefile: {sorted(called - targets)}"
    assert _script(STEPS["test"]).strip().endswith("make test")  # the README's test command


def test_folders_exist_or_are_tested_for_first() -> None:
    for step_id, step in STEPS.items():
        script = _script(step)
        for folder in TOP_FOLDERS:
            if not re.search(rf"(?<![\w/-]){re.escape(folder)}/", script):
                continue
            if (REPO / folder).is_dir():
                continue
            guard = rf"\[\s+-[fd]\s+{re.escape(folder)}/"
            assert re.search(guard, script), f"step {step_id} uses {folder}/ unguarded"
    assert "-chdir=terraform" in _script(STEPS["terraform"]) and (REPO / "terraform").is_dir()


def test_substitutions_are_declared_and_used() -> None:
    declared = set(BUILD["substitutions"])
    text = (REPO / "cloudbuild.yaml").read_text()
    body = text.split("\nsteps:", 1)[1]
    used = set(re.findall(r"(?<!\$)\$\{?(_[A-Z0-9_]+)", body))
    plain = set(re.findall(r"(?<!\$)\$\{?([A-Z][A-Z0-9_]+)\b", body)) - used
    assert used == declared, (used, declared)
    assert plain <= BUILT_IN, f"unknown substitutions (shell variables need $$): {plain - BUILT_IN}"


def test_terraform_plans_unless_asked_to_apply() -> None:
    assert BUILD["substitutions"]["_TF_ACTION"] == "plan"
    script = _script(STEPS["terraform"])
    plan = script.index("terraform -chdir=terraform plan")
    guard = script.index('if [ "${_TF_ACTION}" = "apply" ]')
    apply = script.index("terraform -chdir=terraform apply")
    assert plan < guard < apply
    assert "apply -input=false tfplan" in script  # applies exactly what was planned
    hosting = _script(STEPS["hosting"])
    assert hosting.index('if [ "${_TF_ACTION}" = "apply" ]') < hosting.index(
        "--config firebase.deploy.json deploy"
    )


def test_hosting_deploys_the_dashboard_in_cloud_mode_from_terraform_s_settings() -> None:
    """Terraform's dashboard_config output is rendered into config.js and the CSP
    (web/scripts/dist.mjs, tests/unit/test_dashboard_dist.py) before the deploy, which
    sends the rendered firebase.deploy.json."""
    terraform = _script(STEPS["terraform"])
    assert "output -json dashboard_config > dashboard_config.json" in terraform
    hosting = _script(STEPS["hosting"])
    render = hosting.index(
        "node web/scripts/dist.mjs --config dashboard_config.json --firebase-out firebase.deploy.json"
    )
    assert render < hosting.index("--config firebase.deploy.json target:apply")
    assert render < hosting.index("--config firebase.deploy.json deploy --only hosting:dashboard")
    assert "terraform" in STEPS["hosting"]["waitFor"]


def test_terraform_gets_every_variable_without_a_default() -> None:
    with open(REPO / "terraform" / "variables.tf") as f:
        variables = {}
        for block in hcl2.load(f)["variable"]:
            variables.update({k.strip('"'): v for k, v in block.items()})
    required = {name for name, body in variables.items() if "default" not in body}
    env = {e.split("=", 1)[0] for e in STEPS["terraform"]["env"]}
    given = {e.removeprefix("TF_VAR_") for e in env if e.startswith("TF_VAR_")}
    assert required <= given, f"terraform would prompt for {sorted(required - given)}"
    assert given <= set(variables), sorted(given - set(variables))


def _before(first: str, then: str) -> bool:
    """``then`` (transitively) waits for ``first``."""
    seen, todo = set(), [then]
    while todo:
        step = todo.pop()
        waits = STEPS[step].get("waitFor")
        if waits is None:  # no waitFor: after every earlier step
            order = list(STEPS)
            waits = order[: order.index(step)]
        for dep in waits:
            if dep == first:
                return True
            if dep != "-" and dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return False


def test_steps_wait_for_what_they_consume() -> None:
    assert _before("test", "functions-bundle")  # nothing untested is deployed
    assert _before("functions-bundle", "terraform")  # it zips build/functions
    assert _before("wasm-verifier", "functions-bundle")  # a built verifier ships in the bundle
    assert _before("terraform", "hosting") and _before("dashboard", "hosting")


def test_hosting_deploys_with_the_firebase_tools_the_tests_run() -> None:
    """The deploy's firebase-tools is the release tests/auth_emulator locks, and the README's
    manual commands use the same one: no untested CLI between a green run and production."""
    import json

    locked = json.loads((REPO / "tests" / "auth_emulator" / "package.json").read_text())
    wanted = locked["devDependencies"]["firebase-tools"]
    for text, where in (
        (_script(STEPS["hosting"]), "cloudbuild.yaml"),
        ((REPO / "README.md").read_text(), "README.md"),
    ):
        used = set(re.findall(r"firebase-tools@(\S+)", text))
        assert used == {wanted}, f"{where} runs firebase-tools {used}, the tests lock {wanted}"
