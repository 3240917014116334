"""The WASM verifier against the Python reference, side by side in one run.

  1. per-decision cost (risk.assess + policy.evaluate under the shipped default policy)
     for a mix of bundles shaped like real intercepts: the Python reference, and the
     module through the bridge *including marshalling* (JSON in, one wasm call, JSON out,
     the RiskAssessment and PolicyDecision objects built), p50 and p99 of each, and the
     module's own time alone (the same request without the Python objects);
  2. verification throughput of an exported log of 100,000 entries (hash, link, HMAC,
     Merkle root against signed checkpoint roots): audit_verify.LogVerifier in Python
     vs one ``verify_log`` request to the module (the request's JSON encoding counted).

Target: a WASM decision <= 100 us p50 including marshalling. Prints numbers and
ratios; never fails on timing.

    python bench/verifier.py [--decisions 5000] [--entries 100000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from typing import Any

from _events import CHECKPOINT_EVERY, KEY, KEY_ID, intercepted

from vettra.adapters.wasm_verifier import WasmVerifier, bundle_facts, load
from vettra.domain.action_bundle import parse_bundle
from vettra.domain.audit import GENESIS_HASH, link_all
from vettra.domain.audit_verify import LogVerifier, split_export_line
from vettra.domain.catalogue import Catalogue
from vettra.domain.merkle import CompactRange
from vettra.domain.policy import Policy
from vettra.domain.policy_envelope import load_default_payload
from vettra.services.verifier import ReferenceVerifier

BODIES: list[dict[str, Any]] = [
    {"tool": "user.get_profile", "arguments": {}},
    {
        "tool": "gmail.send_message",
        "arguments": {"to": "a@example.com", "subject": "Q3", "body": "Hi " * 40},
    },
    {"tool": "gmail.send_message", "arguments": {"to": ["a@x.com", "b@y.com"], "cc": "c@z.com"}},
    {"tool": "github.delete_repo", "arguments": {"owner": "acme", "repo": "old-api"}},
    {
        "tool": "stripe.create_charge",
        "arguments": {"amount": 50000, "currency": "usd", "customer": "cus_1"},
    },
    {
        "tool": "drive.share_file",
        "arguments": {"file_id": "f1", "role": "writer", "type": "user", "emails": "x@y.com"},
    },
    {
        "tool": "calendar.create_event",
        "arguments": {"summary": "sync", "attendees": ["a@x", "b@x", "c@x"]},
    },
    {"tool": "acmecorp.get_widget", "arguments": {"id": 42, "fields": ["name", "owner"]}},
    {
        "tool": "iam.grant_role",
        "arguments": {"member": "user:bob@example.com", "role": "roles/viewer"},
    },
    {
        "tool": "slack.post_message",
        "arguments": {"channel": "#ops", "text": "déploiement terminé ✅"},
    },
]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2] * 1e6, ordered[int(len(ordered) * 0.99)] * 1e6


def time_each(fn: Any, items: list[Any], rounds: int) -> list[float]:
    out = []
    gc.disable()
    try:
        for _ in range(rounds):
            for item in items:
                start = time.perf_counter()
                fn(item)
                out.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return out


def decisions(verifier: WasmVerifier, count: int) -> None:
    catalogue, policy = Catalogue.default(), Policy.from_payload(load_default_payload())
    reference = ReferenceVerifier()
    bundles = [parse_bundle(b) for b in BODIES]
    for bundle in bundles:  # warm both (and check they agree)
        assert verifier.decide(policy, bundle, catalogue, "agent:bench") == reference.decide(
            policy, bundle, catalogue, "agent:bench"
        )
    rounds = max(1, count // len(bundles))
    py = time_each(lambda b: reference.decide(policy, b, catalogue, "agent:bench"), bundles, rounds)
    wasm = time_each(
        lambda b: verifier.decide(policy, b, catalogue, "agent:bench"), bundles, rounds
    )
    requests = [
        {
            "op": "decide",
            "policy_digest": policy.digest,
            "bundle": bundle_facts(b),
            "agent": "agent:bench",
        }
        for b in bundles
    ]
    raw = time_each(verifier.module.request, requests, rounds)
    (p50, p99), (w50, w99), (r50, r99) = percentiles(py), percentiles(wasm), percentiles(raw)
    print(f"decisions ({len(py)} each, {len(bundles)} bundle shapes, default policy):")
    print(f"  python reference        p50 {p50:7.1f} us   p99 {p99:7.1f} us")
    print(
        f"  wasm, with marshalling  p50 {w50:7.1f} us   p99 {w99:7.1f} us   (target p50 <= 100 us)"
    )
    print(f"  wasm, request only      p50 {r50:7.1f} us   p99 {r99:7.1f} us")
    print(f"  ratio python / wasm     p50 {p50 / w50:5.2f}x      p99 {p99 / w99:5.2f}x")
    per_shape = {}
    for i, bundle in enumerate(bundles):
        mine = wasm[i :: len(bundles)]
        theirs = py[i :: len(bundles)]
        per_shape[bundle.tool] = (statistics.median(theirs) * 1e6, statistics.median(mine) * 1e6)
    for tool, (a, b) in per_shape.items():
        print(f"    {tool:28s} python {a:7.1f} us   wasm {b:7.1f} us")


def entries(n: int) -> tuple[list[bytes], list[tuple[int, str]]]:
    events = [
        intercepted(
            i, {"status": "allowed", "tool": "gmail.send_message", "risk_level": "MEDIUM", "n": i}
        )
        for i in range(n)
    ]
    linked = link_all(events, head_seq=0, head_hash=GENESIS_HASH, key_id=KEY_ID, key=KEY)
    lines = [e.export_line().encode("utf-8") for e in linked]
    tree, roots = CompactRange(), []
    for i, line in enumerate(lines, 1):
        body, _, _ = split_export_line(line)
        import hashlib

        tree.append_leaf_data(hashlib.sha256(body).digest())
        if i % CHECKPOINT_EVERY == 0:
            roots.append((i, tree.root().hex()))
    return lines, roots


def log_throughput(verifier: WasmVerifier, n: int) -> None:
    from vettra.domain.checkpoint import Checkpoint

    lines, roots = entries(n)
    origin = "vettra.dev/audit/default"
    checkpoints = [Checkpoint(origin, size, bytes.fromhex(root)) for size, root in roots]
    start = time.perf_counter()
    checker = LogVerifier(hmac_keys={KEY_ID: KEY}, checkpoints=checkpoints)
    for line in lines:
        if not checker.add(*split_export_line(line)):
            break
    report = checker.finish()
    python_s = time.perf_counter() - start
    assert report.valid and report.length == n, report
    start = time.perf_counter()
    answer = verifier.module.request(
        {
            "op": "verify_log",
            "lines": [line.decode("utf-8") for line in lines],
            "hmac_keys": {KEY_ID: KEY.hex()},
            "checkpoints": [{"size": s, "root": r} for s, r in roots],
        }
    )
    wasm_s = time.perf_counter() - start
    assert answer["valid"] and answer["length"] == n and answer["root_hash"] == report.root_hash, (
        answer
    )
    assert answer["checkpoints_verified"] == report.checkpoints_verified
    size = sum(len(line) for line in lines) / 1e6
    print(
        f"log verification ({n} entries, {size:.0f} MB exported, a checkpoint every {CHECKPOINT_EVERY}):"
    )
    print(f"  python LogVerifier   {python_s:6.2f} s   {n / python_s:9.0f} entries/s")
    print(
        f"  wasm verify_log      {wasm_s:6.2f} s   {n / wasm_s:9.0f} entries/s   (JSON encoding included)"
    )
    print(f"  ratio wasm / python  {python_s / wasm_s:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    start = time.perf_counter()
    verifier = load()
    print(f"module loaded and self-tested in {time.perf_counter() - start:.2f} s")
    decisions(verifier, args.decisions)
    log_throughput(verifier, args.entries)


if __name__ == "__main__":
    main()
