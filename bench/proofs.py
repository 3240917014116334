"""Audit proofs: latency at 1k vs 1M entries, and intercept latency under proof load.

Side by side in one run:
  1. inclusion and consistency proofs through the service (stored subtree hashes, one
     batched read) on a log of 1k entries and on one of 1M (target: 1M within 2x of
     1k), beside the old path that rebuilt the tree from every entry hash per call;
  2. `vettra dev` on a home of --live-entries entries: LOW-intercept p50/p99 idle, then
     while 8 processes loop on proof requests (target: p99 within 2x of idle), once with
     the rate limit raised out of the way (the cost of serving proofs) and once with the
     default limit (what a caller hammering proofs gets: 429s).
The big logs are written straight into SQLite (minimal entry rows plus the nodes the
sequencer would store; proofs read only hashes), so 1M entries take seconds, not hours.
Prints numbers and ratios; never fails on timing.

    python bench/proofs.py [--big 1000000] [--small 1000] [--live-entries 100000] [--seconds 5]
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import random
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
from _args import BIG, SECONDS, Opt, parse_options
from _live import Client, free_port, mint, start_server, stop_server  # noqa: F401

from vettra.adapters.local_keys import LocalKeyStore
from vettra.adapters.sqlite_store import SqliteStore
from vettra.domain.audit import GENESIS_HASH
from vettra.domain.identity import Principal
from vettra.domain.merkle import CompactRange, MerkleTree, leaf_hash
from vettra.services import checkpoints

CHAIN = "default"
BATCH = 50_000
LOW_BUNDLE = json.dumps({"tool": "user.get_profile", "arguments": {"fields": ["name"]}}).encode()
ADMIN = Principal(sub="bench", role="admin", user="bench")
TARGET_RATIO = 2.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def build_log(home: Path, n: int) -> Path:
    """A home whose store holds ``n`` entries, written directly (no HMAC, no JSON canonicalisation)."""
    from vettra.bootstrap import DB_FILE

    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = home / DB_FILE
    SqliteStore(path, LocalKeyStore(home)).close()  # the schema
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("BEGIN")
    tree, prev, entries, nodes = CompactRange(), GENESIS_HASH, [], []
    sha256 = hashlib.sha256
    for seq in range(1, n + 1):
        # canonical JSON (RFC 8785: keys sorted) of a minimal entry body
        body = (
            '{"action_id":null,"actor":"agent:bench","at":"2026-01-01T00:00:00.000Z",'
            f'"chain":"{CHAIN}","data":{{}},"key_id":"hk_bench","prev_hash":"{prev}",'
            f'"seq":{seq},"type":"bench","user":"alice"}}'
        )
        digest = sha256(body.encode()).digest()
        hash_hex = digest.hex()
        entries.append((CHAIN, seq, None, "alice", body, hash_hex, "", prev))
        for level, index, node in tree.append_completing(leaf_hash(digest)):
            nodes.append((CHAIN, level, index, node))
        prev = hash_hex
        if len(entries) >= BATCH or seq == n:
            conn.executemany(
                "INSERT INTO audit_entries (chain, seq, action_id, user, body, hash, mac,"
                " prev_hash) VALUES (?,?,?,?,?,?,?,?)",
                entries,
            )
            conn.executemany(
                "INSERT INTO audit_nodes (chain, level, idx, hash) VALUES (?,?,?,?)", nodes
            )
            entries, nodes = [], []
    conn.execute(
        "INSERT INTO audit_heads (chain, seq, hash, frontier) VALUES (?,?,?,?)",
        (CHAIN, n, prev, json.dumps(tree.to_dict())),
    )
    conn.execute("COMMIT")
    conn.close()
    return path


def proof_latency(homes: list[Path], calls: int) -> list[dict[str, float]]:
    """Median and p99 ms of inclusion and consistency proofs at random positions, for each
    home; calls alternate between the homes so machine noise hits them alike."""
    from vettra.bootstrap import DB_FILE

    runs = []
    for home in homes:
        started = time.perf_counter()
        store = SqliteStore(home / DB_FILE, LocalKeyStore(home))
        runs.append(
            {
                "store": store,
                "open_s": time.perf_counter() - started,
                "deps": SimpleNamespace(store=store, proof_limiter=None),
                "size": store.audit_log.tree_state(CHAIN)[0],
                "inclusion": [],
                "consistency": [],
            }
        )
    rng = random.Random(7)
    for _ in range(calls):
        for run in runs:
            deps, size = run["deps"], run["size"]
            seq, old = rng.randint(1, size), rng.randint(1, size)
            t0 = time.perf_counter()
            checkpoints.inclusion(deps, ADMIN, seq, size)
            t1 = time.perf_counter()
            checkpoints.consistency(deps, ADMIN, old, size)
            run["inclusion"].append(t1 - t0)
            run["consistency"].append(time.perf_counter() - t1)
    out = []
    for run in runs:
        run["store"].close()
        row: dict[str, float] = {"size": run["size"], "open_s": run["open_s"]}
        for kind in ("inclusion", "consistency"):
            row[f"{kind}_p50"] = statistics.median(run[kind]) * 1000.0
            row[f"{kind}_p99"] = pct(run[kind], 0.99) * 1000.0
        out.append(row)
    return out


def rebuild_latency(home: Path, calls: int) -> float:
    """Median ms of one inclusion proof the old way: every entry hash read, the tree rebuilt."""
    from vettra.bootstrap import DB_FILE

    store = SqliteStore(home / DB_FILE, LocalKeyStore(home))
    size = store.audit_log.tree_state(CHAIN)[0]
    samples = []
    for i in range(calls):
        t0 = time.perf_counter()
        tree = MerkleTree([leaf_hash(h) for h in store.audit_log.entry_hashes(CHAIN, size)])
        tree.inclusion_proof((i * 7919) % size, size)
        tree.root(size)
        samples.append(time.perf_counter() - t0)
    store.close()
    return statistics.median(samples) * 1000.0


# -- live server --------------------------------------------------------------------------


def _loop(
    kind: str,
    url: str,
    token: str,
    size: int,
    seconds: float,
    seed: int,
    out: multiprocessing.Queue[tuple[int, int]],
) -> None:
    client, rng = Client(url, token), random.Random(seed)
    served = limited = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        if kind == "health":  # the cheapest request: what any busy caller costs this machine
            path = "/health"
        elif rng.random() < 0.5:
            path = f"/api/audit/proof/inclusion?seq={rng.randint(1, size)}&tree_size={size}"
        else:
            path = f"/api/audit/proof/consistency?from={rng.randint(1, size)}&to={size}"
        status = client.call("GET", path)
        served += status == 200
        limited += status == 429
    out.put((served, limited))


def intercept_latency(client: Client, seconds: float) -> list[float]:
    samples, stop_at = [], time.monotonic() + seconds
    while time.monotonic() < stop_at:
        t0 = time.perf_counter()
        status = client.call("POST", "/api/actions/intercept", LOW_BUNDLE)
        samples.append(time.perf_counter() - t0)
        assert status == 201, status
    return samples


def _loaded(
    kind: str, url: str, tokens: list[str], size: int, agent: Client, seconds: float
) -> dict:
    queue: multiprocessing.Queue[tuple[int, int]] = multiprocessing.Queue()
    workers = [
        multiprocessing.Process(
            target=_loop, args=(kind, url, token, size, seconds + 1.0, i, queue)
        )
        for i, token in enumerate(tokens)
    ]
    for w in workers:
        w.start()
    time.sleep(0.5)
    loaded = intercept_latency(agent, seconds)
    results = [queue.get(timeout=60) for _ in workers]
    for w in workers:
        w.join()
    return {
        "p50": statistics.median(loaded) * 1000,
        "p99": pct(loaded, 0.99) * 1000,
        "served_per_s": sum(r[0] for r in results) / (seconds + 1.0),
        "limited": sum(r[1] for r in results),
    }


def under_proof_load(
    home: Path, loops: int, seconds: float, env_extra: dict[str, str], with_baseline: bool
) -> dict:
    proc, url = start_server(home, env_extra)
    try:
        agent = Client(url, mint(home, "agent", "bench", "alice"))
        size = json.loads(
            httpx.get(
                url + "/api/audit/checkpoint",
                headers={"Authorization": "Bearer " + mint(home, "admin", "ops")},
                timeout=30,
            ).text
        )["size"]
        intercept_latency(agent, 1.0)  # warm up
        idle = intercept_latency(agent, seconds)
        tokens = [mint(home, "agent", f"prover{i}", "alice") for i in range(loops)]
        health = _loaded("health", url, tokens, size, agent, seconds) if with_baseline else None
        proofs = _loaded("proofs", url, tokens, size, agent, seconds)
    finally:
        stop_server(proc)
    return {
        "idle_p50": statistics.median(idle) * 1000,
        "idle_p99": pct(idle, 0.99) * 1000,
        "health": health,
        "proofs": proofs,
        "size": size,
    }


def print_latency(small: dict, big: dict, old_small: float, old_big: float | None) -> None:
    print(
        f"proof latency, stored subtree hashes (ms; {small['size']:,} vs {big['size']:,} entries):"
    )
    for kind in ("inclusion", "consistency"):
        a, b = small[f"{kind}_p50"], big[f"{kind}_p50"]
        print(
            f"  {kind:<12} p50 {a:6.2f} vs {b:6.2f}  p99 {small[f'{kind}_p99']:6.2f} vs "
            f"{big[f'{kind}_p99']:6.2f}  -> {b / a:.2f}x (target <= {TARGET_RATIO:.0f}x: "
            f"{'met' if b / a <= TARGET_RATIO else 'NOT met'})"
        )
    print(
        f"  old path (rebuild from every entry hash per call): {old_small:.2f} ms at {small['size']:,}"
        + (
            f", {old_big:,.0f} ms at {big['size']:,}"
            if old_big is not None
            else " (at the big size: --rebuild-big)"
        )
    )
    print(f"  opening the big store (node completeness check): {big['open_s'] * 1000:.0f} ms")


def main() -> None:
    args = parse_options(
        __doc__,
        small=1_000,
        big=BIG,
        calls=1000,
        rebuild_big=Opt(False, "time the old path once at --big"),
        live_entries=100_000,
        loops=8,
        seconds=SECONDS,
        skip_live=False,
    )

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        build_log(tmp / "small", args.small)
        build_log(tmp / "big", args.big)
        print(
            f"built logs of {args.small:,} and {args.big:,} entries in {time.perf_counter() - t0:.1f} s"
        )
        small, big = proof_latency([tmp / "small", tmp / "big"], args.calls)
        old_small = rebuild_latency(tmp / "small", 20)
        old_big = rebuild_latency(tmp / "big", 1) if args.rebuild_big else None
        print_latency(small, big, old_small, old_big)
        if args.skip_live:
            return
        build_log(tmp / "live", args.live_entries)
        raised = {"VETTRA_PROOF_RATE_PER_S": "1000000", "VETTRA_PROOF_BURST": "1000000"}
        for label, env in (("limit raised", raised), ("default limit", {})):
            r = under_proof_load(
                tmp / "live", args.loops, args.seconds, env, with_baseline=env is raised
            )
            print(
                f"\nintercept latency, `vettra dev` on {r['size']:,} entries, {args.loops} loops ({label}):"
            )
            print(
                f"  idle                  p50 {r['idle_p50']:6.2f} ms  p99 {r['idle_p99']:6.2f} ms"
            )
            for name, row in (("8 loops on /health", r["health"]), ("8 proof loops", r["proofs"])):
                if row is None:
                    continue
                print(
                    f"  {name:<21} p50 {row['p50']:6.2f} ms  p99 {row['p99']:6.2f} ms  -> p99 "
                    f"{row['p99'] / r['idle_p99']:.2f}x idle (target for proofs <= {TARGET_RATIO:.0f}x: "
                    f"{'met' if row['p99'] <= TARGET_RATIO * r['idle_p99'] else 'NOT met'}); "
                    f"{row['served_per_s']:,.0f} served/s, {row['limited']:,} answered 429"
                )


if __name__ == "__main__":
    main()
