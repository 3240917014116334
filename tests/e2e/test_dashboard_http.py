"""``vettra dev`` serves the dashboard at ``/`` (no token, no data) with a strict CSP,
and prints a one-time sign-in link; ``vettra link`` prints more. Black box: the real
CLI in subprocesses, raw sockets where a client would normalise the path."""

from __future__ import annotations

import json
import re
import socket
import time

import httpx
import pytest

from .conftest import run_cli

pytestmark = pytest.mark.e2e

LINK = re.compile(r"(http://localhost:\d+)/#signin=(vsl_[A-Za-z0-9_-]{43})")


def _raw(server, request_line: str) -> tuple[int, dict[str, str], bytes]:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            f"{request_line}\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode("latin-1")
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def server(dev_server_factory):
    return dev_server_factory()


def test_the_dashboard_is_served_with_its_types_and_a_strict_csp(server) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        index = c.get("/")
        assert index.status_code == 200
        assert index.headers["content-type"] == "text/html; charset=utf-8"
        csp = index.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
        assert index.headers["x-content-type-options"] == "nosniff"
        assert '<script type="module" src="/app/main.js"></script>' in index.text
        for path, kind in [
            ("/app/main.js", "text/javascript; charset=utf-8"),
            ("/styles/app.css", "text/css; charset=utf-8"),
            ("/favicon.svg", "image/svg+xml"),
            ("/vendor/eventsource-parser/index.js", "text/javascript; charset=utf-8"),
        ]:
            r = c.get(path)
            assert r.status_code == 200 and r.headers["content-type"] == kind, path
            assert r.headers["content-security-policy"] == csp
        etag = index.headers["etag"]
        again = c.get("/", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        head = c.head("/index.html")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len(index.content)
        # the API is still the API: no token, 401; /health is public
        assert c.get("/api/actions/pending").status_code == 401
        assert c.get("/health").json()["status"] == "ok"


@pytest.mark.parametrize(
    "path, status",
    [
        ("/app/", 404),  # a directory: no listing
        ("/app", 404),
        ("/vendor/", 404),
        ("/package.json", 404),
        ("/node_modules/axe-core/axe.min.js", 404),
        ("/nope.html", 404),
        ("/../../etc/passwd", 400),
        ("/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/app/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 400),
        ("/app%2f..%2f..%2fetc%2fpasswd", 400),
        ("/..%5c..%5cetc%5cpasswd", 400),
        ("/index.html%00.js", 400),
        ("//etc/passwd", 400),
    ],
)
def test_no_listing_no_traversal(server, path, status) -> None:
    code, headers, body = _raw(server, f"GET {path} HTTP/1.1")
    assert code == status, (path, body[:200])
    assert headers["content-type"] == "application/problem+json"
    assert b"root:" not in body
    assert json.loads(body)["status"] == status


def test_writes_to_the_dashboard_are_405(server) -> None:
    r = httpx.post(server.url + "/index.html", content=b"x", timeout=10)
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert httpx.delete(server.url + "/", timeout=10).status_code == 405


def _printed_link(server) -> re.Match[str] | None:
    deadline = time.monotonic() + 5  # the banner follows the first /health by a moment
    while (found := LINK.search(server.log())) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_dev_prints_a_one_time_link_and_vettra_link_prints_more(server) -> None:
    found = _printed_link(server)
    assert found, server.log()
    base, code = found.groups()
    assert base == f"http://localhost:{server.port}"
    first = httpx.post(server.url + "/api/dashboard/signin", json={"code": code}, timeout=10)
    assert first.status_code == 200 and first.json()["sub"] == "alice"
    assert (
        httpx.post(
            server.url + "/api/dashboard/signin", json={"code": code}, timeout=10
        ).status_code
        == 401
    )

    out = run_cli("link", "--home", str(server.home), "--sub", "bob")
    found = LINK.search(out.stdout)
    assert found and found.group(1) == base, out.stdout
    session = httpx.post(
        server.url + "/api/dashboard/signin", json={"code": found.group(2)}, timeout=10
    )
    assert session.json()["sub"] == "bob" and session.json()["role"] == "approver"

    out = run_cli(
        "link", "--home", str(server.home), "--sub", "ops", "--role", "admin", "--url", server.url
    )
    assert out.stdout.startswith(server.url + "/#signin=vsl_")


def test_vettra_link_without_a_server_says_so(tmp_path) -> None:
    out = run_cli("link", "--home", str(tmp_path / "nohome"), "--sub", "alice", check=False)
    assert out.returncode == 1 and "no running vettra dev" in out.stderr
    stale = tmp_path / "stale"  # what a killed server leaves behind
    stale.mkdir(mode=0o700)
    (stale / "dev-server.json").write_text('{"url": "http://127.0.0.1:9", "pid": 999999999}')
    out = run_cli("link", "--home", str(stale), "--sub", "alice", check=False)
    assert out.returncode == 1 and "no running vettra dev" in out.stderr
    out = run_cli(
        "link",
        "--home",
        str(tmp_path / "nohome"),
        "--sub",
        "alice",
        "--url",
        "http://127.0.0.1:9",
        check=False,
    )
    assert out.returncode == 1 and "no server answers" in out.stderr


def test_vettra_dev_refuses_a_connect_src_that_is_not_a_plain_origin(tmp_path) -> None:
    """VETTRA_DASHBOARD_CONNECT_SRC (serving a cloud-mode build) can only add origins to
    connect-src: anything else stops the server before it listens or opens the home."""
    import os
    import subprocess

    from .conftest import CLI_TIMEOUT_S, vettra_command

    for bad in ("https://x.example; script-src *", "http://evil.example", "'unsafe-eval'"):
        out = subprocess.run(
            [*vettra_command(), "dev", "--home", str(tmp_path / "home"), "--port", "0"],
            env={**os.environ, "VETTRA_DASHBOARD_CONNECT_SRC": bad},
            capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
        )  # fmt: skip
        assert out.returncode == 2, (bad, out.stderr)
        assert "VETTRA_DASHBOARD_CONNECT_SRC" in out.stderr and "not an https origin" in out.stderr
        assert not (tmp_path / "home").exists()
