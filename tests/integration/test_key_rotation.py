"""Key rotation: entries and checkpoints made before and after still verify."""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

from tests.integration.test_audit_log import Stack, _export, _offline
from tests.integration.test_audit_offline_cli import _wait_checkpoint
from vettra import audit_cli
from vettra.cli import main


def test_rotating_both_keys_keeps_the_log_verifiable(tmp_path: Path, capsys) -> None:
    stack = Stack(tmp_path / "home")
    try:
        stack.intercepts(5)
        _wait_checkpoint(stack, 6)
        old_key = stack.admin.get("/api/audit/public-key").json()["verifier_key"]
        stack.stop()
        assert main(["keys", "rotate", "audit-hmac", "--home", str(stack.home)]) == 0
        assert main(["keys", "rotate", "checkpoint", "--home", str(stack.home)]) == 0
        stack.start()
        stack.intercepts(5)
        _wait_checkpoint(stack, 11)
        keys = stack.admin.get("/api/audit/public-key").json()
        assert keys["previous"] == [old_key] and keys["verifier_key"] != old_key
        entries = stack.admin.get("/api/audit/entries").json()["entries"]
        assert len({e["key_id"] for e in entries}) == 2
        report = stack.verify()
        assert report["valid"] and report["checkpoints_verified"] >= 2, report
        path, new_key = _export(stack, tmp_path)
        code, err = _offline(path, new_key)
        assert code == 1 and "checkpoint" in err  # the old checkpoints need the old key too
        args = argparse.Namespace(
            file=str(path), pubkey=[new_key, old_key], home=str(stack.home), quiet=True
        )
        with contextlib.redirect_stdout(io.StringIO()):
            assert audit_cli.verify(args, lambda h: Path(h)) == 0
    finally:
        stack.stop()
