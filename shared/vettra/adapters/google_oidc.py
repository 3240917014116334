"""The Cloud Tasks OIDC check: who may fire timers (``POST /api/tasks/expire``) in the cloud.

A task created with ``HttpRequest.oidc_token`` (see :mod:`.cloud_tasks`) reaches the
expire function with ``Authorization: Bearer <Google-signed OIDC ID token>`` for the
invoker service account (https://cloud.google.com/tasks/docs/creating-http-target-tasks#token).
:class:`GoogleOidcIdentity` accepts exactly that token and makes it the ``system``
principal, the one role the tasks route admits and no other route does:

- RS256 signature by a key of Google's JWK Set (:data:`GOOGLE_CERTS_URL`, through the
  same :class:`~vettra.services.jwks.JwksCache` as Auth0: cached, rotation, rate limit);
- ``iss`` = ``https://accounts.google.com`` (or the bare ``accounts.google.com`` some
  Google tokens carry);
- ``aud`` = the audience the task was created with: the expire function's URL,
  ``VETTRA_TASKS_URL`` (Cloud Tasks' default audience is the target URL);
- ``email`` = ``VETTRA_TASKS_INVOKER`` and ``email_verified`` is ``true``: any Google
  account can get a Google-signed token for our URL as audience, so the audience alone
  proves nothing; the service account's email does;
- ``exp``, ``iat`` as whole seconds with :data:`LEEWAY_S` skew; at most
  :data:`MAX_LIFETIME_S` ahead (Google's ID tokens live one hour).

Everything else is :class:`Unauthenticated` (401) saying which check failed, without
repeating the token; Google's keys unreachable is :class:`Unavailable` (503, so Cloud
Tasks retries the delivery).
"""

from __future__ import annotations

from ..domain.errors import Unauthenticated
from ..domain.identity import SYSTEM, Principal
from ..ports import Clock, Identity
from ..services.jwks import (
    JwksCache,
    TokenRefused,
    WholeSecondClaims,
    check_claims,
    verify_signature,
)

GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v3/certs"
LEEWAY_S = 30
MAX_LIFETIME_S = 2 * 3600
#: How the system principal is named: ``system:scheduler``, as locally
SCHEDULER_SUB = "scheduler"


class GoogleOidcIdentity(Identity):
    """Google-signed OIDC tokens of one service account for one audience → ``system``."""

    def __init__(self, *, audience: str, invoker_email: str, clock: Clock, keys: JwksCache):
        if not audience or not invoker_email or "@" not in invoker_email:
            raise ValueError(
                "the Cloud Tasks OIDC check needs VETTRA_TASKS_URL (the audience) and "
                "VETTRA_TASKS_INVOKER (the invoker service account's email)"
            )
        self.audience = audience
        self.invoker_email = invoker_email.lower()
        self._clock = clock
        self.keys = keys

    def authenticate(self, bearer: str) -> Principal:
        try:
            claims = verify_signature(bearer, self.keys)
            check_claims(self._registry(), claims)
        except TokenRefused as refused:
            raise Unauthenticated(f"task token not accepted: {refused.reason}") from None
        email = claims.get("email")
        if not isinstance(email, str) or email.lower() != self.invoker_email:
            raise Unauthenticated(
                "task token not accepted: it is not the Cloud Tasks invoker's (email)"
            )
        if claims.get("email_verified") is not True:
            raise Unauthenticated("task token not accepted: email_verified is not true")
        return Principal(sub=SCHEDULER_SUB, role=SYSTEM, user=SYSTEM)

    def _registry(self) -> WholeSecondClaims:
        return WholeSecondClaims(
            now=int(self._clock.now().timestamp()),
            leeway=LEEWAY_S,
            max_ahead_s=MAX_LIFETIME_S + LEEWAY_S,
            iss={"essential": True, "values": list(GOOGLE_ISSUERS)},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            iat={"essential": True},
        )

    @staticmethod
    def issuers() -> tuple[str, ...]:
        """The ``iss`` values to route to this verifier (:class:`.auth0_identity.IssuerIdentity`)."""
        return GOOGLE_ISSUERS
