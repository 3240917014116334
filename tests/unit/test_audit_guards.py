"""Tests that pin the verifier's guards (issue 7 item 11): each fails when its guard is
removed. Mutants of these one-line checks survived the whole suite before."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vettra import audit_cli
from vettra.domain.audit import AuditEntry
from vettra.domain.audit_verify import EXPORT_FORMAT, verify_entries
from vettra.domain.canonical import canonical_json
from vettra.domain.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from vettra.domain.merkle import MerkleTree, leaf_hash

from ..audit_events import audit_event, linked

ORIGIN = "vettra.dev/audit/default"
N, CHECKPOINT_AT, EDITED = 10, 5, 8  # the edited entry is after the last checkpoint


def _entries() -> list[AuditEntry]:
    events = [
        audit_event(action_id=f"act_{i}", data={"status": "allowed", "i": i}) for i in range(N)
    ]
    return linked(events, "hk_test", b"k" * 32)


def _rehash_alone(entry: AuditEntry) -> AuditEntry:
    """Edit one entry and fix its own hash, leaving the next entry's prev_hash alone."""
    doc = json.loads(entry.body_json)
    doc["data"]["status"] = "approved"
    body = canonical_json(doc).decode()
    return AuditEntry.from_stored(body, hashlib.sha256(body.encode()).hexdigest(), entry.mac)


def _tampered() -> tuple[list[AuditEntry], Checkpoint]:
    entries = _entries()
    root = MerkleTree([leaf_hash(bytes.fromhex(e.hash)) for e in entries]).root(CHECKPOINT_AT)
    entries[EDITED - 1] = _rehash_alone(entries[EDITED - 1])
    return entries, Checkpoint(ORIGIN, CHECKPOINT_AT, root)


def test_an_entry_edited_and_rehashed_alone_breaks_the_link_in_verify_entries() -> None:
    entries, checkpoint = _tampered()
    assert verify_entries(_entries(), checkpoints=[checkpoint]).valid  # the untouched log is fine
    report = verify_entries(entries, checkpoints=[checkpoint])  # public key only: no HMAC
    assert not report.valid
    assert report.first_invalid["seq"] == EDITED + 1
    assert report.first_invalid["reason"].startswith("broken link"), report.first_invalid


def test_an_entry_edited_and_rehashed_alone_breaks_the_link_in_an_export(tmp_path: Path) -> None:
    entries, checkpoint = _tampered()
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    path = tmp_path / "export.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"format": EXPORT_FORMAT, "origin": ORIGIN, "entries": N}),
                json.dumps({"checkpoint": sign_checkpoint(checkpoint, signer)}),
                *(e.export_line() for e in entries),
            ]
        )
        + "\n"
    )
    err = io.StringIO()
    args = argparse.Namespace(
        file=str(path),
        pubkey=[signer.verifier_key()],
        home=None,
        quiet=True,
        checkpoint=None,
        require_covered=False,
    )
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = audit_cli.verify(args, lambda h: Path(h))
    assert code == audit_cli.EXIT_INVALID
    assert err.getvalue().startswith(f"invalid at seq {EDITED + 1}: broken link"), err.getvalue()


def test_deleting_only_the_newest_entry_is_reported_as_truncated_at_its_seq(tmp_path: Path) -> None:
    from vettra.bootstrap import DB_FILE, Config, bootstrap
    from vettra.domain.identity import Principal
    from vettra.services import actions, audit

    # No checkpointer running: no signed checkpoint covers the newest entry, so only the
    # sequencer's head can tell that it was removed.
    rt = bootstrap(Config(home=tmp_path / "home"))
    try:
        agent = Principal(sub="bot", role="agent", user="alice")
        admin = Principal(sub="ops", role="admin", user="ops")
        for i in range(4):
            actions.intercept(rt.deps, agent, {"tool": "user.get_profile", "arguments": {"i": i}})
        n, _ = rt.deps.store.audit_log.head("default")
        assert rt.deps.store.audit_log.last_checkpoint("default") is None
        assert audit.verify(rt.deps, admin)["valid"]
        with sqlite3.connect(tmp_path / "home" / DB_FILE, isolation_level=None) as db:
            db.execute("DELETE FROM audit_entries WHERE seq=?", (n,))
        report = audit.verify(rt.deps, admin)
        assert not report["valid"] and report["length"] == n - 1
        assert report["first_invalid"]["seq"] == n
        assert report["first_invalid"]["reason"].startswith("truncated"), report
    finally:
        rt.close()
