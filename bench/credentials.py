"""Credential release latency over local HTTP, beside the bare exchange, in one run.

``vettra dev`` on a fresh home, configured for Auth0 Token Vault against a local token
endpoint (tests/token_endpoint.py: a real HTTP server that checks every parameter). Per
sample an allowed read is intercepted (not timed), then its credential is redeemed
(timed): through the local vault (a GitHub token stored with ``vettra vault put``) and
through Auth0 Token Vault (a refresh token linked with ``vettra vault link``, exchanged
at the endpoint). Printed beside, measured in the same run: the bare exchange (the same
form POSTed to the endpoint with a keep-alive httpx client) and a bare ``GET /health``
over the same kind of connection (the HTTP floor). Never fails on timing.

    python bench/credentials.py [--samples 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _live import Client, mint, start_server, stop_server  # noqa: E402

from tests.token_endpoint import TokenEndpoint  # noqa: E402

GMAIL_READ = "https://www.googleapis.com/auth/gmail.readonly"
MAIL = {"tool": "gmail.list_messages", "arguments": {"q": "is:unread"}}
REPOS = {"tool": "github.list_repos", "arguments": {"org": "acme"}}
REFRESH = "v1.bench-refresh-token"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def line(name: str, ms: list[float]) -> str:
    return f"  {name:<44} p50 {pct(ms, 0.5):7.2f} ms   p99 {pct(ms, 0.99):7.2f} ms"


def cli(home: Path, *args: str, stdin: str | None = None) -> None:
    subprocess.run(
        [sys.executable, "-m", "vettra.cli", *args, "--home", str(home)],
        input=stdin,
        check=True,
        capture_output=True,
        text=True,
    )


def releases(agent: Client, bundle: dict, n: int) -> list[float]:
    timings = []
    body = json.dumps(bundle).encode()
    for _ in range(n):
        status, raw = agent.exchange("POST", "/api/actions/intercept", body)
        action = json.loads(raw)
        assert status == 201 and action["status"] == "allowed", raw
        redeem = json.dumps({"args_digest": action["args_digest"]}).encode()
        started = time.perf_counter()
        status, raw = agent.exchange(
            "POST", f"/api/actions/{action['action_id']}/credential", redeem
        )
        timings.append((time.perf_counter() - started) * 1000)
        assert status == 200, raw
    return timings


def bare_exchange(endpoint: TokenEndpoint, n: int) -> list[float]:
    form = endpoint.exchange_form(REFRESH, "google-oauth2")
    timings = []
    with httpx.Client() as client:
        for _ in range(n):
            started = time.perf_counter()
            r = client.post(endpoint.token_url, data=form)
            timings.append((time.perf_counter() - started) * 1000)
            assert r.status_code == 200, r.text
    return timings


def health(url: str, token: str, n: int) -> list[float]:
    client = Client(url, token)
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        assert client.call("GET", "/health") == 200
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300)
    args = parser.parse_args()
    n = args.samples
    endpoint = TokenEndpoint()
    endpoint.link(REFRESH, "google-oauth2", "ya29.bench", scope=GMAIL_READ)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        proc, url = start_server(home, endpoint.env())
        try:
            cli(
                home,
                "vault",
                "link",
                "--user",
                "alice",
                "--connection",
                "google-oauth2",
                "--refresh-token-file",
                "-",
                stdin=REFRESH,
            )
            cli(
                home,
                "vault",
                "put",
                "--user",
                "alice",
                "--connection",
                "github",
                "--token-file",
                "-",
                "--scope",
                "repo",
                stdin="gho_bench",
            )
            alice = Client(url, mint(home, "approver", "alice"))
            for connection, scope in (("google-oauth2", GMAIL_READ), ("github", "repo")):
                grant = {"agent": "bench", "connection": connection, "scopes": [scope]}
                status, raw = alice.exchange(
                    "POST", "/api/inventory/permissions", json.dumps(grant).encode()
                )
                assert status == 201, raw
            agent = Client(url, mint(home, "agent", "bench", "alice"))
            releases(agent, REPOS, 20)  # warm both paths
            releases(agent, MAIL, 20)
            bare_exchange(endpoint, 20)
            local = releases(agent, REPOS, n)
            auth0 = releases(agent, MAIL, n)
            bare = bare_exchange(endpoint, n)
            floor = health(url, mint(home, "agent", "bench", "alice"), n)
        finally:
            stop_server(proc)
            endpoint.stop()
    assert endpoint.violations == [], endpoint.violations
    print(f"credential release over local HTTP, {n} samples each")
    print(line("GET /health (HTTP floor)", floor))
    print(line("bare exchange POST to the token endpoint", bare))
    print(line("release, local vault", local))
    print(line("release, Auth0 Token Vault (local endpoint)", auth0))
    p50 = {
        k: pct(v, 0.5)
        for k, v in {"floor": floor, "bare": bare, "local": local, "auth0": auth0}.items()
    }
    print("ratios (p50):")
    print(f"  release via Auth0 / bare exchange          {p50['auth0'] / p50['bare']:6.2f}x")
    print(f"  release via local vault / bare exchange    {p50['local'] / p50['bare']:6.2f}x")
    print(f"  release via Auth0 / release via local      {p50['auth0'] / p50['local']:6.2f}x")
    print(f"  release via local vault / GET /health      {p50['local'] / p50['floor']:6.2f}x")
    print(
        f"  Vettra's own cost around the exchange      {p50['auth0'] - p50['bare']:6.2f} ms "
        "(Auth0 release p50 minus bare exchange p50)"
    )


if __name__ == "__main__":
    main()
