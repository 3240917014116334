"""terraform/ without a terraform binary: python-hcl2 parses it, checkov scans it.

No provider can be downloaded here (TOOLCHAIN.md), so ``terraform validate`` cannot
run; instead:

- every ``.tf`` file parses (python-hcl2), every variable and output has a
  description, and docs/terraform.md names each of them;
- every target of ``functions/main.py`` has a function (``local.functions``, the
  ``for_each`` of ``google_cloudfunctions2_function.fn``, entry point = the key) and
  every function a target;
- the wiring docs/cloud.md fixes: the environment variables, the topics, subscriptions and
  dead letters, the secret files, internal ingress for the two non-HTTP callers, and
  least privilege where a mistake would matter most;
- firebase.json sends every API route to the function of its group;
- checkov (PyPI, in a venv of its own under ``.cache/``: it pins versions that clash
  with the test extra and ships its own ``hcl2`` module) finds no failed check, every
  skip says why beside it, no skip is stale, and the function checks were evaluated
  at all (a check checkov cannot resolve is silently dropped).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
import pytest

from vettra.entrypoints.http.routes import ROUTES

from ..function_targets import targets
from ..venvs import VenvFailed, private_venv

REPO = Path(__file__).resolve().parents[2]
TERRAFORM = REPO / "terraform"
DOC = REPO / "docs" / "terraform.md"
CHECKOV = "checkov==3.3.30"
CHECKOV_VENV = Path(os.environ.get("VETTRA_CHECKOV_VENV", REPO / ".cache" / "checkov-venv"))

#: docs/cloud.md's environment (Config.from_env reads these; Terraform sets them)
CLOUD_ENV = {
    "VETTRA_BACKEND",
    "VETTRA_PROJECT",
    "VETTRA_SECRETS_DIR",
    "VETTRA_EVENTS_TOPIC",
    "VETTRA_SEQUENCE_TOPIC",
    "VETTRA_TASKS_QUEUE",
    "VETTRA_TASKS_URL",
    "VETTRA_TASKS_INVOKER",
    "VETTRA_AUTH0_ISSUER",
    "VETTRA_AUTH0_AUDIENCE",
    "VETTRA_AUTH0_CLIENT_ID",
}
OPTIONAL_ENV = {"VETTRA_AUTH0_JWKS_URL", "VETTRA_LOG_LEVEL", "VETTRA_VAULT_REDIRECT_URI"}
#: docs/cloud.md's secret files, and the Auth0 client secret
SECRET_FILES = {
    "audit-hmac-key",
    "checkpoint-signing-key",
    "data-key",
    "policy-trusted-keys",
    "policy-signing-key",
    "auth0-client-secret",
    "receipt-signing-key",
}
#: route groups whose function is not the group's name (functions/main.py)
GROUP_TARGET = {"tasks": "expire"}
#: route groups no function serves over HTTP from outside
# local-only groups (no function): the dashboard's sign-in links and sessions of
# `vettra dev` (the cloud signs in with Auth0) and the threat simulation
NOT_BEHIND_HOSTING = {"tasks", "events", "dashboard", "simulate"}


def _lit(value: Any) -> Any:
    """python-hcl2 keeps the quotes of string literals: drop them, recursively."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if isinstance(value, list):
        return [_lit(v) for v in value]
    if isinstance(value, dict):
        return {_lit(k): _lit(v) for k, v in value.items() if not k.startswith("__")}
    return value


@cache
def _documents() -> dict[str, dict[str, Any]]:
    docs = {}
    for path in sorted(TERRAFORM.glob("*.tf")):
        with open(path) as f:
            docs[path.name] = hcl2.load(f)
    return docs


def _blocks(kind: str) -> dict[str, Any]:
    """Top-level blocks of one kind (``variable``, ``output``) by name, all files."""
    out: dict[str, Any] = {}
    for doc in _documents().values():
        for block in doc.get(kind, []):
            out.update(_lit(block))
    return out


def _resources() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for doc in _documents().values():
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    out[(_lit(rtype), _lit(name))] = body
    return out


def _locals() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for doc in _documents().values():
        for block in doc.get("locals", []):
            out.update(block)
    return out


def _functions() -> dict[str, dict[str, Any]]:
    """``local.functions``: each entry is ``merge(local.function_defaults, {its own})``."""
    found = _locals()
    defaults = _lit(found["function_defaults"])
    out = {}
    for name, expression in found["functions"].items():
        own = re.fullmatch(r"\$\{merge\(local\.function_defaults, (\{.*\})\)\}", expression, re.S)
        assert own, f"local.functions.{name} is not merge(local.function_defaults, {{...}})"
        out[name] = defaults | _own_settings(own.group(1))
    return out


def _own_settings(literal: str) -> dict[str, Any]:
    settings = _lit(hcl2.loads(f"own = {literal}\n")["own"])
    assert "ingress" in settings, f"who may reach it is never a default: {settings}"
    return settings


def test_functions_get_no_privilege_by_default() -> None:
    """A function may touch only what its entry names; who may reach it is never a default."""
    defaults = _lit(_locals()["function_defaults"])
    assert "ingress" not in defaults
    assert (
        defaults["firestore"] == "" and defaults["acts_as"] is False and defaults["signs"] is False
    )
    assert defaults["publishes"] == defaults["queue_roles"] == defaults["secrets"] == []
    assert {fn["ingress"] for fn in _functions().values()} <= {"ALLOW_ALL", "ALLOW_INTERNAL_ONLY"}


def test_every_tf_file_parses() -> None:
    names = sorted(_documents())
    assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf"} <= set(names), names
    assert all(_documents()[n] for n in names)


def test_variables_and_outputs_are_documented() -> None:
    doc = DOC.read_text()
    for kind in ("variable", "output"):
        blocks = _blocks(kind)
        assert blocks, kind
        for name, body in blocks.items():
            assert len(body.get("description", "")) > 20, f"{kind} {name} has no description"
            assert f"`{name}`" in doc, f"docs/terraform.md does not describe {kind} {name}"


def test_every_target_has_a_function_and_every_function_a_target() -> None:
    defined = targets()
    functions = _functions()
    resource = _resources()[("google_cloudfunctions2_function", "fn")]
    assert resource["for_each"] == "${local.functions}"
    assert resource["build_config"][0]["entry_point"] == "${each.key}"
    without_function = sorted(set(defined) - set(functions))
    without_target = sorted(set(functions) - set(defined))
    assert not without_function and not without_target, (
        f"functions/main.py targets with no function in terraform/main.tf: {without_function}; "
        f"functions in terraform/main.tf (local.functions) with no target in functions/main.py: "
        f"{without_target}. docs/cloud.md's list is health, intercept, approve, actions, "
        "audit, policy, expire, approvals, sequence (Pub/Sub), auth and vault."
    )


def test_triggers_match_the_targets_signatures() -> None:
    """A CloudEvent target gets the Pub/Sub trigger; an HTTP one none."""
    defined = targets()
    for name, fn in _functions().items():
        if name in defined:
            assert (fn["trigger"] != "") == (defined[name] == "cloudevent"), (name, fn, defined)
    assert _functions()["sequence"]["trigger"] == "sequence"


def test_only_http_api_functions_are_reachable_from_outside() -> None:
    functions = _functions()
    internal = {n for n, fn in functions.items() if fn["ingress"] == "ALLOW_INTERNAL_ONLY"}
    assert internal == {"expire", "sequence"}
    assert {fn["ingress"] for n, fn in functions.items() if n not in internal} == {"ALLOW_ALL"}
    public = _resources()[("google_cloud_run_v2_service_iam_member", "public")]
    assert 'fn.ingress == "ALLOW_ALL"' in public["for_each"] and public["member"] == '"allUsers"'
    internal_invoker = _resources()[("google_cloud_run_v2_service_iam_member", "internal_invoker")]
    assert _lit(internal_invoker["for_each"]) == {
        "expire": "tasks-invoker",
        "sequence": "sequence-trigger",
    }
    assert internal_invoker["member"] == "${google_service_account.system[each.value].member}"


def test_least_privilege_where_it_matters() -> None:
    functions = _functions()
    declared = set(re.findall(r'"([a-z0-9-]+)"\s*=', _locals()["secrets"]))
    assert declared == SECRET_FILES, declared
    mounting: dict[str, set[str]] = {}
    for name, fn in functions.items():
        assert set(fn["secrets"]) <= declared, (name, fn["secrets"])
        for file in fn["secrets"]:
            mounting.setdefault(file, set()).add(name)
    # who seals and verifies the log holds its keys; nobody else
    assert mounting["audit-hmac-key"] == mounting["checkpoint-signing-key"] == {"audit", "sequence"}
    # TOTP seeds are opened by step-up, stored provider tokens by credential release
    assert mounting["data-key"] == {"approvals", "vault"}
    assert mounting["receipt-signing-key"] == {"vault"}
    assert "policy-signing-key" not in mounting  # only with ship_default_policy
    assert functions["health"]["secrets"] == [] and functions["health"]["firestore"] == (
        "roles/datastore.viewer"
    )
    assert {n for n, fn in functions.items() if fn["signs"]} == {"auth"}
    assert functions["auth"]["firestore"] == ""
    assert {n for n, fn in functions.items() if fn["acts_as"]} == {"intercept", "expire"}
    creators = {
        n for n, fn in functions.items() if "roles/cloudtasks.enqueuer" in fn["queue_roles"]
    }
    assert creators == {"intercept", "expire"}
    for fn in functions.values():
        assert not any("admin" in role or "owner" in role for role in fn["queue_roles"])
        assert fn["firestore"] in ("", "roles/datastore.viewer", "roles/datastore.user")
    mounted = _resources()[("google_secret_manager_secret_iam_member", "mounted")]
    assert mounted["for_each"] == "${local.secret_grants}"
    assert "local.mounts" in _locals()["secret_grants"]  # accessor exactly where mounted


def test_environment_is_cloud_md_s() -> None:
    env = set(re.findall(r"\b(VETTRA_[A-Z0-9_]+)\s*=", _locals()["environment"]))
    assert CLOUD_ENV <= env, f"not set: {sorted(CLOUD_ENV - env)}"
    assert env <= CLOUD_ENV | OPTIONAL_ENV, f"not in docs/cloud.md: {sorted(env - CLOUD_ENV)}"
    assert 'VETTRA_BACKEND = "firestore"' in _locals()["environment"]
    assert _lit(_locals()["secrets_dir"]).startswith("/")


def test_topics_subscriptions_and_dead_letters() -> None:
    assert _lit(_locals()["topics"]) == {"events": "vettra-events", "sequence": "vettra-sequence"}
    res = _resources()
    # one resource holds the topics and their dead-letter topics "<topic>-dlq"
    assert res[("google_pubsub_topic", "main")]["for_each"] == "${local.topics_and_dead_letters}"
    both = re.sub(r"\s+", " ", _locals()["topics_and_dead_letters"])
    assert '"${key}-dlq" => "${name}-dlq"' in both and "local.topics" in both, both
    sub = res[("google_pubsub_subscription", "main")]
    assert _lit(sub["name"]) == "${each.value}-sub"
    policy = sub["dead_letter_policy"][0]
    assert policy["dead_letter_topic"] == '${google_pubsub_topic.main["${each.key}-dlq"].id}'
    assert 5 <= policy["max_delivery_attempts"] <= 100
    # the Pub/Sub service agent may publish dead letters and ack the originals
    agent = '${google_project_service_identity.agent["pubsub.googleapis.com"].member}'
    for key, role in (
        (("google_pubsub_topic_iam_member", "dead_letter_publisher"), "roles/pubsub.publisher"),
        (
            ("google_pubsub_subscription_iam_member", "dead_letter_subscriber"),
            "roles/pubsub.subscriber",
        ),
    ):
        assert res[key]["member"] == agent and _lit(res[key]["role"]) == role
    # dead letters are kept somewhere (a topic with no subscription drops them)
    assert res[("google_pubsub_subscription", "dead_letter")]["topic"] == (
        '${google_pubsub_topic.main["${each.key}-dlq"].id}'
    )


def test_expiry_queue_retries_and_its_invoker() -> None:
    res = _resources()
    retry = _lit(res[("google_cloud_tasks_queue", "expire")]["retry_config"][0])
    assert retry["max_attempts"] > 1 and retry["max_retry_duration"].endswith("s")
    env = re.sub(r"\s+", " ", _locals()["environment"])
    assert 'VETTRA_TASKS_INVOKER = google_service_account.system["tasks-invoker"].email' in env
    assert "VETTRA_TASKS_URL = local.expire_url" in env
    assert _lit(_locals()["expire_url"]).endswith("/vettra-expire/api/tasks/expire")


def test_repository_files_terraform_reads_exist() -> None:
    """firestore.indexes.json and firestore.rules are read by path from the top level."""
    text = (TERRAFORM / "main.tf").read_text()
    for name in ("firestore.indexes.json", "firestore.rules"):
        assert f'file("${{local.repo_root}}/{name}")' in text, name
    assert (REPO / "firestore.indexes.json").exists()
    assert (REPO / "firestore.rules").exists(), (
        "terraform/main.tf releases firestore.rules (written by the security-rules work, "
        "issue 10 item 6); it fails here until that file is in the tree"
    )


#: the Unicode version of each CPython's unicodedata (its "What's New"; the running
#: interpreter's entry is checked against unicodedata itself below)
CPYTHON_UNIDATA = {
    (3, 11): "14.0.0",
    (3, 12): "15.0.0",
    (3, 13): "15.1.0",
    (3, 14): "16.0.0",
}


def test_the_default_runtime_is_the_python_the_wasm_module_was_built_for() -> None:
    """The bridge uses the module only where ``unicodedata.unidata_version`` is the one its
    tables came from (docs/wasm-verifier.md); a Cloud Functions runtime on another Python
    would run every decision on the Python reference instead."""
    import sys
    import unicodedata

    from vettra.adapters.wasm_verifier import WasmModule, shipped_module

    assert CPYTHON_UNIDATA[sys.version_info[:2]] == unicodedata.unidata_version
    runtime = _blocks("variable")["python_runtime"]["default"]
    match = re.fullmatch(r"python3(\d+)", runtime)
    assert match, runtime
    python = (3, int(match[1]))
    code, _ = shipped_module()
    module = WasmModule(code)
    try:
        built_for = module.request({"op": "info"})["unidata"]
    finally:
        module.close()
    assert CPYTHON_UNIDATA.get(python) == built_for, (
        f"terraform's default python_runtime {runtime} has Unicode "
        f"{CPYTHON_UNIDATA.get(python)}, the committed verifier.wasm was generated from "
        f"Unicode {built_for}: the functions would not use it"
    )


def _glob(pattern: str) -> re.Pattern[str]:
    """Firebase Hosting's glob: ``**`` any path, ``*`` one segment."""
    parts = re.split(r"(\*\*|\*)", pattern)
    rx = "".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts)
    return re.compile(f"^{rx}$")


def test_hosting_rewrites_send_every_route_to_its_group_s_function() -> None:
    hosting = json.loads((REPO / "firebase.json").read_text())["hosting"]
    rewrites = hosting["rewrites"]
    region = _lit(_blocks("variable")["region"]["default"])
    functions = _functions()
    for rule in rewrites:
        if "run" in rule:
            service = rule["run"]["serviceId"]
            assert rule["run"]["region"] == region, rule  # variables.tf's default region
            target = service.removeprefix("vettra-")
            assert functions.get(target, {}).get("ingress") == "ALLOW_ALL", rule
    for route in ROUTES:
        path = re.sub(r"\{[^}]+\}", "x1", route.template)
        rule = next(r for r in rewrites if _glob(r["source"]).match(path))
        served_by = rule.get("run", {}).get("serviceId")
        if route.group in NOT_BEHIND_HOSTING:
            # reaches the health function, which answers 404 problem+json for it
            assert served_by == "vettra-health", (route.template, rule)
        else:
            want = "vettra-" + GROUP_TARGET.get(route.group, route.group)
            assert served_by == want, (route.template, route.group, rule)
    assert rewrites[-1] == {"source": "**", "destination": "/index.html"}
    api_catch_all = [r for r in rewrites if r["source"] == "/api/**"]
    assert api_catch_all and api_catch_all[0]["run"]["serviceId"] == "vettra-health"


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, Any]:
    """One checkov run over terraform/ (terraform and secrets frameworks)."""
    try:
        python = private_venv(CHECKOV_VENV, [CHECKOV])
    except VenvFailed as exc:
        pytest.fail(f"checkov could not be installed from PyPI: {exc}")
    done = subprocess.run(
        [
            str(python.with_name("checkov")),
            "--directory",
            str(TERRAFORM),
            "--framework",
            "terraform",
            "secrets",
            "--skip-download",  # offline: no Prisma Cloud guidelines or policies
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LOG_LEVEL": "WARNING"},
    )
    assert done.returncode in (0, 1), done.stderr[-2000:]  # 1: failed checks, reported below
    report = json.loads(done.stdout)
    runs = report if isinstance(report, list) else [report]
    merged: dict[str, Any] = {"failed": [], "skipped": [], "passed": [], "parsing_errors": []}
    for run in runs:
        results = run.get("results", {})
        merged["failed"] += results.get("failed_checks", [])
        merged["skipped"] += results.get("skipped_checks", [])
        merged["passed"] += results.get("passed_checks", [])
        merged["parsing_errors"] += results.get("parsing_errors", [])
    return merged


def _where(check: dict[str, Any]) -> str:
    start, _ = check.get("file_line_range", [0, 0])
    return f"{check['check_id']} {check['resource']} ({check['file_path']}:{start})"


def test_checkov_finds_no_unexplained_failure(checkov_report) -> None:
    assert not checkov_report["parsing_errors"], checkov_report["parsing_errors"]
    failed = [f"{_where(c)}: {c['check_name']}" for c in checkov_report["failed"]]
    assert not failed, "checkov failed checks (fix, or skip inline with the reason):\n" + (
        "\n".join(failed)
    )
    for check in checkov_report["skipped"]:
        reason = (check.get("check_result") or {}).get("suppress_comment") or ""
        assert len(reason) >= 40 and reason != "No comment provided", (
            f"{_where(check)} is skipped without a reason beside it"
        )


def test_every_checkov_skip_is_used(checkov_report) -> None:
    written = set()
    for path in TERRAFORM.glob("*.tf"):
        written |= set(re.findall(r"#\s*checkov:skip=(CKV2?_[A-Z]+_\d+)", path.read_text()))
    used = {c["check_id"] for c in checkov_report["skipped"]}
    assert written, "no inline skips found: the parser below is broken"
    assert written <= used, f"skips that suppress nothing (remove them): {sorted(written - used)}"


def test_checkov_evaluated_every_function(checkov_report) -> None:
    """CKV_GCP_124 (ingress) resolved on each instance: the scan saw the real values."""
    seen = {
        c["resource"]
        for c in checkov_report["passed"] + checkov_report["skipped"] + checkov_report["failed"]
        if c["check_id"] == "CKV_GCP_124"
    }
    want = {f'google_cloudfunctions2_function.fn["{name}"]' for name in _functions()}
    assert seen == want
