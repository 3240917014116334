"""A real OAuth token endpoint on 127.0.0.1 that speaks Auth0 Token Vault's exchange.

``POST /oauth/token`` (``http.server`` in a thread) checks every request as Auth0
documents the refresh-token exchange ("Token Vault: Get Token"): a form body
(``application/x-www-form-urlencoded``), each parameter once, exactly these and no
others (no ``scope``, no ``audience``), the grant, subject and requested token types
as documented, confidential-client authentication (``client_id`` + ``client_secret``
in the body, no Authorization header), a ``connection`` and an optional
``login_hint``. A request that breaks a rule is answered 400 ``invalid_request``
naming the rule, and recorded in :attr:`violations`, so a test can assert none
happened.

Accounts: ``link(refresh_token, connection, access_token, scope=…)`` makes an Auth0
user whose refresh token reaches that connection's tokenset. Answers as Auth0 does:
200 with ``access_token``, ``expires_in``, ``scope``, ``issued_token_type`` and
``token_type``; 403 ``invalid_grant`` for an unknown refresh token; 401 when the user
has no identity on the connection (or none matching ``login_hint``); 401
``access_denied`` for a wrong client secret. ``fail_next([429, 503])`` answers the
next requests with those statuses first (with ``Retry-After`` when asked).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from vettra.adapters.auth0_token_vault import TokenVaultSettings

GRANT_TYPE = "urn:auth0:params:oauth:grant-type:token-exchange:federated-connection-access-token"
SUBJECT_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:refresh_token"
REQUESTED_TOKEN_TYPE = "http://auth0.com/oauth/token-type/federated-connection-access-token"
REQUIRED = (
    "grant_type",
    "client_id",
    "client_secret",
    "subject_token_type",
    "subject_token",
    "requested_token_type",
    "connection",
)
OPTIONAL = ("login_hint",)
CLIENT_ID = "vettra-backend"


@dataclass
class Account:
    access_token: str
    scope: str | None
    expires_in: int = 3600
    login_hint: str | None = None


@dataclass
class _State:
    accounts: dict[tuple[str, str], list[Account]] = field(default_factory=dict)
    failures: list[tuple[int, int | None]] = field(default_factory=list)
    requests: list[dict[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    delay_s: float = 0.0


class TokenEndpoint:
    """Auth0's ``/oauth/token`` for the Token Vault grant, on an ephemeral loopback port."""

    def __init__(self, client_secret: str = "test-client-secret-not-real") -> None:
        self.client_id = CLIENT_ID
        self.client_secret = client_secret
        self.state = _State()
        self._lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out as two writes: without TCP_NODELAY each answer would
            # wait ~40 ms for the client's delayed ACK (Nagle), which is no part of Auth0
            disable_nagle_algorithm = True

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                status, doc, headers = endpoint._answer(self.path, dict(self.headers), body)
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.issuer = self.base + "/"
        self.token_url = self.issuer + "oauth/token"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    # -- set-up -------------------------------------------------------------------------
    def link(
        self,
        refresh_token: str,
        connection: str,
        access_token: str,
        *,
        scope: str | None = None,
        expires_in: int = 3600,
        login_hint: str | None = None,
    ) -> None:
        with self._lock:
            self.state.accounts.setdefault((refresh_token, connection), []).append(
                Account(access_token, scope, expires_in, login_hint)
            )

    def known_refresh_token(self, refresh_token: str) -> None:
        """An Auth0 user whose refresh token is valid but who linked no connection yet."""
        with self._lock:
            self.state.accounts.setdefault((refresh_token, ""), [])

    def fail_next(self, statuses: list[int], retry_after: int | None = None) -> None:
        with self._lock:
            self.state.failures.extend((s, retry_after) for s in statuses)

    def slow(self, seconds: float) -> None:
        self.state.delay_s = seconds

    @property
    def requests(self) -> list[dict[str, str]]:
        with self._lock:
            return list(self.state.requests)

    @property
    def violations(self) -> list[str]:
        with self._lock:
            return list(self.state.violations)

    def vault_settings(self, **changes: Any) -> TokenVaultSettings:
        """Settings of an Auth0 Token Vault client that exchanges here and retries quickly
        (``changes`` set any other field)."""
        here = {"token_url": self.token_url, "client_id": self.client_id}
        here |= {"client_secret": self.client_secret, "backoff_s": 0.01, "max_backoff_s": 0.05}
        return TokenVaultSettings(**{**here, **changes})

    def exchange_form(self, refresh_token: str, connection: str) -> dict[str, str]:
        """The form Auth0 documents for this exchange, from this endpoint's client."""
        return {
            "grant_type": GRANT_TYPE,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "subject_token_type": SUBJECT_TOKEN_TYPE,
            "subject_token": refresh_token,
            "requested_token_type": REQUESTED_TOKEN_TYPE,
            "connection": connection,
        }

    def env(self) -> dict[str, str]:
        """The environment a Vettra server needs to exchange through this endpoint."""
        return {
            "VETTRA_AUTH0_ISSUER": self.issuer,
            "VETTRA_AUTH0_CLIENT_ID": self.client_id,
            "VETTRA_AUTH0_CLIENT_SECRET": self.client_secret,
        }

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- the endpoint ---------------------------------------------------------------------
    def _refuse(self, rule: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        self.state.violations.append(rule)
        return 400, {"error": "invalid_request", "error_description": rule}, {}

    def _answer(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if self.state.delay_s:
            time.sleep(self.state.delay_s)
        with self._lock:
            if path != "/oauth/token":
                return 404, {"error": "not_found"}, {}
            ctype = headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype != "application/x-www-form-urlencoded":
                return self._refuse(f"Content-Type must be a form, found {ctype!r}")
            if any(name.lower() == "authorization" for name in headers):
                return self._refuse("client_secret_post: no Authorization header")
            try:
                parsed = parse_qs(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
            except (UnicodeDecodeError, ValueError):
                return self._refuse("the body is not a form")
            form: dict[str, str] = {}
            for name, values in parsed.items():
                if len(values) != 1:
                    return self._refuse(f"{name} given {len(values)} times")
                form[name] = values[0]
            self.state.requests.append(dict(form))
            if self.state.failures:
                status, retry_after = self.state.failures.pop(0)
                extra = {"Retry-After": str(retry_after)} if retry_after is not None else {}
                return status, {"error": "too_many_requests" if status == 429 else "server"}, extra
            unknown = sorted(set(form) - set(REQUIRED) - set(OPTIONAL))
            if unknown:
                return self._refuse(f"parameters Auth0 does not take here: {unknown}")
            missing = [name for name in REQUIRED if not form.get(name)]
            if missing:
                return self._refuse(f"missing {missing}")
            for name, want in (
                ("grant_type", GRANT_TYPE),
                ("subject_token_type", SUBJECT_TOKEN_TYPE),
                ("requested_token_type", REQUESTED_TOKEN_TYPE),
            ):
                if form[name] != want:
                    return self._refuse(f"{name} must be {want}")
            if "login_hint" in form and not form["login_hint"]:
                return self._refuse("login_hint, when sent, is not empty")
            if form["client_id"] != self.client_id or form["client_secret"] != self.client_secret:
                return 401, {"error": "access_denied", "error_description": "Unauthorized"}, {}
            subject, connection = form["subject_token"], form["connection"]
            if not any(key[0] == subject for key in self.state.accounts):
                return (
                    403,
                    {
                        "error": "invalid_grant",
                        "error_description": "Unknown or invalid refresh token.",
                    },
                    {},
                )
            hint = form.get("login_hint")
            accounts = [
                a
                for a in self.state.accounts.get((subject, connection), [])
                if hint is None or a.login_hint == hint
            ]
            if not accounts:
                return (
                    401,
                    {
                        "error": "unauthorized",
                        "error_description": "No identity for this connection.",
                    },
                    {},
                )
            account = accounts[0]
            doc: dict[str, Any] = {
                "access_token": account.access_token,
                "expires_in": account.expires_in,
                "issued_token_type": REQUESTED_TOKEN_TYPE,
                "token_type": "Bearer",
            }
            if account.scope is not None:
                doc["scope"] = account.scope
            return 200, doc, {}
