"""STAND-IN for ``POST /api/actions/{id}/credential``, used only while the server lacks it.

The SDK tests need the credential path of docs/api.md ("Credential release"); the real
endpoint (Token Vault exchange, signed receipt) is built on another branch. Until it is
in the tree, :func:`credential_endpoint_present` is False and the tests put this small
real HTTP server in front of ``vettra dev``: it forwards every request unchanged, and
answers only the credential release itself, as API.md specifies it:

- for the submitting agent's token (it reads the action through the real server with the
  same token, so another user's action is the real server's 404);
- only for an ``allowed``/``approved`` action (else 409), with the same ``args_digest``
  (else 409), once (again: 409);
- ``{"access_token", "token_type", "expires_at", "scope", "connection", "receipt"}``.

Once the real endpoint exists, the tests talk to ``vettra dev`` directly and this file
is not used (the harness says which, in the test report header).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

CREDENTIAL_PATH = "/api/actions/{action_id}/credential"
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "host",
    "content-length",
    "content-encoding",  # httpx hands over the decoded body
}
RELEASABLE = {"allowed", "approved"}
TOKEN_TTL_S = 300


def credential_endpoint_present(base_url: str, token: str) -> bool:
    """Whether the real server publishes the credential release in its OpenAPI document."""
    doc = httpx.get(
        base_url + "/api/openapi.json", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    doc.raise_for_status()
    return CREDENTIAL_PATH in doc.json().get("paths", {})


class CredentialStandIn:
    """A forwarding HTTP server that implements only the credential release."""

    def __init__(self, upstream: str):
        self.upstream = upstream
        self.released: dict[str, dict[str, Any]] = {}  # action id -> what was released
        self._lock = threading.Lock()
        self._http = httpx.Client(base_url=upstream, timeout=90)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> CredentialStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()

    def _release(self, action_id: str, auth: str, body: bytes) -> tuple[int, dict[str, Any]]:
        try:
            digest = json.loads(body or b"{}").get("args_digest")
        except ValueError:
            return 400, {"title": "Malformed request", "status": 400, "detail": "body is not JSON"}
        if not isinstance(digest, str):
            return 422, {
                "title": "Validation failed",
                "status": 422,
                "errors": [{"field": "args_digest", "message": "required"}],
            }
        view = self._http.get(f"/api/actions/{action_id}", headers={"Authorization": auth})
        if view.status_code != 200:
            return view.status_code, view.json()
        action = view.json()
        # the real server has just verified this token (the read above); its claims say
        # whether it is the agent that submitted the action
        claims = _claims(auth)
        if claims.get("role") != "agent" or claims.get("sub") != action.get("agent"):
            return 403, {
                "title": "Forbidden",
                "status": 403,
                "detail": "only the agent that submitted the action may redeem its credential",
            }
        if action["status"] not in RELEASABLE:
            return 409, _conflict(f"action {action_id} is {action['status']}")
        if digest != action["args_digest"]:
            return 409, _conflict("args_digest is not the digest of the approved arguments")
        with self._lock:
            if action_id in self.released:
                return 409, _conflict(f"the credential of {action_id} was already released")
            expires = datetime.now(UTC) + timedelta(seconds=TOKEN_TTL_S)
            credential = {
                "access_token": "standin-" + secrets.token_urlsafe(24),
                "token_type": "Bearer",
                "expires_at": expires.isoformat(timespec="seconds").replace("+00:00", "Z"),
                "scope": action["tool"],
                "connection": "stand-in",
                "receipt": {"action_id": action_id, "args_digest": digest, "stand_in": True},
            }
            self.released[action_id] = credential
        return 200, credential

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                pass

            def _body(self) -> bytes:
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _answer(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers:
                    if name.lower() not in HOP_BY_HOP:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _forward(self) -> None:
                body = self._body()
                parts = self.path.strip("/").split("/")
                if self.command == "POST" and len(parts) == 4 and parts[3] == "credential":
                    status, doc = standin._release(
                        parts[2], self.headers.get("Authorization", ""), body
                    )
                    kind = "application/json" if status == 200 else "application/problem+json"
                    self._answer(status, [("Content-Type", kind)], json.dumps(doc).encode())
                    return
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP]
                upstream = standin._http.request(
                    self.command, self.path, headers=headers, content=body
                )
                self._answer(upstream.status_code, list(upstream.headers.items()), upstream.content)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        return Handler


def _claims(authorization: str) -> dict[str, Any]:
    """The payload of a bearer JWT, unverified (the real server verified it)."""
    try:
        payload = authorization.split(" ", 1)[1].split(".")[1]
        decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return decoded if isinstance(decoded, dict) else {}


def _conflict(detail: str) -> dict[str, Any]:
    return {"type": "about:blank", "title": "Conflict", "status": 409, "detail": detail}
