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
                data = json.dumps(body).encode()
                self.send_response(200 if body is not None else (500 if idp.failing else 404))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.issuer = self.base + "/"  # Auth0 issuers end with a slash
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

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
