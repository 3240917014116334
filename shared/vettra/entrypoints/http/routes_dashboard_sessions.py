"""Dashboard sign-in routes of the local server: links, the code exchange, who am I,
sign-out (the cloud's is routes_auth.py: an Auth0 ID token for a Firebase token).

``POST /api/dashboard/links`` (admin; ``vettra link`` calls it) makes a one-time link;
``POST /api/dashboard/signin`` (no token: the page has none yet) trades its code for a
session token; ``GET /api/dashboard/session`` says who the token names;
``DELETE /api/dashboard/session`` signs out (revokes the session). See
:mod:`vettra.services.dashboard_sessions`. Group ``dashboard`` has no Cloud Functions target: in the
cloud the dashboard signs in with Auth0.
"""

from __future__ import annotations

from typing import Any

from ...domain.errors import NotConfigured
from ...domain.identity import ADMIN, APPROVER, Principal
from ...services import dashboard_sessions as sessions
from . import schemas
from .app import Route
from .types import Request, Response

GROUP = "dashboard"
SESSION_ROLES = (APPROVER, ADMIN)
_CODE_PATTERN = "^" + sessions.LINK_PREFIX + "[A-Za-z0-9_-]{43}$"

SIGNIN_LINK_REQUEST = schemas.register(
    "SIGNIN_LINK_REQUEST",
    {
        "type": "object",
        "required": ["sub"],
        "additionalProperties": False,
        "properties": {
            "sub": {
                "type": "string",
                "pattern": "^[A-Za-z0-9_.:@-]{1,128}$",
                "description": "The user who signs in (an approver's user id)",
            },
            "role": {"type": "string", "enum": list(sessions.SIGNIN_ROLES)},
        },
    },
)

SIGNIN_LINK = schemas.register(
    "SIGNIN_LINK",
    {
        "type": "object",
        "required": ["code", "path", "sub", "role", "tenant", "expires_at"],
        "properties": {
            "code": {"type": "string", "description": "One-time code; shown once"},
            "path": {"type": "string", "description": "Append to the server's base URL"},
            "sub": {"type": "string"},
            "role": {"type": "string", "enum": list(sessions.SIGNIN_ROLES)},
            "tenant": {"type": "string"},
            "expires_at": {"type": "string", "format": "date-time"},
        },
    },
)

SIGNIN_REQUEST = schemas.register(
    "SIGNIN_REQUEST",
    {
        "type": "object",
        "required": ["code"],
        "additionalProperties": False,
        "properties": {"code": {"type": "string", "pattern": _CODE_PATTERN}},
    },
)

SIGNIN_SESSION = schemas.register(
    "SIGNIN_SESSION",
    {
        "type": "object",
        "required": ["access_token", "token_type", "expires_at", "sub", "role", "tenant"],
        "properties": {
            "access_token": {"type": "string"},
            "token_type": {"const": "Bearer"},
            "expires_at": {"type": "string", "format": "date-time"},
            "expires_in": {"type": "integer"},
            "sub": {"type": "string"},
            "role": {"type": "string", "enum": list(sessions.SIGNIN_ROLES)},
            "tenant": {"type": "string"},
        },
    },
)

WHOAMI = schemas.register(
    "WHOAMI",
    {
        "type": "object",
        "required": ["sub", "role", "user", "tenant", "kind"],
        "properties": {
            "sub": {"type": "string"},
            "role": {"type": "string"},
            "user": {"type": "string"},
            "tenant": {"type": "string"},
            "kind": {
                "type": "string",
                "enum": ["dashboard-session", "token"],
                "description": "A revocable dashboard session, or a minted bearer token",
            },
            "expires_at": schemas.RFC3339_OR_NULL,
        },
    },
)

SIGNED_OUT = schemas.register(
    "SIGNED_OUT",
    {
        "type": "object",
        "required": ["signed_out", "at"],
        "properties": {"signed_out": {"const": True}, "at": {"type": "string"}},
    },
)


def _sessions(deps: Any) -> Any:
    if deps.dashboard_sessions is None:
        raise NotConfigured(
            "dashboard sign-in links are for a server on a home's keys (vettra dev); "
            "this deployment signs in with Auth0 (POST /api/auth/firebase-token)"
        )
    return deps.dashboard_sessions


def _bearer(request: Request) -> str:
    return (request.header("authorization") or "").partition(" ")[2].strip()


def create_link(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("SIGNIN_LINK_REQUEST", request.json())
    link = _sessions(deps).create_link(
        body["sub"],
        body.get("role", APPROVER),
        tenant=principal.tenant,
        created_by=principal.actor,
    )
    return Response.json(link, status=201)


def sign_in(deps: Any, request: Request, principal: Principal | None) -> Response:
    body = schemas.validate("SIGNIN_REQUEST", request.json())
    return Response.json(_sessions(deps).redeem(body["code"]))


def whoami(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    session = _sessions(deps).session(_bearer(request))
    return Response.json(
        {
            "sub": principal.sub,
            "role": principal.role,
            "user": principal.user,
            "tenant": principal.tenant,
            "kind": "dashboard-session" if session else "token",
            "expires_at": _rfc3339(session["expires_at"]) if session else None,
        }
    )


def sign_out(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    return Response.json(_sessions(deps).sign_out(principal, _bearer(request)))


def _rfc3339(iso: str) -> str:
    from datetime import datetime

    from ...domain.actions import rfc3339

    return rfc3339(datetime.fromisoformat(iso))


DASHBOARD_SESSION_ROUTES: list[Route] = [
    Route(
        "POST",
        "/api/dashboard/links",
        create_link,
        (ADMIN,),
        "A one-time dashboard sign-in link for a user (vettra link)",
        "createSignInLink",
        GROUP,
        request="SIGNIN_LINK_REQUEST",
        response="SIGNIN_LINK",
        created=True,
    ),
    Route(
        "POST",
        "/api/dashboard/signin",
        sign_in,
        None,
        "Trade a sign-in link's one-time code for a dashboard session token",
        "signIn",
        GROUP,
        request="SIGNIN_REQUEST",
        response="SIGNIN_SESSION",
        errors=(401, 404, 413, 415, 422),
    ),
    Route(
        "GET",
        "/api/dashboard/session",
        whoami,
        SESSION_ROLES,
        "Who the bearer token names, and whether it is a revocable dashboard session",
        "getSignInSession",
        GROUP,
        response="WHOAMI",
    ),
    Route(
        "DELETE",
        "/api/dashboard/session",
        sign_out,
        SESSION_ROLES,
        "Sign out: revoke this dashboard session (409 for a minted token)",
        "signOut",
        GROUP,
        response="SIGNED_OUT",
    ),
]
