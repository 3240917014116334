"""A long-poll over a store shared by several processes (the Firestore backend): a
decision made elsewhere never reaches this process's bus, so the wait also re-reads
the store every ``wait_poll_s`` seconds. Played here on the embedded store, with the
other process's decision made through services wired to a bus of their own."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from vettra.adapters.memory_bus import InProcessEventBus
from vettra.domain.identity import Principal
from vettra.services import actions

from .scenarios import SEND_EMAIL


def _decide_elsewhere(runtime, action_id: str) -> None:
    """Approve through the same store but another bus: what another instance does."""
    elsewhere = replace(runtime.deps, bus=InProcessEventBus())
    alice = Principal(role="approver", sub="alice", user="alice", tenant="default")
    actions.decide(elsewhere, alice, action_id, "approve")


def _long_poll(agent, action_id: str, wait: int) -> tuple[dict, float]:
    started = time.monotonic()
    body = agent.get(f"/api/actions/{action_id}", params={"wait": wait}).json()
    return body, time.monotonic() - started


def _race(runtime, agent, wait: int) -> tuple[dict, float, float]:
    aid = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    out: dict = {}
    poller = threading.Thread(
        target=lambda: out.update(zip(("body", "took"), _long_poll(agent, aid, wait), strict=True))
    )
    poller.start()
    time.sleep(0.5)
    decided = time.monotonic()
    _decide_elsewhere(runtime, aid)
    poller.join(wait + 10)
    return out["body"], out["took"], decided


def test_a_decision_made_elsewhere_ends_the_wait_within_the_poll_interval(runtime, agent) -> None:
    runtime.deps.settings["wait_poll_s"] = 0.2
    body, took, _ = _race(runtime, agent, wait=10)
    assert body["status"] == "approved"
    assert took < 2.0, f"the wait took {took:.2f} s"


def test_without_re_reading_only_this_process_bus_ends_the_wait(runtime, agent) -> None:
    # the embedded default (one process owns the store): the bus alone wakes a wait,
    # so a decision another process made is seen only when the wait times out
    runtime.deps.settings.pop("wait_poll_s", None)
    body, took, _ = _race(runtime, agent, wait=2)
    assert body["status"] == "approved" and took >= 2.0
