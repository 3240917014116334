"""Audit log: verification throughput and durable append throughput.

Side by side in one run:
  1. verification of an exported log (hash, link, HMAC, Merkle root against
     signed checkpoints) vs a bare loop doing hashlib SHA-256 + HMAC-SHA256 over
     the same exported lines (target: >= 50% of the bare loop, >= 100,000 entries/s);
  2. appends with 8 concurrent writers through the SQLite store, durable
     (synchronous=FULL), vs a bare durable SQLite commit measured alone
     (target >= 500 entries/s), with the number of head-row writes per second
     and signed checkpoints per second (the design allows about one of each per
     second per chain);
  3. with --proofs (about a minute: it writes a log of 1M entries): inclusion and
     consistency proof latency at 1k and at 1M entries side by side, beside the old
     rebuild-every-leaf path (bench/proofs.py, which also measures intercept p99 under
     8 concurrent proof loops against `vettra dev`).
Prints numbers and ratios; never fails on timing.

    python bench/audit.py [--entries 200000] [--writers 8] [--seconds 5] [--proofs [--big 1000000]]
"""

from __future__ import annotations

import hashlib
import hmac
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from _args import BIG, SECONDS, Opt, parse_options
from _events import CHECKPOINT_EVERY, KEY, KEY_ID, intercepted

from vettra.adapters.local_keys import LocalKeyStore
from vettra.adapters.sqlite_store import SqliteStore
from vettra.domain.audit import GENESIS_HASH, AuditEvent, link_all
from vettra.domain.audit_verify import LogVerifier, split_export_line
from vettra.domain.checkpoint import (
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    sign_checkpoint,
    verify_checkpoint,
)
from vettra.domain.merkle import CompactRange, leaf_hash
from vettra.services.checkpoints import Checkpointer


def event(i: int) -> AuditEvent:
    """An entry shaped like a real intercept entry (about 700 bytes exported)."""
    return intercepted(
        i,
        {
            "agent": "bench",
            "args_digest": "sha256:" + hashlib.sha256(str(i).encode()).hexdigest(),
            "expires_at": None,
            "framework": "plain",
            "policy": {"id": "default", "outcome": "allow", "rule_id": None, "version": 1},
            "reason": "risk score 5 (LOW) is below the approval threshold",
            "risk": {"category": "read", "level": "LOW", "score": 5},
            "session_id": None,
            "status": "allowed",
            "step_up_required": False,
            "tool": "user.get_profile",
        },
    )


def build_export(n: int) -> tuple[list[str], list[Checkpoint]]:
    entries = link_all(
        (event(i) for i in range(n)), head_seq=0, head_hash=GENESIS_HASH, key_id=KEY_ID, key=KEY
    )
    lines = [e.export_line() for e in entries]
    signer = NoteSigner(
        "vettra.dev/audit/default",
        __import__(
            "cryptography.hazmat.primitives.asymmetric.ed25519", fromlist=["x"]
        ).Ed25519PrivateKey.generate(),
    )
    verifier = NoteVerifier(signer.verifier_key())
    tree, checkpoints = CompactRange(), []
    for i, entry in enumerate(entries, 1):
        tree.append(leaf_hash(bytes.fromhex(entry.hash)))
        if i % CHECKPOINT_EVERY == 0 or i == n:
            note = sign_checkpoint(Checkpoint("vettra.dev/audit/default", i, tree.root()), signer)
            checkpoints.append(verify_checkpoint(note, verifier))
    return lines, checkpoints


def bare_loop(lines: list[str]) -> float:
    started = time.perf_counter()
    for line in lines:
        data = line.encode()
        hashlib.sha256(data).digest()
        hmac.digest(KEY, data, "sha256")
    return len(lines) / (time.perf_counter() - started)


def vettra_verify(lines: list[str], checkpoints: list[Checkpoint]) -> float:
    started = time.perf_counter()
    verifier = LogVerifier(hmac_keys={KEY_ID: KEY}, checkpoints=checkpoints)
    for line in lines:
        body, hash_hex, mac_hex = split_export_line(line)
        if not verifier.add(body, hash_hex, mac_hex):
            raise SystemExit(f"bench log did not verify: {verifier.failure}")
    report = verifier.finish()
    rate = len(lines) / (time.perf_counter() - started)
    assert report.valid and report.checkpoints_verified == len(checkpoints)
    return rate


def bare_commit_rate(tmp: Path, seconds: float) -> float:
    conn = sqlite3.connect(str(tmp / "bare.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, doc TEXT)")
    count, stop = 0, time.monotonic() + seconds
    started = time.perf_counter()
    while time.monotonic() < stop:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (doc) VALUES (?)", ("x" * 600,))
        conn.execute("COMMIT")
        count += 1
    return count / (time.perf_counter() - started)


def append_rate(tmp: Path, writers: int, seconds: float) -> tuple[float, float, float, int]:
    keys = LocalKeyStore(tmp / "home")
    store = SqliteStore(tmp / "store.db", keys)
    # the real checkpointer of the embedded default, signing as it does in `vettra dev`
    deps = SimpleNamespace(store=store, keys=keys)
    checkpointer = Checkpointer(deps, store.known_chains)
    checkpointer.start()
    counts = [0] * writers
    stop = time.monotonic() + seconds
    head_before = store.head_writes

    def writer(w: int) -> None:
        i = 0
        while time.monotonic() < stop:
            with store.unit_of_work() as uow:
                uow.audit.record(event(w * 10_000_000 + i))
                uow.commit()
            counts[w] += 1
            i += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    head_writes = store.head_writes - head_before
    checkpoints = checkpointer.signed
    checkpointer.stop()
    seqs = [e.seq for e in store.audit_log.entries("default")]
    store.close()
    assert seqs == list(range(1, len(seqs) + 1)), "gap or duplicate in the chain"
    return sum(counts) / elapsed, head_writes / elapsed, checkpoints / elapsed, sum(counts)


def main() -> None:
    args = parse_options(
        __doc__,
        entries=200_000,
        writers=8,
        seconds=SECONDS,
        proofs=Opt(False, "proof latency at 1k vs --big entries"),
        big=BIG,
    )

    lines, checkpoints = build_export(args.entries)
    size = sum(len(line) for line in lines) / len(lines)
    bare = max(bare_loop(lines) for _ in range(3))
    ours = max(vettra_verify(lines, checkpoints) for _ in range(3))
    print(
        f"verification of {args.entries} entries (~{size:.0f} B each, a signed checkpoint every "
        f"{CHECKPOINT_EVERY}):"
    )
    print(f"  bare SHA-256 + HMAC loop      {bare:>10,.0f} entries/s")
    print(
        f"  vettra verify (hash, link, HMAC, Merkle, checkpoints) {ours:>10,.0f} entries/s "
        f"= {ours / bare:.0%} of bare"
    )
    print(
        f"  targets: >= 50% of bare -> {'met' if ours >= bare / 2 else 'NOT met'}; "
        f">= 100,000/s -> {'met' if ours >= 100_000 else 'NOT met'}"
    )

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bare_commits = bare_commit_rate(tmp, min(args.seconds, 3))
        rate, heads, checkpoints, total = append_rate(tmp, args.writers, args.seconds)
    print(
        f"\ndurable appends with {args.writers} concurrent writers ({total} entries, chain gap-free):"
    )
    print(f"  bare durable SQLite commits (1 writer) {bare_commits:>8,.0f}/s")
    print(
        f"  vettra appends                          {rate:>8,.0f}/s = {rate / bare_commits:.2f}x bare"
    )
    print(
        f"  head-row writes                         {heads:>8.2f}/s (design: about 1/s per chain)"
    )
    print(
        f"  checkpoint writes                       {checkpoints:>8.2f}/s (design: at most 1/s per chain)"
    )
    print(f"  target >= 500 entries/s -> {'met' if rate >= 500 else 'NOT met'}")
    if args.proofs:
        print()
        proof_latency_side_by_side(1_000, args.big)


def proof_latency_side_by_side(small: int, big: int) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import proofs

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        proofs.build_log(tmp / "small", small)
        proofs.build_log(tmp / "big", big)
        small_run, big_run = proofs.proof_latency([tmp / "small", tmp / "big"], 1000)
        proofs.print_latency(small_run, big_run, proofs.rebuild_latency(tmp / "small", 20), None)


if __name__ == "__main__":
    main()
