"""The Cloud Functions targets with ``VETTRA_BACKEND=firestore``: separate
``functions-framework --asgi`` processes that share state only through Firestore (the
official emulator, fresh for this module; skipped loudly without it).

Each target builds its runtime lazily, once per instance, with no home store: the
home given holds keys only (``vettra token --home`` mints the tokens every instance
accepts). An action created by the ``intercept`` instance is decided by the
``approve`` instance while an ``actions`` instance long-polls it; the ``sequence``
target drains the chain a Pub/Sub message names, and a redelivered or malformed
message changes nothing; with the Pub/Sub emulator, instances publish their commits'
triggers and the ``sequence`` target (fed as Eventarc would) links them. The cold start (import + first request) is measured and
printed by bench/functions_cold_start.py.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..integration.scenarios import SEND_EMAIL
from .conftest import free_port, mint_many
from .firestore_harness import (
    LongPoll,
    emulator_env,
    export_and_verify,
    fresh_project,
    wait_sequenced,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "functions" / "main.py"
BOOT_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def pubsub() -> Iterator[Any]:
    """A fresh Pub/Sub emulator for this module; skipped loudly without one."""
    from ..contract.pubsub_emulator import EMULATOR, PubSubEmulator

    yield from EMULATOR.session(PubSubEmulator)


def _framework() -> list[str]:
    script = Path(sys.executable).with_name("functions-framework")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "functions_framework"]


@dataclass
class Function:
    """One ``functions-framework --asgi`` process serving one target of functions/main.py."""

    target: str
    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _serve(target: str, env: dict[str, str], logs: Path, *, cloudevent: bool = False) -> Function:
    port = free_port()
    log_path = logs / f"{target}-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                *_framework(),
                "--asgi",
                "--source",
                str(SOURCE),
                "--target",
                target,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *(["--signature-type", "cloudevent"] if cloudevent else []),
            ],
            cwd=SOURCE.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
        )
    fn = Function(target, proc, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + BOOT_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{target} exited {proc.returncode}:\n{fn.log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return fn
        except OSError:
            time.sleep(0.1)
    fn.stop()
    raise AssertionError(f"{target} did not listen within {BOOT_TIMEOUT_S}s:\n{fn.log()}")


@dataclass
class Deployment:
    project: str
    home: Path
    env: dict[str, str]
    db: Any
    logs: Path
    started: list[Function]

    def serve(self, target: str, **kw: Any) -> Function:
        fn = _serve(target, self.env, self.logs, **kw)
        self.started.append(fn)
        return fn


@pytest.fixture
def deployment(emulator, tmp_path) -> Iterator[Deployment]:
    """A fresh project, a home of keys only, and the targets a test starts on them."""
    project = fresh_project()
    home = tmp_path / "keys-home"
    env = {
        **emulator_env(emulator),
        "VETTRA_BACKEND": "firestore",
        "VETTRA_PROJECT": project,
        "VETTRA_HOME": str(home),
        "VETTRA_LOG_LEVEL": "WARNING",
    }
    for name in ("VETTRA_MODE", "VETTRA_TASKS_QUEUE", "CLOUD_TASKS_EMULATOR_HOST"):
        env[name] = ""
    db = emulator.client(project)
    deployment = Deployment(project, home, env, db, tmp_path, [])
    yield deployment
    for fn in deployment.started:
        fn.stop()
    db.close()


def _tokens(home: Path) -> dict[str, str]:
    return mint_many(
        home,
        {
            "agent": ("agent", "bot", "alice"),
            "alice": ("approver", "alice"),
            "admin": ("admin", "root"),
        },
    )


def test_an_action_created_by_one_target_is_decided_by_another(deployment) -> None:
    tokens = _tokens(deployment.home)  # the keys first: the instances read them
    intercept = deployment.serve("intercept")
    approve = deployment.serve("approve")
    actions = deployment.serve("actions")
    with (
        intercept.client(tokens["agent"]) as agent,
        actions.client(tokens["agent"]) as reader,
        approve.client(tokens["alice"]) as alice,
    ):
        r = agent.post("/api/actions/intercept", json=SEND_EMAIL)
        assert r.status_code == 201, r.text + intercept.log()
        a = r.json()
        assert a["status"] == "pending" and a["audit_event_id"]
        # the intercept instance serves only its own route group
        assert agent.get(f"/api/actions/{a['action_id']}").status_code == 404

        waiting = LongPoll(reader, a["action_id"])
        time.sleep(1.0)
        decided_at = time.monotonic()
        r = alice.post(
            "/api/actions/approve", json={"action_id": a["action_id"], "decision": "approve"}
        )
        assert r.status_code == 200, r.text + approve.log()
        assert r.json()["status"] == "approved"
        status, answered_at = waiting.result()
        # the actions instance saw the approve instance's decision through Firestore
        assert status == "approved" and answered_at - decided_at < 3, status

    # each instance sequenced (or left to the lease holder) what it wrote: one chain
    wait_sequenced(deployment.db)
    audit = deployment.serve("audit")
    with audit.client(tokens["admin"]) as admin:
        report = admin.get("/api/audit/verify").json()
        assert report["valid"] and report["length"] == 3, report  # policy, intercept, approve
        trail = admin.get(f"/api/audit/action/{a['action_id']}").json()["entries"]
    assert [e["type"] for e in trail] == ["action.intercepted", "action.approved"]
    assert trail[0]["event_id"] == a["audit_event_id"]
    # no store in the home: keys, and (no Cloud Tasks queue here) the local timer's file
    assert not (deployment.home / "vettra.db").exists()
    assert {p.name for p in deployment.home.glob("*.db")} <= {"timers-firestore.db"}


def _message(chain: Any, *, raw: str | None = None) -> tuple[dict[str, str], bytes]:
    """A Pub/Sub push delivery as a binary-mode CloudEvent (what Eventarc sends)."""
    data = (
        raw if raw is not None else base64.b64encode(json.dumps({"chain": chain}).encode()).decode()
    )
    body = {
        "message": {"data": data, "messageId": str(time.time_ns()), "orderingKey": str(chain)},
        "subscription": "projects/p/subscriptions/vettra-sequence-sub",
    }
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": "//pubsub.googleapis.com/projects/p/topics/vettra-sequence",
        "ce-id": str(time.time_ns()),
        "content-type": "application/json",
    }
    return headers, json.dumps(body).encode()


def _head(db: Any) -> dict:
    snap = db.collection("audit_heads").document("default").get()
    return snap.to_dict() if snap.exists else {}


def _waiting(db: Any) -> int:
    from .firestore_harness import waiting_events

    return waiting_events(db)


def test_the_sequence_target_drains_the_chain_a_message_names(deployment) -> None:
    # no instance sequences by itself: only the sequence target's messages do
    deployment.env["VETTRA_SEQUENCER"] = "external"
    tokens = _tokens(deployment.home)
    intercept = deployment.serve("intercept")
    sequence = deployment.serve("sequence", cloudevent=True)
    with intercept.client(tokens["agent"]) as agent:
        for _ in range(3):
            assert agent.post("/api/actions/intercept", json=SEND_EMAIL).status_code == 201
    time.sleep(1.5)
    assert _waiting(deployment.db) == 4 and _head(deployment.db) == {}  # policy + 3 intercepts

    headers, body = _message("default")
    r = httpx.post(sequence.url, headers=headers, content=body, timeout=60)
    assert r.status_code == 200, r.text + sequence.log()
    head = _head(deployment.db)
    assert _waiting(deployment.db) == 0 and head["seq"] == 4

    # a redelivery of the same message, and one for a chain with nothing waiting
    for chain in ("default", "acme"):
        headers, body = _message(chain)
        assert (
            httpx.post(sequence.url, headers=headers, content=body, timeout=60).status_code == 200
        )
    assert _head(deployment.db) == head  # not written again

    # poison: refused (so Pub/Sub redelivers, then dead-letters it), nothing changes
    for bad in (
        _message(None, raw="%%% not base64"),
        _message(None, raw=base64.b64encode(b"[1, 2]").decode()),
        _message(""),
        _message("x" * 501),
    ):
        r = httpx.post(sequence.url, headers=bad[0], content=bad[1], timeout=60)
        assert r.status_code == 500, r.text
    assert _head(deployment.db) == head
    assert "BadSequenceMessage" in sequence.log()

    # the chain the target linked verifies offline
    report = export_and_verify(
        deployment.env, deployment.project, deployment.home, deployment.logs / "seq.jsonl"
    )
    assert report.startswith("valid: 4 entries"), report


class Eventarc:
    """What Eventarc does for a Pub/Sub-triggered function, played by the test: pull the
    sequence topic's subscription, POST each message to the target as a binary-mode
    CloudEvent, ack on 2xx, nack otherwise (Pub/Sub then redelivers)."""

    def __init__(self, subscriber: Any, subscription: str, url: str):
        self.subscriber, self.subscription, self.url = subscriber, subscription, url
        self.delivered: list[tuple[str, int]] = []  # (ordering key, status)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="eventarc")
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                pulled = self.subscriber.pull(
                    subscription=self.subscription, max_messages=10, timeout=2
                )
            except Exception:  # noqa: BLE001 - an empty pull times out on the emulator
                continue
            for received in pulled.received_messages:
                message = received.message
                headers, body = _message(None, raw=base64.b64encode(message.data).decode())
                r = httpx.post(self.url, headers=headers, content=body, timeout=60)
                self.delivered.append((message.ordering_key, r.status_code))
                if r.status_code < 300:
                    self.subscriber.acknowledge(
                        subscription=self.subscription, ack_ids=[received.ack_id]
                    )
                else:
                    self.subscriber.modify_ack_deadline(
                        subscription=self.subscription,
                        ack_ids=[received.ack_id],
                        ack_deadline_seconds=0,
                    )

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


def test_commits_trigger_the_sequence_target_through_pubsub(deployment, pubsub) -> None:
    """The deployed shape: no instance sequences by itself; each commit publishes
    ``{"chain"}`` to VETTRA_SEQUENCE_TOPIC and the sequence target drains the chain."""
    from vettra.adapters.pubsub_admin import ensure_topology

    publisher, subscriber = pubsub.clients()
    topology = ensure_topology(
        deployment.project, "vettra-sequence", publisher=publisher, subscriber=subscriber
    )
    ensure_topology(
        deployment.project,
        "vettra-events",
        publisher=publisher,
        subscriber=subscriber,
        ordering=False,
    )
    deployment.env["PUBSUB_EMULATOR_HOST"] = pubsub.host
    tokens = _tokens(deployment.home)
    intercept = deployment.serve("intercept")
    approve = deployment.serve("approve")
    sequence = deployment.serve("sequence", cloudevent=True)
    bridge = Eventarc(subscriber, topology.subscription, sequence.url)
    try:
        with (
            intercept.client(tokens["agent"]) as agent,
            approve.client(tokens["alice"]) as alice,
        ):
            made = [agent.post("/api/actions/intercept", json=SEND_EMAIL).json() for _ in range(3)]
            assert all(a["status"] == "pending" and a["audit_event_id"] for a in made), made
            r = alice.post(
                "/api/actions/approve", json={"action_id": made[0]["action_id"], "decision": "deny"}
            )
            assert r.status_code == 200, r.text + approve.log()
        took = wait_sequenced(deployment.db, timeout_s=60)
    finally:
        bridge.stop()
        subscriber.close()
        publisher.stop()
    head = _head(deployment.db)
    assert head["seq"] == 5, head  # policy, 3 intercepts, 1 denial
    assert bridge.delivered and all(key == "default" for key, _ in bridge.delivered)
    assert all(status == 200 for _, status in bridge.delivered), bridge.delivered + [sequence.log()]
    # one message may drain what several commits announced (the rest find nothing)
    print(
        f"\nPub/Sub-triggered sequencing: {len(bridge.delivered)} messages delivered; the "
        f"chain of {head['seq']} entries sequenced {took:.2f} s after the last answer, "
        f"head written {head['writes']} times"
    )


def test_cold_start_share_is_printed(deployment) -> None:
    """python -X importtime of main plus the first request, split by whose work it is
    (bench/functions_cold_start.py), on the firestore backend."""
    env = {**os.environ, **deployment.env}
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "functions_cold_start.py"), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "firestore"
    parts = result["import_own_ms"] + result["request_imports_own_ms"] + result["request_work_ms"]
    assert abs(parts - result["own_total_ms"]) < 0.01 and result["own_total_ms"] > 0
    print(
        f"\ncold start on the firestore backend (best of {result['runs']}, load average "
        f"{result['load_average']:.1f}): import main {result['import_main_ms']:.0f} ms "
        f"(platform {result['import_platform_ms']:.0f}, third-party "
        f"{result['import_third_party_ms']:.0f}, Vettra {result['import_own_ms']:.0f}); "
        f"first request {result['first_request_ms']:.0f} ms (third-party imports "
        f"{result['request_imports_third_party_ms']:.0f}, Vettra imports "
        f"{result['request_imports_own_ms']:.0f}, runtime + answer "
        f"{result['request_work_ms']:.0f}); Vettra's own share "
        f"{result['own_total_ms']:.0f} ms (wanted <= {result['wanted_ms']:.0f})"
    )


def test_each_target_boots_with_only_the_secrets_terraform_mounts(deployment, tmp_path) -> None:
    """Least privilege: terraform/ mounts into each function only the secrets it uses. Every
    HTTP target must still build its runtime (the first request does) and answer from the
    app: 200 for /health, 401 for a request without a token, never a 5xx from a key it was
    not given. Intercept without a policy stays deny-by-default."""
    from vettra.adapters.secret_keys import fresh_secret_files

    from ..unit.test_terraform import _functions

    files = fresh_secret_files()
    paths = {
        "health": ("GET", "/health", 200),
        "intercept": ("POST", "/api/actions/intercept", 401),
        "approve": ("POST", "/api/actions/approve", 401),
        "actions": ("GET", "/api/actions/pending", 401),
        "audit": ("GET", "/api/audit/verify", 401),
        "policy": ("GET", "/api/policy", 401),
        "approvals": ("GET", "/api/approvals/sessions", 401),
        "vault": ("GET", "/api/inventory/permissions", 401),
        "auth": ("POST", "/api/auth/firebase-token", 422),  # {} has no id_token
    }
    auth0 = {  # how the cloud authenticates (no home key there); JWKS is fetched on first use
        "VETTRA_AUTH0_ISSUER": "https://vettra-test.eu.auth0.com/",
        "VETTRA_AUTH0_AUDIENCE": "https://api.vettra.test",
        "VETTRA_AUTH0_CLIENT_ID": "dashboard-spa",
    }
    for target, spec in _functions().items():
        if target not in paths:
            continue  # expire and sequence: internal, covered above
        mounted = tmp_path / f"secrets-{target}"
        mounted.mkdir(mode=0o700)
        for name in spec["secrets"]:
            (mounted / name).mkdir()
            (mounted / name / name).write_bytes(files[name])
        env = {**deployment.env, **auth0, "VETTRA_SECRETS_DIR": str(mounted)}
        fn = _serve(target, env, deployment.logs)
        try:
            method, path, want = paths[target]
            r = httpx.request(method, fn.url + path, json={} if method == "POST" else None)
            assert r.status_code == want, (target, spec["secrets"], r.status_code, r.text, fn.log())
        finally:
            fn.stop()
    # nobody signed a default policy: the cloud waits for the operator's (deny by default)
    assert not list(deployment.db.collection("policies").list_documents())
