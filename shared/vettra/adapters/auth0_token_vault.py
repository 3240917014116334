"""Auth0 Token Vault: an Auth0 refresh token exchanged for a connection's access token.

The request is Auth0's documented refresh-token exchange (Authentication API, "Token
Vault: Get Token"; RFC 8693 token exchange), form-encoded to ``{issuer}oauth/token``::

    grant_type           urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token
    subject_token_type   urn:ietf:params:oauth:token-type:refresh_token
    subject_token        the user's Auth0 refresh token (stored sealed, opened for this call)
    requested_token_type http://auth0.com/oauth/token-type/federated-connection-access-token
    connection           the Auth0 connection, e.g. google-oauth2
    login_hint           optional: which of the user's accounts on that connection
    client_id, client_secret   the confidential client (client_secret_post; Token Vault
                         is not open to public clients)

Answers: 200 with ``access_token``, ``expires_in``, ``scope`` (when it differs from what
the account granted), ``issued_token_type`` and ``token_type``. Errors are mapped at
this boundary: 401 (Auth0 finds no identity for the connection and login hint) and
``invalid_grant`` (the refresh token is revoked or expired) are :class:`NotLinked`, a
4xx naming the connection, except a 401 saying ``access_denied``/``invalid_client``
(how Auth0 refuses a wrong client secret); 429, 5xx and transport failures are retried with
exponential backoff and jitter (tenacity; a ``Retry-After`` is honoured up to the
cap), then :class:`Unavailable` (503); any other refusal means this deployment's
client is misconfigured, also 503, saying so. No message repeats a token or Auth0's
body.

Configuration (docs/credentials.md): ``VETTRA_AUTH0_ISSUER`` (https, or http on
loopback for the tests' local token endpoint), ``VETTRA_AUTH0_CLIENT_ID`` and
``VETTRA_AUTH0_CLIENT_SECRET`` (``VETTRA_AUTH0_VAULT_CLIENT_ID`` when the exchange's
confidential client is not the dashboard's).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from ..domain.credentials import REFRESH_TOKEN, NotLinked, ProviderToken
from ..domain.errors import Unavailable
from ..ports import Clock, TokenVault
from .auth0_identity import Auth0Settings, require_https

GRANT_TYPE = "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token"
SUBJECT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"
REQUESTED_TOKEN_TYPE = "http://auth0.com/oauth/token-type/federated-connection-access-token"
TOKEN_PATH = "oauth/token"
_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
#: Auth0 error codes that mean "this user's link is gone", not "this client is wrong"
NOT_LINKED_ERRORS = frozenset({"invalid_grant", "federated_connection_refresh_token_not_found"})
#: ... and those that mean this deployment's client is wrong (Auth0 answers a bad client
#: secret 401 access_denied): a 401 with one of them is a misconfiguration, not "no link"
CLIENT_ERRORS = frozenset({"access_denied", "invalid_client", "unauthorized_client"})
MAX_RETRY_AFTER_S = 30


@dataclass(frozen=True)
class TokenVaultSettings:
    """Where the exchange goes and how hard it tries."""

    token_url: str
    client_id: str
    client_secret: str = field(repr=False)
    attempts: int = 3
    backoff_s: float = 0.2  # first retry after about this long, doubling, with jitter
    max_backoff_s: float = 2.0
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        require_https(self.token_url, "the Auth0 token endpoint")
        if not self.client_id or not self.client_secret:
            raise ValueError(
                "Auth0 Token Vault needs a confidential client: set VETTRA_AUTH0_CLIENT_ID "
                "and VETTRA_AUTH0_CLIENT_SECRET"
            )
        if self.attempts < 1 or self.backoff_s < 0 or self.max_backoff_s < self.backoff_s:
            raise ValueError("attempts must be >= 1 and 0 <= backoff_s <= max_backoff_s")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> TokenVaultSettings | None:
        """None unless ``VETTRA_AUTH0_ISSUER``, ``VETTRA_AUTH0_CLIENT_ID`` and
        ``VETTRA_AUTH0_CLIENT_SECRET`` are all set (the issuer's checks are
        :class:`Auth0Settings`'). ``VETTRA_AUTH0_VAULT_CLIENT_ID`` names another client
        for the exchange, when the dashboard signs in with a public (SPA) client: Token
        Vault takes only confidential ones, and the refresh token must be that client's."""
        auth0 = Auth0Settings.from_env(env)
        secret = env.get("VETTRA_AUTH0_CLIENT_SECRET", "").strip()
        client_id = env.get("VETTRA_AUTH0_VAULT_CLIENT_ID", "").strip() or (
            auth0.client_id if auth0 else None
        )
        if auth0 is None or not client_id or not secret:
            return None
        return cls(token_url=auth0.issuer + TOKEN_PATH, client_id=client_id, client_secret=secret)


class _Transient(Exception):
    """A failure worth another attempt (429, 5xx, no answer)."""

    def __init__(self, why: str, retry_after: float | None = None):
        super().__init__(why)
        self.why = why
        self.retry_after = retry_after


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("retry-after", "")
    return min(float(raw), MAX_RETRY_AFTER_S) if raw.isdigit() else None


def _error_code(response: httpx.Response) -> str:
    try:
        code = response.json().get("error")
    except (ValueError, AttributeError):
        return "none"
    return code if isinstance(code, str) and _ERROR_CODE.match(code) else "none"


class Auth0TokenVault(TokenVault):
    """:class:`TokenVault` over Auth0's token endpoint (module docstring)."""

    subject_kind = REFRESH_TOKEN

    def __init__(
        self,
        settings: TokenVaultSettings,
        clock: Clock,
        *,
        client: httpx.Client | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.settings = settings
        self._clock = clock
        self._client = client or httpx.Client(
            timeout=settings.timeout_s,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=8),
        )
        self._sleep = sleep or time.sleep
        self._backoff = wait_exponential_jitter(
            multiplier=settings.backoff_s, max=settings.max_backoff_s, jitter=settings.backoff_s
        )
        self._lock = threading.Lock()
        self.exchanges = 0  # requests sent (retries included), for the bench and tests

    def close(self) -> None:
        self._client.close()

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        failed = outcome.exception() if outcome is not None else None
        hinted = getattr(failed, "retry_after", None) or 0.0
        return float(min(max(self._backoff(state), hinted), self.settings.max_backoff_s))

    def exchange(
        self, subject: str, connection: str, *, login_hint: str | None = None
    ) -> ProviderToken:
        form = {
            "grant_type": GRANT_TYPE,
            "client_id": self.settings.client_id,
            "client_secret": self.settings.client_secret,
            "subject_token_type": SUBJECT_TOKEN_TYPE,
            "subject_token": subject,
            "requested_token_type": REQUESTED_TOKEN_TYPE,
            "connection": connection,
        }
        if login_hint:
            form["login_hint"] = login_hint
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Transient),
            reraise=True,
            sleep=self._sleep,
        )
        try:
            response = retrying(self._post, form)
        except _Transient as last:
            raise Unavailable(
                f"Auth0 Token Vault did not answer the exchange for {connection} after "
                f"{self.settings.attempts} attempt(s) ({last.why}); retry later",
                headers={"Retry-After": str(int(last.retry_after or 1))},
            ) from None
        return self._answer(response, connection)

    def _post(self, form: dict[str, str]) -> httpx.Response:
        with self._lock:
            self.exchanges += 1
        try:
            response = self._client.post(
                self.settings.token_url, data=form, headers={"Accept": "application/json"}
            )
        except httpx.HTTPError as exc:
            raise _Transient(type(exc).__name__) from None
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"HTTP {response.status_code}", _retry_after(response))
        return response

    def _answer(self, response: httpx.Response, connection: str) -> ProviderToken:
        status = response.status_code
        if status == 200:
            return self._token(response, connection)
        code = _error_code(response)
        if (status == 401 and code not in CLIENT_ERRORS) or code in NOT_LINKED_ERRORS:
            raise NotLinked(
                connection,
                f"the user has no {connection} account linked through Auth0 that Token Vault "
                f"can use (HTTP {status}, error {code}): have them connect {connection} again",
            )
        raise Unavailable(
            f"Auth0 refused this deployment's Token Vault exchange for {connection} (HTTP "
            f"{status}, error {code}): check the client's Token Vault grant type and the "
            "connection's Token Vault setting"
        )

    def _token(self, response: httpx.Response, connection: str) -> ProviderToken:
        try:
            body: Any = response.json()
        except ValueError:
            body = None
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise Unavailable(f"Auth0 Token Vault answered 200 for {connection} without a token")
        issued = body.get("issued_token_type")
        if issued is not None and issued != REQUESTED_TOKEN_TYPE:
            raise Unavailable(
                f"Auth0 Token Vault issued a token of another type for {connection}: {issued!r:.80}"
            )
        expires_in = body.get("expires_in")
        expires_at = None
        if type(expires_in) is int and expires_in > 0:
            expires_at = self._clock.now() + timedelta(seconds=expires_in)
        scope = body.get("scope")
        token_type = body.get("token_type")
        return ProviderToken(
            access_token=token,
            token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
            expires_at=expires_at,
            scope=tuple(scope.split()) if isinstance(scope, str) else None,
        )
