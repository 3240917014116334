"""Locally signed identities: JWTs (RFC 7519) signed with the home's Ed25519 key.

``vettra token`` mints them; ``vettra dev`` accepts only tokens signed by the same
home's key, with our issuer and audience, unexpired. Verified tokens are cached
(bounded) because signature checks cost ~0.3 ms and agents reuse one token.
"""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from ..domain.errors import Unauthenticated
from ..domain.identity import DEFAULT_TENANT, ROLES, Principal
from ..ports import Clock, Identity
from ..services.jwks import TokenRefused, WholeSecondClaims, check_claims

ISSUER = "vettra-local"
AUDIENCE = "vettra"
ALGORITHM = "Ed25519"  # RFC 9864 fully-specified EdDSA
DEFAULT_TTL_S = 12 * 3600
MAX_TTL_S = 30 * 24 * 3600
LEEWAY_S = 30
_CACHE_SIZE = 4096
_MAX_TOKEN_LENGTH = 8192


class LocalIdentity(Identity):
    def __init__(self, signing_key: Any, clock: Clock):
        from cryptography.hazmat.primitives import serialization

        pem = signing_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        self._key = OKPKey.import_key(pem)
        self._kid = self._key.thumbprint()[:16]
        self._clock = clock
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def issue(
        self,
        *,
        role: str,
        sub: str,
        user: str | None = None,
        tenant: str = DEFAULT_TENANT,
        ttl_s: int = DEFAULT_TTL_S,
    ) -> str:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, found {role!r}")
        if role == "agent" and not user:
            raise ValueError("an agent token must name the user it acts for (--user)")
        if not 1 <= ttl_s <= MAX_TTL_S:
            raise ValueError(f"ttl must be 1..{MAX_TTL_S} seconds, found {ttl_s}")
        now = int(self._clock.now().timestamp())
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": sub,
            "role": role,
            "user": user if role == "agent" else sub,
            "tenant": tenant,
            "iat": now,
            "nbf": now - LEEWAY_S,
            "exp": now + ttl_s,
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(
            {"alg": ALGORITHM, "kid": self._kid}, claims, self._key, algorithms=[ALGORITHM]
        )

    def authenticate(self, bearer: str) -> Principal:
        now = self._clock.now().timestamp()
        with self._lock:
            hit = self._cache.get(bearer)
            if hit is not None and hit[1] > now:
                self._cache.move_to_end(bearer)
                return hit[0]
        principal, exp = self._verify(bearer, now)
        with self._lock:
            self._cache[bearer] = (principal, exp)
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        return principal

    def _verify(self, bearer: str, now: float) -> tuple[Principal, float]:
        if not bearer or len(bearer) > _MAX_TOKEN_LENGTH:
            raise Unauthenticated("bearer token missing or too long")
        try:
            token = jwt.decode(bearer, self._key, algorithms=[ALGORITHM])
        except (JoseError, ValueError, TypeError) as exc:
            raise Unauthenticated("token signature or format not accepted") from exc
        c = token.claims
        try:
            check_claims(_registry(int(now)), c)
        except TokenRefused as refused:
            raise Unauthenticated(f"token not accepted: {refused.reason}") from None
        role, sub, user = c.get("role"), c.get("sub"), c.get("user")
        if (
            role not in ROLES
            or not isinstance(sub, str)
            or not sub
            or not isinstance(user, str)
            or not user
        ):
            raise Unauthenticated("token not accepted: bad role/sub/user claims")
        tenant = c.get("tenant", DEFAULT_TENANT)
        if not isinstance(tenant, str) or not tenant:
            raise Unauthenticated("token not accepted: bad tenant")
        auth_time = c.get("auth_time")
        principal = Principal(
            sub=sub,
            role=role,
            user=user,
            tenant=tenant,
            auth_time=auth_time if type(auth_time) is int else None,
        )
        return principal, float(c["exp"]) + LEEWAY_S


def _registry(now: int) -> WholeSecondClaims:
    """RFC 7519 §4.1 checks, NumericDates held to the whole seconds we mint, at most
    ``MAX_TTL_S`` ahead (a float, a string or an absurdly far ``exp`` is refused)."""
    return WholeSecondClaims(
        now=now,
        leeway=LEEWAY_S,
        max_ahead_s=MAX_TTL_S + LEEWAY_S,
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
        sub={"essential": True},
    )
