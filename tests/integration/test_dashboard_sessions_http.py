"""Dashboard sign-in over HTTP: a one-time link (admin), the code exchange (no token),
who-am-I, sign-out; single use, short-lived, stored by digest, audited without secrets."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from vettra.adapters.clock import FakeClock
from vettra.bootstrap import DB_FILE, Config, bootstrap
from vettra.services import dashboard_sessions as signin

from ..conftest import Server

PROBLEM = "application/problem+json"


def _link(admin: httpx.Client, sub: str = "alice", **extra) -> dict:
    r = admin.post("/api/dashboard/links", json={"sub": sub, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def _sign_in(server, code: str) -> httpx.Response:
    return httpx.post(f"{server.url}/api/dashboard/signin", json={"code": code}, timeout=10)


def _as(server, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=10
    )


def test_a_link_signs_in_once_and_the_session_acts_as_the_user(server, admin, agent) -> None:
    link = _link(admin)
    assert link["path"] == "/#signin=" + link["code"] and link["role"] == "approver"
    held = agent.post(
        "/api/actions/intercept",
        json={"tool": "gmail.send_message", "arguments": {"to": "bob@evil.example"}},
    ).json()

    first = _sign_in(server, link["code"])
    assert first.status_code == 200, first.text
    session = first.json()
    assert session["token_type"] == "Bearer" and session["sub"] == "alice"
    assert session["access_token"].startswith(signin.SESSION_PREFIX)
    with _as(server, session["access_token"]) as alice:
        pending = alice.get("/api/actions/pending").json()["actions"]
        assert [a["action_id"] for a in pending] == [held["action_id"]]
        me = alice.get("/api/dashboard/session").json()
        assert me["kind"] == "dashboard-session" and me["user"] == "alice"
        assert me["expires_at"] == session["expires_at"]

    again = _sign_in(server, link["code"])
    assert again.status_code == 401 and again.headers["content-type"] == PROBLEM
    assert "not valid" in again.json()["detail"]
    assert "WWW-Authenticate" in again.headers


def test_two_racing_redemptions_of_one_code_give_one_session(server, admin) -> None:
    code = _link(admin)["code"]
    answers: list[int] = []
    barrier = threading.Barrier(6)

    def redeem() -> None:
        barrier.wait()
        answers.append(_sign_in(server, code).status_code)

    threads = [threading.Thread(target=redeem) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert sorted(answers) == [200] + [401] * 5


def test_sign_out_revokes_the_session_at_once(server, admin) -> None:
    token = _sign_in(server, _link(admin)["code"]).json()["access_token"]
    with _as(server, token) as alice:
        assert alice.get("/api/actions/pending").status_code == 200
        out = alice.delete("/api/dashboard/session")
        assert out.status_code == 200 and out.json()["signed_out"] is True
        after = alice.get("/api/actions/pending")
        assert after.status_code == 401 and after.headers["content-type"] == PROBLEM
        assert alice.delete("/api/dashboard/session").status_code == 401


def test_a_minted_token_is_not_a_revocable_session(alice) -> None:
    me = alice.get("/api/dashboard/session").json()
    assert me["kind"] == "token" and me["expires_at"] is None
    r = alice.delete("/api/dashboard/session")
    assert r.status_code == 409 and "cannot be revoked" in r.json()["detail"]
    assert alice.get("/api/actions/pending").status_code == 200  # still valid


def test_only_admins_make_links_and_only_for_approvers_or_admins(server, admin, alice, agent):
    assert alice.post("/api/dashboard/links", json={"sub": "alice"}).status_code == 403
    assert agent.post("/api/dashboard/links", json={"sub": "alice"}).status_code == 403
    anon = httpx.post(f"{server.url}/api/dashboard/links", json={"sub": "alice"}, timeout=10)
    assert anon.status_code == 401
    bad_role = admin.post("/api/dashboard/links", json={"sub": "alice", "role": "agent"})
    assert bad_role.status_code == 422 and bad_role.json()["errors"]
    bad_sub = admin.post("/api/dashboard/links", json={"sub": "a b<script>"})
    assert bad_sub.status_code == 422
    admin_link = _link(admin, sub="ops", role="admin")
    session = _sign_in(server, admin_link["code"]).json()
    assert session["role"] == "admin"


@pytest.mark.parametrize(
    "body, status",
    [
        ({"code": "vsl_" + "A" * 43}, 401),  # well-formed, never issued
        ({"code": "nope"}, 422),
        ({"code": 5}, 422),
        ({}, 422),
        ({"code": "vsl_" + "A" * 43, "extra": 1}, 422),
    ],
)
def test_bad_codes_are_refused_and_change_nothing(server, body, status) -> None:
    r = httpx.post(f"{server.url}/api/dashboard/signin", json=body, timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM and r.json()["status"] == status


def test_the_exchange_needs_json(server) -> None:
    r = httpx.post(
        f"{server.url}/api/dashboard/signin",
        content=b"code=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert r.status_code == 415 and r.headers["content-type"] == PROBLEM


def test_codes_and_tokens_are_stored_and_audited_by_digest_only(server, admin, home) -> None:
    link = _link(admin)
    token = _sign_in(server, link["code"]).json()["access_token"]
    db = sqlite3.connect(Path(home) / DB_FILE)
    try:
        dump = "\n".join(db.iterdump())
    finally:
        db.close()
    assert link["code"] not in dump and token not in dump
    assert signin.digest(token) in dump  # the session is found by its digest
    entries = admin.get("/api/audit/entries", params={"limit": 1000}).json()["entries"]
    kinds = [e["type"] for e in entries]
    assert signin.LINK_CREATED in kinds and signin.SIGNED_IN in kinds
    text = str(entries)
    assert link["code"] not in text and token not in text


@pytest.fixture
def timed(tmp_path: Path) -> Iterator[tuple[Server, FakeClock]]:
    clock = FakeClock(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    rt = bootstrap(Config(home=tmp_path / "home"), clock=clock)
    rt.start()
    srv = Server(rt)
    yield srv, clock
    srv.stop()
    rt.close()


def test_links_and_sessions_expire(timed) -> None:
    srv, clock = timed
    with srv.client("admin", "ops") as admin:
        stale = _link(admin)["code"]
        fresh = _link(admin)["code"]
        clock.advance(signin.LINK_TTL_S - 1)
        session = _sign_in(srv, fresh)
        assert session.status_code == 200
        clock.advance(2)
        assert _sign_in(srv, stale).status_code == 401
    with _as(srv, session.json()["access_token"]) as alice:
        assert alice.get("/api/dashboard/session").status_code == 200
        clock.advance(signin.SESSION_TTL_S)
        assert alice.get("/api/dashboard/session").status_code == 401
