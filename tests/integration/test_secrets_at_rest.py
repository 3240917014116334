"""Secrets at rest (issue 7 item 2): a private home, private files, sealed TOTP secrets.

The home is refused through the installed ``vettra`` script (a subprocess), as a user
meets it; the files and the database are inspected as an attacker with read access to
the disk would.
"""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest

from vettra.bootstrap import Config, bootstrap

from ..conftest import Server
from .approvals import decide, enrol_totp, step_up
from .scenarios import DELETE_REPO, SEND_EMAIL

VETTRA = str(Path(sys.executable).with_name("vettra"))
NOBODY = 65534


def _vettra(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VETTRA, *args], capture_output=True, text=True, timeout=timeout)


def _step_up_and_approve(srv: Server, secret: str) -> None:
    with srv.client("agent", "agent-1", "alice") as agent, srv.client("approver", "alice") as alice:
        action_id = agent.post("/api/actions/intercept", json=DELETE_REPO).json()["action_id"]
        token = step_up(alice, secret, action_id=action_id)
        r = decide(alice, action_id, "approve", step_up_token=token)
        assert r.status_code == 200 and r.json()["status"] == "approved", r.text


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)  # the worst case: nothing narrows what Vettra asks for
    try:
        yield
    finally:
        os.umask(old)


def _modes(home: Path) -> dict[str, str]:
    out = {}
    for folder, dirs, files in os.walk(home):
        for name in [*dirs, *files]:
            path = Path(folder, name)
            out[str(path.relative_to(home))] = oct(stat.S_IMODE(path.stat().st_mode))
    out["."] = oct(stat.S_IMODE(home.stat().st_mode))
    return out


def _assert_private(home: Path) -> None:
    modes = _modes(home)
    wrong = {
        p: m for p, m in modes.items() if m != (oct(0o700) if (home / p).is_dir() else oct(0o600))
    }
    assert not wrong, wrong


def test_every_file_in_the_home_is_private_whatever_the_umask(tmp_path, open_umask) -> None:
    home = tmp_path / "home"
    rt = bootstrap(Config(home=home))
    rt.start()
    srv = Server(rt)
    try:
        with (
            srv.client("agent", "agent-1", "alice") as agent,
            srv.client("approver", "alice") as alice,
        ):
            action = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()
            enrol_totp(alice)
            alice.post(
                "/api/actions/approve", json={"action_id": action["action_id"], "decision": "deny"}
            )
        rt.deps.keys.rotate_checkpoint_key()
        rt.deps.keys.rotate_data_key()
        rt.deps.keys.rotate_audit_hmac_key()
        names = set(_modes(home))
        assert {
            "vettra.db",
            "vettra.db-wal",
            "vettra.db-shm",
            "timers.db",
            "vettra.lock",
            "keys",
            "keys/data-keys.json",
            "keys/checkpoint-retired",
        } <= names, names
        _assert_private(home)
    finally:
        srv.stop()
        rt.close()
    export = home / "export.jsonl"
    r = _vettra("audit", "export", "--home", str(home), "-o", str(export))
    assert r.returncode == 0, r.stderr
    _assert_private(home)


def test_an_existing_loose_home_is_tightened(tmp_path) -> None:
    home = tmp_path / "home"
    rt = bootstrap(Config(home=home))
    rt.close()
    for path in [home, *home.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    rt = bootstrap(Config(home=home))
    try:
        _assert_private(home)
    finally:
        rt.close()


def _refused(home: Path) -> str:
    r = _vettra("dev", "--home", str(home), "--port", "0")
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout == ""
    return lines[0]


@pytest.mark.parametrize("mode", [0o775, 0o777, 0o757, 0o730], ids=oct)
def test_a_home_others_can_write_is_refused(tmp_path, mode) -> None:
    home = tmp_path / "shared-home"
    home.mkdir()
    os.chmod(home, mode)
    line = _refused(home)
    assert "writable by group or others" in line and "chmod 700" in line
    assert list(home.iterdir()) == []  # nothing written into it


def test_a_home_owned_by_another_user_is_refused(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip(
            "needs root to hand a folder to another user (chown); run the suite as root to cover it"
        )
    home = tmp_path / "their-home"
    home.mkdir(mode=0o700)
    os.chown(home, NOBODY, NOBODY)
    line = _refused(home)
    assert f"owned by uid {NOBODY}" in line
    assert list(home.iterdir()) == []


def test_a_file_as_home_is_refused(tmp_path) -> None:
    home = tmp_path / "file"
    home.write_text("")
    assert "cannot use" in _refused(home) or "not a directory" in _refused(home)


def _database_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(home.glob("*.db*")))


def _needles(secret: str) -> list[bytes]:
    raw = base64.b32decode(secret + "=" * (-len(secret) % 8))
    return [
        secret.encode(),
        secret.lower().encode(),
        raw,
        raw.hex().encode(),
        base64.b64encode(raw),
        base64.urlsafe_b64encode(raw).rstrip(b"="),
    ]


def test_an_enrolled_totp_secret_is_nowhere_in_the_database_files(tmp_path) -> None:
    home = tmp_path / "home"
    rt = bootstrap(Config(home=home))
    rt.start()
    srv = Server(rt)
    try:
        with srv.client("approver", "alice") as alice:
            secret = enrol_totp(alice)
        _step_up_and_approve(srv, secret)  # the sealed secret opens: the factor works
        assert (home / "vettra.db-wal").exists()
        found = _database_bytes(home)
        assert found and not [n for n in _needles(secret) if n in found]
    finally:
        srv.stop()
        rt.close()
    found = _database_bytes(home)
    assert not [n for n in _needles(secret) if n in found]


def test_secrets_sealed_before_a_data_key_rotation_still_open(tmp_path) -> None:
    home = tmp_path / "home"
    rt = bootstrap(Config(home=home))
    srv = Server(rt)
    try:
        with srv.client("approver", "alice") as alice:
            secret = enrol_totp(alice)
    finally:
        srv.stop()
        rt.close()
    r = _vettra("keys", "rotate", "data", "--home", str(home))
    assert r.returncode == 0 and "new data key dk_" in r.stdout, r.stderr
    new_kid = r.stdout.split("new data key ")[1].split(";")[0]
    rt = bootstrap(Config(home=home))
    srv = Server(rt)
    try:
        _step_up_and_approve(srv, secret)
        with srv.client("approver", "bob") as bob:
            enrol_totp(bob)
        with rt.deps.store.unit_of_work(readonly=True) as uow:
            kids = {
                who: uow.docs.get("stepup_totp", f"default:{who}")["secret_sealed"]["kid"]
                for who in ("alice", "bob")
            }
        assert kids["bob"] == new_kid != kids["alice"]
    finally:
        srv.stop()
        rt.close()


def test_a_plaintext_factor_from_an_older_build_still_works_and_is_sealed_on_use(tmp_path) -> None:
    home = tmp_path / "home"
    rt = bootstrap(Config(home=home))
    srv = Server(rt)
    try:
        secret = pyotp.random_base32()
        with rt.deps.store.unit_of_work() as uow:  # what an older build stored
            uow.docs.put(
                "stepup_totp",
                "default:alice",
                {
                    "secret": secret,
                    "enrollment_id": "enr_old",
                    "confirmed_at": "2026-01-01T00:00:00+00:00",
                },
                owner="default:alice",
            )
            uow.commit()
        _step_up_and_approve(srv, secret)
        with rt.deps.store.unit_of_work(readonly=True) as uow:
            doc = uow.docs.get("stepup_totp", "default:alice")
        assert "secret" not in doc and doc["secret_sealed"]["kid"].startswith("dk_")
        assert doc["enrollment_id"] == "enr_old"
    finally:
        srv.stop()
        rt.close()


def test_a_sealed_secret_moved_to_another_user_does_not_open(tmp_path) -> None:
    from vettra.adapters.local_keys import LocalKeyStore

    keys = LocalKeyStore(tmp_path)
    sealed = keys.seal_secret(b"JBSWY3DPEHPK3PXP", context="stepup_totp/default:alice")
    assert keys.open_secret(sealed, context="stepup_totp/default:alice") == b"JBSWY3DPEHPK3PXP"
    for bad_context, bad in (
        ("stepup_totp/default:mallory", sealed),
        (
            "stepup_totp/default:alice",
            {**sealed, "ct": f"{int(sealed['ct'][:2], 16) ^ 1:02x}" + sealed["ct"][2:]},
        ),
        ("stepup_totp/default:alice", {**sealed, "kid": "dk_missing"}),
    ):
        with pytest.raises(ValueError):
            keys.open_secret(bad, context=bad_context)
    keys.rotate_data_key()
    assert keys.open_secret(sealed, context="stepup_totp/default:alice") == b"JBSWY3DPEHPK3PXP"
    assert keys.seal_secret(b"x", context="c")["kid"] != sealed["kid"]
