"""Writes saved-checkpoints.json: offline verification of audit exports against
checkpoints a verifier saved earlier (issue 7 item 8). Deterministic: fixed entries,
and Ed25519 (RFC 8032) signatures are deterministic for the TEST ONLY seed 0x01 * 32.

    .venv/bin/python -m tests.vectors.audit.make_vectors   (from the repository's root)
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from vettra.domain.audit import AuditEntry
from vettra.domain.audit_verify import EXPORT_FORMAT
from vettra.domain.canonical import canonical_json
from vettra.domain.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from vettra.domain.merkle import MerkleTree, leaf_hash

from ...audit_events import audit_event, linked

ORIGIN = "vettra.dev/audit/default"
SEED = bytes([1]) * 32
N, OWN_CHECKPOINTS, SAVED = 12, (4, 8), 8
SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(SEED))


def entries() -> list[AuditEntry]:
    events = [
        audit_event(
            at=f"2026-01-01T00:00:{i:02d}.000Z",
            action_id=f"act_{i:032x}",
            data={"status": "allowed", "tool": "user.get_profile"},
        )
        for i in range(N)
    ]
    return linked(events, "hk_vectors", b"\x07" * 32)


def note(size: int, root: bytes) -> str:
    return sign_checkpoint(Checkpoint(ORIGIN, size, root), SIGNER)


def root(es: list[AuditEntry], size: int) -> bytes:
    return MerkleTree([leaf_hash(bytes.fromhex(e.hash)) for e in es]).root(size)


def export(es: list[AuditEntry], checkpoint_sizes, roots_of=None) -> list[str]:
    roots_of = roots_of or es
    header = json.dumps(
        {"format": EXPORT_FORMAT, "origin": ORIGIN, "chain": "default", "entries": len(es)}
    )
    return [
        header,
        *(json.dumps({"checkpoint": note(s, root(roots_of, s))}) for s in checkpoint_sizes),
        *(e.export_line() for e in es),
    ]


def edited(e: AuditEntry, prev: str | None = None) -> AuditEntry:
    doc = json.loads(e.body_json)
    doc["data"]["status"] = "approved"
    if prev is not None:
        doc["prev_hash"] = prev
    body = canonical_json(doc).decode()
    return AuditEntry.from_stored(body, hashlib.sha256(body.encode()).hexdigest(), e.mac)


def relinked(e: AuditEntry, prev: str) -> AuditEntry:
    doc = json.loads(e.body_json)
    doc["prev_hash"] = prev
    body = canonical_json(doc).decode()
    return AuditEntry.from_stored(body, hashlib.sha256(body.encode()).hexdigest(), e.mac)


def main() -> None:
    es = entries()
    saved = note(SAVED, root(es, SAVED))
    rewritten = es[:4]
    for e in es[4:]:
        rewritten.append(
            edited(e, rewritten[-1].hash) if e.seq == 5 else relinked(e, rewritten[-1].hash)
        )
    alone = [*es[:9], edited(es[9]), *es[10:]]
    cases = [
        {
            "name": "honest export extends the saved checkpoint",
            "export": export(es, OWN_CHECKPOINTS),
            "saved": [saved],
            "expected": {"valid": True, "uncovered": N - 8},
        },
        {
            "name": "without saved checkpoints a cut export looks valid",
            "export": export(es[:6], (4,)),
            "saved": [],
            "expected": {"valid": True, "uncovered": 2},
        },
        {
            "name": "cut to 6 entries with the checkpoints above 6 removed",
            "export": export(es[:6], (4,)),
            "saved": [saved],
            "expected": {
                "valid": False,
                "seq": 7,
                "reason_prefix": "rollback: your saved checkpoint covers 8",
            },
        },
        {
            "name": "entry 5 rewritten, the rest re-hashed and re-linked, checkpoints >= 5 removed",
            "export": export(rewritten, (4,)),
            "saved": [saved],
            "expected": {
                "valid": False,
                "seq": 5,
                "reason_prefix": "inconsistent checkpoint: entries 5..8 do not "
                "match your saved checkpoint",
            },
        },
        {
            "name": "entry 10 (under no checkpoint) edited and re-hashed alone",
            "export": export(alone, OWN_CHECKPOINTS),
            "saved": [saved],
            "expected": {"valid": False, "seq": 11, "reason_prefix": "broken link"},
        },
        {
            "name": "a saved checkpoint of the same size with another root (a forked view)",
            "export": export(es, OWN_CHECKPOINTS),
            "saved": [note(SAVED, hashlib.sha256(b"fork").digest())],
            "expected": {
                "valid": False,
                "seq": 5,
                "reason_prefix": "inconsistent checkpoint: entries 5..8",
            },
        },
    ]
    doc = {
        "format": "vettra.audit-export-vectors/v1",
        "kind": "saved-checkpoints",
        "desc": "Offline verification of exports with only the public key, against checkpoints the "
        "verifier saved earlier. TEST ONLY key: Ed25519 seed of 32 bytes 0x01. An export is "
        "JSON Lines (header, checkpoint lines, entry lines); 'seq' is the first bad entry.",
        "verifier_key": SIGNER.verifier_key(),
        "cases": cases,
    }
    (Path(__file__).parent / "saved-checkpoints.json").write_text(json.dumps(doc, indent=1) + "\n")


if __name__ == "__main__":
    main()
