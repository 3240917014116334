"""What the end-to-end tests of the Firestore backend share.

A fresh official Firestore emulator per test module (the emulator slows down and
grows as it is used, and a DELETE reset does not give memory back), the Cloud
Tasks emulator when it can be started (else the local timer, and the tests say
which), and read-only looks at the emulator's documents: how many outbox events
wait, and every write of a chain's head document (its ``writes`` counter and
update time, sampled far faster than the 1/s it may change).

Nothing here drives the product: the servers are ``vettra dev`` and
``functions-framework`` subprocesses, reached over HTTP.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..contract import cloud_tasks_emulator as tasks_harness
from ..contract import firestore_emulator as fs_harness
from ..contract.emulator_process import EmulatorUnavailable
from .conftest import CLI_TIMEOUT_S, vettra_command

CHAIN = "default"
SEQUENCED_TIMEOUT_S = 60.0


def start_firestore() -> Iterator[fs_harness.FirestoreEmulator]:
    """A fresh emulator for the calling module; skip loudly when it cannot run here."""
    yield from fs_harness.EMULATOR.session(fs_harness.FirestoreEmulator)


def start_cloud_tasks() -> Iterator[tasks_harness.CloudTasksEmulator | None]:
    """The Cloud Tasks emulator, or None (expiry then runs on the local timer) with a
    warning naming why, so a run says which one the expiry tests went through."""
    try:
        emulator = tasks_harness.start_emulator()
    except (EmulatorUnavailable, OSError, ImportError) as exc:
        warnings.warn(
            f"Cloud Tasks emulator unavailable ({exc}); expiry is tested on the local timer",
            stacklevel=1,
        )
        yield None
        return
    try:
        yield emulator
    finally:
        emulator.stop()


def fresh_project() -> str:
    return f"vettra-e2e-{uuid.uuid4().hex[:10]}"


def emulator_env(emulator: fs_harness.FirestoreEmulator) -> dict[str, str]:
    """The environment a server process needs to reach the emulator (and nothing else)."""
    return {"FIRESTORE_EMULATOR_HOST": emulator.host}


def tasks_env(tasks: tasks_harness.CloudTasksEmulator | None) -> dict[str, str]:
    if tasks is None:
        return {}
    queue = tasks.create_queue()
    path = f"projects/{tasks_harness.PROJECT}/locations/{tasks_harness.LOCATION}/queues/{queue}"
    return {"CLOUD_TASKS_EMULATOR_HOST": tasks.host, "VETTRA_TASKS_QUEUE": path}


def client(emulator: fs_harness.FirestoreEmulator, project: str) -> Any:
    return emulator.client(project)


def waiting_events(db: Any) -> int:
    """Outbox events of any chain not sequenced yet."""
    from google.cloud.firestore_v1 import FieldFilter

    query = db.collection_group("outbox").where(filter=FieldFilter("seq", "==", None))
    return len(list(query.select([]).stream()))


def wait_sequenced(db: Any, timeout_s: float = SEQUENCED_TIMEOUT_S) -> float:
    """Wait until every outbox event has its seq; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if waiting_events(db) == 0:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"{waiting_events(db)} outbox events still unsequenced after {timeout_s}s")


@dataclass
class HeadWrite:
    writes: int
    update_time: float  # seconds since the epoch, the emulator's clock
    seq: int


@dataclass
class HeadSampler:
    """Reads ``audit_heads/{chain}`` every ``every_s`` in a thread; keeps each distinct write."""

    db: Any
    chain: str = CHAIN
    every_s: float = 0.02
    seen: list[HeadWrite] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> HeadSampler:
        self._thread = threading.Thread(target=self._run, daemon=True, name="head-sampler")
        self._thread.start()
        return self

    def stop(self) -> list[HeadWrite]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._sample()
        return self.seen

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            self._sample()

    def _sample(self) -> None:
        snap = self.db.collection("audit_heads").document(self.chain).get()
        if not snap.exists:
            return
        stamp = snap.update_time.timestamp()
        if not self.seen or self.seen[-1].update_time != stamp:
            doc = snap.to_dict()
            self.seen.append(HeadWrite(int(doc.get("writes", 0)), stamp, int(doc["seq"])))


def describe_head_writes(writes: list[HeadWrite]) -> tuple[int, float, float]:
    """``(writes counted by the head itself, min gap s, span s)`` over the sampled writes."""
    if len(writes) < 2:
        return (len(writes), float("inf"), 0.0)
    gaps = [b.update_time - a.update_time for a, b in zip(writes, writes[1:], strict=False)]
    return (
        writes[-1].writes - writes[0].writes + 1,
        min(gaps),
        writes[-1].update_time - writes[0].update_time,
    )


class LongPoll:
    """``GET /api/actions/{id}?wait=N`` in a thread: what it answered and when."""

    def __init__(self, client: Any, action_id: str, wait: int = 20):
        self.status: str | None = None
        self.answered_at = 0.0
        self._thread = threading.Thread(target=self._run, args=(client, action_id, wait))
        self._wait = wait
        self._thread.start()

    def _run(self, client: Any, action_id: str, wait: int) -> None:
        r = client.get(f"/api/actions/{action_id}", params={"wait": wait})
        self.status, self.answered_at = r.json()["status"], time.monotonic()

    def result(self) -> tuple[str | None, float]:
        """``(status, monotonic time of the answer)`` once it answered."""
        self._thread.join(self._wait + 5)
        return self.status, self.answered_at


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The ``vettra`` command with ``env`` added to this process's environment."""
    return subprocess.run(
        [*vettra_command(), *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env={**os.environ, **env},
    )


def export_and_verify(env: dict[str, str], project: str, home: Path, out: Path) -> str:
    """``vettra audit export --backend firestore`` of ``project``, then ``vettra audit
    verify`` offline with the home's public key and HMAC keys; returns verify's report."""
    exported = cli(
        env, "audit", "export", "--backend", "firestore", "--project", project,
        "--home", str(home), "-o", str(out),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    key = cli({}, "audit", "pubkey", "--home", str(home))
    assert key.returncode == 0, key.stderr
    verified = cli(
        {}, "audit", "verify", str(out), "--pubkey", key.stdout.strip(), "--home", str(home),
        "--require-covered", "--quiet",
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("valid: ") and "HMAC checked" in verified.stdout
    return verified.stdout
