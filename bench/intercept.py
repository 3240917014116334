"""Intercept latency and throughput, beside a bare durable SQLite commit.

Measured in one run on this machine, side by side:
  1. baseline: a bare durable SQLite commit (WAL, synchronous=FULL), one row;
  2. in-process: the HTTP app's handle() for a LOW intercept (no sockets);
  3. over local HTTP: `vettra dev` in its own process, a lean keep-alive client
     (http.client) for latency, then 1, 4 and 8 keep-alive client processes for throughput.
2 and 3 (and a --baseline-src server) take turns request by request, so each sees the
same disk and load.
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
from _args import SECONDS, Opt, parse_options
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


class InProcess:
    """The HTTP app's handle() for a LOW intercept, no sockets (the runtime of a home)."""

    def __init__(self, home: Path):
        from vettra.bootstrap import Config, bootstrap

        self.rt = bootstrap(Config(home=home))
        self.rt.start()
        token = self.rt.identity.issue(role="agent", sub="bench", user="alice")
        self.headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        self.body = json.dumps(LOW_BUNDLE).encode()

    def intercept(self) -> float:
        from vettra.entrypoints.http.types import Request

        req = Request("POST", "/api/actions/intercept", {}, dict(self.headers), self.body)
        t0 = time.perf_counter()
        resp = self.rt.app.handle(req)
        elapsed = time.perf_counter() - t0
        assert resp.status == 201, resp.body
        return elapsed

    def close(self) -> None:
        self.rt.close()


class Live:
    """``vettra dev`` in its own process (this tree, or ``source``) and a lean client."""

    def __init__(self, home: Path, source: str | None = None, env: dict[str, str] | None = None):
        self.home = home
        self.proc, self.url = start_server(home, env, source=source, log_level="WARNING")
        self.token = mint(home, "agent", "bench", "alice")
        self.client = Client(self.url, self.token)
        self.body = json.dumps(LOW_BUNDLE).encode()

    def intercept(self) -> float:
        t0 = time.perf_counter()
        status = self.client.intercept(self.body)
        elapsed = time.perf_counter() - t0
        assert status == 201, status
        return elapsed

    def audit_valid(self) -> bool:
        admin = mint(self.home, "admin", "bench-admin")
        with httpx.Client(base_url=self.url, headers={"Authorization": "Bearer " + admin}) as a:
            return bool(a.get("/api/audit/verify", timeout=120).json()["valid"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def interleaved(subjects: dict[str, InProcess | Live], n: int) -> dict[str, dict]:
    """One intercept from each subject in turn, ``n`` rounds: every one of them sees the
    same disk and the same load (an fsync here costs 0.2-4 ms depending on what else
    writes, which would otherwise decide the ratio by the order of the runs)."""
    for _ in range(100):  # warm-up
        for subject in subjects.values():
            subject.intercept()
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(n):
        for name, subject in subjects.items():
            samples[name].append(subject.intercept())
    return {name: summary(name, s) for name, s in samples.items()}


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
        seconds=SECONDS,
        baseline_src=Opt(
            None,
            "also measure `vettra dev` from this other tree's shared/ "
            "(e.g. the previous HTTP stack), interleaved in the same run",
        ),
    )
    counts = [int(c) for c in args.clients.split(",")]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = bare_sqlite_commit(tmp, args.n)
        subjects: dict[str, InProcess | Live] = {
            "intercept in-process (app.handle)": InProcess(tmp / "inproc"),
            "intercept over local HTTP (1 keep-alive client)": Live(tmp / "http"),
        }
        if args.baseline_src:
            subjects["intercept over local HTTP [baseline tree]"] = Live(
                tmp / "baseline", source=args.baseline_src
            )
        try:
            results = interleaved(subjects, args.n)
            lives = {name: s for name, s in subjects.items() if isinstance(s, Live)}
            runs = {}
            for name, live in lives.items():
                label = " [baseline tree]" if "baseline" in name else ""
                # Clients in their own processes, so they do not share the GIL.
                runs[name] = [_throughput(live.url, live.token, c, args.seconds) for c in counts]
                valid = live.audit_valid()
                for t in runs[name]:
                    t["name"] = f"intercept over local HTTP{label} {t['name']}"
                    t["audit_valid"] = valid
        finally:
            for subject in subjects.values():
                subject.close()
    names = list(subjects)
    inproc, latency = results[names[0]], results[names[1]]
    throughputs = runs[names[1]]
    other = (results[names[2]], runs[names[2]]) if len(names) > 2 else None
    rows = [base, inproc, latency] + ([other[0]] if other else [])
    print(f"{'measurement':52} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'x bare p50':>11}")
    for r in rows:
        print(
            f"{r['name']:52} {r['n']:>6} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} {r['p50_ms'] / base['p50_ms']:>11.2f}"
        )
    print(f"\nin-process sequential: {1000 / inproc['mean_ms']:.0f} intercepts/s")
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
