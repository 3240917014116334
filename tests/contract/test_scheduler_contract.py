"""Scheduler contract: every adapter of the port passes the same suite.

Adapters: the embedded restart-safe timer, and Cloud Tasks through the
``gcloud-tasks-emulator`` (its own venv; see cloud_tasks_emulator.py), which
POSTs each due task to a small receiving HTTP server here. The contract:

* a scheduled payload is delivered at (≈ ±0.5 s) its due time;
* cancel prevents delivery (where the backend supports deletion);
* scheduling the same timer twice is harmless: every delivery carries the same
  payload, so an idempotent handler has exactly one effect;
* re-scheduling with a new due time takes effect.

Then an integration test drives the real local server: an action pending with
a 2 s deadline, timed by ``CloudTasksScheduler`` against ``/api/tasks/expire``,
ends ``expired`` with exactly one ``action.expired`` audit entry although one
delivery arrives early and the due one is delivered more than once.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from vettra.adapters.clock import SystemClock
from vettra.adapters.cloud_tasks import CloudTasksScheduler
from vettra.adapters.local_timer import LocalTimer
from vettra.entrypoints.http.routes_tasks import EXPIRE_PATH
from vettra.ports import Scheduler

from ..integration.scenarios import SEND_EMAIL
from .cloud_tasks_emulator import LOCATION, PROJECT, CloudTasksEmulator, cloud_tasks_emulator  # noqa: F401

ON_TIME_S = 0.5  # the contract's tolerance around the due time
LEAD_S = 0.8  # how far ahead timers are set
SETTLE_S = 1.0  # how long to keep watching after the last expected delivery
RECEIVER_TOKEN = "contract-test-token"
EMULATOR_HAS_NO_DELETE = (
    "gcloud-tasks-emulator does not implement DeleteTask "
    "(UNIMPLEMENTED), so cancellation cannot be observed"
)


@dataclass
class Delivery:
    at: float  # time.time() when the payload arrived
    payload: Mapping[str, Any]
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Timers:
    """One adapter under test plus what reached its receiving side."""

    scheduler: Scheduler
    deliveries: list[Delivery]
    cancel_unsupported: str | None = None

    def wait_for(self, count: int, timeout: float) -> list[Delivery]:
        deadline = time.monotonic() + timeout
        while len(self.deliveries) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return list(self.deliveries)


class _Receiver(ThreadingHTTPServer):
    """The HTTP endpoint a Cloud Tasks HTTP target task is POSTed to."""

    daemon_threads = True

    def __init__(self, deliveries: list[Delivery]):
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - stdlib name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                deliveries.append(
                    Delivery(
                        time.time(),
                        json.loads(body),
                        {k.lower(): v for k, v in self.headers.items()},
                    )
                )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/receive"


def _local_timer(request: pytest.FixtureRequest, tmp_path: Path) -> Timers:
    deliveries: list[Delivery] = []
    timer = LocalTimer(
        tmp_path / "timers.db",
        SystemClock(),
        handler=lambda payload: deliveries.append(Delivery(time.time(), dict(payload))),
    )
    timer.start()
    request.addfinalizer(timer.stop)
    return Timers(timer, deliveries)


def _cloud_tasks(request: pytest.FixtureRequest, tmp_path: Path) -> Timers:
    emulator: CloudTasksEmulator = request.getfixturevalue("cloud_tasks_emulator")
    deliveries: list[Delivery] = []
    receiver = _Receiver(deliveries)
    queue = emulator.create_queue()

    def close() -> None:
        emulator.delete_queue(queue)
        receiver.shutdown()
        receiver.server_close()

    request.addfinalizer(close)
    scheduler = CloudTasksScheduler(
        project=PROJECT,
        location=LOCATION,
        queue=queue,
        target_url=receiver.url,
        client=emulator.client,
        token_provider=lambda: RECEIVER_TOKEN,
    )
    return Timers(scheduler, deliveries, cancel_unsupported=EMULATOR_HAS_NO_DELETE)


ADAPTERS: dict[str, Callable[[pytest.FixtureRequest, Path], Timers]] = {
    "local-timer": _local_timer,
    "cloud-tasks-emulator": _cloud_tasks,
}


@pytest.fixture(params=list(ADAPTERS))
def timers(request: pytest.FixtureRequest, tmp_path: Path) -> Timers:
    return ADAPTERS[request.param](request, tmp_path)


def _soon(seconds: float = LEAD_S) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def _assert_on_time(delivery: Delivery, due: datetime) -> None:
    late = delivery.at - due.timestamp()
    assert -ON_TIME_S <= late <= ON_TIME_S, (
        f"expected delivery within ±{ON_TIME_S}s of due, got {late:+.3f}s"
    )


def test_payload_is_delivered_at_its_due_time(timers: Timers) -> None:
    due, payload = _soon(), {"kind": "expire", "action_id": "act_contract1"}
    timers.scheduler.schedule("expire-act_contract1", due, payload)
    [delivery] = timers.wait_for(1, LEAD_S + 3)[:1] or [None]
    assert delivery is not None, "nothing was delivered"
    assert delivery.payload == payload
    _assert_on_time(delivery, due)
    if timers.cancel_unsupported:  # the HTTP flavour: what the expire endpoint relies on
        assert delivery.headers["authorization"] == f"Bearer {RECEIVER_TOKEN}"
        assert delivery.headers["content-type"] == "application/json"
        assert delivery.headers["x-cloudtasks-taskname"] == "expire-act_contract1"


def test_a_timer_in_the_past_fires_promptly(timers: Timers) -> None:
    started = time.time()
    timers.scheduler.schedule("expire-act_overdue", _soon(-5), {"action_id": "act_overdue"})
    deliveries = timers.wait_for(1, 3)
    assert deliveries and deliveries[0].payload == {"action_id": "act_overdue"}
    assert deliveries[0].at - started <= ON_TIME_S


def test_cancel_prevents_delivery(timers: Timers) -> None:
    if timers.cancel_unsupported:
        pytest.skip(timers.cancel_unsupported)
    timers.scheduler.schedule("expire-act_cancelled", _soon(), {"action_id": "act_cancelled"})
    timers.scheduler.cancel("expire-act_cancelled")
    timers.scheduler.cancel("expire-act_never_scheduled")  # unknown names are fine
    assert timers.wait_for(1, LEAD_S + SETTLE_S) == []


def test_duplicate_scheduling_is_harmless(timers: Timers) -> None:
    due, payload = _soon(), {"kind": "expire", "action_id": "act_twice"}
    timers.scheduler.schedule("expire-act_twice", due, payload)
    timers.scheduler.schedule("expire-act_twice", due, payload)
    deliveries = timers.wait_for(2, LEAD_S + SETTLE_S)
    assert 1 <= len(deliveries) <= 2, "at least once, and no more than once per schedule call"
    assert all(d.payload == payload for d in deliveries)
    for delivery in deliveries:
        _assert_on_time(delivery, due)
    effects: set[str] = {d.payload["action_id"] for d in deliveries}  # an idempotent handler's view
    assert effects == {"act_twice"}


def test_rescheduling_with_a_later_due_takes_effect(timers: Timers) -> None:
    first, later = _soon(0.5), _soon(1.5)
    timers.scheduler.schedule("expire-act_moved", first, {"action_id": "act_moved", "n": 1})
    timers.scheduler.schedule("expire-act_moved", later, {"action_id": "act_moved", "n": 2})
    deliveries = timers.wait_for(2, 1.5 + SETTLE_S)
    at_later = [d for d in deliveries if d.payload["n"] == 2]
    assert len(at_later) == 1, f"expected the re-scheduled timer to fire once, got {deliveries}"
    _assert_on_time(at_later[0], later)
    # The stale one may still fire (Cloud Tasks); the expire handler answers it "early".
    assert all(d.payload["n"] == 1 for d in deliveries if d is not at_later[0])


# -- integration: the real local server behind Cloud Tasks ----------------------------

DEADLINE_S = 2
EARLY_S = 0.5


@pytest.fixture
def cloud_scheduled_server(
    server: Any,
    cloud_tasks_emulator: CloudTasksEmulator,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Any, CloudTasksScheduler, list]]:
    """The server with Cloud Tasks (emulator) as its scheduler; records each expire answer."""
    queue = cloud_tasks_emulator.create_queue()
    token = server.token("system", "scheduler", "system")
    scheduler = CloudTasksScheduler(
        project=PROJECT,
        location=LOCATION,
        queue=queue,
        target_url=server.url + EXPIRE_PATH,
        client=cloud_tasks_emulator.client,
        token_provider=lambda: token,
    )
    monkeypatch.setattr(server.runtime.deps, "scheduler", scheduler)
    answers: list[tuple[float, int, str, str | None]] = []
    handle = server.runtime.app.handle

    def recording(request: Any) -> Any:
        response = handle(request)
        if request.path == EXPIRE_PATH:
            result = json.loads(response.body).get("result", "") if response.status == 200 else ""
            answers.append(
                (time.time(), response.status, result, request.header("x-cloudtasks-taskname"))
            )
        return response

    monkeypatch.setattr(server.runtime.app, "handle", recording)
    yield server, scheduler, answers
    cloud_tasks_emulator.delete_queue(queue)


def test_pending_action_expires_once_through_cloud_tasks(
    cloud_scheduled_server, agent, alice
) -> None:
    server, scheduler, answers = cloud_scheduled_server
    created = agent.post("/api/actions/intercept", json={**SEND_EMAIL, "timeout_s": DEADLINE_S})
    assert created.status_code == 201, created.text
    action = created.json()
    assert action["status"] == "pending"
    aid = action["action_id"]
    due = datetime.fromisoformat(action["expires_at"].replace("Z", "+00:00"))
    payload = {"kind": "expire", "action_id": aid}
    # An early delivery (a task due well before the deadline) and a duplicate of
    # the real one (the emulator, like Cloud Tasks under at-least-once, runs both).
    scheduler.schedule(f"early-probe-{aid}", _soon(EARLY_S), payload)
    scheduler.schedule(f"expire-{aid}", due, payload)

    deadline = time.monotonic() + DEADLINE_S + 6
    while time.monotonic() < deadline and Counter(a[2] for a in answers)["expired"] < 1:
        time.sleep(0.05)
    time.sleep(SETTLE_S)  # let every duplicate land

    statuses = Counter(a[1] for a in answers)
    results = Counter(a[2] for a in answers)
    assert statuses == {200: len(answers)}, answers
    assert results["expired"] == 1, answers
    assert results["early"] >= 1 and answers[0][2] == "early", answers
    # The original task, its duplicate, and the one re-armed by the early answer.
    assert results["not-pending"] >= 2, answers
    expired_at = next(a[0] for a in answers if a[2] == "expired")
    assert abs(expired_at - due.timestamp()) <= ON_TIME_S

    assert agent.get(f"/api/actions/{aid}").json()["status"] == "expired"
    entries = alice.get(f"/api/audit/action/{aid}").json()["entries"]
    assert [e["type"] for e in entries].count("action.expired") == 1
    assert alice.get("/api/audit/verify").json()["valid"] is True
