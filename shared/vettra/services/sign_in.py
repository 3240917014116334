"""Sign-in for the dashboard: a verified ID token in, a realtime-store token out.

The dashboard signs the person in with Auth0 and posts the ID token to
``POST /api/auth/firebase-token``. :class:`SignInService` verifies it (an
:class:`~vettra.ports.Identity` for ID tokens: issuer, audience = the dashboard's client
id, dates, signature) and mints a Firebase custom token (:class:`~vettra.ports.SignInTokens`)
whose ``uid`` is the person's user id — the value their actions carry in ``user`` — and
whose developer claims are ``{"vettra_role": "approver"|"admin", "tenant": ...}``, which
``firestore.rules`` read (docs/identity.md).

Each person may mint :data:`SIGN_IN_BURST` tokens at once and one per
``1 / SIGN_IN_RATE_PER_S`` seconds after that (a token lives an hour; in the cloud each
mint is an IAM signBlob call with its own quota): past that, 429 with ``Retry-After``.
"""

from __future__ import annotations

from typing import Any

from ..domain.errors import Forbidden, Unauthenticated
from ..domain.identity import DECIDERS
from ..ports import Clock, Identity, SignInTokens
from .rate_limit import RateLimitSettings, TokenBucketLimiter, principal_key

SIGN_IN_RATE_PER_S = 0.2
SIGN_IN_BURST = 5
#: Firebase Auth's limit on a uid (https://firebase.google.com/docs/auth/admin/create-custom-tokens)
MAX_UID_LENGTH = 128
#: A custom token is good for one sign-in within this long (fixed by Firebase)
CUSTOM_TOKEN_TTL_S = 3600
ROLE_CLAIM = "vettra_role"
TENANT_CLAIM = "tenant"


class SignInService:
    def __init__(
        self,
        id_tokens: Identity,
        minter: SignInTokens,
        clock: Clock,
        *,
        limits: RateLimitSettings | None = None,
    ):
        self.id_tokens = id_tokens
        self.minter = minter
        self.limiter = TokenBucketLimiter(
            clock,
            limits or RateLimitSettings(rate_per_s=SIGN_IN_RATE_PER_S, burst=SIGN_IN_BURST),
            what="sign-ins",
        )

    def firebase_token(self, id_token: str) -> dict[str, Any]:
        """Verify ``id_token`` and mint the person's Firebase custom token."""
        principal = self.id_tokens.authenticate(id_token)
        if principal.role not in DECIDERS:  # an ID token verifier gives no other
            raise Forbidden("only approvers and admins sign in to the dashboard")
        uid = principal.user
        if not 1 <= len(uid) <= MAX_UID_LENGTH:
            raise Unauthenticated(f"token not accepted: sub must be 1..{MAX_UID_LENGTH} characters")
        self.limiter.take(principal_key(principal))
        claims = {ROLE_CLAIM: principal.role, TENANT_CLAIM: principal.tenant}
        return {
            "firebase_token": self.minter.mint(uid, claims),
            "uid": uid,
            ROLE_CLAIM: principal.role,
            TENANT_CLAIM: principal.tenant,
            "expires_in": CUSTOM_TOKEN_TTL_S,
        }
