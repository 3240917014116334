"""A real identity provider on 127.0.0.1 for tests: OIDC discovery and a JWK Set served
by ``http.server`` in a thread, and the tokens it signs with keys made at test time
(joserfc over ``cryptography``). Used by the step-up, Auth0, Cloud Tasks OIDC and sign-in
tests; nothing here reaches beyond loopback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time
from base64 import urlsafe_b64encode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws, jwt
from joserfc.jwk import ECKey, RSAKey

AUDIENCE = "spa-client"
JWKS_PATH = "/.well-known/jwks.json"
DISCOVERY_PATH = "/.well-known/openid-configuration"


def b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


class FakeIdP:
    """An OpenID provider on 127.0.0.1: discovery, a JWK Set, and the ID tokens it signs."""

    def __init__(self) -> None:
        self.key = self._rsa("k1")
        self.published: list[Any] = [self.key]
        self.requests: list[str] = []
        self.failing = False  # answer 500 to everything
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                idp.requests.append(self.path)
                if not idp.failing and idp.handle_get(self):
                    return
                body: Any = None
                if not idp.failing and self.path == DISCOVERY_PATH:
                    body = {
                        "issuer": idp.issuer,
                        "jwks_uri": idp.base + JWKS_PATH,
                        "authorization_endpoint": idp.base + "/authorize",
                    }
                elif not idp.failing and self.path == JWKS_PATH:
                    body = {
                        "keys": [
                            k.as_dict(private=False, use="sig", alg=k.alg) for k in idp.published
                        ]
                    }
                status = 200 if body is not None else (500 if idp.failing else 404)
                send_json(self, status, body)

            def do_POST(self) -> None:  # noqa: N802
                idp.requests.append(self.path)
                if idp.failing or not idp.handle_post(self):
                    send_json(self, 500 if idp.failing else 404, None)

            def do_OPTIONS(self) -> None:  # noqa: N802
                idp.requests.append("OPTIONS " + self.path)
                if idp.failing or not idp.handle_options(self):
                    send_json(self, 500 if idp.failing else 404, None)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.issuer = self.base + "/"  # Auth0 issuers end with a slash
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    # what a subclass serves beyond discovery and the key set: True when it answered
    def handle_get(self, handler: BaseHTTPRequestHandler) -> bool:
        return False

    def handle_post(self, handler: BaseHTTPRequestHandler) -> bool:
        return False

    def handle_options(self, handler: BaseHTTPRequestHandler) -> bool:
        return False

    @staticmethod
    def _rsa(kid: str) -> RSAKey:
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return RSAKey.import_key(private, parameters={"kid": kid, "alg": "RS256"})

    def rotate(self, kid: str = "k2") -> None:
        """Publish a new key and sign with it from now on; the old one is withdrawn."""
        self.key = self._rsa(kid)
        self.published = [self.key]

    def claims(self, nonce: str, /, *, now: float | None = None, **changes: Any) -> dict[str, Any]:
        now = time.time() if now is None else now
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "alice",
            "nonce": nonce,
            "iat": int(now),
            "exp": int(now) + 600,
            "auth_time": int(now) - 5,
            "amr": ["pwd", "mfa"],
            "jti": b64(hashlib.sha256(str(time.perf_counter_ns()).encode()).digest()),
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def id_token(
        self, nonce: str, /, *, key: Any = None, alg: str = "RS256", **changes: Any
    ) -> str:
        key = key or self.key
        return jwt.encode(
            {"alg": alg, "kid": key.kid, "typ": "JWT"}, self.claims(nonce, **changes), key
        )

    def token(self, claims: dict[str, Any], *, key: Any = None, alg: str | None = None) -> str:
        """Any JWT signed by ``key`` (default the current one) with its ``kid``."""
        key = key or self.key
        alg = alg or key.alg or "RS256"
        # ensure_ascii: a lone surrogate travels as the JSON escape a forger would send
        payload = json.dumps(claims, ensure_ascii=True).encode()
        header = {"alg": alg, "kid": key.kid, "typ": "JWT"}
        return jws.serialize_compact(header, payload, key, algorithms=[alg])

    @staticmethod
    def _ec(kid: str) -> ECKey:
        return ECKey.generate_key("P-256", parameters={"kid": kid, "alg": "ES256"})

    def jwks_fetches(self) -> int:
        return self.requests.count(JWKS_PATH)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FakeIdP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def send_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: Any,
    headers: dict[str, str] | None = None,
) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(claims).encode()), b64(signature)]
    )


def hs256_with_public_key(idp: FakeIdP, claims: dict[str, Any]) -> str:
    """The classic key-confusion forgery: HMAC keyed with the issuer's public key (PEM)."""
    pem = idp.key.get_op_key("verify").public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = ".".join(
        [
            b64(json.dumps({"alg": "HS256", "kid": idp.key.kid}).encode()),
            b64(json.dumps(claims).encode()),
        ]
    )
    return signing_input + "." + b64(hmac.new(pem, signing_input.encode(), hashlib.sha256).digest())


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


class Auth0StandIn(FakeIdP):
    """What the dashboard meets at Auth0, on 127.0.0.1 (Auth0 has no emulator): the
    authorization code flow with PKCE (RFC 7636, ``S256`` only) at ``/authorize``, the
    token endpoint ``/oauth/token`` (an RS256 access token for ``audience`` and an ID token
    for ``client_id``, both signed by the published key), ``/v2/logout``, and CORS for the
    dashboard's origin, as Auth0 answers a single-page application.

    ``/authorize`` signs in ``self.user`` at once (no login form: Universal Login is
    Auth0's page, not ours) and redirects back with ``?code=…&state=…``. Every check a
    real server makes on the code is made: the client, the redirect URI, single use, a
    60 s lifetime and the verifier's SHA-256 against the challenge.
    """

    CODE_TTL_S = 60

    def __init__(
        self, *, client_id: str, audience: str, origin: str, scope: str = "vettra:approve"
    ) -> None:
        super().__init__()
        self.client_id, self.audience, self.origin, self.api_scope = (
            client_id,
            audience,
            origin,
            scope,
        )
        self.user = "auth0|alice"
        self.extra_claims: dict[str, Any] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self.authorizations: list[dict[str, str]] = []  # the query of each /authorize
        self.token_requests: list[dict[str, str]] = []  # the form of each /oauth/token
        self.token_refusals: list[str] = []
        self.logouts: list[dict[str, str]] = []

    def agent_token(self, user: str, agent: str = "agent-client") -> str:
        """A machine-to-machine access token as Auth0 issues an agent's client
        (client credentials; docs/identity.md): ``vettra:agent``, acting for ``user``."""
        now = int(time.time())
        return self.token(
            {
                "iss": self.issuer,
                "sub": f"{agent}@clients",
                "aud": self.audience,
                "azp": agent,
                "iat": now,
                "exp": now + 3600,
                "scope": "vettra:agent",
                "gty": "client-credentials",
                "https://vettra.dev/user": user,
            }
        )

    def _query(self, handler: BaseHTTPRequestHandler) -> tuple[str, dict[str, str]]:
        from urllib.parse import parse_qsl, urlsplit

        parts = urlsplit(handler.path)
        return parts.path, dict(parse_qsl(parts.query))

    def _redirect(self, handler: BaseHTTPRequestHandler, location: str) -> None:
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def _cors(self) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": self.origin, "Vary": "Origin"}

    def handle_get(self, handler: BaseHTTPRequestHandler) -> bool:
        from urllib.parse import urlencode

        path, query = self._query(handler)
        if path == "/authorize":
            self.authorizations.append(query)
            redirect_uri = query.get("redirect_uri", "")
            if (
                query.get("client_id") != self.client_id
                or query.get("response_type") != "code"
                or query.get("code_challenge_method") != "S256"
                or not query.get("code_challenge")
                or not redirect_uri.startswith(self.origin + "/")
            ):
                send_json(handler, 400, {"error": "invalid_request"})
                return True
            code = b64(hashlib.sha256(str(time.perf_counter_ns()).encode()).digest())
            self.codes[code] = {**query, "sub": self.user, "at": time.time()}
            answer = {"code": code, "state": query.get("state", "")}
            self._redirect(handler, f"{redirect_uri}?{urlencode(answer)}")
            return True
        if path == "/v2/logout":
            self.logouts.append(query)
            return_to = query.get("returnTo", "")
            if query.get("client_id") == self.client_id and return_to.startswith(self.origin):
                self._redirect(handler, return_to)
            else:
                send_json(handler, 400, {"error": "invalid_request"})
            return True
        return False

    def handle_options(self, handler: BaseHTTPRequestHandler) -> bool:
        if self._query(handler)[0] != "/oauth/token":
            return False
        handler.send_response(204)
        for name, value in self._cors().items():
            handler.send_header(name, value)
        handler.send_header("Access-Control-Allow-Methods", "POST")
        handler.send_header("Access-Control-Allow-Headers", "content-type, accept, dpop")
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return True

    def handle_post(self, handler: BaseHTTPRequestHandler) -> bool:
        from urllib.parse import parse_qsl

        if self._query(handler)[0] != "/oauth/token":
            return False
        length = int(handler.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(handler.rfile.read(length).decode()))
        self.token_requests.append(form)
        granted = self.codes.pop(form.get("code", ""), None)
        verifier = form.get("code_verifier", "")
        problem = (
            "no such code (or used already)" if granted is None
            else "grant_type" if form.get("grant_type") != "authorization_code"
            else "client_id" if form.get("client_id") != self.client_id
            else "redirect_uri" if form.get("redirect_uri") != granted["redirect_uri"]
            else "expired" if time.time() - granted["at"] > self.CODE_TTL_S
            else "PKCE verifier"
            if b64(hashlib.sha256(verifier.encode()).digest()) != granted["code_challenge"]
            else None
        )  # fmt: skip
        if problem is not None or granted is None:
            self.token_refusals.append(str(problem))
            send_json(handler, 403, {"error": "invalid_grant"}, self._cors())
            return True
        now = int(time.time())
        access = {
            "iss": self.issuer,
            "sub": granted["sub"],
            "aud": [self.audience, self.issuer + "userinfo"],
            "azp": self.client_id,
            "iat": now,
            "exp": now + 3600,
            "scope": "openid profile " + self.api_scope,
            "permissions": self.api_scope.split(),
        }
        id_claims = {"sub": granted["sub"], **self.extra_claims}
        body = {
            "access_token": self.token(access),
            "id_token": self.id_token(
                granted.get("nonce", ""), aud=self.client_id, amr=None, **id_claims
            ),
            "token_type": "Bearer",
            "expires_in": 3600,
            "scope": access["scope"],
        }
        send_json(handler, 200, body, {**self._cors(), "Cache-Control": "no-store"})
        return True
