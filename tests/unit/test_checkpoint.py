"""Signed checkpoints (C2SP tlog-checkpoint + signed-note): shared vectors, interop, tampering."""

from __future__ import annotations

import base64
import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    audit_origin,
    ed25519_verifier_key,
    open_note,
    sign_checkpoint,
    verify_checkpoint,
)
from vettra.domain.errors import VerificationError

from .vectors import ROOT, vector_cases, vector_files

VECTORS = ROOT / "checkpoint"


def _load(name: str) -> dict:
    return json.loads((VECTORS / name).read_text("utf-8"))


def _cases(kind: str) -> list[object]:
    return vector_cases(vector_files("checkpoint"), kind)


def _note(case: dict) -> str | bytes:
    return bytes.fromhex(case["note_hex"]) if "note_hex" in case else case["note"]


VETTRA = _load("vettra-checkpoints.json")
SIGNER = NoteSigner(
    VETTRA["signer_name"],
    Ed25519PrivateKey.from_private_bytes(bytes.fromhex(VETTRA["signer_seed_hex"])),
)
VERIFIER = NoteVerifier(VETTRA["verifier_key"])
VALID_NOTE = VETTRA["cases"][0]["note"]


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("doc, case", _cases("checkpoint"))
def test_checkpoint_vector(doc: dict, case: dict) -> None:
    verifier = NoteVerifier(case.get("verifier_key", doc.get("verifier_key")))
    if case["want_err"] is not None:
        with pytest.raises(CheckpointError, match=re.escape(case["want_err"])):
            verify_checkpoint(_note(case), verifier, origin=case.get("origin"))
        return
    checkpoint = verify_checkpoint(_note(case), verifier, origin=case.get("origin"))
    want = case["want"]
    assert checkpoint == Checkpoint(
        want["origin"], want["size"], base64.b64decode(want["root_hash"]), tuple(want["extensions"])
    )
    seed_hex = case.get("signer_seed_hex", doc.get("signer_seed_hex"))
    if seed_hex and _signature_count(case["note"]) == 1:
        signer = NoteSigner(
            verifier.name, Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed_hex))
        )
        assert sign_checkpoint(checkpoint, signer) == case["note"]  # byte for byte


@pytest.mark.parametrize("doc, case", _cases("note"))
def test_note_vector(doc: dict, case: dict) -> None:
    verifiers = [NoteVerifier(key) for key in case["verifier_keys"]]
    if case["want_err"] is not None:
        with pytest.raises(CheckpointError, match=re.escape(case["want_err"])):
            open_note(_note(case), verifiers)
        return
    assert open_note(_note(case), verifiers) == (case["want_text"], case["want_names"])


@pytest.mark.parametrize("doc, case", _cases("verifier_key"))
def test_verifier_key_vector(doc: dict, case: dict) -> None:
    if case["want_err"] is not None:
        with pytest.raises(CheckpointError, match=re.escape(case["want_err"])):
            NoteVerifier(case["key"])
        return
    verifier = NoteVerifier(case["key"])
    assert f"{verifier.name}+{verifier.key_hash.hex()}+" in case["key"]


def _signature_count(note: str) -> int:
    return note[note.rfind("\n\n") + 2 :].count("\n")


# --------------------------------------------------------------------------- interoperability


def test_go_published_signer_key_signs_go_note_byte_for_byte() -> None:
    doc = _load("go-sumdb-note.json")
    signer = NoteSigner.from_signer_key(doc["signer_key"])
    assert signer.verifier_key() == doc["cases"][0]["verifier_keys"][0]
    assert signer.sign(doc["signer_text"]) == doc["signer_note"]
    assert signer.signer_key() == doc["signer_key"]


def test_go_verifier_key_manglings_are_refused() -> None:
    """Port of note_test.go TestNewVerifier: every proper substring and every byte+1 fails."""
    key = _load("go-sumdb-note.json")["cases"][0]["verifier_keys"][0]
    for i in range(len(key) + 1):
        for j in range(i + 1, len(key) + 1):
            if (i, j) != (0, len(key)):
                with pytest.raises(CheckpointError):
                    NoteVerifier(key[i:j])
    for i in range(len(key)):
        with pytest.raises(CheckpointError):
            NoteVerifier(key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :])


def test_go_signer_key_manglings_are_refused() -> None:
    """Port of note_test.go TestNewSigner (byte+1 half); errors never echo the seed."""
    skey = _load("go-sumdb-note.json")["signer_key"]
    seed64 = skey.rsplit("+", 1)[1]
    for i in range(len(skey)):
        with pytest.raises(CheckpointError) as caught:
            NoteSigner.from_signer_key(skey[:i] + chr(ord(skey[i]) + 1) + skey[i + 1 :])
        assert seed64[4:] not in str(caught.value)


def test_vettra_vector_keys_are_the_documented_test_seed() -> None:
    assert VETTRA["signer_seed_hex"] == "01" * 32
    assert SIGNER.verifier_key() == VETTRA["verifier_key"]
    assert SIGNER.signer_key() == VETTRA["signer_key"]
    assert NoteSigner.from_signer_key(VETTRA["signer_key"]).verifier_key() == VETTRA["verifier_key"]


# --------------------------------------------------------------------------- tampering


def test_every_single_byte_change_is_rejected() -> None:
    """Exhaustive: each position of the signed note, every other byte value."""
    original = VALID_NOTE.encode("utf-8")
    text = Checkpoint.parse(VALID_NOTE[: VALID_NOTE.rfind("\n\n") + 1]).body()
    for index in range(len(original)):
        for value in range(256):
            if value == original[index]:
                continue
            mutated = original[:index] + bytes([value]) + original[index + 1 :]
            try:
                opened, _ = open_note(mutated, [VERIFIER])
            except CheckpointError:
                continue
            assert opened != text, f"byte {index} -> 0x{value:02x} still verifies the same text"


@settings(max_examples=200, deadline=None)
@given(index=st.integers(min_value=0), value=st.integers(0, 255), extra=st.binary(max_size=3))
def test_any_edit_is_rejected_or_changes_the_text(index: int, value: int, extra: bytes) -> None:
    original = VALID_NOTE.encode("utf-8")
    index %= len(original)
    mutated = original[:index] + bytes([value]) + extra + original[index + 1 :]
    if mutated == original:
        return
    try:
        checkpoint = verify_checkpoint(mutated, VERIFIER)
    except CheckpointError:
        return
    assert sign_checkpoint(checkpoint, SIGNER) != VALID_NOTE


# --------------------------------------------------------------------------- round trips

_NAME_CHARS = st.characters(
    blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp"), blacklist_characters="+"
)
names = st.text(_NAME_CHARS, min_size=1, max_size=40).filter(
    lambda s: not any(c.isspace() for c in s)
)
lines = st.text(st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    origin=names,
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(lines, max_size=3),
    seed=st.binary(min_size=32, max_size=32),
)
def test_sign_then_verify_round_trips(
    origin: str, size: int, root: bytes, extensions: list[str], seed: bytes
) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    signer = NoteSigner(origin, Ed25519PrivateKey.from_private_bytes(seed))
    note = sign_checkpoint(checkpoint, signer)
    assert verify_checkpoint(note, NoteVerifier(signer.verifier_key())) == checkpoint
    assert (
        verify_checkpoint(note.encode("utf-8"), NoteVerifier(signer.verifier_key())) == checkpoint
    )
    assert NoteSigner.from_signer_key(signer.signer_key()).verifier_key() == signer.verifier_key()


@given(
    origin=lines,
    size=st.integers(0, MAX_TREE_SIZE),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(lines, max_size=3),
)
def test_body_parse_round_trips_for_any_origin(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    checkpoint = Checkpoint(origin, size, root, tuple(extensions))
    assert Checkpoint.parse(checkpoint.body()) == checkpoint


def test_note_text_may_hold_blank_lines_the_last_one_separates() -> None:
    text = "first\n\nsecond\n\n"
    assert open_note(SIGNER.sign(text), [VERIFIER]) == (text, [SIGNER.name])


# --------------------------------------------------------------------------- construction and errors


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"origin": ""}, "origin"),
        ({"origin": "a\nb"}, "origin"),
        ({"origin": "a\x7f\x01"}, "origin"),
        ({"size": -1}, "tree size"),
        ({"size": MAX_TREE_SIZE + 1}, "tree size"),
        ({"size": True}, "tree size"),
        ({"root_hash": b"\x00" * 31}, "root hash"),
        ({"extensions": ("",)}, "extension line"),
    ],
)
def test_checkpoint_refuses_what_it_could_not_write(kwargs: dict, field: str) -> None:
    args = {"origin": "o", "size": 1, "root_hash": b"\x00" * 32} | kwargs
    with pytest.raises(CheckpointError, match=f"^{field}: expected"):
        Checkpoint(**args)


def test_signer_refuses_bad_names_and_text() -> None:
    key = Ed25519PrivateKey.generate()
    for bad in ("", "a b", "a+b", "a\u00a0b", "a\u2028b"):
        with pytest.raises(CheckpointError):
            NoteSigner(bad, key)
    with pytest.raises(CheckpointError, match="ending in a newline"):
        SIGNER.sign("no newline")
    with pytest.raises(CheckpointError, match="control"):
        SIGNER.sign("tab\there\n")


def test_error_is_a_verification_error_naming_expected_and_found() -> None:
    with pytest.raises(VerificationError) as caught:
        verify_checkpoint(VALID_NOTE, VERIFIER, origin="vettra.dev/audit/x")
    assert caught.value.status == 422
    assert "expected 'vettra.dev/audit/x'" in str(caught.value)
    assert "found 'vettra.dev/audit/tenant-test'" in str(caught.value)


def test_ambiguous_verifiers_are_refused_when_used() -> None:
    with pytest.raises(CheckpointError, match="one verifier per name and key ID"):
        open_note(VALID_NOTE, [VERIFIER, NoteVerifier(VETTRA["verifier_key"])])


def test_signer_repr_hides_the_key() -> None:
    assert VETTRA["signer_key"].rsplit("+", 1)[1] not in repr(SIGNER)
    assert repr(SIGNER) == f"NoteSigner(name='{SIGNER.name}', key_hash='{SIGNER.key_hash.hex()}')"


def test_audit_origin() -> None:
    assert audit_origin("acme") == "vettra.dev/audit/acme"
    with pytest.raises(CheckpointError, match="origin"):
        audit_origin("acme corp")


def test_verifier_key_from_a_raw_public_key_matches_sigsum_go() -> None:
    case = _load("interop-checkpoints.json")["cases"][3]
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(case["signer_seed_hex"])).public_key()
    origin = case["want"]["origin"]
    assert ed25519_verifier_key(origin, key.public_bytes_raw()) == case["verifier_key"]
    with pytest.raises(CheckpointError, match="public key: expected 32 bytes"):
        ed25519_verifier_key(origin, b"\x00" * 31)
