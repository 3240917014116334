"""Action receipts: a signed statement of what was approved, for whoever runs it.

With every released credential the agent gets a compact JWS (RFC 7515) JWT (RFC 7519)
signed with the deployment's receipt key, Ed25519 (``alg`` ``Ed25519``, RFC 9864's
fully-specified name for EdDSA over Ed25519; ``EdDSA`` is accepted when verifying).
A downstream executor that holds only the public key (``GET /api/receipts/public-key``,
``vettra receipt pubkey``) checks offline that what it is about to run is what was
approved: the signature, ``aud`` (itself), ``exp``, and that the RFC 8785 digest of the
arguments in hand equals ``args_digest`` (:func:`verify`; ``vettra receipt verify``).

Claims: ``iss`` (``vettra:<tenant>``), ``sub`` (the agent), ``aud``, ``iat``, ``nbf``,
``exp``, ``jti`` (unique per release: an executor that remembers jtis runs each once),
``action_id``, ``args_digest``, ``tool``, ``user``, ``connection``, ``scope``,
``decision`` (``allowed``/``approved``) and ``decided_by``.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from .canonical import sha256_digest
from .errors import VerificationError
from .policy_envelope import key_id

ALG = "Ed25519"
ACCEPTED_ALGS = ("Ed25519", "EdDSA")
TYP = "vettra-receipt+jwt"
ISSUER_PREFIX = "vettra:"
LEEWAY_S = 30
MAX_RECEIPT_LENGTH = 8192
REQUIRED_CLAIMS = ("iss", "sub", "aud", "iat", "exp", "jti", "action_id", "args_digest")


def issue(signing_key: Any, claims: Mapping[str, Any]) -> str:
    """The compact receipt for ``claims``, signed by the Ed25519 ``signing_key``."""
    public = signing_key.public_key()
    header = {"alg": ALG, "typ": TYP, "kid": key_id(public)}
    return jwt.encode(header, dict(claims), OKPKey.import_key(signing_key), algorithms=[ALG])


def jwk(public_key: Any) -> dict[str, Any]:
    """The RFC 8037 JWK of a receipt public key, with its ``kid``, ``alg`` and ``use``."""
    return {
        **OKPKey.import_key(public_key).as_dict(private=False),
        "kid": key_id(public_key),
        "alg": ALG,
        "use": "sig",
    }


def _refuse(reason: str) -> VerificationError:
    return VerificationError(f"receipt not valid: {reason}")


def verify(
    receipt: str,
    public_keys: Iterable[Any],
    *,
    now: datetime,
    audience: str | None = None,
    arguments: Any = None,
    check_expiry: bool = True,
) -> dict[str, Any]:
    """The claims of a receipt signed by one of ``public_keys``; :class:`VerificationError`
    saying which check failed otherwise.

    ``audience``: the ``aud`` this executor answers to. ``arguments``: the arguments in
    hand (any JSON value), whose RFC 8785 digest must equal ``args_digest``.
    """
    if not isinstance(receipt, str) or len(receipt) > MAX_RECEIPT_LENGTH:
        raise _refuse(f"not a compact JWT of at most {MAX_RECEIPT_LENGTH} characters")
    keys = {key_id(k): k for k in public_keys}
    try:
        header = jws.extract_compact(receipt.encode()).protected
    except (JoseError, ValueError, TypeError):
        raise _refuse("not a compact JWS") from None
    if header.get("alg") not in ACCEPTED_ALGS:
        raise _refuse(f"alg must be Ed25519, found {str(header.get('alg'))[:20]!r}")
    if header.get("typ") != TYP:  # RFC 8725 §3.11: no other JWT passes for a receipt
        raise _refuse(f"typ must be {TYP}")
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise _refuse("signed by a key that is not among the receipt keys given (kid)")
    try:
        token = jwt.decode(receipt, OKPKey.import_key(key), algorithms=[str(header["alg"])])
    except (JoseError, ValueError, TypeError):
        raise _refuse("the signature does not verify") from None
    claims = dict(token.claims)
    missing = [c for c in REQUIRED_CLAIMS if c not in claims]
    if missing:
        raise _refuse(f"missing claim(s) {', '.join(missing)}")
    moment = int(now.timestamp())
    exp, nbf = claims.get("exp"), claims.get("nbf", claims.get("iat"))
    if type(exp) is not int or (nbf is not None and type(nbf) is not int):
        raise _refuse("exp and nbf must be whole seconds")
    if check_expiry and moment >= exp + LEEWAY_S:
        raise _refuse(f"expired at {exp} (now {moment})")
    if nbf is not None and moment + LEEWAY_S < nbf:
        raise _refuse(f"not valid before {nbf} (now {moment})")
    if audience is not None:
        aud = claims["aud"]
        auds = aud if isinstance(aud, list) else [aud]
        if audience not in auds:
            raise _refuse(f"aud is {aud!r:.80}, not {audience!r:.80}")
    if arguments is not None:
        digest = sha256_digest(arguments)
        if not hmac.compare_digest(digest.encode(), str(claims["args_digest"]).encode()):
            raise _refuse(
                f"the arguments' digest {digest} is not the approved args_digest "
                f"{str(claims['args_digest'])[:80]}: what would run is not what was approved"
            )
    return claims
