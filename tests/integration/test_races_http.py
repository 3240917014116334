"""Approve, deny and the expiry timer racing at the deadline, over HTTP: exactly one
terminal transition per action, each audited once, and losers get a clear 409."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import datetime

from .scenarios import SEND_EMAIL

ACTIONS = 30
TERMINAL = {"action.approved", "action.denied", "action.expired"}


def test_approve_deny_and_expire_race_to_one_terminal_entry(server, agent, admin) -> None:
    pending = [
        agent.post("/api/actions/intercept", json={**SEND_EMAIL, "timeout_s": 1}).json()
        for _ in range(ACTIONS)
    ]
    statuses: list[int] = []
    lock = threading.Lock()
    rng = random.Random(11)

    def hit(action: dict, decision: str, at: float) -> None:
        time.sleep(max(0.0, at - time.time()))
        with server.client("approver", "alice") as alice:
            r = alice.post(
                "/api/actions/approve",
                json={"action_id": action["action_id"], "decision": decision},
            )
        with lock:
            statuses.append(r.status_code)

    threads = []
    for action in pending:
        deadline = datetime.fromisoformat(action["expires_at"].replace("Z", "+00:00")).timestamp()
        at = deadline + rng.uniform(-0.03, 0.01)
        threads += [threading.Thread(target=hit, args=(action, d, at)) for d in ("approve", "deny")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.3)  # a timer already due finishes its transaction

    assert set(statuses) <= {200, 409}, Counter(statuses)
    entries = admin.get("/api/audit/entries", params={"limit": 1000}).json()["entries"]
    ids = {a["action_id"] for a in pending}
    terminal = Counter(
        e["action_id"] for e in entries if e["action_id"] in ids and e["type"] in TERMINAL
    )
    assert all(terminal[i] == 1 for i in ids), terminal
    for action in pending:
        final = agent.get(f"/api/actions/{action['action_id']}").json()["status"]
        assert final in ("approved", "denied", "expired")
    assert statuses.count(200) == sum(
        1
        for e in entries
        if e["action_id"] in ids and e["type"] in ("action.approved", "action.denied")
    )
    assert admin.get("/api/audit/verify").json()["valid"]
