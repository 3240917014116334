"""Credential release, receipts, the permission inventory and connecting accounts
(docs/credentials.md).

All are the ``vault`` group, one function in the cloud: the one that holds what a
release needs (the data key that opens stored tokens, the receipt key, the Auth0 client
secret). Hosting sends ``/api/actions/*/credential`` to it before ``/api/actions/**``.

``GET /api/vault/callback`` is the one browser-redirect endpoint: Auth0 sends the
browser there with ``code`` and ``state`` after the user connected an account, and a
browser following a redirect carries no bearer token. The single-use state (made for
the signed-in user by ``POST /api/vault/connections/{connection}/authorize``, bound to
them, the connection, a PKCE verifier and a nonce) is what authenticates it; it answers
303 to the dashboard whatever happened, with a non-secret outcome in the URL.
"""

from __future__ import annotations

from typing import Any

from ...domain.errors import BadQuery
from ...domain.identity import ADMIN, AGENT, APPROVER, Principal
from ...domain.scopes import MAX_SCOPE_LENGTH, MAX_SCOPES, ScopeBook
from ...services import credentials, inventory, vault_link
from . import schemas
from .app import Route, answers
from .types import Request, Response

GROUP = "vault"
ANY_ROLE = (AGENT, APPROVER, ADMIN)
DECIDERS = (APPROVER, ADMIN)
DIGEST = {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"}
CONNECTION = {
    "type": "string",
    "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    "description": "An Auth0 connection name, e.g. google-oauth2",
}
SCOPE = {
    "type": "string",
    "pattern": f"^[\\x21\\x23-\\x5b\\x5d-\\x7e]{{1,{MAX_SCOPE_LENGTH}}}$",
    "description": "One OAuth scope (RFC 6749 §3.3 scope-token)",
}
PROVIDERS = ["github", "google", "microsoft", "slack", "stripe"]
_TOKEN = f"[\\x21-\\x7e]{{1,{MAX_SCOPE_LENGTH}}}"  # one scope in a space-separated list

CREDENTIAL_REQUEST = schemas.register(
    "CREDENTIAL_REQUEST",
    {
        "type": "object",
        "required": ["args_digest"],
        "additionalProperties": False,
        "properties": {
            "args_digest": {
                **DIGEST,
                "description": "The action's args_digest: the arguments about to run",
            },
            "audience": {
                "type": "string",
                "pattern": "^[\\x21-\\x7e]{1,200}$",
                "description": "The receipt's aud (the executor that will check it); "
                "default the tool name",
            },
        },
    },
)

CREDENTIAL = schemas.register(
    "CREDENTIAL",
    {
        "type": "object",
        "required": [
            "access_token",
            "token_type",
            "expires_at",
            "scope",
            "connection",
            "receipt",
        ],
        "properties": {
            "action_id": {"type": "string"},
            "access_token": {"type": "string"},
            "token_type": {"type": "string"},
            "expires_at": schemas.RFC3339_OR_NULL,
            "scope": {"type": "string", "description": "Space-separated, as the tool needs them"},
            "connection": {"type": "string"},
            "receipt": {
                "type": "string",
                "description": "Compact Ed25519 JWT (docs/credentials.md)",
            },
            "receipt_expires_at": {"type": "string", "format": "date-time"},
        },
    },
)

PERMISSION_GRANT = schemas.register(
    "PERMISSION_GRANT",
    {
        "type": "object",
        "required": ["agent", "connection", "scopes"],
        "additionalProperties": False,
        "properties": {
            "agent": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_.:@|-]{1,128}$",
                "description": "The agent (its token's sub)",
            },
            "connection": CONNECTION,
            "scopes": {"type": "array", "minItems": 1, "maxItems": MAX_SCOPES, "items": SCOPE},
        },
    },
)

SCOPE_EXPLAINED = {
    "type": "object",
    "required": ["scope", "known", "text", "risk"],
    "properties": {
        "scope": {"type": "string"},
        "known": {"type": "boolean"},
        "provider": {"type": ["string", "null"]},
        "service": {"type": "string"},
        "text": {"type": "string"},
        "risk": {"type": "string", "enum": ["low", "medium", "high", "unknown"]},
        "matches": {"type": "array", "items": {"type": "object"}},
    },
}

PERMISSION = schemas.register(
    "PERMISSION",
    {
        "type": "object",
        "required": [
            "permission_id",
            "user",
            "agent",
            "connection",
            "scopes",
            "granted_at",
            "revoked_at",
            "last_used_at",
            "active",
        ],
        "properties": {
            "permission_id": {"type": "string"},
            "user": {"type": "string"},
            "agent": {"type": "string"},
            "connection": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "scopes_explained": {"type": "array", "items": SCOPE_EXPLAINED},
            "granted_at": {"type": "string", "format": "date-time"},
            "granted_by": {"type": "string"},
            "revoked_at": schemas.RFC3339_OR_NULL,
            "last_used_at": schemas.RFC3339_OR_NULL,
            "uses": {"type": "integer", "minimum": 0},
            "active": {"type": "boolean"},
        },
    },
)

PERMISSION_LIST = schemas.register(
    "PERMISSION_LIST",
    {
        "type": "object",
        "required": ["permissions"],
        "properties": {"permissions": {"type": "array", "items": PERMISSION}},
    },
)

SCOPE_TRANSLATION = schemas.register(
    "SCOPE_TRANSLATION",
    {
        "type": "object",
        "required": ["scopes"],
        "properties": {
            "scopes": {"type": "array", "items": SCOPE_EXPLAINED},
            "unknown": {"type": "array", "items": {"type": "string"}},
        },
    },
)

CONNECT_REQUEST = schemas.register(
    "CONNECT_REQUEST",
    {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "scopes": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SCOPES,
                "items": SCOPE,
                "description": "The provider scopes to ask for (connection_scope); default "
                "those the user's active grants name for the connection",
            }
        },
    },
)

CONNECT_URL = schemas.register(
    "CONNECT_URL",
    {
        "type": "object",
        "required": ["authorize_url", "expires_at", "connection", "scopes"],
        "properties": {
            "authorize_url": {"type": "string", "description": "Send the browser here"},
            "expires_at": {"type": "string", "format": "date-time"},
            "connection": {"type": "string"},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "redirect_uri": {"type": "string"},
        },
    },
)

VAULT_LINK = {
    "type": ["object", "null"],
    "properties": {
        "connection": {"type": "string"},
        "user": {"type": "string"},
        "kind": {"type": "string", "enum": ["refresh_token", "access_token"]},
        "login_hint": {"type": ["string", "null"]},
        "scope": {"type": ["array", "null"], "items": {"type": "string"}},
        "expires_at": schemas.RFC3339_OR_NULL,
        "stored_at": schemas.RFC3339_OR_NULL,
    },
}

CONNECTION_LIST = schemas.register(
    "CONNECTION_LIST",
    {
        "type": "object",
        "required": ["connections", "connect"],
        "properties": {
            "connect": {
                "type": "boolean",
                "description": "Whether this deployment can connect accounts (Auth0 configured)",
            },
            "connections": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["connection", "services", "scopes", "granted_scopes", "link"],
                    "properties": {
                        "connection": {"type": "string"},
                        "services": {"type": "array", "items": {"type": "string"}},
                        "scopes": {"type": "array", "items": {"type": "string"}},
                        "granted_scopes": {"type": "array", "items": {"type": "string"}},
                        "link": VAULT_LINK,
                    },
                },
            },
        },
    },
)

RECEIPT_PUBLIC_KEY = schemas.register(
    "RECEIPT_PUBLIC_KEY",
    {
        "type": "object",
        "required": ["alg", "kid", "public_key_pem", "previous"],
        "properties": {
            "alg": {"const": "Ed25519"},
            "kid": {"type": "string"},
            "public_key_pem": {"type": "string"},
            "previous": {"type": "array", "items": {"type": "string"}},
        },
    },
)

JWKS = schemas.register(
    "JWKS",
    {
        "type": "object",
        "required": ["keys"],
        "properties": {
            "keys": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kty", "crv", "x", "kid"],
                    "properties": {
                        "kty": {"const": "OKP"},
                        "crv": {"const": "Ed25519"},
                        "x": {"type": "string"},
                        "kid": {"type": "string"},
                        "alg": {"type": "string"},
                        "use": {"type": "string"},
                    },
                },
            }
        },
    },
)


def release(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("CREDENTIAL_REQUEST", request.json())
    return Response.json(
        credentials.release(deps, principal, request.path_params["action_id"], body)
    )


def receipt_public_key(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    from ...domain.policy_envelope import key_id
    from ...domain.receipts import ALG

    keys = _receipt_keys(deps)
    return Response.json(
        {
            "alg": ALG,
            "kid": key_id(keys[0]),
            "public_key_pem": _pem(keys[0]),
            "previous": [_pem(k) for k in keys[1:]],
        }
    )


def receipt_jwks(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    from ...domain.receipts import jwk

    return Response.json({"keys": [jwk(k) for k in _receipt_keys(deps)]})


def _receipt_keys(deps: Any) -> list[Any]:
    keys = deps.keys.receipt_public_keys()
    if not keys:
        deps.keys.receipt_signing_key()  # says why: NotConfigured
    return list(keys)


def _pem(key: Any) -> str:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


permissions_list = answers(inventory.list_permissions)


def permissions_grant(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("PERMISSION_GRANT", request.json())
    view = inventory.grant(deps, principal, body)
    return Response.json(
        view,
        status=201,
        headers={"Location": f"/api/inventory/permissions/{view['permission_id']}"},
    )


def permissions_revoke(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    return Response.json(inventory.revoke(deps, principal, request.path_params["permission_id"]))


def scope_translate(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    raw = request.query_value("scope")
    provider = request.query_value("provider")
    scopes = (raw or "").split()
    if not scopes:
        raise BadQuery("query parameter 'scope' is required: one or more space-separated scopes")
    if len(scopes) > MAX_SCOPES or any(len(s) > MAX_SCOPE_LENGTH for s in scopes):
        raise BadQuery(f"at most {MAX_SCOPES} scopes of at most {MAX_SCOPE_LENGTH} characters each")
    if provider is not None and provider not in PROVIDERS:
        raise BadQuery(f"query parameter 'provider' must be one of {', '.join(PROVIDERS)}")
    book = ScopeBook.default()
    answers = [book.translate(s, provider) for s in scopes]
    return Response.json(
        {"scopes": answers, "unknown": [a["scope"] for a in answers if not a["known"]]}
    )


def connect_authorize(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("CONNECT_REQUEST", request.json())
    return Response.json(vault_link.start(deps, principal, request.path_params["connection"], body))


def connect_callback(deps: Any, request: Request, principal: Principal | None) -> Response:
    location = vault_link.finish(
        deps,
        state=request.query_value("state"),
        code=request.query_value("code"),
        error=request.query_value("error"),
    )
    # no-store, and no Referer: the callback's own URL carried the code
    headers = {
        "Location": location,
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return Response(303, b"", headers)


_QUERY_TEXT = {"type": "string"}  # checked by the service, whose refusals repeat no value

VAULT_ROUTES: list[Route] = [
    Route(
        "GET",
        "/api/vault/connections",
        answers(vault_link.connections),
        DECIDERS,
        "The catalogue's connections with the user's stored links (never the secrets)",
        "listVaultConnections",
        GROUP,
        response="CONNECTION_LIST",
    ),
    Route(
        "POST",
        "/api/vault/connections/{connection}/authorize",
        connect_authorize,
        DECIDERS,
        "Start connecting an account: a single-use state and the Auth0 /authorize URL",
        "authorizeVaultConnection",
        GROUP,
        request="CONNECT_REQUEST",
        response="CONNECT_URL",
        errors=(409,),
    ),
    Route(
        "GET",
        vault_link.CALLBACK_PATH,
        connect_callback,
        None,
        "Auth0's redirect after connecting an account (authenticated by the state); "
        "303 to the dashboard",
        "vaultCallback",
        GROUP,
        redirect=True,
        query=(
            ("state", _QUERY_TEXT, "The state the authorize call made (single use)"),
            ("code", _QUERY_TEXT, "Auth0's authorization code"),
            ("error", _QUERY_TEXT, "Auth0's error, e.g. access_denied"),
            ("error_description", _QUERY_TEXT, "Auth0's description (ignored)"),
        ),
    ),
    Route(
        "POST",
        "/api/actions/{action_id}/credential",
        release,
        (AGENT,),
        "Redeem an allowed or approved action for its scoped credential and receipt, once",
        "releaseCredential",
        GROUP,
        request="CREDENTIAL_REQUEST",
        response="CREDENTIAL",
        errors=(503,),
    ),
    Route(
        "GET",
        "/api/receipts/public-key",
        receipt_public_key,
        ANY_ROLE,
        "The Ed25519 key that signs action receipts (PEM), and retired ones",
        "getReceiptPublicKey",
        GROUP,
        response="RECEIPT_PUBLIC_KEY",
    ),
    Route(
        "GET",
        "/api/receipts/jwks.json",
        receipt_jwks,
        ANY_ROLE,
        "The receipt keys as a JWK Set (RFC 7517, OKP/Ed25519)",
        "getReceiptJwks",
        GROUP,
        response="JWKS",
    ),
    Route(
        "GET",
        "/api/inventory/permissions",
        permissions_list,
        ANY_ROLE,
        "The user's permission grants (an agent: those naming it)",
        "listPermissions",
        GROUP,
        response="PERMISSION_LIST",
    ),
    Route(
        "POST",
        "/api/inventory/permissions",
        permissions_grant,
        DECIDERS,
        "Grant an agent a connection with scopes (replaces an earlier grant of the pair)",
        "grantPermission",
        GROUP,
        request="PERMISSION_GRANT",
        response="PERMISSION",
        created=True,
    ),
    Route(
        "DELETE",
        "/api/inventory/permissions/{permission_id}",
        permissions_revoke,
        DECIDERS,
        "Revoke a grant: releases not yet made are refused from now on",
        "revokePermission",
        GROUP,
        response="PERMISSION",
    ),
    Route(
        "GET",
        "/api/inventory/scope-translate",
        scope_translate,
        ANY_ROLE,
        "Provider OAuth scopes in plain language, with a risk hint; unknown ones said so",
        "translateScopes",
        GROUP,
        response="SCOPE_TRANSLATION",
        query=(
            (
                "scope",
                {
                    "type": "string",
                    "pattern": f"^{_TOKEN}( {_TOKEN}){{0,{MAX_SCOPES - 1}}}$",
                },
                f"One or more space-separated scopes (at most {MAX_SCOPES})",
                True,
            ),
            (
                "provider",
                {"type": "string", "enum": PROVIDERS},
                "Read the scopes as this provider's (default: every provider that knows them)",
            ),
        ),
    ),
]
