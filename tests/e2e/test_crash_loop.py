"""kill -9 at arbitrary moments, several times over one home: every answered
decision keeps its audit entry, the chain and its signed checkpoints verify,
and no two entries share a sequence number or a predecessor."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter

import httpx
import pytest

from .conftest import entries_of, intercept_load, mint_many, seqs_are_gap_free

pytestmark = pytest.mark.e2e

CRASHES = 4
MIX = [
    {"tool": "user.get_profile", "arguments": {}},
    {
        "tool": "gmail.send_message",
        "arguments": {"to": "bob@example.com", "subject": "s", "body": "b"},
    },
    {"tool": "iam.grant_role", "arguments": {"member": "user:m@evil.example", "role": "admin"}},
]


def test_repeated_kill_9_never_loses_or_forks_an_entry(dev_server_factory) -> None:
    server = dev_server_factory("crash-loop")
    tokens = mint_many(
        server.home,
        {
            "agent": ("agent", "agent-1", "alice"),
            "alice": ("approver", "alice"),
            "admin": ("admin", "root"),
        },
    )
    rng = random.Random(2026)
    acked: dict[str, str] = {}
    decided: set[str] = set()
    lock = threading.Lock()

    for _crash in range(CRASHES):
        stop = threading.Event()

        def decide(stop: threading.Event = stop) -> None:
            with server.client(tokens["alice"], timeout=5) as c:
                while not stop.is_set():
                    try:
                        for a in c.get("/api/actions/pending", params={"limit": 10}).json()[
                            "actions"
                        ]:
                            r = c.post(
                                "/api/actions/approve",
                                json={"action_id": a["action_id"], "decision": "approve"},
                            )
                            if r.status_code == 200:
                                with lock:
                                    decided.add(a["action_id"])
                    except (httpx.TransportError, ValueError, KeyError):
                        return

        workers = [
            threading.Thread(
                target=intercept_load, args=(server, tokens["agent"], MIX, n, acked, lock, stop)
            )
            for n in range(3)
        ] + [threading.Thread(target=decide)]
        for t in workers:
            t.start()
        time.sleep(rng.uniform(0.2, 1.2))  # an arbitrary moment under load
        server.kill9()
        stop.set()
        for t in workers:
            t.join(timeout=10)
        server.start()

    with server.client(tokens["admin"]) as admin, server.client(tokens["agent"]) as agent:
        report = admin.get("/api/audit/verify").json()
        assert report["valid"], report
        assert report["checkpoints_verified"] >= 1
        entries = entries_of(admin)
        assert seqs_are_gap_free(entries)
        assert len({e["prev_hash"] for e in entries}) == len(entries)
        intercepted = Counter(e["action_id"] for e in entries if e["type"] == "action.intercepted")
        approved = Counter(e["action_id"] for e in entries if e["type"] == "action.approved")
        assert len(acked) >= 40, len(acked)
        for aid in acked:
            assert intercepted[aid] == 1, aid
            assert agent.get(f"/api/actions/{aid}").status_code == 200
        for aid in decided:
            assert approved[aid] == 1, aid
        assert all(count == 1 for count in approved.values())
