"""firestore.rules on the official Firestore emulator, tested from Node with the Firebase web SDK.

The cases live in tests/rules/rules.test.mjs (npm ``@firebase/rules-unit-testing`` with
``firebase``, run by ``node --test``; ``make install`` runs ``npm ci`` there). Here the
session's emulator is started, the Node suite run against it, and its exit status and
TAP summary checked (its output is shown on failure). Two more checks keep the suite
honest: weakened copies of the rules must make the relevant cases fail, and documents
written by the Python adapter itself (an intercepted action, a session, a TOTP enrolment
with its sealed secret, sequenced audit entries, a policy version, a checkpoint) must be
readable or refused exactly as docs/firestore.md's "Security rules" says.

Skipped loudly, naming what is missing, without the emulator, Node 20+ or the npm packages.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from vettra.adapters.clock import SystemClock
from vettra.adapters.firestore_repos import doc_key, number_key
from vettra.adapters.firestore_store import FirestoreStore
from vettra.adapters.local_keys import LocalKeyStore
from vettra.domain.identity import Principal
from vettra.domain.stepup import StepUpSettings
from vettra.services import actions, inventory, sessions, vault
from vettra.services.deps import Deps
from vettra.services.stepup import PENDING_ENROLMENTS, SEALED, StepUpService

from ..fakes import recording_deps
from ..vault_support import store_token
from .firestore_emulator import FirestoreEmulator

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "firestore.rules"
SUITE_DIR = REPO / "tests" / "rules"
SUITE = "rules.test.mjs"
PACKAGES = ("@firebase/rules-unit-testing", "firebase")
NODE_TIMEOUT_S = 300  # the whole run; each case has TEST_TIMEOUT_MS
TEST_TIMEOUT_MS = 60_000
SEND = {"tool": "gmail.send_message", "arguments": {"to": "bob@example.com", "subject": "hi"}}


@pytest.fixture(scope="session")
def node() -> str:
    """Node 20+ with the suite's npm packages; asked for before the emulator, so a machine
    without them skips without starting one."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Firestore rules tests skipped: node not found on PATH (Node 20+ needed)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = re.match(r"v(\d+)\.", version)
    if major is None or int(major.group(1)) < 20:
        pytest.skip(f"Firestore rules tests skipped: node {version or '?'} is older than 20")
    for package in PACKAGES:
        if not (SUITE_DIR / "node_modules" / package / "package.json").is_file():
            pytest.skip(
                f"Firestore rules tests skipped: npm package {package} is not installed in "
                "tests/rules (run `make install`, or `npm ci` in tests/rules)"
            )
    return node


def run_suite(
    node: str,
    emulator: FirestoreEmulator,
    *,
    env: dict[str, str] | None = None,
    pattern: str | None = None,
) -> subprocess.CompletedProcess[str]:
    command = [node, "--test", "--test-reporter=tap", f"--test-timeout={TEST_TIMEOUT_MS}"]
    if pattern is not None:
        command.append(f"--test-name-pattern={pattern}")
    environment = {
        "PATH": str(Path(node).parent),
        "FIRESTORE_EMULATOR_HOST": emulator.host,
        **(env or {}),
    }
    try:
        return subprocess.run(
            [*command, SUITE],
            cwd=SUITE_DIR,
            env=environment,
            capture_output=True,
            text=True,
            timeout=NODE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as late:
        out = (
            late.stdout.decode(errors="replace") if isinstance(late.stdout, bytes) else late.stdout
        )
        pytest.fail(f"the rules suite ran past {NODE_TIMEOUT_S}s:\n{(out or '')[-20000:]}")


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The TAP trailer's counts (``# pass 32`` ...)."""
    return {k: int(v) for k, v in re.findall(r"^# (\w+) (\d+)$", done.stdout, re.MULTILINE)}


def shown(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout[-20000:]}\n--- stderr\n{done.stderr[-5000:]}"


def test_the_rules_pass_their_suite_on_the_emulator(
    node: str, firestore_emulator: FirestoreEmulator
) -> None:
    done = run_suite(node, firestore_emulator)
    assert done.returncode == 0, shown(done)
    counts = summary(done)
    assert counts.get("fail") == 0 and counts.get("cancelled") == 0, shown(done)
    assert counts.get("pass", 0) >= 30, shown(done)  # the suite ran its cases, not nothing


# (what is weakened, the exact text replaced, its replacement, a case that must then fail)
MUTANTS = [
    (
        "actions without the tenant check",
        "&& resource.data.tenant == tenant()",
        "",
        "another tenant's action is denied",
    ),
    (
        "audit entries of any chain",
        "&& ownTenantKey(chain)\n        && (isAdmin() || resource.data.user == request.auth.uid)",
        "&& (isAdmin() || resource.data.user == request.auth.uid)",
        "an approver reads their own entries by id",
    ),
    (
        "docs of every collection readable by their owner",
        "match /docs/sessions/items/{sessionId}",
        "match /docs/{collection}/items/{sessionId}",
        "step-up documents",
    ),
    (
        "client writes allowed",
        "allow read, write: if false;",
        "allow read: if false; allow write: if request.auth != null;",
        "update, overwrite and delete of every seeded document are denied",
    ),
]


@pytest.mark.parametrize(
    "what, old, new, failing", MUTANTS, ids=[m[0].replace(" ", "-") for m in MUTANTS]
)
def test_weakened_rules_fail_the_suite(
    node: str,
    firestore_emulator: FirestoreEmulator,
    tmp_path: Path,
    what: str,
    old: str,
    new: str,
    failing: str,
) -> None:
    rules = RULES.read_text()
    assert rules.count(old) == 1, f"the mutant {what!r} no longer applies to firestore.rules"
    weakened = tmp_path / "weakened.rules"
    weakened.write_text(rules.replace(old, new))
    done = run_suite(
        node,
        firestore_emulator,
        env={"VETTRA_RULES_FILE": str(weakened)},
        pattern=re.escape(failing),
    )
    assert done.returncode != 0, f"rules with {what} still passed:\n{shown(done)}"
    assert re.search(rf"^\s*not ok \d+ - {re.escape(failing)}", done.stdout, re.MULTILINE), shown(
        done
    )


def _deps(store: FirestoreStore, keys: LocalKeyStore) -> Deps:
    clock = SystemClock()
    return recording_deps(
        store, keys, clock, StepUpService(store, clock, StepUpSettings(), sealer=keys)
    )


def _claims(role: str, tenant: str = "acme") -> dict[str, str]:
    return {"vettra_role": role, "tenant": tenant}


def test_the_rules_fit_the_documents_the_adapter_writes(
    node: str, firestore_emulator: FirestoreEmulator, tmp_path: Path
) -> None:
    project = f"demo-vettra-rules-{uuid.uuid4().hex[:12]}"
    client = firestore_emulator.client(project)
    keys = LocalKeyStore(tmp_path / "home")
    store = FirestoreStore(project=project, keys=keys, client=client)
    try:
        deps = _deps(store, keys)
        deps.policies.ensure_default("acme")
        found = _write_real_documents(deps)
        store.sequence_now("acme")
        seed = _expectations(store, found)
        seed_file = tmp_path / "seed.json"
        seed_file.write_text(json.dumps(seed, indent=1))
        done = run_suite(
            node,
            firestore_emulator,
            env={"VETTRA_RULES_PROJECT": project, "VETTRA_RULES_REAL_SEED": str(seed_file)},
        )
        assert done.returncode == 0, shown(done)
        ran = len(seed["reads"]) + len(seed["queries"])
        assert summary(done).get("pass", 0) >= ran and summary(done).get("fail") == 0, shown(done)
    finally:
        store.close()
        client.close()
        firestore_emulator.reset(project)


def _write_real_documents(deps: Deps) -> dict[str, Any]:
    """An action each for alice and bob, alice's session and TOTP enrolment, via the services."""
    agent = {u: Principal(tenant="acme", role="agent", sub="bot", user=u) for u in ("alice", "bob")}
    alice = Principal(tenant="acme", role="approver", sub="alice", user="alice")
    mine = actions.intercept(deps, agent["alice"], SEND).action
    theirs = actions.intercept(deps, agent["bob"], SEND).action
    assert mine.status == theirs.status == "pending"
    session = sessions.create(deps, alice, {"label": "rules test"})
    enrolment = deps.step_up.enroll(alice, {"method": "totp"})
    with deps.store.unit_of_work(readonly=True) as uow:
        stored = uow.docs.get(PENDING_ENROLMENTS, enrolment["enrollment_id"])
    assert stored is not None and SEALED in stored  # the secret is sealed, and still refused
    # what credential releases keep: a sealed provider token and a grant (docs/credentials.md)
    store_token(deps, "github", "gho_rules_test_token", tenant="acme")
    grant = inventory.grant(
        deps, alice, {"agent": "bot", "connection": "github", "scopes": ["repo"]}
    )
    return {
        "mine": mine.id,
        "theirs": theirs.id,
        "session": session["session_id"],
        "enrolment": enrolment["enrollment_id"],
        "vault": vault.doc_id("acme", "alice", "github"),
        "permission": grant["permission_id"],
    }


def _expectations(store: FirestoreStore, found: dict[str, Any]) -> dict[str, Any]:
    log = store.audit_log
    entries = list(log.entries("acme"))
    alices = [number_key(e.seq) for e in entries if e.user == "alice"]
    bobs = [number_key(e.seq) for e in entries if e.user == "bob"]
    assert alices and bobs, "the services wrote audit entries for both users"
    with store.unit_of_work(readonly=True) as uow:
        policy = uow.policies.active("acme")
    assert policy is not None, "ensure_default activated a policy"
    version = f"policies/{doc_key('acme')}/versions/{number_key(policy['payload']['version'])}"
    checkpoint = log.last_checkpoint("acme")
    assert checkpoint is not None, "the sequencer signed a checkpoint"
    chain = f"audit_chains/{doc_key('acme')}"
    alice = ("alice", _claims("approver"))
    admin = ("dana", _claims("admin"))
    other = ("alice", _claims("approver", "globex"))
    reads = [
        (f"actions/{doc_key(found['mine'])}", alice, True),
        (f"actions/{doc_key(found['theirs'])}", alice, False),
        (f"actions/{doc_key(found['theirs'])}", admin, True),
        (f"actions/{doc_key(found['mine'])}", other, False),
        (f"{chain}/entries/{alices[0]}", alice, True),
        (f"{chain}/entries/{bobs[0]}", alice, False),
        (f"{chain}/entries/{bobs[0]}", admin, True),
        (f"{chain}/entries/{alices[0]}", other, False),
        (f"{chain}/checkpoints/{number_key(checkpoint[0])}", admin, True),
        (f"{chain}/checkpoints/{number_key(checkpoint[0])}", alice, False),
        (f"audit_heads/{doc_key('acme')}", admin, False),
        (version, admin, True),
        (version, alice, False),
        (f"docs/sessions/items/{doc_key(found['session'])}", alice, True),
        (f"docs/sessions/items/{doc_key(found['session'])}", admin, False),
        (f"docs/sessions/items/{doc_key(found['session'])}", other, False),
        (f"docs/{PENDING_ENROLMENTS}/items/{doc_key(found['enrolment'])}", alice, False),
        (f"docs/{PENDING_ENROLMENTS}/items/{doc_key(found['enrolment'])}", admin, False),
        (f"docs/{vault.COLLECTION}/items/{doc_key(found['vault'])}", alice, False),
        (f"docs/{vault.COLLECTION}/items/{doc_key(found['vault'])}", admin, False),
        (f"docs/{inventory.COLLECTION}/items/{doc_key(found['permission'])}", alice, False),
    ]
    queries = [
        (
            "actions",
            [["tenant", "==", "acme"], ["user", "==", "alice"], ["status", "==", "pending"]],
            "created_at",
            alice,
            [doc_key(found["mine"])],
        ),
        ("actions", [["user", "==", "alice"]], None, alice, None),
        (f"{chain}/entries", [["user", "==", "alice"]], "seq", alice, alices),
        (f"{chain}/entries", [], "seq", alice, None),
        (f"{chain}/entries", [], "seq", admin, [number_key(e.seq) for e in entries]),
        (
            "docs/sessions/items",
            [["owner", "==", "acme:alice"]],
            "created",
            alice,
            [doc_key(found["session"])],
        ),
        (f"docs/{vault.COLLECTION}/items", [["owner", "==", "acme:alice"]], "created", alice, None),
    ]
    return {
        "reads": [
            {"path": p, "uid": who[0], "claims": who[1], "readable": ok} for p, who, ok in reads
        ],
        "queries": [
            {"collection": c, "filters": f, "order": o, "uid": w[0], "claims": w[1], "expect": e}
            for c, f, o, w, e in queries
        ],
    }
