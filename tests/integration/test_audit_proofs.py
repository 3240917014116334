"""Proofs served from stored subtree hashes (O(log n) reads), homes written before the
nodes were kept, and the per-principal rate limit of the proof endpoints."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vettra.domain.merkle import MerkleTree, leaf_hash

from .test_audit_log import N_ACTIONS, Stack

PROBLEM = "application/problem+json"


@pytest.fixture
def stack(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("VETTRA_PROOF_BURST", "1000")
    s = Stack(tmp_path / "home")
    s.intercepts(N_ACTIONS)
    yield s
    s.stop()


def _all_proofs(stack: Stack) -> list[dict]:
    size = stack.admin.get("/api/audit/proof/inclusion", params={"seq": 1}).json()["tree_size"]
    out = [
        stack.admin.get("/api/audit/proof/inclusion", params={"seq": seq, "tree_size": n}).json()
        for n in (1, 8, 13, size)
        for seq in range(1, n + 1)
    ]
    out += [
        stack.admin.get("/api/audit/proof/consistency", params={"from": old, "to": size}).json()
        for old in range(1, size + 1)
    ]
    return out


def _expected(stack: Stack) -> list[dict]:
    log = stack.rt.deps.store.audit_log
    size = log.tree_state("default")[0]
    hashes = log.entry_hashes("default", size)
    tree = MerkleTree([leaf_hash(h) for h in hashes])
    out = [
        {
            "seq": seq,
            "leaf_index": seq - 1,
            "tree_size": n,
            "entry_hash": hashes[seq - 1].hex(),
            "leaf_hash": leaf_hash(hashes[seq - 1]).hex(),
            "proof": [h.hex() for h in tree.inclusion_proof(seq - 1, n)],
            "root_hash": tree.root(n).hex(),
        }
        for n in (1, 8, 13, size)
        for seq in range(1, n + 1)
    ]
    out += [
        {
            "from": old,
            "to": size,
            "from_root": tree.root(old).hex(),
            "to_root": tree.root(size).hex(),
            "proof": [h.hex() for h in tree.consistency_proof(old, size)],
        }
        for old in range(1, size + 1)
    ]
    return out


def test_proofs_never_read_the_whole_log(stack: Stack, monkeypatch) -> None:
    """A proof reads O(log n) stored nodes, not entries 1..n (0.17 s at 40k entries before)."""
    expected = _expected(stack)
    log = stack.rt.deps.store.audit_log

    def whole_log(*args, **kwargs):
        raise AssertionError("a proof read every entry hash")

    monkeypatch.setattr(log, "entry_hashes", whole_log)
    assert _all_proofs(stack) == expected


@pytest.mark.parametrize("how", ["rows deleted", "table dropped", "rows missing at the end"])
def test_a_home_without_stored_nodes_is_backfilled_at_open(stack: Stack, how: str) -> None:
    expected = _expected(stack)
    stack.stop()
    with stack.db() as db:
        if how == "rows deleted":
            db.execute("DELETE FROM audit_nodes")
        elif how == "table dropped":
            db.execute("DROP TABLE audit_nodes")
        else:
            db.execute("DELETE FROM audit_nodes WHERE idx >= 4 AND level = 1")
    stack.start()
    count = stack.db().execute("SELECT COUNT(*) FROM audit_nodes").fetchone()[0]
    size = N_ACTIONS + 1
    assert count == size - size.bit_count()
    assert _all_proofs(stack) == expected


def test_proof_endpoints_are_rate_limited_per_principal(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VETTRA_PROOF_BURST", "3")
    monkeypatch.setenv("VETTRA_PROOF_RATE_PER_S", "0.5")
    s = Stack(tmp_path / "home")
    try:
        s.agent.post("/api/actions/intercept", json={"tool": "user.get_profile", "arguments": {}})
        paths = [
            ("/api/audit/proof/inclusion", {"seq": 1}),
            ("/api/audit/proof/consistency", {"from": 1, "to": 2}),
        ]
        for path, params in paths + paths[:1]:
            assert s.agent.get(path, params=params).status_code == 200
        for path, params in paths:
            r = s.agent.get(path, params=params)
            assert r.status_code == 429
            assert r.headers["content-type"] == PROBLEM
            assert 1 <= int(r.headers["Retry-After"]) <= 2
            assert r.json()["status"] == 429 and "proof requests" in r.json()["detail"]
        # another principal is not affected, and other endpoints are not limited
        assert s.admin.get("/api/audit/proof/inclusion", params={"seq": 1}).status_code == 200
        assert s.agent.get("/api/audit/checkpoint").status_code == 200
        time.sleep(2.1)
        assert s.agent.get(paths[0][0], params=paths[0][1]).status_code == 200
    finally:
        s.stop()


def test_a_node_the_store_lacks_is_rebuilt_from_its_leaves(stack: Stack) -> None:
    """The fallback when a store holds no node for a range (here: deleted under a running server)."""
    expected = _expected(stack)
    with stack.db() as db:
        db.execute("DELETE FROM audit_nodes WHERE level >= 2")
    assert _all_proofs(stack) == expected


def test_a_refusal_for_rate_is_held_so_a_looping_client_cannot_spin(
    tmp_path: Path, monkeypatch
) -> None:
    """A 429 is answered after min(Retry-After, 1 s), waiting on the event loop: a client
    hammering the proofs gets about one refusal a second, not thousands."""
    from vettra.entrypoints.asgi import TOO_MANY_DELAY_MAX_S

    monkeypatch.setenv("VETTRA_PROOF_BURST", "1")
    monkeypatch.setenv("VETTRA_PROOF_RATE_PER_S", "0.1")
    s = Stack(tmp_path / "home")
    try:
        s.agent.post("/api/actions/intercept", json={"tool": "user.get_profile", "arguments": {}})
        path, params = "/api/audit/proof/inclusion", {"seq": 1}
        assert s.agent.get(path, params=params).status_code == 200
        started = time.monotonic()
        r = s.agent.get(path, params=params)
        held = time.monotonic() - started
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
        assert TOO_MANY_DELAY_MAX_S * 0.9 <= held < TOO_MANY_DELAY_MAX_S + 2, held
        # other callers are not held behind it
        started = time.monotonic()
        assert s.admin.get("/health").status_code == 200
        assert time.monotonic() - started < TOO_MANY_DELAY_MAX_S * 0.5
    finally:
        s.stop()
