"""``vettra dev --backend firestore`` end to end, on the official Firestore emulator.

The real CLI in subprocesses, driven over HTTP as a user would: the write-up's five
scenarios, an approval that needs a step-up, an expiry (through the Cloud Tasks
emulator when it can be started, else the local timer: the run warns which), two
servers on one project seeing each other's decisions (long-poll and event stream),
``vettra audit export --backend firestore`` verified offline by ``vettra audit
verify``, and 200 concurrent intercepts with the head document written at most
once a second. The emulator is fresh for this module; everything skips loudly
without it.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..integration.approvals import enrol_totp, step_up
from ..integration.scenarios import DELETE_REPO, EXPECTED, READ_PROFILE, SEND_EMAIL
from .conftest import CLI_TIMEOUT_S, DevServer, mint, mint_many, vettra_command
from .firestore_harness import (
    HeadSampler,
    LongPoll,
    describe_head_writes,
    emulator_env,
    export_and_verify,
    fresh_project,
    start_cloud_tasks,
    tasks_env,
    wait_sequenced,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

SCENARIO_IDS = ["read-profile", "send-email", "delete-repo", "charge-500", "grant-admin"]
PROBLEM = "application/problem+json"
ENTRY_TIMEOUT_S = 15.0
LOAD = 200


@pytest.fixture(scope="module")
def tasks() -> Iterator[Any]:
    yield from start_cloud_tasks()


@dataclass
class Cloud:
    server: DevServer
    project: str
    home: Path
    env: dict[str, str]
    db: Any

    def token(self, role: str, sub: str, user: str | None = None) -> str:
        return mint(self.home, role, sub, user)

    def client(self, role: str, sub: str, user: str | None = None, **kw: Any) -> httpx.Client:
        return self.server.client(self.token(role, sub, user), **kw)


def _start(base: Path, name: str, project: str, home: Path, env: dict[str, str]) -> DevServer:
    server = DevServer(
        home,
        base / f"{name}.log",
        ["--backend", "firestore", "--project", project, "--log-level", "WARNING"],
        env=env,
    )
    return server.start()


@pytest.fixture(scope="module")
def cloud(emulator, tasks, tmp_path_factory) -> Iterator[Cloud]:
    base = tmp_path_factory.mktemp("firestore-backend")
    project = fresh_project()
    env = {**emulator_env(emulator), **tasks_env(tasks)}
    server = _start(base, "dev", project, base / "home", env)
    db = emulator.client(project)
    yield Cloud(server, project, base / "home", env, db)
    code, _ = server.terminate()
    db.close()
    assert code == 0, f"vettra dev exited {code} on SIGTERM:\n{server.log()}"


def _user() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


def _pair(cloud: Cloud, user: str) -> tuple[httpx.Client, httpx.Client]:
    tokens = mint_many(
        cloud.home, {"agent": ("agent", f"bot-{user}", user), "approver": ("approver", user)}
    )
    return cloud.server.client(tokens["agent"]), cloud.server.client(tokens["approver"])


def _entry_for(client: httpx.Client, action_id: str, event_id: str) -> dict:
    """The sequenced entry the answer's ``audit_event_id`` names (it follows within ~1 s)."""
    deadline = time.monotonic() + ENTRY_TIMEOUT_S
    while time.monotonic() < deadline:
        r = client.get(f"/api/audit/action/{action_id}")
        if r.status_code == 200:
            for entry in r.json()["entries"]:
                if entry.get("event_id") == event_id:
                    return entry
        else:
            assert r.status_code == 404, r.text  # nothing of this action sequenced yet
        time.sleep(0.05)
    raise AssertionError(f"event {event_id} of {action_id} not sequenced in {ENTRY_TIMEOUT_S}s")


def _trail(client: httpx.Client, action_id: str, length: int) -> list[str]:
    deadline = time.monotonic() + ENTRY_TIMEOUT_S
    types: list[str] = []
    while time.monotonic() < deadline:
        r = client.get(f"/api/audit/action/{action_id}")
        if r.status_code == 200:
            types = [e["type"] for e in r.json()["entries"]]
            if len(types) >= length:
                return types
        time.sleep(0.1)
    raise AssertionError(f"the trail of {action_id} stayed {types}")


def _export_and_verify(cloud: Cloud, out: Path) -> str:
    return export_and_verify(cloud.env, cloud.project, cloud.home, out)


# -- the backend --------------------------------------------------------------------------


def test_health_names_the_firestore_backend(cloud, tasks) -> None:
    health = httpx.get(cloud.server.url + "/health").json()
    assert (health["store"], health["backend"], health["project"]) == (
        "firestore",
        "firestore",
        cloud.project,
    )
    assert health["sequencer"] == "in-process"
    assert health["event_bus"] == "in-process+firestore-listener"
    if tasks is None:
        assert health["scheduler"] == "local-timer"
        assert "VETTRA_TASKS_QUEUE" in health["scheduler_note"]
    else:
        assert health["scheduler"] == "cloud-tasks-emulator" and "scheduler_note" not in health


def test_without_an_emulator_or_credentials_it_is_one_line_and_exit_1(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FIRESTORE_EMULATOR_HOST"}
    env.update(GOOGLE_APPLICATION_CREDENTIALS=str(tmp_path / "none.json"), HOME=str(tmp_path))
    done = subprocess.run(
        [*vettra_command(), "dev", "--backend", "firestore", "--project", "p", "--port", "0"]
        + ["--home", str(tmp_path / "home")],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env=env,
    )
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vettra dev: "), done.stderr
    assert "FIRESTORE_EMULATOR_HOST" in lines[0] or "credentials" in lines[0]
    assert not (tmp_path / "home" / "vettra.db").exists()  # nothing of the embedded store


# -- the write-up's scenarios, approvals, expiry --------------------------------------------


@pytest.mark.parametrize("bundle, status, level, step_up", EXPECTED, ids=SCENARIO_IDS)
def test_the_five_scenarios(cloud, bundle, status, level, step_up) -> None:
    agent, _ = _pair(cloud, _user())
    with agent:
        r = agent.post("/api/actions/intercept", json=bundle)
        assert r.status_code == 201, r.text
        a = r.json()
        assert (a["status"], a["risk"]["level"], a["step_up_required"]) == (status, level, step_up)
        # the commit wrote an outbox event; its seq is assigned by the sequencer afterwards
        assert a["audit_seq"] is None and isinstance(a["audit_event_id"], str)
        entry = _entry_for(agent, a["action_id"], a["audit_event_id"])
        assert entry["type"] == "action.intercepted" and entry["seq"] >= 1
        assert (
            entry["data"]["status"] == status and entry["data"]["args_digest"] == a["args_digest"]
        )
        assert agent.get(f"/api/actions/{a['action_id']}").json()["status"] == status


def test_an_approval_that_needs_a_step_up(cloud) -> None:
    user = _user()
    agent, approver = _pair(cloud, user)
    with agent, approver:
        a = agent.post("/api/actions/intercept", json=DELETE_REPO).json()
        assert a["status"] == "pending" and a["step_up_required"] is True
        assert [x["action_id"] for x in approver.get("/api/actions/pending").json()["actions"]] == [
            a["action_id"]
        ]

        refused = approver.post(
            "/api/actions/approve", json={"action_id": a["action_id"], "decision": "approve"}
        )
        assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM
        assert 'error="insufficient_user_authentication"' in refused.headers["www-authenticate"]

        secret = enrol_totp(approver)
        token = step_up(approver, secret, action_id=a["action_id"])

        # the agent long-polls while the approver decides
        waiting = LongPoll(agent, a["action_id"])
        time.sleep(0.5)
        decided_at = time.monotonic()
        approved = approver.post(
            "/api/actions/approve",
            json={"action_id": a["action_id"], "decision": "approve", "step_up_token": token},
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved" and approved.json()["audit_event_id"]
        status, answered_at = waiting.result()
        assert status == "approved" and answered_at - decided_at < 3, status

        again = approver.post(
            "/api/actions/approve",
            json={"action_id": a["action_id"], "decision": "approve", "step_up_token": token},
        )
        assert again.status_code == 409
        trail = _trail(approver, a["action_id"], 6)
        assert trail == [
            "action.intercepted",
            "action.decision_rejected",  # the approval without a step-up
            "stepup.verified",
            "stepup.redeemed",
            "action.approved",
            "action.decision_rejected",  # the replay
        ]
        log = cloud.client("admin", "root").get("/api/audit/entries", params={"limit": 1000}).text
        assert secret not in log and token not in log


def test_an_action_expires_through_the_scheduler(cloud, tasks) -> None:
    scheduler = httpx.get(cloud.server.url + "/health").json()["scheduler"]
    print(f"\nexpiry through: {scheduler}")
    user = _user()
    agent, approver = _pair(cloud, user)
    with agent, approver:
        a = agent.post("/api/actions/intercept", json={**SEND_EMAIL, "timeout_s": 2}).json()
        assert a["status"] == "pending" and a["expires_at"]
        # only the expire endpoint (the timer's delivery) writes action.expired
        trail = _trail(approver, a["action_id"], 2)
        assert trail == ["action.intercepted", "action.expired"]
        assert agent.get(f"/api/actions/{a['action_id']}").json()["status"] == "expired"
        late = approver.post(
            "/api/actions/approve", json={"action_id": a["action_id"], "decision": "approve"}
        )
        assert late.status_code == 409 and late.json()["action_status"] == "expired"


# -- two processes, one store --------------------------------------------------------------


def _stream(
    client: httpx.Client, seen: list[dict], ready: threading.Event, stop: threading.Event
) -> None:
    """Collect the stream's events until ``stop`` (checked after each line: the test sends
    one more event to end it)."""
    with client.stream("GET", "/api/events", timeout=httpx.Timeout(30, read=20)) as r:
        assert r.status_code == 200
        ready.set()
        for line in r.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line[len("data: ") :]))
            if stop.is_set():
                return


def test_two_servers_on_one_project_see_each_others_decisions(cloud, tmp_path) -> None:
    other = _start(tmp_path, "second", cloud.project, cloud.home, cloud.env)
    try:
        user = _user()
        tokens = mint_many(
            cloud.home, {"agent": ("agent", f"bot-{user}", user), "approver": ("approver", user)}
        )
        with (
            cloud.server.client(tokens["agent"]) as agent_a,
            cloud.server.client(tokens["approver"]) as approver_a,
            other.client(tokens["approver"]) as approver_b,
            other.client(tokens["agent"]) as agent_b,
        ):
            seen: list[dict] = []
            ready, stop = threading.Event(), threading.Event()
            reader = threading.Thread(
                target=_stream, args=(approver_a, seen, ready, stop), daemon=True
            )
            reader.start()
            assert ready.wait(10)
            time.sleep(0.3)  # the listener's first snapshot

            a = agent_a.post("/api/actions/intercept", json=SEND_EMAIL).json()
            b = agent_b.post("/api/actions/intercept", json=SEND_EMAIL).json()  # made on B
            waiting = LongPoll(agent_a, a["action_id"])
            time.sleep(0.5)
            decided_at = time.monotonic()
            r = approver_b.post(
                "/api/actions/approve", json={"action_id": a["action_id"], "decision": "deny"}
            )
            assert r.status_code == 200 and r.json()["status"] == "denied", r.text
            status, answered_at = waiting.result()
            # server A's long-poll saw server B's decision (it re-reads the store)
            assert status == "denied" and answered_at - decided_at < 3, status

            deadline = time.monotonic() + 10
            want = {(a["action_id"], "action.decided"), (b["action_id"], "action.created")}
            while time.monotonic() < deadline and not want <= {
                (e["action_id"], e["type"]) for e in seen
            }:
                time.sleep(0.05)
            stop.set()
            got = [(e["action_id"], e["type"], e["status"]) for e in seen]
            agent_a.post("/api/actions/intercept", json=SEND_EMAIL)  # wakes the reader: it ends
            reader.join(10)
            assert not reader.is_alive()
            # A's stream shows B's decision and the action B created, each once
            assert got.count((a["action_id"], "action.decided", "denied")) == 1, got
            assert got.count((b["action_id"], "action.created", "pending")) == 1, got
            assert got.count((a["action_id"], "action.created", "pending")) == 1, got
    finally:
        code, _ = other.terminate()
        assert code == 0, other.log()


# -- the log leaves the server and verifies offline -----------------------------------------


def test_export_and_verify_offline(cloud, tmp_path) -> None:
    agent, _ = _pair(cloud, _user())
    with agent:
        for bundle in (READ_PROFILE, SEND_EMAIL, DELETE_REPO):
            assert agent.post("/api/actions/intercept", json=bundle).status_code == 201
    wait_sequenced(cloud.db)
    with cloud.client("admin", "root") as admin:
        online = admin.get("/api/audit/verify").json()
    assert online["valid"] and online["uncovered"] == 0, online
    out = tmp_path / "log.jsonl"
    report = _export_and_verify(cloud, out)
    assert report.startswith(f"valid: {online['length']} entries")
    lines = out.read_text().splitlines()
    assert json.loads(lines[0])["entries"] == online["length"]


# -- load -----------------------------------------------------------------------------------


def test_200_concurrent_intercepts_and_the_head_written_at_most_once_a_second(
    emulator, tmp_path
) -> None:
    project = fresh_project()
    env = emulator_env(emulator)
    home = tmp_path / "home"
    server = _start(tmp_path, "load", project, home, env)
    db = emulator.client(project)
    try:
        tokens = mint_many(
            home, {"agent": ("agent", "loader", "alice"), "admin": ("admin", "root")}
        )
        sampler = HeadSampler(db).start()

        async def load() -> list[tuple[int, dict, float]]:
            limits = httpx.Limits(max_connections=LOAD, max_keepalive_connections=LOAD)
            headers = {"Authorization": f"Bearer {tokens['agent']}"}
            async with httpx.AsyncClient(
                base_url=server.url, headers=headers, limits=limits, timeout=60
            ) as c:

                async def one(i: int) -> tuple[int, dict, float]:
                    started = time.monotonic()
                    r = await c.post(
                        "/api/actions/intercept", json=(READ_PROFILE, SEND_EMAIL)[i % 2]
                    )
                    return r.status_code, r.json(), time.monotonic() - started

                return await asyncio.gather(*(one(i) for i in range(LOAD)))

        started = time.monotonic()
        answers = asyncio.run(load())
        took = time.monotonic() - started
        assert [status for status, _, _ in answers] == [201] * LOAD, [
            a for a in answers if a[0] != 201
        ][:3]
        settle = wait_sequenced(db)
        writes = sampler.stop()

        with server.client(tokens["admin"]) as admin:
            entries, after = [], 0
            while True:
                page = admin.get(
                    "/api/audit/entries", params={"after": after, "limit": 1000}
                ).json()
                entries += page["entries"]
                if not page["next_after"]:
                    break
                after = page["next_after"]
            online = admin.get("/api/audit/verify").json()
        # besides the intercepts: the policy, and the sign-in link `vettra dev` printed
        before = [e for e in entries if e["type"] != "action.intercepted"]
        assert {e["type"] for e in before} <= {"policy.activated", "signin.link_created"}, before
        assert online["valid"] and online["length"] == LOAD + len(before), online
        assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
        cited = [body["audit_event_id"] for _, body, _ in answers]
        linked = [e["event_id"] for e in entries if e["type"] == "action.intercepted"]
        assert sorted(cited) == sorted(linked) and len(set(linked)) == LOAD

        counted, min_gap, span = describe_head_writes(writes)
        # the sampler saw every head write (the counter agrees), none closer than a second
        assert counted == len(writes), (counted, len(writes))
        assert min_gap >= 0.99, [w.update_time for w in writes]
        assert counted <= span + 1
        latencies = sorted(t for _, _, t in answers)
        print(
            f"\n{LOAD} concurrent intercepts over HTTP: {took:.2f} s ({LOAD / took:.0f}/s), "
            f"p50 {statistics.median(latencies) * 1000:.0f} ms, "
            f"p95 {latencies[int(0.95 * LOAD)] * 1000:.0f} ms; all sequenced {settle:.2f} s "
            f"after the last answer; head written {counted} times over {span:.2f} s, "
            f"min gap {min_gap:.2f} s"
        )
        _export_and_verify(Cloud(server, project, home, env, db), tmp_path / "load.jsonl")
    finally:
        code, _ = server.terminate()
        db.close()
        assert code == 0, server.log()
