"""The boot self-test of the WASM verifier: the module against the Python reference.

Each check runs the same input through both and compares the answers byte for byte
(canonical JSON of each side's result). Inputs are built here, at boot, so a module
that was altered in any of the paths Vettra relies on (canonical JSON, Merkle
proofs, the HMAC-sealed chain, Ed25519 envelopes, risk and policy) is caught before it
decides anything. Costs a few milliseconds.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ..domain import audit, merkle
from ..domain.action_bundle import parse_bundle
from ..domain.audit_verify import verify_entries
from ..domain.canonical import canonical_json, loads_strict
from ..domain.errors import MalformedRequest, PolicyRejected
from ..domain.policy import Policy
from ..domain.policy_envelope import (
    b64url_encode,
    key_id,
    load_default_payload,
    sign_bundle,
    verify_bundle,
)
from ..services.verifier import ReferenceVerifier
from .wasm_verifier import decide_answer

if TYPE_CHECKING:
    from .wasm_verifier import WasmVerifier

CANONICAL_TEXTS = (
    '{"b":[1e21,1.0,-0.0,"\\u00e9\\n"],"a":null,"\\ud83d\\ude00":1,"\\ue000":2}',
    "[0.1, 1e-7, 123456789012345680000, 5e-324]",
    '{"a":1,"a":2}',
    "[NaN]",
)
BODIES: tuple[dict[str, Any], ...] = (
    {"tool": "user.get_profile", "arguments": {}},
    {"tool": "gmail.send_message", "arguments": {"to": "a@x.com, b@y.com", "subject": "hi"}},
    {"tool": "drive.share_file", "arguments": {"type": "anyone", "role": "writer"}},
    {"tool": "stripe.create_charge", "arguments": {"amount": 12.5, "currency": "usd"}},
    {"tool": "acmecorp.get_widget", "arguments": {"name": "\u0430dmin", "path": "secret/x"}},
    {"tool": "iam.grant_role", "arguments": {"policy": '{"r\u043ele": "OWNER"}'}},
    {"tool": "gcal.create_event", "arguments": {"attendees": ["a", "b", "c"], "n": 1e20}},
)


def _canonical(value: Any) -> bytes:
    return canonical_json(value)


def _check_canonical(verifier: WasmVerifier) -> str | None:
    for text in CANONICAL_TEXTS:
        try:
            want: Any = canonical_json(loads_strict(text)).decode("utf-8")
        except MalformedRequest:
            want = None
        got = verifier.module.request({"op": "canonical", "text": text})
        if (got.get("canonical") if got.get("valid") else None) != want:
            return f"canonical JSON of {text!r}"
    return None


def _check_merkle(verifier: WasmVerifier) -> str | None:
    leaves = [bytes([i]) * i for i in range(7)]
    hashes = [merkle.leaf_hash(d) for d in leaves]
    tree = merkle.MerkleTree(hashes)
    root = tree.root()
    got = verifier.module.request({"op": "merkle_root", "leaves": [d.hex() for d in leaves]})
    if got.get("root") != root.hex():
        return "Merkle root"
    proof = tree.inclusion_proof(3, 7)
    for path, want in ((proof, True), (proof[::-1], False)):
        answer = verifier.module.request(
            {
                "op": "verify_inclusion",
                "leaf_hash": hashes[3].hex(),
                "index": 3,
                "size": 7,
                "proof": [p.hex() for p in path],
                "root": root.hex(),
            }
        )
        if answer.get("valid") is not want:
            return "Merkle inclusion proof"
    old = tree.root(4)
    consistency = tree.consistency_proof(4, 7)
    answer = verifier.module.request(
        {
            "op": "verify_consistency",
            "old_size": 4,
            "new_size": 7,
            "old_root": old.hex(),
            "new_root": root.hex(),
            "proof": [p.hex() for p in consistency],
        }
    )
    return None if answer.get("valid") is True else "Merkle consistency proof"


def _check_chain(verifier: WasmVerifier) -> str | None:
    key = secrets.token_bytes(32)
    events = [
        audit.AuditEvent(
            type=audit.ACTION_INTERCEPTED,
            chain="selftest",
            actor="agent:self-test",
            at=f"2026-01-01T00:00:0{i}.000Z",
            action_id=f"act_{i}",
            data={"n": i, "text": "é\u2028"},
        )
        for i in range(5)
    ]
    entries = audit.link_all(events, head_seq=0, head_hash=audit.GENESIS_HASH, key_id="k", key=key)
    tampered = list(entries)
    tampered[2] = audit.AuditEntry.from_dict({**entries[2].as_dict(), "actor": "someone else"})
    for chain in (entries, tampered):
        want = verify_entries(chain, hmac_keys={"k": key}).as_dict()
        got = verifier.module.request(
            {
                "op": "verify_log",
                "entries": [{"body": e.body_json, "hash": e.hash, "mac": e.mac} for e in chain],
                "hmac_keys": {"k": key.hex()},
                "checkpoints": [],
            }
        )
        got = {k: got.get(k) for k in want}
        if _canonical(got) != _canonical(want):
            return "audit chain verification"
    return None


def _check_envelope(verifier: WasmVerifier) -> str | None:
    private = Ed25519PrivateKey.generate()
    public = private.public_key()
    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    trusted = {key_id(public): public}
    envelope = sign_bundle(load_default_payload(), private)
    altered = {**envelope, "payload": {**envelope["payload"], "version": 2}}
    for candidate in (envelope, altered):
        try:
            want: Any = verify_bundle(candidate, trusted).digest
        except PolicyRejected as exc:
            want = sorted(e.field for e in exc.errors)
        answer = verifier.module.request(
            {
                "op": "verify_envelope",
                "envelope": candidate,
                "trusted_keys": {key_id(public): b64url_encode(raw)},
                "min_version": 0,
            }
        )
        got: Any = (
            answer.get("digest")
            if answer.get("valid")
            else sorted(e["field"] for e in answer.get("errors", []))
        )
        if got != want:
            return "policy envelope verification (digest and Ed25519 signature)"
    return None


def _check_decisions(verifier: WasmVerifier) -> str | None:
    reference = ReferenceVerifier()
    policy = Policy.from_payload(load_default_payload())
    for body in BODIES:
        bundle = parse_bundle(body)
        answer = verifier.ask(policy, bundle, "agent:self-test")
        if not answer.get("ok"):
            return f"decision on {bundle.tool}: {answer.get('error')}"
        want = decide_answer(
            *reference.decide(policy, bundle, verifier._catalogue, "agent:self-test")
        )
        if any(_canonical(answer[part]) != _canonical(want[part]) for part in want):
            return f"decision on {bundle.tool}"
    return None


CHECKS: tuple[Callable[[WasmVerifier], str | None], ...] = (
    _check_canonical,
    _check_merkle,
    _check_chain,
    _check_envelope,
    _check_decisions,
)


def self_test(verifier: WasmVerifier) -> str | None:
    """None when the module agrees with the reference everywhere, else what differed."""
    for check in CHECKS:
        failure = check(verifier)
        if failure is not None:
            return failure
    return None
