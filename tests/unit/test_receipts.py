"""Action receipts verified with nothing but the public key, and the release rules' order."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from joserfc import jwt
from joserfc.jwk import OKPKey

from vettra.domain import receipts
from vettra.domain.actions import ALLOWED, APPROVED, PENDING, Action
from vettra.domain.canonical import sha256_digest
from vettra.domain.credentials import CredentialNeed, ReleaseFacts, refusal
from vettra.domain.errors import VerificationError

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ARGS = {"to": "bob@example.com", "subject": "hi", "amount": 1.5}


def _claims(**changes) -> dict:
    now = int(NOW.timestamp())
    claims = {
        "iss": "vettra:default",
        "sub": "agent-1",
        "aud": "gmail.send_message",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "jti": "rcpt_1",
        "action_id": "act_1",
        "args_digest": sha256_digest(ARGS),
    }
    claims.update(changes)
    return claims


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_a_receipt_verifies_with_only_the_public_key(key) -> None:
    token = receipts.issue(key, _claims())
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "Ed25519" and header["typ"] == "vettra-receipt+jwt"
    claims = receipts.verify(
        token, [key.public_key()], now=NOW, audience="gmail.send_message", arguments=dict(ARGS)
    )
    assert claims["action_id"] == "act_1"
    # the same arguments in another key order and spacing: the same RFC 8785 digest
    reordered = json.loads(json.dumps(dict(reversed(list(ARGS.items())))))
    receipts.verify(token, [key.public_key()], now=NOW, arguments=reordered)


@pytest.mark.parametrize(
    "what, kwargs, message",
    [
        ("other arguments", {"arguments": {**ARGS, "to": "eve@example.com"}}, "not the approved"),
        ("other audience", {"audience": "payments"}, "aud is"),
        ("too late", {"now": NOW + timedelta(seconds=400)}, "expired"),
        ("too early", {"now": NOW - timedelta(seconds=120)}, "not valid before"),
    ],
)
def test_a_receipt_for_something_else_is_refused(key, what, kwargs, message) -> None:
    token = receipts.issue(key, _claims())
    kwargs = {"now": NOW, **kwargs}
    with pytest.raises(VerificationError, match=message):
        receipts.verify(token, [key.public_key()], **kwargs)


def test_forged_and_foreign_receipts_are_refused(key) -> None:
    token = receipts.issue(key, _claims())
    other = Ed25519PrivateKey.generate()
    with pytest.raises(VerificationError, match="not among the receipt keys"):
        receipts.verify(token, [other.public_key()], now=NOW)
    head, body, sig = token.split(".")
    tampered = base64.urlsafe_b64encode(
        json.dumps(_claims(args_digest=sha256_digest({"x": 1}))).encode()
    )
    with pytest.raises(VerificationError, match="signature does not verify"):
        receipts.verify(
            f"{head}.{tampered.decode().rstrip('=')}.{sig}", [key.public_key()], now=NOW
        )
    # a JWT of another type signed by the same key is not a receipt (RFC 8725 §3.11)
    plain = jwt.encode(
        {"alg": "Ed25519", "kid": "x"}, _claims(), OKPKey.import_key(key), algorithms=["Ed25519"]
    )
    with pytest.raises(VerificationError, match="typ must be"):
        receipts.verify(plain, [key.public_key()], now=NOW)
    with pytest.raises(VerificationError, match="missing claim"):
        receipts.verify(receipts.issue(key, {"iss": "x", "exp": 1}), [key.public_key()], now=NOW)
    with pytest.raises(VerificationError, match="compact JWS"):
        receipts.verify("not.a.jwt", [key.public_key()], now=NOW)
    old = receipts.issue(key, _claims(exp=int(NOW.timestamp()) - 3600))
    assert receipts.verify(old, [key.public_key()], now=NOW, check_expiry=False)["jti"] == "rcpt_1"


def test_the_jwk_is_rfc8037_without_the_private_part(key) -> None:
    jwk = receipts.jwk(key.public_key())
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"} and jwk["crv"] == "Ed25519"


# -- the rules (pure) ----------------------------------------------------------------------

_ACTION = Action(
    id="act_1",
    tenant="default",
    user="alice",
    agent="agent-1",
    tool="gmail.send_message",
    arguments=ARGS,
    args_digest=sha256_digest(ARGS),
    framework="plain",
    risk={},
    status=APPROVED,
    step_up_required=False,
    created_at=NOW - timedelta(seconds=60),
    decided_at=NOW - timedelta(seconds=10),
)
_NEED = CredentialNeed("google-oauth2", ("gmail.send",))
_GRANT = {"scopes": ["gmail.send"], "revoked_at": None}


def _facts(**changes) -> ReleaseFacts:
    base = ReleaseFacts(
        action=_ACTION,
        presented_digest=_ACTION.args_digest,
        now=NOW,
        window_s=300,
        released=False,
        session=None,
        need=_NEED,
        permission=_GRANT,
    )
    return replace(base, **changes)


@pytest.mark.parametrize(
    "changes, code",
    [
        ({}, None),
        ({"action": replace(_ACTION, status=PENDING, decided_at=None)}, "pending"),
        ({"released": True, "presented_digest": "sha256:0"}, "already-released"),
        ({"now": NOW + timedelta(seconds=290)}, "window-closed"),
        ({"presented_digest": sha256_digest({"x": 1})}, "args-mismatch"),
        ({"action": replace(_ACTION, session_id="ses_1")}, "session-ended"),
        ({"action": replace(_ACTION, session_id="ses_1"), "session": {"revoked_at": None}}, None),
        ({"need": None}, "no-credential"),
        ({"permission": None}, "not-permitted"),
        ({"permission": {**_GRANT, "revoked_at": "2026-03-01T00:00:00Z"}}, "not-permitted"),
        ({"permission": {"scopes": ["gmail.readonly"]}}, "not-permitted"),
    ],
)
def test_the_first_rule_that_holds_decides(changes, code) -> None:
    found = refusal(_facts(**changes))
    assert (found.refusal if found else None) == code


def test_an_allowed_action_opens_its_window_at_intercept() -> None:
    allowed = replace(_ACTION, status=ALLOWED, decided_at=None)
    assert refusal(_facts(action=allowed, now=NOW + timedelta(seconds=239))) is None
    assert refusal(_facts(action=allowed, now=NOW + timedelta(seconds=240))).refusal == (
        "window-closed"
    )
