"""Auth0 as the identity provider: access tokens for the API, ID tokens for sign-in.

**Access tokens** (:class:`Auth0AccessTokens`) are what agents (machine-to-machine,
client-credentials grant) and the dashboard (on behalf of a signed-in person) send as
``Authorization: Bearer``. Checked (RFC 9068 §4, RFC 7519 §4.1, via joserfc and
:mod:`vettra.services.jwks`): RS256/ES256 signature by a key of the tenant's JWK Set,
``iss`` = ``VETTRA_AUTH0_ISSUER``, ``aud`` contains ``VETTRA_AUTH0_AUDIENCE`` (the API
identifier), ``exp``, ``iat`` (and ``nbf`` when present) as whole seconds with
:data:`LEEWAY_S` of clock skew, ``sub`` present. The role comes from the token's grants,
the ``scope`` string and/or Auth0 RBAC's ``permissions`` list:

===================  ==========  =============================================
grant                role        ``Principal.user``
===================  ==========  =============================================
``vettra:admin``     admin       ``sub``
``vettra:approve``   approver    ``sub``
``vettra:agent``     agent       the ``https://vettra.dev/user`` claim (required)
===================  ==========  =============================================

``vettra:admin`` wins over ``vettra:approve``. ``vettra:agent`` together with either is
refused: an agent that could decide would approve its own calls. A token with none of
them is valid but grants nothing here: 403 ``insufficient_scope`` (RFC 6750 §3.1).

**ID tokens** (:class:`Auth0IdTokens`) are what the dashboard's Auth0 login returns; the
``auth`` function exchanges one for a Firebase custom token. Checked as OpenID Connect
Core §3.1.3.7: the same keys and issuer, ``aud`` contains ``VETTRA_AUTH0_CLIENT_ID`` (and
``azp`` is that client when present or when there are several audiences), ``exp``,
``iat``. The person is an approver, their own user (``sub``); an admin when the
``https://vettra.dev/roles`` claim (a list, set by an Auth0 Action from the user's
roles) contains ``"admin"``.

Both read the tenant from ``https://vettra.dev/tenant`` (default ``default``). Every
refusal is :class:`Unauthenticated` (401) whose detail says which check failed and
repeats nothing of the token; an unreachable JWK Set is :class:`Unavailable` (503).
:class:`IssuerIdentity` routes a bearer to the verifier of the issuer it names, so Auth0
tokens, Cloud Tasks' Google tokens and (when configured) local development tokens can
be accepted by one server.
"""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..domain.errors import Forbidden, Unauthenticated
from ..domain.identity import ADMIN, AGENT, APPROVER, DEFAULT_TENANT, Principal
from ..ports import Clock, Identity
from ..services.jwks import (
    JwksCache,
    TokenRefused,
    WholeSecondClaims,
    check_claims,
    verify_signature,
)

#: Namespaced custom claims (Auth0 requires a URL namespace for claims it lets Actions add)
CLAIM_NAMESPACE = "https://vettra.dev/"
USER_CLAIM = CLAIM_NAMESPACE + "user"
TENANT_CLAIM = CLAIM_NAMESPACE + "tenant"
ROLES_CLAIM = CLAIM_NAMESPACE + "roles"
SCOPE_AGENT = "vettra:agent"
SCOPE_APPROVE = "vettra:approve"
SCOPE_ADMIN = "vettra:admin"
ROLE_SCOPES = (SCOPE_AGENT, SCOPE_APPROVE, SCOPE_ADMIN)
JWKS_PATH = ".well-known/jwks.json"
LEEWAY_S = 30
#: NumericDates further ahead than this are refused unread (Auth0 caps lifetimes at 30 days)
MAX_LIFETIME_S = 30 * 24 * 3600
MAX_NAME_LENGTH = 128  # sub, user and tenant (a Firebase uid is at most 128 characters)


def _is_loopback(host: str | None) -> bool:
    return host in ("127.0.0.1", "localhost", "::1")


def require_https(url: str, what: str) -> str:
    """``url`` if it is https (or http on loopback, for development and tests)."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return url
    raise ValueError(f"{what} must be an https:// URL, found {url!r}")


@dataclass(frozen=True)
class Auth0Settings:
    """Where the tenant is and what our tokens are for (env names in docs/identity.md)."""

    issuer: str
    audience: str | None = None
    client_id: str | None = None
    jwks_url: str | None = None

    def __post_init__(self) -> None:
        require_https(self.issuer, "VETTRA_AUTH0_ISSUER")
        if not self.issuer.endswith("/"):  # Auth0's iss always ends in "/"
            object.__setattr__(self, "issuer", self.issuer + "/")
        if self.jwks_url is not None:
            require_https(self.jwks_url, "VETTRA_AUTH0_JWKS_URL")
        if not self.audience and not self.client_id:
            raise ValueError(
                "VETTRA_AUTH0_ISSUER is set but neither VETTRA_AUTH0_AUDIENCE (agents' access "
                "tokens) nor VETTRA_AUTH0_CLIENT_ID (the dashboard's sign-in) is"
            )

    @property
    def keys_url(self) -> str:
        return self.jwks_url or self.issuer + JWKS_PATH

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Auth0Settings | None:
        """None when ``VETTRA_AUTH0_ISSUER`` is unset (Auth0 is not used)."""
        issuer = env.get("VETTRA_AUTH0_ISSUER", "").strip()
        if not issuer:
            return None
        return cls(
            issuer=issuer,
            audience=env.get("VETTRA_AUTH0_AUDIENCE", "").strip() or None,
            client_id=env.get("VETTRA_AUTH0_CLIENT_ID", "").strip() or None,
            jwks_url=env.get("VETTRA_AUTH0_JWKS_URL", "").strip() or None,
        )


def https_jwks(url: str, clock: Clock) -> JwksCache:
    """A :class:`JwksCache` of ``url`` fetched with httpx (the seam tests replace with a
    local HTTP server's URL)."""
    from .oidc_http import fetch_json

    return JwksCache(require_https(url, "a JWK Set URL"), clock, fetch_json)


def _refused(reason: str) -> Unauthenticated:
    return Unauthenticated(f"token not accepted: {reason}")


def _name(claims: Mapping[str, Any], claim: str, what: str) -> str:
    value = claims.get(claim)
    if not isinstance(value, str) or not value or len(value) > MAX_NAME_LENGTH:
        raise _refused(f"{what} must be a string of 1..{MAX_NAME_LENGTH} characters")
    return value


def _tenant(claims: Mapping[str, Any]) -> str:
    if TENANT_CLAIM not in claims:
        return DEFAULT_TENANT
    return _name(claims, TENANT_CLAIM, f"the {TENANT_CLAIM} claim")


def tenant_of(claims: Mapping[str, Any]) -> str:
    """The tenant a verified token names (``https://vettra.dev/tenant``, default ``default``);
    :class:`Unauthenticated` when the claim is malformed."""
    return _tenant(claims)


def _auth_time(claims: Mapping[str, Any]) -> int | None:
    value = claims.get("auth_time")
    return value if type(value) is int else None


class _Auth0Tokens(Identity):
    """What both kinds of token share: signature, issuer, one audience, the dates, sub."""

    kind = "token"

    def __init__(self, settings: Auth0Settings, audience: str, clock: Clock, keys: JwksCache):
        self.settings = settings
        self.audience = audience
        self._clock = clock
        self.keys = keys

    def _verified(self, token: str) -> dict[str, Any]:
        try:
            claims = verify_signature(token, self.keys)
            check_claims(self._registry(), claims)
        except TokenRefused as refused:
            raise _refused(refused.reason) from None
        return claims

    def _registry(self) -> WholeSecondClaims:
        return WholeSecondClaims(
            now=int(self._clock.now().timestamp()),
            leeway=LEEWAY_S,
            max_ahead_s=MAX_LIFETIME_S + LEEWAY_S,
            iss={"essential": True, "value": self.settings.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            iat={"essential": True},
            sub={"essential": True},
        )


class Auth0AccessTokens(_Auth0Tokens):
    """Access tokens for the API → a :class:`Principal` by their grants (module docstring)."""

    def __init__(self, settings: Auth0Settings, clock: Clock, keys: JwksCache):
        if not settings.audience:
            raise ValueError("Auth0 access tokens need VETTRA_AUTH0_AUDIENCE (the API identifier)")
        super().__init__(settings, settings.audience, clock, keys)

    def authenticate(self, bearer: str) -> Principal:
        claims = self._verified(bearer)
        sub = _name(claims, "sub", "sub")
        grants = _grants(claims)
        tenant = _tenant(claims)
        if SCOPE_AGENT in grants:
            if grants & {SCOPE_APPROVE, SCOPE_ADMIN}:
                raise Forbidden(
                    f"an agent's token ({SCOPE_AGENT}) must not also grant {SCOPE_APPROVE} or "
                    f"{SCOPE_ADMIN}: an agent may not decide its own calls"
                )
            user = _name(claims, USER_CLAIM, f"an agent token's {USER_CLAIM} claim")
            return Principal(sub=sub, role=AGENT, user=user, tenant=tenant)
        if SCOPE_ADMIN in grants or SCOPE_APPROVE in grants:
            role = ADMIN if SCOPE_ADMIN in grants else APPROVER
            return Principal(
                sub=sub, role=role, user=sub, tenant=tenant, auth_time=_auth_time(claims)
            )
        raise Forbidden(
            f"the token grants none of {', '.join(ROLE_SCOPES)}",
            headers={
                "WWW-Authenticate": (
                    f'Bearer error="insufficient_scope", scope="{" ".join(ROLE_SCOPES)}"'
                )
            },
        )


def _grants(claims: Mapping[str, Any]) -> set[str]:
    """The ``scope`` string's entries and Auth0 RBAC's ``permissions`` list, together."""
    grants: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        grants.update(scope.split())
    permissions = claims.get("permissions")
    if isinstance(permissions, list):
        grants.update(p for p in permissions if isinstance(p, str))
    return grants


class Auth0IdTokens(_Auth0Tokens):
    """ID tokens of the dashboard's sign-in → an approver or admin :class:`Principal`."""

    def __init__(self, settings: Auth0Settings, clock: Clock, keys: JwksCache):
        if not settings.client_id:
            raise ValueError("Auth0 ID tokens need VETTRA_AUTH0_CLIENT_ID (the dashboard's client)")
        super().__init__(settings, settings.client_id, clock, keys)

    def verified_claims(self, token: str) -> dict[str, Any]:
        """The claims of a valid ID token (signature, iss, aud, azp, exp, iat, sub);
        :class:`Unauthenticated` saying which check failed."""
        claims = self._verified(token)
        aud = claims.get("aud")
        azp = claims.get("azp")
        if ((isinstance(aud, list) and len(aud) > 1) or azp is not None) and azp != self.audience:
            raise _refused("azp must be this deployment's client id")  # OIDC Core §3.1.3.7 (4-5)
        _name(claims, "sub", "sub")
        return claims

    def authenticate(self, bearer: str) -> Principal:
        claims = self.verified_claims(bearer)
        sub = _name(claims, "sub", "sub")
        roles = claims.get(ROLES_CLAIM)
        admin = isinstance(roles, list) and ADMIN in roles
        return Principal(
            sub=sub,
            role=ADMIN if admin else APPROVER,
            user=sub,
            tenant=_tenant(claims),
            auth_time=_auth_time(claims),
        )


def unverified_issuer(token: str) -> str | None:
    """The ``iss`` a compact JWS claims, unverified: only to pick who verifies it."""
    parts = token.split(".")
    if len(parts) != 3 or len(token) > 16384:
        return None
    try:
        payload = json.loads(urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except ValueError:
        return None
    iss = payload.get("iss") if isinstance(payload, dict) else None
    return iss if isinstance(iss, str) else None


class IssuerIdentity(Identity):
    """Several verifiers behind one port, chosen by the issuer the token names.

    The choice reads the payload unverified; the chosen verifier checks the signature and
    the issuer again, so naming another issuer only picks a verifier that will refuse.
    """

    def __init__(self, by_issuer: Mapping[str, Identity]):
        if not by_issuer:
            raise ValueError("IssuerIdentity needs at least one issuer")
        self.by_issuer = dict(by_issuer)

    def authenticate(self, bearer: str) -> Principal:
        verifier = self.by_issuer.get(unverified_issuer(bearer) or "")
        if verifier is None:
            raise _refused("not issued by an issuer this deployment trusts")
        return verifier.authenticate(bearer)

    def issue(self, **claims: Any) -> str:
        """A development token from the local identity among the verifiers (``vettra
        token``, tests); ValueError when there is none."""
        for verifier in self.by_issuer.values():
            issue = getattr(verifier, "issue", None)
            if callable(issue):
                return str(issue(**claims))
        raise ValueError("no verifier here issues tokens (local development tokens are off)")
