"""Signed policy envelopes: shared vectors, round trips, tampering and rollback."""

from __future__ import annotations

import copy
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vettra.domain.canonical import canonical_json, loads_strict
from vettra.domain.errors import MalformedRequest, PolicyRejected
from vettra.domain.policy import Policy
from vettra.domain.policy_envelope import (
    SIGNING_CONTEXT,
    add_signature,
    b64url_decode,
    b64url_encode,
    is_same_payload,
    key_id,
    load_default_payload,
    sign_bundle,
    signing_input,
    verify_bundle,
)

from .vectors import ROOT, vector_cases, vector_files

VECTORS = ROOT / "policy"
# RFC 8032 §7.1 TEST 1: a published key, fine for tests, never for anything real.
RFC8032_TEST1_SECRET = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
RFC8032_TEST1_PUBLIC = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
TRUSTED = {key_id(KEY.public_key()): KEY.public_key()}


def _payload(version: int = 1, **changes: object) -> dict:
    payload = load_default_payload()
    payload.update(version=version, **changes)
    return payload


def _fields(exc: pytest.ExceptionInfo[PolicyRejected]) -> list[str]:
    return sorted({e.field for e in exc.value.errors})


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("doc, case", vector_cases(vector_files("policy"), "envelope"))
def test_envelope_vector(doc: dict, case: dict) -> None:
    trusted = {
        kid: Ed25519PublicKey.from_public_bytes(b64url_decode(raw))
        for kid, raw in doc["trusted_keys"].items()
    }
    active = Policy.from_payload(case["active_payload"]) if "active_payload" in case else None
    kwargs = {"min_version": case.get("min_version", 0), "active": active}
    if case["want_err"] is None:
        policy = verify_bundle(case["envelope"], trusted, **kwargs)
        assert canonical_json(policy.payload) == canonical_json(case["envelope"]["payload"])
    else:
        with pytest.raises(PolicyRejected) as caught:
            verify_bundle(case["envelope"], trusted, **kwargs)
        assert _fields(caught) == case["want_err"]


def test_vector_keys_are_the_rfc8032_test_key() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(RFC8032_TEST1_SECRET))
    doc = json.loads((VECTORS / "envelopes.json").read_text("utf-8"))
    [(kid, raw)] = doc["trusted_keys"].items()
    assert b64url_decode(raw).hex() == RFC8032_TEST1_PUBLIC
    assert kid == key_id(key.public_key())


# --------------------------------------------------------------------------- round trips


def test_sign_then_verify_returns_the_policy() -> None:
    envelope = sign_bundle(_payload(), KEY)
    policy = verify_bundle(envelope, TRUSTED)
    assert policy.policy_id == "default" and policy.version == 1
    assert envelope["signatures"][0]["alg"] == "Ed25519"
    assert json.loads(json.dumps(envelope)) == envelope  # plain JSON all the way down


def test_signature_covers_context_prefix_and_canonical_bytes() -> None:
    payload = _payload()
    assert signing_input(payload) == SIGNING_CONTEXT + canonical_json(payload)
    sig = b64url_decode(sign_bundle(payload, KEY)["signatures"][0]["sig"])
    KEY.public_key().verify(sig, SIGNING_CONTEXT + canonical_json(payload))


def test_key_order_and_whitespace_do_not_matter() -> None:
    envelope = sign_bundle(_payload(), KEY)
    shuffled = json.loads(json.dumps(envelope["payload"], sort_keys=True, indent=3))
    reordered = dict(reversed(list(shuffled.items())))
    verify_bundle({"payload": reordered, "signatures": envelope["signatures"]}, TRUSTED)


def test_key_id_format() -> None:
    kid = key_id(KEY.public_key())
    assert kid.startswith("ed25519:") and len(kid) == len("ed25519:") + 16
    assert int(kid.split(":")[1], 16) >= 0
    assert kid != key_id(OTHER.public_key())


def test_sign_bundle_refuses_an_invalid_policy() -> None:
    with pytest.raises(PolicyRejected) as caught:
        sign_bundle(_payload(thresholds={"approval": 30, "step_up": 55}), KEY)
    assert _fields(caught) == ["thresholds.approval"]


def test_rotation_both_keys_sign_either_verifies() -> None:
    envelope = add_signature(sign_bundle(_payload(), KEY), OTHER)
    verify_bundle(envelope, TRUSTED)
    verify_bundle(envelope, {key_id(OTHER.public_key()): OTHER.public_key()})


def test_a_trusted_signature_that_fails_rejects_even_if_another_passes() -> None:
    envelope = add_signature(sign_bundle(_payload(), KEY), OTHER)
    envelope["signatures"][1]["sig"] = envelope["signatures"][0]["sig"]
    both = dict(TRUSTED, **{key_id(OTHER.public_key()): OTHER.public_key()})
    with pytest.raises(PolicyRejected) as caught:
        verify_bundle(envelope, both)
    assert _fields(caught) == ["signatures[1].sig"]


def test_no_trusted_keys_rejects() -> None:
    with pytest.raises(PolicyRejected):
        verify_bundle(sign_bundle(_payload(), KEY), {})


@pytest.mark.parametrize("payload", [{"version": 2**60}, {"x": float("nan")}])
def test_payload_that_cannot_be_canonicalised_is_rejected(payload: dict) -> None:
    with pytest.raises(PolicyRejected) as caught:
        verify_bundle(
            {
                "payload": payload,
                "signatures": [{"keyid": next(iter(TRUSTED)), "alg": "Ed25519", "sig": "A" * 86}],
            },
            TRUSTED,
        )
    assert _fields(caught) == ["payload"]


@pytest.mark.parametrize("text", ["AA=", "A", "A+B/", "AB"])
def test_b64url_decode_is_strict(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)


def test_b64url_round_trip() -> None:
    for n in range(70):
        data = bytes(range(n))
        assert b64url_decode(b64url_encode(data)) == data


def test_default_payload_loads_and_is_signable() -> None:
    payload = load_default_payload()
    assert payload["policy_id"] == "default" and payload["version"] == 2
    assert (
        verify_bundle(sign_bundle(payload, KEY), TRUSTED).digest
        == Policy.from_payload(payload).digest
    )


# --------------------------------------------------------------------------- rollback


def test_same_version_identical_payload_is_accepted_different_is_not() -> None:
    active = Policy.from_payload(_payload(3))
    again = verify_bundle(sign_bundle(_payload(3), KEY), TRUSTED, active=active)
    assert is_same_payload(again, active)
    with pytest.raises(PolicyRejected) as caught:
        verify_bundle(sign_bundle(_payload(3, description="changed"), KEY), TRUSTED, active=active)
    assert _fields(caught) == ["payload.version"]


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10**6), st.integers(1, 10**6))
def test_downgrade_is_refused(candidate: int, floor: int) -> None:
    envelope = sign_bundle(_payload(candidate), KEY)
    active = Policy.from_payload(_payload(floor, description="active"))
    for kwargs in ({"min_version": floor}, {"active": active}):
        if candidate < floor or ("active" in kwargs and candidate == floor):
            with pytest.raises(PolicyRejected) as caught:
                verify_bundle(envelope, TRUSTED, **kwargs)
            assert _fields(caught) == ["payload.version"]
        else:
            assert verify_bundle(envelope, TRUSTED, **kwargs).version == candidate


# --------------------------------------------------------------------------- tampering

SIGNED = sign_bundle(_payload(), KEY)
SIGNED_BYTES = canonical_json(SIGNED["payload"])


@settings(max_examples=500, deadline=None)
@given(st.integers(0, len(SIGNED_BYTES) - 1), st.integers(0, 255))
def test_tampering_any_byte_of_the_payload_is_rejected(index: int, byte: int) -> None:
    assume(SIGNED_BYTES[index] != byte)
    tampered = SIGNED_BYTES[:index] + bytes([byte]) + SIGNED_BYTES[index + 1 :]
    try:
        payload = loads_strict(tampered)
    except MalformedRequest:
        return  # no longer JSON: refused before any policy code sees it
    assume(canonical_json(payload) != SIGNED_BYTES)  # e.g. "1" -> "1.0" means the same
    with pytest.raises(PolicyRejected):
        verify_bundle({"payload": payload, "signatures": SIGNED["signatures"]}, TRUSTED)


LEAVES = [
    ("version",),
    ("thresholds", "approval"),
    ("timeouts", "max"),
    ("description",),
    ("rules", 0, "effect"),
    ("rules", 0, "reason"),
    ("rules", 1, "tools", 0),
    ("rules", 0, "when", "all", 1, "any", 0, "confusable_with", 0),
    ("policy_id",),
]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(LEAVES),
    st.one_of(st.integers(-5, 10**6), st.text(max_size=12), st.booleans(), st.none()),
)
def test_changing_any_value_is_rejected(path: tuple, value: object) -> None:
    envelope = copy.deepcopy(SIGNED)
    target = envelope["payload"]
    for step in path[:-1]:
        target = target[step]
    assume(target[path[-1]] != value or type(target[path[-1]]) is not type(value))
    target[path[-1]] = value
    with pytest.raises(PolicyRejected) as caught:
        verify_bundle(envelope, TRUSTED)
    assert _fields(caught) == ["signatures[0].sig"]  # caught by the signature, before schema
