"""JSON Schemas (2020-12) for request bodies and responses.

The same objects validate requests at the edge and are embedded in the OpenAPI
3.1 document, so the document describes exactly what the server enforces.
"""

from __future__ import annotations

import re as _re
from functools import cache
from typing import Any

from jsonschema import Draft202012Validator

from ...domain.errors import FieldError, ValidationFailed

Schema = dict[str, Any]


# -- builders: the shapes every route module declares; each call returns a new dict ------
def string(**keywords: Any) -> Schema:
    """A string; ``keywords`` are further JSON Schema keywords (``maxLength=``, ``enum=`` …)."""
    return {"type": "string", **keywords}


def integer(**keywords: Any) -> Schema:
    return {"type": "integer", **keywords}


def boolean() -> Schema:
    return {"type": "boolean"}


def date_time() -> Schema:
    """An RFC 3339 time, as the services write them."""
    return string(format="date-time")


def nullable(kind: str, **keywords: Any) -> Schema:
    """A ``kind`` (``"string"``, ``"integer"``) or null."""
    return {"type": [kind, "null"], **keywords}


def or_null(schema: Schema) -> Schema:
    """``schema`` or null, for a value that is an object (or has a pattern) when present."""
    return {"oneOf": [{"type": "null"}, schema]}


def array(items: Schema, **keywords: Any) -> Schema:
    return {"type": "array", "items": items, **keywords}


def obj(
    required: dict[str, Any] | None = None,
    optional: dict[str, Any] | None = None,
    *,
    closed: bool = False,
    **keywords: Any,
) -> Schema:
    """An object: the ``required`` properties must be present, the ``optional`` ones may
    be (neither given: any object); ``closed`` (request bodies): no other is allowed."""
    schema: Schema = {"type": "object"}
    if required:
        schema["required"] = list(required)
    if closed:
        schema["additionalProperties"] = False
    if required is not None or optional is not None:
        schema["properties"] = {**(required or {}), **(optional or {})}
    return {**schema, **keywords}


ID = string(pattern="^[A-Za-z0-9_.:-]{1,128}$")
#: Idempotency-Key (header): printable ASCII, 1-255 characters.
IDEMPOTENCY_KEY = string(pattern="^[ -~]{1,255}$", minLength=1, maxLength=255)
IDEMPOTENCY_KEY_RE = _re.compile(IDEMPOTENCY_KEY["pattern"][1:-1])
RFC3339_OR_NULL = nullable("string", format="date-time")
LEVEL = string(enum=["LOW", "MEDIUM", "HIGH"])
STATUS = string(enum=["allowed", "pending", "approved", "denied", "expired"])
HEX32 = string(pattern="^[0-9a-f]{64}$")
#: A step-up token (RFC 9470) sent back in a body.
STEP_UP_TOKEN = string(maxLength=4096)

APPROVE_REQUEST = obj(
    {"action_id": ID, "decision": string(enum=["approve", "deny"])},
    {"reason": string(maxLength=1000), "step_up_token": STEP_UP_TOKEN},
    closed=True,
)


def _intercept_request() -> Schema:
    """The intercept body as domain/action_bundle.py parses it (docs/api.md; docs/action-bundle.md).

    Plain bundle: exactly ``tool`` + ``arguments`` and the envelope fields. Raw call:
    a framework's own tool-call object under ``tool_call``, or its fields beside
    ``framework`` (the shape is the framework's: OpenAI's arguments are JSON text
    inside a string, which JSON Schema cannot check, so the adapters do; see
    tests/unit/test_frameworks.py). Strings may not hold NUL or lone surrogates, and
    integers stay within ±(2^53-1), at any depth (said, and checked by the parser).
    """
    from ...domain import action_bundle, canonical, frameworks

    # Values inside arguments/context (NUL-free strings, integers within +-(2^53-1), depth
    # <= 32, canonical size) are checked by action_bundle.parse_bundle, not here: a recursive
    # schema costs jsonschema one $ref resolution (~60 us) per nested value, which a
    # 256 KiB body of tiny values would turn into seconds of CPU (docs/http.md).
    def json_object(limit: int) -> Schema:
        return obj(
            description="Any JSON object: strings without NUL or lone surrogates, integers "
            f"within +-(2^53-1), nested at most {canonical.MAX_DEPTH} deep; at most {limit} "
            "canonical bytes"
        )

    raw_frameworks = [f for f in action_bundle.FRAMEWORKS if f != action_bundle.PLAIN]
    envelope = {
        "session_id": string(
            pattern=f"^{action_bundle.SESSION_ID_PATTERN.pattern}$",
            description="An open session of this agent (POST /api/approvals/sessions)",
        ),
        "resource": string(maxLength=action_bundle.MAX_RESOURCE_LENGTH, pattern="^[^\\u0000]*$"),
        "context": json_object(action_bundle.MAX_CONTEXT_BYTES),
        "timeout_s": integer(
            minimum=action_bundle.MIN_TIMEOUT_S, maximum=action_bundle.MAX_TIMEOUT_S
        ),
    }
    plain = obj(
        {
            "tool": string(
                maxLength=frameworks.MAX_TOOL_LENGTH,
                pattern=f"^{frameworks.TOOL_PATTERN.pattern}$",
                description="<service>.<operation>",
            ),
            "arguments": json_object(action_bundle.MAX_ARGUMENTS_BYTES),
        },
        {"framework": string(enum=list(action_bundle.FRAMEWORKS)), **envelope},
        closed=True,
        title="Action bundle",
    )
    beside = obj(
        {"framework": string(enum=raw_frameworks)},
        envelope,
        title="A framework's raw tool call, its fields beside `framework`",
    )
    beside["not"] = {"required": ["tool"]}
    raw = obj(
        {
            "framework": string(enum=raw_frameworks),
            action_bundle.RAW_CALL_KEY: obj(
                description="The framework's own tool-call object "
                "(OpenAI tool_calls[i] or function_call item, Anthropic tool_use, "
                "LangChain ToolCall, MCP tools/call params)"
            ),
        },
        envelope,
        closed=True,
        title="A framework's raw tool call",
    )
    return {
        "description": "The action bundle (docs/api.md), or a raw OpenAI/Anthropic/LangChain/MCP tool "
        "call under `tool_call` with `framework` naming which; see docs/action-bundle.md.",
        # tool_call decides the shape, as action_bundle.parse_bundle does: one branch is checked
        "if": {"type": "object", "required": [action_bundle.RAW_CALL_KEY]},
        "then": raw,
        "else": {"anyOf": [plain, beside]},
    }


INTERCEPT_REQUEST = _intercept_request()

RISK = obj(
    {
        "score": integer(minimum=0, maximum=100),
        "level": LEVEL,
        "factors": {
            "type": "object",
            "required": ["action_type", "reversibility", "blast_radius", "sensitivity"],
            "additionalProperties": integer(),
        },
        "reasons": array(string()),
    },
    {"category": string()},
)

ACTION = obj(
    {
        "action_id": string(),
        "status": STATUS,
        "risk": RISK,
        "step_up_required": boolean(),
        "expires_at": RFC3339_OR_NULL,
        "args_digest": string(pattern="^sha256:[0-9a-f]{64}$"),
        "reason": nullable("string"),
    },
    {
        "tool": string(),
        "arguments": obj(),
        "policy": obj(),
        "audit_seq": nullable(
            "integer",
            description="The audit entry this answer produced; null where entries are "
            "sequenced after the commit (Firestore: see audit_event_id)",
        ),
        "audit_event_id": nullable(
            "string",
            description="Firestore backend: the outbox event this answer produced; its "
            "entry (with seq) appears in GET /api/audit/action/{id} within about a second",
        ),
        "created_at": string(),
        "decided_at": RFC3339_OR_NULL,
        "decided_by": nullable("string"),
        "quorum": obj(
            {"required": integer(minimum=1), "approvals": array(string()), "of": array(string())},
            description="k-of-n named approvers (policy rule `approvers`)",
        ),
    },
)

ACTION_LIST = obj({"actions": array(ACTION)})

AUDIT_ENTRY = obj(
    {
        "seq": integer(minimum=1),
        "type": string(),
        "action_id": nullable("string"),
        "prev_hash": HEX32,
        "hash": HEX32,
    },
    {
        "chain": string(),
        "actor": string(),
        "user": nullable("string"),
        "at": string(),
        "data": obj(),
        "key_id": string(),
        "mac": HEX32,
        "event_id": string(
            description="The outbox event the entry was linked from (Firestore backend): "
            "the `audit_event_id` an intercept or decision answered with"
        ),
    },
)

AUDIT_ENTRIES = obj({"entries": array(AUDIT_ENTRY)}, {"next_after": nullable("integer")})

AUDIT_VERIFY = obj(
    {
        "valid": boolean(),
        "length": integer(),
        "first_invalid": or_null(obj({"seq": integer(), "reason": string()})),
    },
    {
        "head_hash": string(),
        "root_hash": nullable("string"),
        "checkpoints_verified": integer(),
        "hmac_checked": boolean(),
        "uncovered": integer(description="trailing entries under no signed checkpoint"),
    },
)

HEALTH = obj(
    {
        "status": string(),
        "store": string(),
        "scheduler": string(),
        "verifier": string(enum=["wasm", "python"]),
    },
    {"version": string()},
)

POLICY_ENVELOPE = obj(
    {
        "payload": obj(),
        "signatures": array(
            obj({"keyid": string(), "alg": {"const": "Ed25519"}, "sig": string()}, closed=True),
            minItems=1,
        ),
    },
    closed=True,
    description="A signed policy bundle (docs/policy.md): the payload and its Ed25519 "
    "signatures over the payload's RFC 8785 form. Whether a signature verifies "
    "under a trusted key is checked cryptographically (422 otherwise).",
)

POLICY_VIEW = obj(
    {"policy_id": string(), "version": integer(), "digest": string(), "payload": obj()}
)

AUDIT_CHECKPOINT = obj(
    {
        "origin": string(),
        "size": integer(minimum=0),
        "root_hash": or_null(HEX32),
        "note": nullable("string"),
        "verifier_key": string(),
    }
)
AUDIT_PUBLIC_KEY = obj({"origin": string(), "verifier_key": string(), "previous": array(string())})
INCLUSION_PROOF = obj(
    {
        "seq": integer(),
        "leaf_index": integer(),
        "tree_size": integer(),
        "leaf_hash": HEX32,
        "proof": array(HEX32),
        "root_hash": HEX32,
    },
    {"entry_hash": HEX32},
)
CONSISTENCY_PROOF = obj(
    {
        "from": integer(),
        "to": integer(),
        "proof": array(HEX32),
        "from_root": HEX32,
        "to_root": HEX32,
    }
)

PROBLEM = obj(
    {"type": string(), "title": string(), "status": integer(), "detail": string()},
    {
        "instance": string(),
        "trace_id": string(),
        "errors": array(obj({"field": string(), "message": string()})),
    },
)


#: Every named schema: request bodies, responses and the problem document. Other
#: route modules add theirs with :func:`register`; the OpenAPI document lists them all.
REGISTRY: dict[str, dict[str, Any]] = {}


def register(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    if REGISTRY.get(name, schema) is not schema:
        raise ValueError(f"schema {name!r} is registered twice")
    REGISTRY[name] = schema
    return schema


for _name in (
    "ID",
    "APPROVE_REQUEST",
    "INTERCEPT_REQUEST",
    "RISK",
    "ACTION",
    "ACTION_LIST",
    "AUDIT_ENTRY",
    "AUDIT_ENTRIES",
    "AUDIT_VERIFY",
    "HEALTH",
    "POLICY_ENVELOPE",
    "POLICY_VIEW",
    "PROBLEM",
    "AUDIT_CHECKPOINT",
    "AUDIT_PUBLIC_KEY",
    "INCLUSION_PROOF",
    "CONSISTENCY_PROOF",
):
    register(_name, globals()[_name])


#: Schemas refer to each other as the OpenAPI document does (#/components/schemas/NAME).
_BASE = "urn:vettra:openapi"


@cache
def _validator(name: str) -> Draft202012Validator:
    import json

    if '"$ref"' not in json.dumps(REGISTRY[name]):  # a $ref lookup costs ~60 us: only when needed
        return Draft202012Validator(REGISTRY[name])
    from referencing import Registry
    from referencing.jsonschema import DRAFT202012

    registry = Registry().with_resource(
        _BASE, DRAFT202012.create_resource({"components": {"schemas": REGISTRY}})
    )
    return Draft202012Validator({"$ref": f"{_BASE}#/components/schemas/{name}"}, registry=registry)


def _path(error: Any) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        parts.append(missing)
    elif error.validator == "additionalProperties" and "'" in error.message:
        parts.append(error.message.split("'")[1])
    return ".".join(p for p in parts if p) or "$"


def is_valid(schema_name: str, value: Any) -> bool:
    return _validator(schema_name).is_valid(value)


def validate(schema_name: str, value: Any) -> Any:
    """Raise :class:`ValidationFailed` naming every offending field."""
    errors = sorted(_validator(schema_name).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        fields = [FieldError(_path(e), e.message[:300]) for e in errors]
        raise ValidationFailed(f"{len(fields)} field(s) failed validation", errors=fields)
    return value
