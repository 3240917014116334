"""Sign-in routes (the ``auth`` function): ``POST /api/auth/firebase-token``.

Public in the sense of needing no bearer token: the body's Auth0 ID token is the
credential, verified by :class:`vettra.services.sign_in.SignInService` (docs/identity.md).
A deployment without Auth0 sign-in answers 404 ``not-configured``.
"""

from __future__ import annotations

from typing import Any

from ...domain.errors import NotConfigured
from ...domain.identity import DECIDERS, Principal
from ...services.jwks import MAX_TOKEN_LENGTH
from ...services.sign_in import MAX_UID_LENGTH
from . import schemas
from .app import Route
from .schemas import integer, obj, string
from .types import Request, Response

GROUP = "auth"
FIREBASE_TOKEN_PATH = "/api/auth/firebase-token"

FIREBASE_TOKEN_REQUEST = schemas.register(
    "FIREBASE_TOKEN_REQUEST",
    obj(
        {"id_token": string(minLength=1, maxLength=MAX_TOKEN_LENGTH)},
        closed=True,
        description="An Auth0 ID token of the dashboard's sign-in (audience: its client id).",
    ),
)

FIREBASE_TOKEN = schemas.register(
    "FIREBASE_TOKEN",
    obj(
        {
            "firebase_token": string(),
            "uid": string(minLength=1, maxLength=MAX_UID_LENGTH),
            "vettra_role": string(enum=list(DECIDERS)),
            "tenant": string(),
            "expires_in": integer(description="Seconds the token may be used"),
        },
        description="A Firebase custom token for signInWithCustomToken, and what it carries.",
    ),
)


def firebase_token(deps: Any, request: Request, principal: Principal | None) -> Response:
    body = schemas.validate("FIREBASE_TOKEN_REQUEST", request.json())
    sign_in = deps.sign_in
    if sign_in is None:
        raise NotConfigured(
            "sign-in is not configured on this deployment: it needs VETTRA_AUTH0_ISSUER and "
            "VETTRA_AUTH0_CLIENT_ID (docs/identity.md)"
        )
    return Response.json(sign_in.firebase_token(body["id_token"]))


AUTH_ROUTES: list[Route] = [
    Route(
        "POST",
        FIREBASE_TOKEN_PATH,
        firebase_token,
        None,
        "Exchange a verified Auth0 ID token for a Firebase custom token (dashboard sign-in)",
        "exchangeFirebaseToken",
        GROUP,
        request="FIREBASE_TOKEN_REQUEST",
        response="FIREBASE_TOKEN",
        errors=(401, 403, 404, 413, 415, 422, 429, 503),
    ),
]
