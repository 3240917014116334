"""``vettra vault put|link|list|remove``: what a user stores reaches the home's store sealed.

The database is read as an attacker with the disk would read it (every byte, the WAL
too): the planted tokens are not there in any form the CLI was given them in.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from vettra.bootstrap import DB_FILE, home_store
from vettra.cli import main
from vettra.services import vault

VETTRA = str(Path(sys.executable).with_name("vettra"))
REFRESH = "v1.PLANTED-auth0-refresh-7c1e"
TOKEN = "gho_PLANTEDgithubtoken5521"


def _disk(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob(DB_FILE + "*"))


def _stored(home: Path, user: str, connection: str) -> dict:
    keys, store = home_store(home)
    try:
        with store.unit_of_work(readonly=True) as uow:
            doc = vault.stored(uow, "default", user, connection)
        assert doc is not None
        return {**doc, "plain": vault.open_secret(keys, doc)}
    finally:
        store.close()


def test_link_stores_the_refresh_token_sealed(tmp_path: Path, capsys) -> None:
    home, secret = tmp_path / "home", tmp_path / "rt.txt"
    secret.write_text(REFRESH + "\n")
    code = main(
        [
            "vault",
            "link",
            "--home",
            str(home),
            "--user",
            "alice",
            "--connection",
            "google-oauth2",
            "--refresh-token-file",
            str(secret),
            "--login-hint",
            "alice-google-id",
        ]
    )
    out = capsys.readouterr()
    assert code == 0 and "linked alice's Auth0 refresh token for google-oauth2" in out.out
    assert REFRESH not in out.out + out.err
    doc = _stored(home, "alice", "google-oauth2")
    assert (doc["kind"], doc["plain"], doc["login_hint"]) == (
        "refresh_token",
        REFRESH,
        "alice-google-id",
    )
    assert REFRESH.encode() not in _disk(home)


def test_put_stores_a_token_response_with_its_scope_and_expiry(tmp_path: Path, capsys) -> None:
    home, secret = tmp_path / "home", tmp_path / "token.json"
    secret.write_text(json.dumps({"access_token": TOKEN, "scope": "repo", "expires_in": 600}))
    args = ["vault", "put", "--home", str(home), "--user", "alice", "--connection", "github"]
    assert main([*args, "--token-file", str(secret)]) == 0
    out = capsys.readouterr().out
    assert "scope: repo" in out and TOKEN not in out
    stored = json.loads(_stored(home, "alice", "github")["plain"])
    assert stored["access_token"] == TOKEN and stored["scope"] == ["repo"]
    assert stored["expires_at"].endswith("Z")
    assert TOKEN.encode() not in _disk(home)
    # the token alone, the scope from the flag; the later put replaces the earlier
    secret.write_text(TOKEN + "-2\n")
    assert main([*args, "--token-file", str(secret), "--scope", "repo delete_repo"]) == 0
    stored = json.loads(_stored(home, "alice", "github")["plain"])
    assert stored["access_token"] == TOKEN + "-2" and stored["scope"] == ["repo", "delete_repo"]
    assert stored["expires_at"] is None
    assert main(["vault", "list", "--home", str(home), "--user", "alice"]) == 0
    listed = capsys.readouterr().out
    assert "github\taccess_token" in listed and TOKEN not in listed


@pytest.mark.parametrize(
    "content, flags, message",
    [
        ("two words", [], "whitespace"),
        ("", [], "1..16384 bytes"),
        ('{"token": "x"}', [], "needs an access_token"),
        ("{not json", [], "not JSON"),
        ("tok", ["--connection", "bad name"], "connection must be"),
        ("tok", ["--expires-in", "0"], "--expires-in must be"),
    ],
)
def test_bad_input_is_a_usage_error_that_stores_nothing(
    tmp_path: Path, capsys, content, flags, message
) -> None:
    home, secret = tmp_path / "home", tmp_path / "t"
    secret.write_text(content)
    args = ["vault", "put", "--home", str(home), "--user", "alice", "--token-file", str(secret)]
    if "--connection" not in flags:
        args += ["--connection", "github"]
    assert main(args + flags) == 2
    assert message in capsys.readouterr().err
    if (home / DB_FILE).exists():
        with sqlite3.connect(home / DB_FILE) as conn:
            assert conn.execute("SELECT count(*) FROM docs").fetchone() == (0,)


def test_remove_forgets_and_says_when_there_was_nothing(tmp_path: Path, capsys) -> None:
    home, secret = tmp_path / "home", tmp_path / "t"
    secret.write_text(TOKEN)
    base = ["--home", str(home), "--user", "alice", "--connection", "github"]
    assert main(["vault", "put", *base, "--token-file", str(secret)]) == 0
    assert main(["vault", "remove", *base]) == 0
    assert main(["vault", "remove", *base]) == 1
    assert "nothing stored for github" in capsys.readouterr().err


def test_the_installed_script_reads_the_token_from_stdin(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.run(
        [VETTRA, "vault", "link", "--home", str(home), "--user", "bob", "--connection", "github"]
        + ["--refresh-token-file", "-"],
        input=REFRESH,
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "VETTRA_AUTH0_CLIENT_SECRET" in proc.stderr  # says the server needs Auth0 set
    assert REFRESH not in proc.stdout + proc.stderr
    assert _stored(home, "bob", "github")["plain"] == REFRESH
