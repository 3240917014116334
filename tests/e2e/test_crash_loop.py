"""kill -9 at arbitrary moments, several times over one home: every answered
decision keeps its audit entry, the chain and its signed checkpoints verify,
and no two entries share a sequence number or a predecessor."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest

from .conftest import LOAD_CALLERS, Load, entries_of, mint_many, seqs_are_gap_free

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
    tokens = mint_many(server.home, LOAD_CALLERS)
    rng = random.Random(2026)
    load = Load(server, MIX)
    for _crash in range(CRASHES):
        load.start(tokens["agent"], tokens["alice"], agents=3, decision="approve", pending_limit=10)
        time.sleep(rng.uniform(0.2, 1.2))  # an arbitrary moment under load
        server.kill9()
        load.stop()
        server.start()
    acked, decided = load.acked, load.decided

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
