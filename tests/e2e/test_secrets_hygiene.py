"""Secrets hygiene (issue 12 item 5): a full run plants refresh tokens, provider tokens and the
Auth0 client secret, and none of them surfaces anywhere but in the one answer that releases
a credential.

``vettra dev`` runs as a subprocess at DEBUG with its output captured, configured for
Auth0 Token Vault against a real local token endpoint; users' secrets go in through the
CLI. The run covers releases (Auth0 and local vault), retries, outages and every kind of
refusal. Then the server's log, every answer body (the releasing answers minus their
``access_token``), the list endpoints, the audit export, the CLI's output and the bytes of
the database are searched for each planted secret, as written and URL-encoded.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from ..token_endpoint import TokenEndpoint
from .conftest import DevServer, mint, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GMAIL_READ = "https://www.googleapis.com/auth/gmail.readonly"
# Planted secrets: shaped like the real thing (opaque, not JWTs, so the log formatter's
# JWT/Bearer scrubber would not hide a leak), each unique enough to grep for.
REFRESH = "v1.MRrPLANTEDrefresh/alice+x=9Q7w"
REVOKED_REFRESH = "v1.MRrPLANTEDrevoked/bob+y=1Kz3"
GOOGLE = "ya29.a0PLANTEDgoogleaccess_3mD8"
GITHUB = "gho_PLANTEDgithublocalVault77aa"
CLIENT_SECRET = "PLANTEDclientSecret-Zx81+/="
SECRETS = {
    "alice's refresh token": REFRESH,
    "bob's refresh token": REVOKED_REFRESH,
    "the Google token": GOOGLE,
    "the GitHub token": GITHUB,
    "the client secret": CLIENT_SECRET,
}


def _forms(secret: str) -> list[str]:
    return sorted({secret, quote(secret, safe=""), quote_plus(secret)})


def _leaks(text: str | bytes, where: str) -> list[str]:
    blob = text if isinstance(text, bytes) else text.encode()
    return [
        f"{name} in {where}"
        for name, secret in SECRETS.items()
        for form in _forms(secret)
        if form.encode() in blob
    ]


def test_no_planted_secret_appears_in_logs_audit_errors_or_lists(tmp_path, monkeypatch) -> None:
    endpoint = TokenEndpoint(client_secret=CLIENT_SECRET)
    try:
        _run(tmp_path, monkeypatch, endpoint)
    finally:
        endpoint.stop()


def _run(tmp_path: Path, monkeypatch, endpoint: TokenEndpoint) -> None:
    endpoint.link(REFRESH, "google-oauth2", GOOGLE, scope=GMAIL_READ)
    endpoint.known_refresh_token(REVOKED_REFRESH)  # valid at Auth0, but linked to nothing
    for name, value in endpoint.env().items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    server = DevServer(home, tmp_path / "dev.log", ["--log-level", "DEBUG"]).start()
    seen: list[tuple[str, str]] = []  # (where, text) to search
    try:
        files = {name: tmp_path / name for name in ("alice.rt", "bob.rt", "gh.token")}
        files["alice.rt"].write_text(REFRESH)
        files["bob.rt"].write_text(REVOKED_REFRESH)
        files["gh.token"].write_text(json.dumps({"access_token": GITHUB, "scope": "repo"}))
        for args in (
            ["link", "--user", "alice", "--connection", "google-oauth2"]
            + ["--refresh-token-file", str(files["alice.rt"])],
            ["link", "--user", "bob", "--connection", "google-oauth2"]
            + ["--refresh-token-file", str(files["bob.rt"])],
            ["put", "--user", "alice", "--connection", "github"]
            + ["--token-file", str(files["gh.token"])],
            ["list", "--user", "alice"],
        ):
            proc = run_cli("vault", args[0], "--home", str(home), *args[1:])
            seen.append((f"vettra vault {args[0]} output", proc.stdout + proc.stderr))
        for f in files.values():
            f.unlink()

        tokens = {
            "agent": mint(home, "agent", "agent-1", "alice"),
            "bob_agent": mint(home, "agent", "agent-1", "bob"),
            "alice": mint(home, "approver", "alice"),
            "bob": mint(home, "approver", "bob"),
            "admin": mint(home, "admin", "root"),
        }
        c = {k: server.client(v) for k, v in tokens.items()}
        answers: list[tuple[str, httpx.Response]] = []

        def call(who: str, method: str, path: str, **kw) -> httpx.Response:
            r = c[who].request(method, path, **kw)
            answers.append((f"{method} {path} as {who} -> {r.status_code}", r))
            return r

        for who in ("alice", "bob"):
            for connection, scope in (("google-oauth2", GMAIL_READ), ("github", "repo")):
                r = call(
                    who,
                    "POST",
                    "/api/inventory/permissions",
                    json={"agent": "agent-1", "connection": connection, "scopes": [scope]},
                )
                assert r.status_code == 201, r.text
        mail = {"tool": "gmail.list_messages", "arguments": {"q": "is:unread"}}
        repos = {"tool": "github.list_repos", "arguments": {"org": "acme"}}
        released: list[dict] = []

        def intercept(who: str, bundle: dict) -> dict:
            r = call(who, "POST", "/api/actions/intercept", json=bundle)
            assert r.status_code == 201 and r.json()["status"] == "allowed", r.text
            return r.json()

        def redeem(who: str, action: dict, digest: str | None = None) -> httpx.Response:
            body = {"args_digest": digest or action["args_digest"]}
            r = c[who].post(f"/api/actions/{action['action_id']}/credential", json=body)
            if r.status_code == 200:  # the one place a secret belongs: its access_token
                doc = r.json()
                released.append(doc)
                seen.append(
                    (
                        f"release answer of {action['action_id']} without its token",
                        json.dumps({k: v for k, v in doc.items() if k != "access_token"})
                        + json.dumps(dict(r.headers)),
                    )
                )
            else:
                answers.append((f"release of {action['action_id']} -> {r.status_code}", r))
            return r

        a1 = intercept("agent", mail)
        assert redeem("agent", a1).status_code == 200  # Auth0 Token Vault
        assert redeem("agent", a1).status_code == 409  # twice
        a2 = intercept("agent", repos)
        assert redeem("agent", a2, "sha256:" + "0" * 64).status_code == 409  # altered
        assert redeem("agent", a2).status_code == 200  # the local vault
        endpoint.fail_next([429, 503])
        a3 = intercept("agent", mail)
        assert redeem("agent", a3).status_code == 200  # after two retries
        endpoint.fail_next([503] * 3)
        a4 = intercept("agent", mail)
        assert redeem("agent", a4).status_code == 503  # Auth0 down: 503, nothing released
        b1 = intercept("bob_agent", mail)
        r = redeem("bob_agent", b1)
        assert r.status_code == 409 and r.json()["refusal"] == "not-linked"  # Auth0: 401
        assert redeem("agent", b1).status_code == 404  # foreign
        r = call("alice", "POST", f"/api/actions/{a4['action_id']}/credential", json={})
        assert r.status_code == 403  # not an agent
        assert [d["access_token"] for d in released] == [GOOGLE, GITHUB, GOOGLE]
        assert endpoint.violations == []

        # the list endpoints and the reads
        for who, path in (
            ("alice", "/api/inventory/permissions"),
            ("agent", "/api/inventory/permissions"),
            ("alice", "/api/approvals/sessions"),
            ("alice", "/api/actions/pending"),
            ("agent", f"/api/actions/{a1['action_id']}"),
            ("alice", f"/api/audit/action/{a1['action_id']}"),
            ("admin", "/api/audit/entries?limit=1000"),
            ("admin", "/api/audit/verify"),
            ("agent", "/api/receipts/public-key"),
            ("agent", "/api/inventory/scope-translate?scope=repo"),
        ):
            assert call(who, "GET", path).status_code == 200
        kinds = [
            e["type"]
            for e in call("admin", "GET", "/api/audit/entries?limit=1000").json()["entries"]
        ]
        assert kinds.count("credential.released") == 3 and kinds.count("credential.refused") >= 5
        export = tmp_path / "export.jsonl"
        run_cli("audit", "export", "--home", str(home), "-o", str(export))
        seen.append(("the audit export", export.read_text()))
        for client in c.values():
            client.close()
    finally:
        code, _ = server.terminate()
    assert code == 0
    log = (tmp_path / "dev.log").read_text(errors="replace")
    assert "/credential 200" in log and "/credential 409" in log  # the log saw the run
    seen.append(("the server's log", log))
    seen += [(where, r.text + json.dumps(dict(r.headers))) for where, r in answers]
    leaks = [leak for where, text in seen for leak in _leaks(text, where)]
    disk = b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file())
    leaks += _leaks(disk, "the home's files (database, WAL, keys)")
    assert leaks == [], leaks
    wheres = [where for where, _ in seen]
    assert {"the server's log", "the audit export", "vettra vault list output"} <= set(wheres)
    assert sum(w.startswith("release answer of") for w in wheres) == 3
    assert sum(" -> 4" in w or " -> 5" in w for w in wheres) >= 6  # the refusals' answers
