"""Session routes (docs/api.md §Approvals: sessions): create, list, get, revoke, pre-authorise."""

from __future__ import annotations

from typing import Any

from ...domain.identity import ANY_ROLE, DECIDERS, Principal
from ...services import sessions
from . import schemas
from .app import Route, answers
from .schemas import array, boolean, integer, nullable, obj, or_null, string
from .types import Request, Response

GROUP = "approvals"

SESSION_CREATE_REQUEST = schemas.register(
    "SESSION_CREATE_REQUEST",
    obj(
        optional={
            "agent": string(
                pattern="^[A-Za-z0-9_.:@-]{1,128}$",
                description="Approvers only: bind the session to this agent (default: any of yours)",
            ),
            "label": string(maxLength=200),
            "ttl_s": integer(minimum=60, maximum=sessions.MAX_TTL_S),
        },
        closed=True,
    ),
)

PREAUTH_REQUEST = schemas.register(
    "PREAUTH_REQUEST",
    obj(
        {
            "session_id": schemas.ID,
            "max_level": string(
                enum=list(sessions.PREAUTH_LEVELS), description="HIGH is never pre-authorised"
            ),
            "duration_s": integer(minimum=60, maximum=sessions.MAX_PREAUTH_S),
        },
        {"step_up_token": schemas.STEP_UP_TOKEN},
        closed=True,
    ),
)

_PREAUTH = obj(
    {"max_level": string(), "until": string(), "granted_by": string()},
    {"granted_at": string()},
)
SESSION = schemas.register(
    "SESSION",
    obj(
        {
            "session_id": string(),
            "user": string(),
            "agent": nullable("string"),
            "created_at": string(),
            "expires_at": string(),
            "revoked_at": nullable("string"),
            "preauth": or_null(_PREAUTH),
            "active": boolean(),
            "preauth_active": boolean(),
        },
        {"tenant": string(), "label": nullable("string"), "created_by": string()},
    ),
)

SESSION_LIST = schemas.register("SESSION_LIST", obj({"sessions": array(SESSION)}))


def create(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("SESSION_CREATE_REQUEST", request.json())
    view = sessions.create(deps, principal, body)
    return Response.json(
        view, status=201, headers={"Location": f"/api/approvals/sessions/{view['session_id']}"}
    )


list_ = answers(sessions.list_sessions)
get = answers(sessions.get, "session_id")
revoke = answers(sessions.revoke, "session_id")


def pre_authorize(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("PREAUTH_REQUEST", request.json())
    return Response.json(sessions.pre_authorize(deps, principal, body))


SESSION_ROUTES: list[Route] = [
    Route(
        "POST",
        "/api/approvals/sessions",
        create,
        ANY_ROLE,
        "Open an agent session (agents for themselves; users for one of their agents)",
        "createSession",
        GROUP,
        request="SESSION_CREATE_REQUEST",
        response="SESSION",
        created=True,
    ),
    Route(
        "GET",
        "/api/approvals/sessions",
        list_,
        ANY_ROLE,
        "The caller's sessions",
        "listSessions",
        GROUP,
        response="SESSION_LIST",
    ),
    Route(
        "POST",
        "/api/approvals/sessions/pre-authorize",
        pre_authorize,
        DECIDERS,
        "Pre-authorise a session up to MEDIUM for a while (needs a step-up for preauth:<session_id>)",
        "preAuthorizeSession",
        GROUP,
        request="PREAUTH_REQUEST",
        response="SESSION",
    ),
    Route(
        "GET",
        "/api/approvals/sessions/{session_id}",
        get,
        ANY_ROLE,
        "One session",
        "getSession",
        GROUP,
        response="SESSION",
    ),
    Route(
        "DELETE",
        "/api/approvals/sessions/{session_id}",
        revoke,
        DECIDERS,
        "Revoke a session; takes effect on the next intercept",
        "revokeSession",
        GROUP,
        response="SESSION",
    ),
]
