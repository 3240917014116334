"""Intercept latency and throughput, beside a bare durable SQLite commit.

Measured in one run on this machine, side by side:
  1. baseline: a bare durable SQLite commit (WAL, synchronous=FULL), one row;
  2. in-process: the HTTP app's handle() for a LOW intercept (no sockets);
  3. over local HTTP: `vettra dev` in its own process, a lean keep-alive client
     (http.client) for latency, then 1, 4 and 8 keep-alive client processes for throughput.
Targets (issue #8): HTTP p50 <= 2x the in-process p50, and >= 500 LOW intercepts/s with
8 keep-alive clients and durable commits.
Prints numbers and ratios; never fails on timing.

    python bench/intercept.py [--n 2000] [--clients 1,4,8] [--seconds 5]
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from _args import Opt, parse_options
from _live import Client, free_port, mint, start_server  # noqa: F401

LOW_BUNDLE = {"tool": "user.get_profile", "arguments": {"fields": ["name", "email"]}}
TARGET_P50_RATIO = 2.0
TARGET_RPS = 500


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, samples_s: list[float]) -> dict:
    ms = [s * 1000 for s in samples_s]
    return {
        "name": name,
        "n": len(ms),
        "p50_ms": pct(ms, 0.50),
        "p99_ms": pct(ms, 0.99),
        "mean_ms": statistics.fmean(ms),
    }


def bare_sqlite_commit(tmp: Path, n: int) -> dict:
    conn = sqlite3.connect(str(tmp / "bare.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, doc TEXT)")
    doc = json.dumps(LOW_BUNDLE) * 4
    samples = []
    for _i in range(n):
        t0 = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (doc) VALUES (?)", (doc,))
        conn.execute("COMMIT")
        samples.append(time.perf_counter() - t0)
    conn.close()
    return summary("bare durable SQLite commit", samples)


def in_process(tmp: Path, n: int) -> dict:
    from vettra.bootstrap import Config, bootstrap
    from vettra.entrypoints.http.types import Request

    rt = bootstrap(Config(home=tmp / "inproc"))
    rt.start()
    token = rt.identity.issue(role="agent", sub="bench", user="alice")
    body = json.dumps(LOW_BUNDLE).encode()
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    samples = []
    try:
        for _ in range(n):
            req = Request("POST", "/api/actions/intercept", {}, dict(headers), body)
            t0 = time.perf_counter()
            resp = rt.app.handle(req)
            samples.append(time.perf_counter() - t0)
            assert resp.status == 201, resp.body
    finally:
        rt.close()
    result = summary("intercept in-process (app.handle)", samples)
    result["per_s"] = n / sum(samples)
    return result


def _client_process(
    url: str, token: str, seconds: float, out: multiprocessing.Queue[tuple[int, int]]
) -> None:
    client = Client(url, token)
    body = json.dumps(LOW_BUNDLE).encode()
    ok = errors = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        if client.intercept(body) == 201:
            ok += 1
        else:
            errors += 1
    out.put((ok, errors))


def over_http(
    tmp: Path,
    n: int,
    client_counts: list[int],
    seconds: float,
    source: str | None = None,
    label: str = "",
) -> tuple[dict, list[dict]]:
    home = tmp / f"http{label}"
    proc, url = start_server(home, source=source, log_level="WARNING")
    token = mint(home, "agent", "bench", "alice")
    body = json.dumps(LOW_BUNDLE).encode()
    try:
        client = Client(url, token)
        for _ in range(100):  # warm-up
            client.intercept(body)
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            status = client.intercept(body)
            samples.append(time.perf_counter() - t0)
            assert status == 201, status
        latency = summary(f"intercept over local HTTP{label} (1 keep-alive client)", samples)

        # Clients in their own processes, so they do not share the GIL with each other.
        throughputs = [_throughput(url, token, clients, seconds) for clients in client_counts]
        for t in throughputs:
            t["name"] = f"intercept over local HTTP{label} {t['name']}"
        admin = mint(home, "admin", "bench-admin")
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer " + admin}) as a:
            valid = a.get("/api/audit/verify", timeout=120).json()["valid"]
        for t in throughputs:
            t["audit_valid"] = valid
    finally:
        proc.terminate()
        proc.wait(10)
    return latency, throughputs


def _throughput(url: str, token: str, clients: int, seconds: float) -> dict:
    results: multiprocessing.Queue = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_client_process, args=(url, token, seconds, results))
        for _ in range(clients)
    ]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    counts = [results.get(timeout=seconds + 30) for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    ok, errors = sum(c[0] for c in counts), sum(c[1] for c in counts)
    return {
        "name": f"({clients} keep-alive client processes)",
        "clients": clients,
        "requests": ok,
        "errors": errors,
        "per_s": ok / elapsed,
    }


def main() -> None:
    args = parse_options(
        __doc__,
        n=2000,
        clients=Opt("1,4,8", "comma-separated client counts"),
        seconds=5.0,
        baseline_src=Opt(
            None,
            "also measure `vettra dev` from this other tree's shared/ "
            "(e.g. the previous HTTP stack), interleaved in the same run",
        ),
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = bare_sqlite_commit(tmp, args.n)
        inproc = in_process(tmp, args.n)
        counts = [int(c) for c in args.clients.split(",")]
        other = None
        if args.baseline_src:
            other = over_http(
                tmp, args.n, counts, args.seconds, args.baseline_src, " [baseline tree]"
            )
        latency, throughputs = over_http(tmp, args.n, counts, args.seconds)
    rows = [base, inproc, latency] + ([other[0]] if other else [])
    print(f"{'measurement':52} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'x bare p50':>11}")
    for r in rows:
        print(
            f"{r['name']:52} {r['n']:>6} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['p50_ms'] / base['p50_ms']:>11.2f}"
        )
    print(f"\nin-process sequential: {inproc['per_s']:.0f} intercepts/s")
    for t in throughputs + (other[1] if other else []):
        print(
            f"{t['name']}: {t['per_s']:.0f} intercepts/s "
            f"({t['requests']} ok, {t['errors']} errors, audit chain valid: {t['audit_valid']})"
        )
    print(f"bare commits/s (1 writer): {1000 / base['mean_ms']:.0f}")
    if other:
        print(
            f"\nthis tree vs baseline tree: HTTP p50 {latency['p50_ms'] / other[0]['p50_ms']:.2f}x; "
            + ", ".join(
                f"{a['clients']} clients {a['per_s'] / b['per_s']:.2f}x"
                for a, b in zip(throughputs, other[1], strict=False)
            )
            + " (throughput)"
        )
    ratio = latency["p50_ms"] / inproc["p50_ms"]
    widest = max(throughputs, key=lambda t: t["clients"])
    print(f"\nHTTP p50 / in-process p50: {ratio:.2f}x")
    print(
        f"targets: HTTP p50 <= {TARGET_P50_RATIO:g}x in-process -> {'met' if ratio <= TARGET_P50_RATIO else 'NOT met'}; "
        f"{widest['clients']} clients >= {TARGET_RPS}/s -> {'met' if widest['per_s'] >= TARGET_RPS else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
