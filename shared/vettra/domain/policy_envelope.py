"""Signed policy bundles: Ed25519 (RFC 8032) over RFC 8785 canonical JSON.

Envelope::

    {"payload": {...policy...},
     "signatures": [{"keyid": "ed25519:<16 hex>", "alg": "Ed25519",
                     "sig": "<base64url, no padding>"}]}

The signed message is :data:`SIGNING_CONTEXT` followed by
``canonical_json(payload)``. The prefix separates policy signatures from every
other Ed25519 signature Vettra makes with possibly the same key (audit
checkpoints, dev tokens), so a signature can never be replayed across them.

Verification order: envelope shape, then signatures (nothing in an unsigned or
mis-signed payload is trusted enough to be validated), then the policy schema,
then the anti-rollback check. Every failure is one :class:`PolicyRejected`
naming the offending fields; the caller keeps the active policy in force.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from importlib import resources
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .canonical import canonical_json, loads_strict
from .errors import FieldError, PolicyRejected
from .policy import Policy

SIGNING_CONTEXT = b"vettra.policy.v1\n"
ALG = "Ed25519"
KEY_ID_PREFIX = "ed25519:"
KEY_ID_HEX_CHARS = 16  # 64 bits of SHA-256: names a key, does not secure it
SIGNATURE_BYTES = 64  # RFC 8032 §5.1.6
MAX_SIGNATURES = 8
DEFAULT_POLICY_RESOURCE = "default-policy.json"
_ENVELOPE_KEYS = {"payload", "signatures"}
_SIGNATURE_KEYS = {"keyid", "alg", "sig"}
_B64URL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def key_id(public_key: Ed25519PublicKey) -> str:
    """``"ed25519:"`` + the first 16 hex characters of SHA-256 of the raw 32-byte key."""
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return KEY_ID_PREFIX + hashlib.sha256(raw).hexdigest()[:KEY_ID_HEX_CHARS]


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Strict base64url without padding: one spelling per byte string, or ValueError."""
    if not set(text) <= _B64URL_CHARS or len(text) % 4 == 1:
        raise ValueError("not unpadded base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(data) != text:  # non-zero trailing bits would give two spellings
        raise ValueError("non-canonical base64url")
    return data


def signing_input(payload: Any) -> bytes:
    """The exact bytes an Ed25519 policy signature covers."""
    return SIGNING_CONTEXT + canonical_json(payload)


def sign_bundle(payload: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """Validate ``payload`` and return a one-signature envelope; never signs an invalid policy."""
    Policy.from_payload(payload)
    signature = private_key.sign(signing_input(payload))
    return {
        "payload": json.loads(canonical_json(payload)),
        "signatures": [
            {"keyid": key_id(private_key.public_key()), "alg": ALG, "sig": b64url_encode(signature)}
        ],
    }


def add_signature(envelope: dict[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return a copy of ``envelope`` with one more signature (key rotation: sign with both)."""
    extra = sign_bundle(envelope["payload"], private_key)["signatures"]
    return {"payload": envelope["payload"], "signatures": list(envelope["signatures"]) + extra}


def _reject(detail: str, field: str, message: str) -> PolicyRejected:
    return PolicyRejected(detail, errors=[FieldError(field, message)])


def _check_shape(envelope: Any) -> None:
    if not isinstance(envelope, dict):
        raise _reject(
            "policy bundle is not a JSON object",
            "$",
            f"expected an object, found {type(envelope).__name__}",
        )
    errors = [FieldError(k, "unknown field") for k in sorted(envelope.keys() - _ENVELOPE_KEYS)]
    errors += [
        FieldError(k, "required field is missing") for k in sorted(_ENVELOPE_KEYS - envelope.keys())
    ]
    if "payload" in envelope and not isinstance(envelope["payload"], dict):
        errors.append(FieldError("payload", "expected an object"))
    sigs = envelope.get("signatures")
    if "signatures" in envelope:
        if not isinstance(sigs, list) or not sigs:
            errors.append(FieldError("signatures", "unsigned: expected at least one signature"))
        elif len(sigs) > MAX_SIGNATURES:
            errors.append(FieldError("signatures", f"more than {MAX_SIGNATURES} signatures"))
        else:
            for i, sig in enumerate(sigs):
                where = f"signatures[{i}]"
                if not isinstance(sig, dict) or sig.keys() != _SIGNATURE_KEYS:
                    errors.append(FieldError(where, "expected exactly {keyid, alg, sig}"))
                elif not all(isinstance(sig[k], str) for k in _SIGNATURE_KEYS):
                    errors.append(FieldError(where, "keyid, alg and sig must be strings"))
                elif sig["alg"] != ALG:
                    errors.append(
                        FieldError(f"{where}.alg", f"expected {ALG!r}, found {sig['alg']!r}")
                    )
            ids = [s.get("keyid") for s in sigs if isinstance(s, dict)]
            if len(ids) != len(set(map(str, ids))):
                errors.append(FieldError("signatures", "a key id appears more than once"))
    if errors:
        raise PolicyRejected("policy bundle envelope is malformed", errors=errors)


def _check_signatures(
    envelope: dict[str, Any], trusted_keys: Mapping[str, Ed25519PublicKey]
) -> None:
    """At least one signature by a trusted key, and every trusted signature valid.

    Signatures by keys we do not know are skipped rather than fatal, so a
    bundle signed by an old and a new key verifies on both sides of a rotation.
    """
    try:
        message = signing_input(envelope["payload"])
    except (TypeError, ValueError) as exc:
        raise _reject("policy payload is not canonical JSON", "payload", str(exc)) from exc
    trusted = 0
    for i, sig in enumerate(envelope["signatures"]):
        key = trusted_keys.get(sig["keyid"])
        if key is None:
            continue
        try:
            raw = b64url_decode(sig["sig"])
        except (ValueError, binascii.Error) as exc:
            raise _reject(
                "policy signature is not base64url", f"signatures[{i}].sig", str(exc)
            ) from exc
        if len(raw) != SIGNATURE_BYTES:
            raise _reject(
                "policy signature has the wrong length",
                f"signatures[{i}].sig",
                f"expected {SIGNATURE_BYTES} bytes, found {len(raw)}",
            )
        try:
            key.verify(raw, message)
        except InvalidSignature as exc:
            raise _reject(
                "policy signature does not verify: the payload was altered or "
                "signed by another key",
                f"signatures[{i}].sig",
                f"Ed25519 verification failed for {sig['keyid']}",
            ) from exc
        trusted += 1
    if not trusted:
        found = ", ".join(str(s["keyid"]) for s in envelope["signatures"])
        raise _reject(
            "policy bundle is not signed by a trusted key",
            "signatures",
            f"expected one of {sorted(trusted_keys)}, found {found}",
        )


def verify_bundle(
    envelope: Any,
    trusted_keys: Mapping[str, Ed25519PublicKey],
    *,
    min_version: int = 0,
    active: Policy | None = None,
) -> Policy:
    """Verify a signed bundle and return its policy, or raise :class:`PolicyRejected`.

    Anti-rollback: the version must be ``>= min_version``; and when ``active``
    (the policy in force) is given, either newer than it, or the same version
    with a byte-identical canonical payload (re-applying is idempotent, but two
    different payloads must never share a version number).
    """
    _check_shape(envelope)
    _check_signatures(envelope, trusted_keys)
    try:
        policy = Policy.from_payload(envelope["payload"])
    except PolicyRejected as exc:
        raise PolicyRejected(
            exc.detail,
            errors=[
                FieldError("payload" if e.field == "$" else f"payload.{e.field}", e.message)
                for e in exc.errors
            ],
        ) from exc
    if policy.version < min_version:
        raise _reject(
            "policy downgrade refused",
            "payload.version",
            f"expected at least {min_version}, found {policy.version}",
        )
    if active is not None:
        if policy.version < active.version:
            raise _reject(
                "policy downgrade refused",
                "payload.version",
                f"expected at least {active.version} (active), found {policy.version}",
            )
        if policy.version == active.version and policy.digest != active.digest:
            raise _reject(
                "policy version reused for a different payload",
                "payload.version",
                f"version {policy.version} is active with digest {active.digest}, "
                f"this payload has {policy.digest}; bump the version",
            )
    return policy


def is_same_payload(a: Policy, b: Policy) -> bool:
    """True when two policies have byte-identical canonical payloads."""
    return a.digest == b.digest


def load_default_payload() -> dict[str, Any]:
    """The shipped default policy payload (``vettra/data/default-policy.json``), unsigned."""
    text = resources.files("vettra").joinpath("data", DEFAULT_POLICY_RESOURCE).read_text("utf-8")
    payload: dict[str, Any] = loads_strict(text)  # the shipped file is an object
    return payload
