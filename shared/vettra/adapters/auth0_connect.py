"""Connecting an account: Auth0's authorization code flow with PKCE, for Token Vault.

A user connects a provider account (Google, GitHub, ...) by logging in through Auth0
with that connection; the confidential client redeems the code server-side and keeps
the Auth0 refresh token that Token Vault exchanges at release (docs/credentials.md,
*Connecting an account*). The request is the one Auth0 documents for Token Vault
("Call APIs with Token Vault": ``/authorize`` with ``connection`` and
``connection_scope``; OpenID Connect Core §3.1.2.1; RFC 7636)::

    GET {issuer}authorize?response_type=code&client_id=…&redirect_uri=…
        &scope=openid offline_access&state=…&nonce=…
        &code_challenge=…&code_challenge_method=S256
        &connection=google-oauth2&connection_scope=<the provider scopes>
        [&access_type=offline&prompt=consent]   (Google: so Google issues its refresh token)

    POST {issuer}oauth/token  grant_type=authorization_code, code, redirect_uri,
        code_verifier, client_id + client_secret (client_secret_post)

authlib's protocol functions build the URL (RFC 6749 §4.1.1, the S256 challenge of RFC
7636 §4.2) and the token request body; httpx sends it (no redirects followed, 5 s
timeout, no retry: a code is single-use, so an unknown outcome is not tried again).
authlib's own httpx client is not used: it binds to whichever of httpx and httpx2 is
installed, so its errors and transports would differ between environments. The ID
token is verified by :class:`~.auth0_identity.Auth0IdTokens` (signature by the tenant's
JWK Set through :mod:`vettra.services.jwks`, ``iss``, ``aud`` = this client, ``azp``,
``exp``, ``iat``, ``sub``); the service checks ``nonce`` and that ``sub`` and the tenant
are the user who started the flow. No error message repeats a code or a token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..domain.errors import Unauthenticated, Unavailable
from ..ports import AccountLinker, AuthorizeRequest, Clock, LinkedAccount, LinkRefused
from ..services.jwks import JwksCache
from .auth0_identity import Auth0IdTokens, Auth0Settings, require_https, tenant_of
from .auth0_token_vault import TokenVaultSettings

AUTHORIZE_PATH = "authorize"
CALLBACK_PATH = "/api/vault/callback"
SCOPE = "openid offline_access"
#: connections of Google's kind: Google issues its own refresh token (which Token Vault
#: keeps) only for access_type=offline, and again only after a fresh consent
GOOGLE_CONNECTIONS = re.compile(r"^google-(oauth2|apps)$")
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


@dataclass(frozen=True)
class LinkSettings:
    """The confidential client (the Token Vault exchange's) and where the flow goes."""

    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    redirect_uri: str = ""
    jwks_url: str | None = None
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        require_https(self.redirect_uri, "VETTRA_VAULT_REDIRECT_URI")
        if not self.redirect_uri.endswith(CALLBACK_PATH):
            raise ValueError(
                f"VETTRA_VAULT_REDIRECT_URI must end with {CALLBACK_PATH} (the callback route), "
                f"found {self.redirect_uri!r}"
            )

    @property
    def authorize_url(self) -> str:
        return self.issuer + AUTHORIZE_PATH

    @classmethod
    def from_vault(
        cls, vault: TokenVaultSettings, auth0: Auth0Settings, redirect_uri: str
    ) -> LinkSettings:
        """The same client and secret the Token Vault exchange uses: the refresh token
        must be that client's."""
        return cls(
            issuer=auth0.issuer,
            client_id=vault.client_id,
            client_secret=vault.client_secret,
            redirect_uri=redirect_uri,
            jwks_url=auth0.jwks_url,
        )


def _error_code(body: Any) -> str:
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else "none"


class Auth0AccountLinker(AccountLinker):
    """:class:`AccountLinker` over Auth0's ``/authorize`` and ``/oauth/token``."""

    def __init__(
        self,
        settings: LinkSettings,
        clock: Clock,
        keys: JwksCache,
        *,
        client: httpx.Client | None = None,
    ):
        self.settings = settings
        self.redirect_uri = settings.redirect_uri
        self._client = client or httpx.Client(timeout=settings.timeout_s, follow_redirects=False)
        auth0 = Auth0Settings(
            issuer=settings.issuer, client_id=settings.client_id, jwks_url=settings.jwks_url
        )
        self.id_tokens = Auth0IdTokens(auth0, clock, keys)

    def close(self) -> None:
        self._client.close()

    def authorize_url(self, request: AuthorizeRequest) -> str:
        # authlib (~45 ms to import) loads on a connect flow's first use, not at every
        # function's cold start (each target that has Token Vault builds this linker)
        from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
        from authlib.oauth2.rfc7636 import create_s256_code_challenge

        extra: dict[str, str] = {"connection": request.connection}
        if request.scopes:
            extra["connection_scope"] = " ".join(request.scopes)
        if GOOGLE_CONNECTIONS.match(request.connection):
            extra |= {"access_type": "offline", "prompt": "consent"}
        return str(
            prepare_grant_uri(
                self.settings.authorize_url,
                self.settings.client_id,
                "code",
                redirect_uri=self.redirect_uri,
                scope=SCOPE,
                state=request.state,
                nonce=request.nonce,
                code_challenge=create_s256_code_challenge(request.code_verifier),
                code_challenge_method="S256",
                **extra,
            )
        )

    def exchange(self, code: str, code_verifier: str) -> LinkedAccount:
        from authlib.oauth2.rfc6749.parameters import prepare_token_request

        body = prepare_token_request(
            "authorization_code",
            redirect_uri=self.redirect_uri,
            code=code,
            code_verifier=code_verifier,
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,  # client_secret_post
        )
        try:
            response = self._client.post(
                self.settings.issuer + "oauth/token",
                content=body.encode(),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
            )
        except httpx.HTTPError as exc:
            raise LinkRefused(
                "token-endpoint", f"Auth0's token endpoint did not answer ({type(exc).__name__})"
            ) from None
        try:
            token: Any = response.json()
        except ValueError:
            token = None
        if response.status_code != 200 or not isinstance(token, dict):
            raise LinkRefused(
                "token-endpoint",
                f"Auth0 refused the code exchange (HTTP {response.status_code}, error "
                f"{_error_code(token)})",
            )
        id_token = token.get("id_token")
        if not isinstance(id_token, str) or not id_token:
            raise LinkRefused("id-token", "Auth0 answered without an ID token (scope openid)")
        try:
            claims = self.id_tokens.verified_claims(id_token)
            tenant = tenant_of(claims)
        except Unauthenticated as refused:
            raise LinkRefused("id-token", f"the ID token was refused: {refused.detail}") from None
        except Unavailable as down:
            raise LinkRefused(
                "unavailable", f"Auth0's keys could not be fetched: {down.detail}"
            ) from None
        refresh = token.get("refresh_token")
        scope = token.get("scope")
        nonce = claims.get("nonce")
        return LinkedAccount(
            refresh_token=refresh if isinstance(refresh, str) and refresh else None,
            sub=str(claims["sub"]),
            tenant=tenant,
            nonce=nonce if isinstance(nonce, str) else None,
            scope=tuple(scope.split()) if isinstance(scope, str) else None,
        )
