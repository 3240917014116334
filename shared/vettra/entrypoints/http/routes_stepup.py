"""Step-up routes (docs/api.md §Approvals): enrol a factor, trigger a challenge, verify it.

Thin: validate the body against its registered schema, call ``deps.step_up``
(:class:`vettra.services.stepup.StepUpService`), answer JSON. Approvers and
admins only; an agent token gets 403.
"""

from __future__ import annotations

from typing import Any

from ...domain.identity import DECIDERS, Principal
from ...services import stepup_factors
from . import schemas
from .app import Route, answers
from .schemas import array, date_time, integer, nullable, obj, string
from .types import Request, Response

GROUP = "approvals"

CODE = string(pattern="^[0-9]{6}$", description="RFC 6238 TOTP code (6 digits)")
PURPOSE = string(
    pattern="^[A-Za-z0-9_.:-]{1,200}$",
    description="What the step-up is for when not an action, e.g. preauth:<session_id>",
)
TOKEN = string(minLength=1, maxLength=4096)
METHOD = string(enum=["totp", "webauthn"])
CHALLENGE_METHOD = string(enum=["totp", "webauthn", "oidc"])
WEBAUTHN_JSON = obj(description="PublicKeyCredential JSON (WebAuthn L3 toJSON())")
ID_TOKEN = string(
    maxLength=16384,
    pattern="^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]*$",
    description="OIDC ID token (compact JWS) from the configured issuer, with the challenge's nonce",
)
#: What a challenge, and the token that answers it, are bound to (one is set).
BINDING = {
    "action_id": nullable("string"),
    "args_digest": nullable("string"),
    "purpose": nullable("string"),
}

STEPUP_ENROLL_REQUEST = schemas.register(
    "STEPUP_ENROLL_REQUEST",
    obj(
        {"method": METHOD},
        {
            "enrollment_id": schemas.ID,
            "code": CODE,
            "credential": WEBAUTHN_JSON,
            "step_up_token": TOKEN,
        },
        closed=True,
        description="Start: {method} (plus step_up_token when a factor is already enrolled). "
        "Finish: TOTP {method, enrollment_id, code}; WebAuthn {method, enrollment_id, credential}.",
        dependentRequired={"code": ["enrollment_id"], "credential": ["enrollment_id"]},
        allOf=[
            {
                "if": {"properties": {"method": {"const": "totp"}}},
                "then": {"properties": {"credential": False}},
            },
            {
                "if": {"properties": {"method": {"const": "webauthn"}}},
                "then": {"properties": {"code": False}},
            },
            {
                "if": {"required": ["enrollment_id"]},
                "then": {"anyOf": [{"required": ["code"]}, {"required": ["credential"]}]},
            },
        ],
    ),
)

STEPUP_ENROLLMENT = schemas.register(
    "STEPUP_ENROLLMENT",
    obj(
        {
            "method": METHOD,
            "enrollment_id": string(),
            "status": string(enum=["pending", "active"]),
        },
        {
            "expires_at": date_time(),
            "secret": string(description="TOTP base32 secret; shown once"),
            "otpauth_uri": string(),
            "digits": integer(),
            "period": integer(),
            "options": obj(description="WebAuthn PublicKeyCredentialCreationOptions JSON"),
            "credential_id": string(),
        },
    ),
)

STEPUP_TRIGGER_REQUEST = schemas.register(
    "STEPUP_TRIGGER_REQUEST",
    {
        **obj(
            optional={"action_id": schemas.ID, "purpose": PURPOSE},
            closed=True,
            description="Bind the challenge to one of the caller's pending actions, or to a "
            "purpose (default 'generic'); not both.",
        ),
        "not": {"required": ["action_id", "purpose"]},
    },
)

STEPUP_CHALLENGE = schemas.register(
    "STEPUP_CHALLENGE",
    obj(
        {
            "challenge_id": string(),
            "methods": array(CHALLENGE_METHOD),
            "expires_at": date_time(),
        },
        {
            "max_age": integer(),
            **BINDING,
            "webauthn": obj(description="PublicKeyCredentialRequestOptions JSON"),
            "oidc": obj(
                {
                    "issuer": string(),
                    "nonce": string(),
                    "max_age": integer(),
                    "acr_values": string(),
                },
                description="Parameters for the issuer's /authorize (prompt=login)",
            ),
        },
    ),
)

STEPUP_VERIFY_REQUEST = schemas.register(
    "STEPUP_VERIFY_REQUEST",
    obj(
        {"challenge_id": schemas.ID},
        {"code": CODE, "webauthn": WEBAUTHN_JSON, "id_token": ID_TOKEN},
        closed=True,
        description="Exactly one of code (TOTP), webauthn (assertion) and id_token (OIDC).",
        oneOf=[{"required": ["code"]}, {"required": ["webauthn"]}, {"required": ["id_token"]}],
    ),
)

STEPUP_TOKEN = schemas.register(
    "STEPUP_TOKEN",
    obj(
        {
            "step_up_token": string(),
            "expires_at": date_time(),
            "amr": array(string(), description="RFC 8176 values"),
        },
        {"token_type": string(), "max_age": integer(), "challenge_id": string(), **BINDING},
    ),
)


STEPUP_FACTOR = obj(
    {
        "factor_id": string(description="'totp', or the passkey's credential id"),
        "method": METHOD,
        "created_at": nullable("string", format="date-time"),
        "last_used_at": nullable("string", format="date-time"),
        "removal_purpose": string(description="The step-up purpose removing this factor needs"),
    },
    {"label": string(), "aaguid": nullable("string")},
)
STEPUP_FACTORS = schemas.register(
    "STEPUP_FACTORS", obj({"factors": array(STEPUP_FACTOR)}, {"removed": string()})
)
STEPUP_REMOVE_REQUEST = schemas.register(
    "STEPUP_REMOVE_REQUEST",
    obj(
        {"factor_id": string(pattern="^[A-Za-z0-9_-]{1,1400}$")},
        {"step_up_token": TOKEN},
        closed=True,
        description="Remove one factor; needs a step-up for the factor's removal_purpose.",
    ),
)


factors = answers(stepup_factors.list_factors)


def remove_factor(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("STEPUP_REMOVE_REQUEST", request.json())
    return Response.json(
        stepup_factors.remove_factor(deps, principal, body["factor_id"], body.get("step_up_token"))
    )


def enroll(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("STEPUP_ENROLL_REQUEST", request.json())
    return Response.json(deps.step_up.enroll(principal, body))


def trigger(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("STEPUP_TRIGGER_REQUEST", request.json())
    return Response.json(
        deps.step_up.trigger(
            principal, action_id=body.get("action_id"), purpose=body.get("purpose")
        )
    )


def verify(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("STEPUP_VERIFY_REQUEST", request.json())
    return Response.json(
        deps.step_up.verify(
            principal,
            body["challenge_id"],
            code=body.get("code"),
            assertion=body.get("webauthn"),
            id_token=body.get("id_token"),
        )
    )


STEPUP_ROUTES: list[Route] = [
    Route(
        "POST",
        "/api/approvals/stepup/enroll",
        enroll,
        DECIDERS,
        "Enrol a step-up factor (TOTP or a WebAuthn passkey): start, then confirm",
        "enrollStepUp",
        GROUP,
        request="STEPUP_ENROLL_REQUEST",
        response="STEPUP_ENROLLMENT",
    ),
    Route(
        "POST",
        "/api/approvals/stepup/trigger",
        trigger,
        DECIDERS,
        "A step-up challenge bound to one of the caller's actions or to a purpose",
        "triggerStepUp",
        GROUP,
        request="STEPUP_TRIGGER_REQUEST",
        response="STEPUP_CHALLENGE",
    ),
    Route(
        "POST",
        "/api/approvals/stepup/verify",
        verify,
        DECIDERS,
        "Answer a challenge; returns a single-use step-up token (RFC 9470)",
        "verifyStepUp",
        GROUP,
        request="STEPUP_VERIFY_REQUEST",
        response="STEPUP_TOKEN",
    ),
    Route(
        "GET",
        "/api/approvals/stepup/factors",
        factors,
        DECIDERS,
        "The caller's step-up factors, with when each was created and last used",
        "listStepUpFactors",
        GROUP,
        response="STEPUP_FACTORS",
    ),
    Route(
        "POST",
        "/api/approvals/stepup/factors/remove",
        remove_factor,
        DECIDERS,
        "Remove one of the caller's factors (needs a step-up for its removal_purpose)",
        "removeStepUpFactor",
        GROUP,
        request="STEPUP_REMOVE_REQUEST",
        response="STEPUP_FACTORS",
    ),
]
