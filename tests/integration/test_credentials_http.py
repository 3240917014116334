"""Issue 12's acceptance, over the real server: an outside client redeems actions for
credentials. The happy paths return a credential whose exchange request matched Auth0's
documented parameters (a real local token endpoint checks them); a pending, denied,
expired or foreign action, a second redemption, a late one, altered arguments and a
redemption after revocation are all refused, as problem+json, and each refusal is in
the audit trail. Then ``vettra receipt verify`` as a downstream executor runs it: the
installed script, no home, only the public key (PEM or the JWK Set) and the arguments.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from vettra.bootstrap import Config, bootstrap
from vettra.cli import main
from vettra.domain import receipts

from ..conftest import Server, closing_all, serving
from ..token_endpoint import TokenEndpoint
from .scenarios import SEND_EMAIL

PROBLEM = "application/problem+json"
GMAIL = "https://www.googleapis.com/auth/"
READ = {"tool": "gmail.list_messages", "arguments": {"q": "is:unread"}}
REFRESH = "v1.PLANTED-http-refresh-6b0e"
GOOGLE = "ya29.PLANTED-http-google-2f7d"
LOCAL = "ya29.PLANTED-http-local-90c3"
WINDOW_S = 2


@pytest.fixture
def srv(tmp_path: Path, endpoint: TokenEndpoint, monkeypatch) -> Iterator[Server]:
    for name, value in endpoint.env().items():
        monkeypatch.setenv(name, value)
    rt = bootstrap(Config(home=tmp_path / "home", extra={"credential_window_s": WINDOW_S}))
    with serving(rt) as server:
        yield server


@pytest.fixture
def clients(srv: Server) -> Iterator[dict[str, httpx.Client]]:
    yield from closing_all(
        {
            "agent": srv.client("agent", "agent-1", "alice"),
            "other_agent": srv.client("agent", "agent-2", "alice"),
            "bobs_agent": srv.client("agent", "agent-1", "bob"),
            "alice": srv.client("approver", "alice"),
            "admin": srv.client("admin", "root"),
        }
    )


def _home(srv: Server) -> Path:
    return srv.runtime.config.home


def _vault_put(srv: Server, tmp_path: Path, scope: str) -> None:
    token = tmp_path / "local-token"
    token.write_text(LOCAL)
    assert (
        main(
            ["vault", "put", "--home", str(_home(srv)), "--user", "alice"]
            + ["--connection", "google-oauth2", "--token-file", str(token), "--scope", scope]
        )
        == 0
    )


def _vault_link(srv: Server, tmp_path: Path) -> None:
    token = tmp_path / "refresh-token"
    token.write_text(REFRESH)
    assert (
        main(
            ["vault", "link", "--home", str(_home(srv)), "--user", "alice"]
            + ["--connection", "google-oauth2", "--refresh-token-file", str(token)]
        )
        == 0
    )


def _grant(c: dict[str, httpx.Client], scopes: list[str]) -> dict[str, Any]:
    r = c["alice"].post(
        "/api/inventory/permissions",
        json={"agent": "agent-1", "connection": "google-oauth2", "scopes": scopes},
    )
    assert r.status_code == 201, r.text
    return r.json()


def _intercept(c: dict[str, httpx.Client], bundle: dict, who: str = "agent") -> dict[str, Any]:
    r = c[who].post("/api/actions/intercept", json=bundle)
    assert r.status_code in (200, 201), r.text
    return r.json()


def _redeem(
    c: dict[str, httpx.Client], action: dict, who: str = "agent", **body: Any
) -> httpx.Response:
    body.setdefault("args_digest", action["args_digest"])
    return c[who].post(f"/api/actions/{action['action_id']}/credential", json=body)


def _refusal(r: httpx.Response, status: int, refusal: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    doc = r.json()
    if refusal:
        assert doc["type"].endswith("/credential-refused") and doc["refusal"] == refusal, doc
    assert GOOGLE not in r.text and LOCAL not in r.text and REFRESH not in r.text
    return doc


def test_an_approved_action_is_redeemed_once_through_auth0_token_vault(
    srv, clients, endpoint, tmp_path
) -> None:
    endpoint.link(REFRESH, "google-oauth2", GOOGLE, scope=f"openid {GMAIL}gmail.send")
    _vault_link(srv, tmp_path)
    _grant(clients, [GMAIL + "gmail.send"])
    action = _intercept(clients, SEND_EMAIL)
    assert action["status"] == "pending"
    decided = clients["alice"].post(
        "/api/actions/approve", json={"action_id": action["action_id"], "decision": "approve"}
    )
    assert decided.status_code == 200
    r = _redeem(clients, action)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["access_token"] == GOOGLE and body["token_type"] == "Bearer"
    assert body["scope"] == GMAIL + "gmail.send" and body["connection"] == "google-oauth2"
    assert body["expires_at"].endswith("Z") and body["receipt"].count(".") == 2
    # the exchange Vettra sent is the one Auth0 documents, checked by the endpoint itself
    assert endpoint.violations == []
    [sent] = endpoint.requests
    assert sent["grant_type"].endswith("federated-connection-access-token")
    assert sent["subject_token"] == REFRESH and sent["connection"] == "google-oauth2"
    assert "login_hint" not in sent and "scope" not in sent
    # the receipt verifies with only the published key
    published = clients["agent"].get("/api/receipts/jwks.json").json()
    from joserfc.jwk import OKPKey

    keys = [OKPKey.import_key(k).get_op_key("verify") for k in published["keys"]]
    claims = receipts.verify(
        body["receipt"],
        keys,
        now=srv.runtime.deps.clock.now(),
        audience="gmail.send_message",
        arguments=SEND_EMAIL["arguments"],
    )
    assert claims["action_id"] == action["action_id"]
    _refusal(_redeem(clients, action), 409, "already-released")
    trail = clients["alice"].get(f"/api/audit/action/{action['action_id']}").json()["entries"]
    assert [e["type"] for e in trail] == [
        "action.intercepted",
        "action.approved",
        "credential.released",
        "credential.refused",
    ]
    assert trail[2]["data"]["connection"] == "google-oauth2" and GOOGLE not in str(trail)
    assert len(endpoint.requests) == 1  # the second redemption never reached Auth0


def test_an_allowed_read_is_redeemed_from_the_local_vault(srv, clients, tmp_path) -> None:
    _vault_put(srv, tmp_path, GMAIL + "gmail.readonly")
    granted = _grant(clients, [GMAIL + "gmail.readonly"])
    action = _intercept(clients, READ)
    assert action["status"] == "allowed"
    r = _redeem(clients, action, audience="reader-7")
    assert r.status_code == 200, r.text
    assert r.json()["access_token"] == LOCAL and r.json()["scope"] == GMAIL + "gmail.readonly"
    listed = clients["alice"].get("/api/inventory/permissions").json()["permissions"]
    assert [(p["permission_id"], p["uses"]) for p in listed] == [(granted["permission_id"], 1)]
    assert listed[0]["last_used_at"] is not None and LOCAL not in str(listed)


def test_every_refusal_of_the_acceptance_is_refused_and_audited(srv, clients, tmp_path) -> None:
    _vault_put(srv, tmp_path, f"{GMAIL}gmail.readonly {GMAIL}gmail.send")
    granted = _grant(clients, [GMAIL + "gmail.readonly", GMAIL + "gmail.send"])
    pending = _intercept(clients, SEND_EMAIL)
    denied = _intercept(clients, SEND_EMAIL)
    clients["alice"].post(
        "/api/actions/approve", json={"action_id": denied["action_id"], "decision": "deny"}
    )
    expiring = _intercept(clients, {**SEND_EMAIL, "timeout_s": 1})
    foreign = _intercept(clients, READ, who="bobs_agent")
    late = _intercept(clients, READ)
    twice = _intercept(clients, READ)
    assert _redeem(clients, twice).status_code == 200
    altered = _intercept(clients, READ)
    revoked = _intercept(clients, READ)
    time.sleep(max(1.1, WINDOW_S + 0.1))  # the expiring one expires; the late one is late
    after_window = _intercept(clients, READ)  # made now: still in its window
    got = {
        "pending": _refusal(_redeem(clients, pending), 409, "pending"),
        "denied": _refusal(_redeem(clients, denied), 409, "denied"),
        "expired": _refusal(_redeem(clients, expiring), 409, "expired"),
        "foreign": _refusal(_redeem(clients, foreign), 404),
        "other agent": _refusal(_redeem(clients, after_window, who="other_agent"), 404),
        "twice": _refusal(_redeem(clients, twice), 409, "already-released"),
        "late": _refusal(_redeem(clients, late), 409, "window-closed"),
        "altered": _refusal(
            _redeem(clients, after_window, args_digest="sha256:" + "1" * 64), 409, "args-mismatch"
        ),
    }
    assert altered and revoked  # intercepted before the window passed: late as well now
    gone = clients["alice"].delete(f"/api/inventory/permissions/{granted['permission_id']}")
    assert gone.status_code == 200 and gone.json()["active"] is False
    got["revoked"] = _refusal(_redeem(clients, after_window), 403, "not-permitted")
    assert got["expired"]["action_status"] == "expired"
    # every refusal is in the chain, the caller named, no secret
    entries = clients["admin"].get("/api/audit/entries", params={"limit": 1000}).json()["entries"]
    refusals = [e for e in entries if e["type"] == "credential.refused"]
    assert sorted(e["data"]["refusal"] for e in refusals) == sorted(
        [
            "pending",
            "denied",
            "expired",
            "not-found",
            "not-found",
            "already-released",
            "window-closed",
            "args-mismatch",
            "not-permitted",
        ]
    )
    assert {e["actor"] for e in refusals} == {"agent:agent-1", "agent:agent-2"}
    assert LOCAL not in str(entries)
    assert [e["type"] for e in entries if e["type"].startswith("permission.")] == [
        "permission.granted",
        "permission.revoked",
    ]


@pytest.mark.parametrize(
    "content, ctype, status",
    [
        (b"{", "application/json", 400),
        (b"{}", "application/json", 422),
        (b'{"args_digest": "sha256:abc"}', "application/json", 422),
        (b'{"args_digest": "sha256:' + b"0" * 64 + b'", "x": 1}', "application/json", 422),
        (b'{"args_digest": "sha256:' + b"0" * 64 + b'"}', "text/plain", 415),
    ],
)
def test_bad_bodies_are_problems_that_change_nothing(clients, content, ctype, status) -> None:
    action = _intercept(clients, READ)
    r = clients["agent"].post(
        f"/api/actions/{action['action_id']}/credential",
        content=content,
        headers={"Content-Type": ctype},
    )
    assert r.status_code == status and r.headers["content-type"] == PROBLEM, r.text
    if status == 422:
        assert r.json()["errors"]


def test_only_agents_redeem(srv, clients) -> None:
    action = _intercept(clients, READ)
    r = clients["alice"].post(
        f"/api/actions/{action['action_id']}/credential",
        json={"args_digest": action["args_digest"]},
    )
    assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
    anon = httpx.post(
        f"{srv.url}/api/actions/{action['action_id']}/credential",
        json={"args_digest": action["args_digest"]},
    )
    assert anon.status_code == 401


# -- receipts, verified offline --------------------------------------------------------------

VETTRA = str(Path(sys.executable).with_name("vettra"))


def _verify(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VETTRA, "receipt", "verify", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},  # no VETTRA_HOME: nothing but the files given
    )


def test_an_executor_verifies_a_receipt_with_only_the_public_key(
    srv, clients, tmp_path, capsys
) -> None:
    _vault_put(srv, tmp_path, GMAIL + "gmail.readonly")
    _grant(clients, [GMAIL + "gmail.readonly"])
    action = _intercept(clients, READ)
    answer = _redeem(clients, action, audience="mail-reader").json()
    receipt, args, pem, jwks = (tmp_path / n for n in ("receipt", "args.json", "k.pem", "k.json"))
    receipt.write_text(answer["receipt"] + "\n")
    args.write_text(json.dumps({"q": "is:unread"}, indent=4))  # any spelling: RFC 8785 digest
    assert main(["receipt", "pubkey", "--home", str(srv.runtime.config.home)]) == 0
    pem.write_text(capsys.readouterr().out)
    jwks.write_text(clients["agent"].get("/api/receipts/jwks.json").text)
    published = clients["agent"].get("/api/receipts/public-key").json()
    assert published["public_key_pem"] in pem.read_text()

    for key in (pem, jwks):
        ok = _verify(
            str(receipt), "--pubkey", str(key), "--args", str(args), "--audience", "mail-reader"
        )
        assert ok.returncode == 0, ok.stderr
        assert f"valid: action {action['action_id']}" in ok.stdout
        assert "the arguments match args_digest" in ok.stdout
    # the receipt given inline works too
    assert _verify(answer["receipt"], "--pubkey", str(pem)).returncode == 0

    args.write_text(json.dumps({"q": "is:unread OR label:secret"}))
    altered = _verify(str(receipt), "--pubkey", str(pem), "--args", str(args))
    assert altered.returncode == 1 and "not the approved args_digest" in altered.stderr
    wrong_aud = _verify(str(receipt), "--pubkey", str(pem), "--audience", "payments")
    assert wrong_aud.returncode == 1 and "aud is" in wrong_aud.stderr

    other = tmp_path / "other-home"
    assert main(["receipt", "pubkey", "--home", str(other)]) == 0
    foreign = tmp_path / "other.pem"
    foreign.write_text(capsys.readouterr().out)
    refused = _verify(str(receipt), "--pubkey", str(foreign))
    assert refused.returncode == 1 and "not among the receipt keys" in refused.stderr

    tampered = answer["receipt"][:-4] + (
        "AAAA" if not answer["receipt"].endswith("AAAA") else "BBBB"
    )
    assert _verify(tampered, "--pubkey", str(pem)).returncode == 1


def test_bad_usage_is_exit_2(tmp_path, capsys) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("no key here\n")
    r = _verify("a.b.c", "--pubkey", str(empty))
    assert r.returncode == 2 and "no Ed25519 public key" in r.stderr
    r = _verify("a.b.c", "--pubkey", str(tmp_path / "missing.pem"))
    assert r.returncode == 2
    args = tmp_path / "args.json"
    args.write_text('{"a": NaN}')
    pem = tmp_path / "k.pem"
    assert main(["receipt", "pubkey", "--home", str(tmp_path / "h")]) == 0
    pem.write_text(capsys.readouterr().out)
    r = _verify("a.b.c", "--pubkey", str(pem), "--args", str(args))
    assert r.returncode == 2 and "NaN" in r.stderr, r.stderr
    r = _verify("a.b.c", "--pubkey", str(pem))  # the key is fine, the receipt is not
    assert r.returncode == 1 and "compact JWS" in r.stderr
