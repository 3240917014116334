"""The outside auditor's workflow through the installed ``vettra`` script: save a signed
checkpoint now, verify any later export against it; rollbacks and rewrites whose covering
checkpoints were removed from the export are caught (issue 7 item 8), and the audit CLI
paper cuts of issue 9 (``export | head``, ``pubkey --all``, ``verify --help``)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from pathlib import Path

import pytest

from vettra.domain.audit_verify import split_export_line
from vettra.domain.canonical import canonical_json

from ..audit_events import audit_event
from ..e2e.conftest import run_cli, vettra_command
from .test_audit_log import Stack


def _wait_checkpoint(stack: Stack, size: int) -> dict:
    deadline = time.monotonic() + 5
    while (cp := stack.admin.get("/api/audit/checkpoint").json())["size"] < size:
        assert time.monotonic() < deadline, cp
        time.sleep(0.05)
    return cp


@pytest.fixture
def audited(tmp_path: Path):
    """A home with a checkpoint the auditor saved at size ``saved``, then more entries
    (and later checkpoints) on top, exported."""
    stack = Stack(tmp_path / "home")
    try:
        stack.intercepts(20)
        saved = _wait_checkpoint(stack, 21)
        (tmp_path / "saved.json").write_text(json.dumps(saved))  # curl … > saved.json
        (tmp_path / "saved.note").write_text(saved["note"] + "\n")  # jq -r .note > saved.note
        stack.intercepts(15)
        _wait_checkpoint(stack, 36)
        pub = stack.admin.get("/api/audit/public-key").json()["verifier_key"]
        export = tmp_path / "export.jsonl"
        run_cli("audit", "export", "--home", str(stack.home), "-o", str(export))
    finally:
        stack.stop()
    return {
        "dir": tmp_path,
        "home": stack.home,
        "pub": pub,
        "export": export,
        "saved_size": saved["size"],
        "lines": export.read_text().splitlines(),
    }


def _verify_file(
    a: dict, path: Path, *extra: str, quiet: bool = True
) -> subprocess.CompletedProcess[str]:
    """``vettra audit verify`` of the export at ``path`` with the log's public key."""
    flags = ["--quiet", *extra] if quiet else list(extra)
    return run_cli("audit", "verify", str(path), "--pubkey", a["pub"], *flags, check=False)


def _verify(a: dict, lines: list[str], *extra: str) -> subprocess.CompletedProcess[str]:
    path = a["dir"] / "tampered.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return _verify_file(a, path, *extra)


def _parts(lines: list[str]) -> tuple[str, list[str], list[str]]:
    return (
        lines[0],
        [ln for ln in lines if ln.startswith('{"checkpoint"')],
        [ln for ln in lines if ln.startswith('{"body"')],
    )


def _size(checkpoint_line: str) -> int:
    return int(json.loads(checkpoint_line)["checkpoint"].split("\n")[1])


def _cut(lines: list[str], n: int) -> list[str]:
    """The export cut to ``n`` entries with every checkpoint above ``n`` removed."""
    header, cps, entries = _parts(lines)
    return [header, *[c for c in cps if _size(c) <= n], *entries[:n]]


def _rewrite(lines: list[str], seq: int) -> list[str]:
    """Entry ``seq`` edited, it and every later entry re-hashed and re-linked (no keys
    needed), and every checkpoint covering ``seq`` removed."""
    header, cps, entries = _parts(lines)
    out, prev = [], None
    for line in entries:
        body, hash_hex, mac = split_export_line(line)
        doc = json.loads(body)
        if doc["seq"] >= seq:
            if doc["seq"] == seq:
                doc["actor"] = "agent:someone-else"
            doc["prev_hash"] = prev
            body = canonical_json(doc)
            hash_hex = hashlib.sha256(body).hexdigest()
            line = f'{{"body":{body.decode()},"hash":"{hash_hex}","mac":"{mac}"}}'
        out.append(line)
        prev = hash_hex
    return [header, *[c for c in cps if _size(c) < seq], *out]


@pytest.mark.parametrize("saved_as", ["saved.json", "saved.note"])
def test_an_export_cut_below_a_saved_checkpoint_fails_naming_the_first_missing_seq(
    audited, saved_as
) -> None:
    a, cut = audited, audited["saved_size"] - 3
    lines = _cut(a["lines"], cut)
    assert _verify(a, lines).returncode == 0  # with only the public key, the cut log looks fine
    proc = _verify(a, lines, "--checkpoint", str(a["dir"] / saved_as))
    assert proc.returncode == 1, proc.stdout
    assert proc.stderr.startswith(
        f"invalid at seq {cut + 1}: rollback: your saved checkpoint covers "
        f"{a['saved_size']} entries"
    ), proc.stderr


def test_a_rewritten_history_with_its_checkpoints_removed_fails_against_a_saved_checkpoint(
    audited,
) -> None:
    a, seq = audited, 9
    lines = _rewrite(a["lines"], seq)
    assert _verify(a, lines).returncode == 0  # self-consistent without the saved checkpoint
    proc = _verify(a, lines, "--checkpoint", str(a["dir"] / "saved.json"))
    assert proc.returncode == 1
    first = int(proc.stderr.split("invalid at seq ")[1].split(":")[0])
    assert first <= seq and "do not match your saved checkpoint" in proc.stderr, proc.stderr


def test_a_later_honest_export_extends_the_saved_checkpoint(audited) -> None:
    a = audited
    proc = _verify_file(
        a,
        a["export"],
        "--checkpoint",
        str(a["dir"] / "saved.json"),
        "--checkpoint",
        str(a["dir"] / "saved.note"),
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 saved checkpoint(s) consistent" in proc.stdout
    assert "0 trailing entries under no signed checkpoint" in proc.stdout


def test_trailing_entries_under_no_checkpoint_are_counted_and_require_covered_fails(
    audited,
) -> None:
    a = audited
    header, cps, entries = _parts(a["lines"])
    lines = [header, *cps[:-1], *entries]  # the newest checkpoint dropped
    uncovered = len(entries) - _size(cps[-2])
    proc = _verify(a, lines)
    assert (
        proc.returncode == 0
        and f"{uncovered} trailing entries under no signed checkpoint" in proc.stdout
    )
    proc = _verify(a, lines, "--require-covered")
    assert proc.returncode == 1
    assert proc.stderr.startswith(
        f"invalid at seq {_size(cps[-2]) + 1}: uncovered: the last {uncovered} entries"
    ), proc.stderr


def test_a_checkpoint_that_does_not_verify_is_a_usage_error(audited, tmp_path: Path) -> None:
    a = audited
    note = (a["dir"] / "saved.note").read_text()
    lines = note.split("\n")
    lines[1] = str(int(lines[1]) + 1)
    forged = tmp_path / "forged.note"
    forged.write_text("\n".join(lines))
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({"size": 0, "note": None}))
    for bad, says in (
        (forged, "verifies with a --pubkey"),
        (empty, "signed 'note'"),
        (tmp_path / "missing", "No such file"),
    ):
        proc = _verify_file(a, a["export"], "--checkpoint", str(bad), quiet=False)
        assert proc.returncode == 2 and "bad --checkpoint" in proc.stderr and says in proc.stderr, (
            proc.stderr
        )


def test_verify_help_lists_the_required_options() -> None:
    out = run_cli("audit", "verify", "--help").stdout
    required = out.split("\nrequired:\n")[1]
    assert "--pubkey KEY" in required and "--checkpoint" not in required
    assert "--checkpoint NOTE" in out and "--require-covered" in out
    proc = run_cli("audit", "verify", "x.jsonl", check=False)
    assert proc.returncode == 2 and "required: --pubkey" in proc.stderr


def test_export_into_a_closed_pipe_exits_quietly(tmp_path: Path) -> None:
    from vettra.adapters.local_keys import LocalKeyStore
    from vettra.adapters.sqlite_store import SqliteStore
    from vettra.bootstrap import DB_FILE

    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    store = SqliteStore(home / DB_FILE, LocalKeyStore(home))
    with store.unit_of_work() as uow:  # ~1 MB of export: far more than a pipe buffer holds
        for i in range(1500):
            uow.audit.record(audit_event(action_id=f"act_{i}", data={"padding": "x" * 500}))
        uow.commit()
    store.close()
    proc = subprocess.run(
        " ".join([*vettra_command(), "audit", "export", "--home", str(home)]) + " | head -n 2",
        shell=True,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 0
    assert proc.stderr == "", proc.stderr
    assert len(proc.stdout.splitlines()) == 2 and '"format"' in proc.stdout


def test_pubkey_all_prints_every_key_old_exports_need(audited) -> None:
    a = audited
    home = str(a["home"])
    before = run_cli("audit", "pubkey", "--home", home).stdout.strip()
    assert before == a["pub"]
    run_cli("keys", "rotate", "checkpoint", "--home", home)
    current = run_cli("audit", "pubkey", "--home", home).stdout.strip()
    everything = run_cli("audit", "pubkey", "--all", "--home", home).stdout.split()
    assert current != before and everything == [current, before]
    export = str(a["export"])  # signed before the rotation
    assert (
        run_cli("audit", "verify", export, "--pubkey", current, "--quiet", check=False).returncode
        == 1
    )
    args = [arg for key in everything for arg in ("--pubkey", key)]
    assert run_cli("audit", "verify", export, *args, "--quiet").returncode == 0
