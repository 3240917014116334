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

ID = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"}
#: Idempotency-Key (header): printable ASCII, 1-255 characters.
IDEMPOTENCY_KEY: dict[str, Any] = {
    "type": "string",
    "pattern": "^[ -~]{1,255}$",
    "minLength": 1,
    "maxLength": 255,
}
IDEMPOTENCY_KEY_RE = _re.compile(IDEMPOTENCY_KEY["pattern"][1:-1])
RFC3339_OR_NULL = {"type": ["string", "null"], "format": "date-time"}
LEVEL = {"type": "string", "enum": ["LOW", "MEDIUM", "HIGH"]}
STATUS = {"type": "string", "enum": ["allowed", "pending", "approved", "denied", "expired"]}

APPROVE_REQUEST = {
    "type": "object",
    "required": ["action_id", "decision"],
    "additionalProperties": False,
    "properties": {
        "action_id": ID,
        "decision": {"type": "string", "enum": ["approve", "deny"]},
        "reason": {"type": "string", "maxLength": 1000},
        "step_up_token": {"type": "string", "maxLength": 4096},
    },
}


def _intercept_request() -> dict[str, Any]:
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
    json_object = {
        "type": "object",
        "description": "Any JSON object: strings without NUL or lone "
        f"surrogates, integers within +-(2^53-1), nested at most {canonical.MAX_DEPTH} deep",
    }
    envelope = {
        "session_id": {
            "type": "string",
            "pattern": f"^{action_bundle.SESSION_ID_PATTERN.pattern}$",
            "description": "An open session of this agent (POST /api/approvals/sessions)",
        },
        "resource": {
            "type": "string",
            "maxLength": action_bundle.MAX_RESOURCE_LENGTH,
            "pattern": "^[^\\u0000]*$",
        },
        "context": {
            **json_object,
            "description": json_object["description"]
            + f"; at most {action_bundle.MAX_CONTEXT_BYTES} canonical bytes",
        },
        "timeout_s": {
            "type": "integer",
            "minimum": action_bundle.MIN_TIMEOUT_S,
            "maximum": action_bundle.MAX_TIMEOUT_S,
        },
    }
    plain = {
        "title": "Action bundle",
        "type": "object",
        "required": ["tool", "arguments"],
        "additionalProperties": False,
        "properties": {
            "tool": {
                "type": "string",
                "maxLength": frameworks.MAX_TOOL_LENGTH,
                "pattern": f"^{frameworks.TOOL_PATTERN.pattern}$",
                "description": "<service>.<operation>",
            },
            "arguments": {
                **json_object,
                "description": json_object["description"]
                + f"; at most {action_bundle.MAX_ARGUMENTS_BYTES} canonical bytes",
            },
            "framework": {"type": "string", "enum": list(action_bundle.FRAMEWORKS)},
            **envelope,
        },
    }
    beside = {
        "title": "A framework's raw tool call, its fields beside `framework`",
        "type": "object",
        "required": ["framework"],
        "not": {"required": ["tool"]},
        "properties": {
            "framework": {
                "type": "string",
                "enum": [f for f in action_bundle.FRAMEWORKS if f != action_bundle.PLAIN],
            },
            **envelope,
        },
    }
    raw = {
        "title": "A framework's raw tool call",
        "type": "object",
        "required": ["framework", action_bundle.RAW_CALL_KEY],
        "additionalProperties": False,
        "properties": {
            "framework": {
                "type": "string",
                "enum": [f for f in action_bundle.FRAMEWORKS if f != action_bundle.PLAIN],
            },
            action_bundle.RAW_CALL_KEY: {
                "type": "object",
                "description": "The framework's own tool-call object "
                "(OpenAI tool_calls[i] or function_call item, Anthropic tool_use, "
                "LangChain ToolCall, MCP tools/call params)",
            },
            **envelope,
        },
    }
    return {
        "description": "The action bundle (docs/api.md), or a raw OpenAI/Anthropic/LangChain/MCP tool "
        "call under `tool_call` with `framework` naming which; see docs/action-bundle.md.",
        # tool_call decides the shape, as action_bundle.parse_bundle does: one branch is checked
        "if": {"type": "object", "required": [action_bundle.RAW_CALL_KEY]},
        "then": raw,
        "else": {"anyOf": [plain, beside]},
    }


INTERCEPT_REQUEST = _intercept_request()

RISK = {
    "type": "object",
    "required": ["score", "level", "factors", "reasons"],
    "properties": {
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "level": LEVEL,
        "category": {"type": "string"},
        "factors": {
            "type": "object",
            "required": ["action_type", "reversibility", "blast_radius", "sensitivity"],
            "additionalProperties": {"type": "integer"},
        },
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
}

ACTION = {
    "type": "object",
    "required": [
        "action_id",
        "status",
        "risk",
        "step_up_required",
        "expires_at",
        "args_digest",
        "reason",
    ],
    "properties": {
        "action_id": {"type": "string"},
        "status": STATUS,
        "tool": {"type": "string"},
        "arguments": {"type": "object"},
        "args_digest": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        "risk": RISK,
        "step_up_required": {"type": "boolean"},
        "expires_at": RFC3339_OR_NULL,
        "reason": {"type": ["string", "null"]},
        "policy": {"type": "object"},
        "audit_seq": {
            "type": ["integer", "null"],
            "description": "The audit entry this answer produced; null where entries are "
            "sequenced after the commit (Firestore: see audit_event_id)",
        },
        "audit_event_id": {
            "type": ["string", "null"],
            "description": "Firestore backend: the outbox event this answer produced; its "
            "entry (with seq) appears in GET /api/audit/action/{id} within about a second",
        },
        "created_at": {"type": "string"},
        "decided_at": RFC3339_OR_NULL,
        "decided_by": {"type": ["string", "null"]},
        "quorum": {
            "type": "object",
            "required": ["required", "approvals", "of"],
            "description": "k-of-n named approvers (policy rule `approvers`)",
            "properties": {
                "required": {"type": "integer", "minimum": 1},
                "approvals": {"type": "array", "items": {"type": "string"}},
                "of": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}

ACTION_LIST = {
    "type": "object",
    "required": ["actions"],
    "properties": {"actions": {"type": "array", "items": ACTION}},
}

AUDIT_ENTRY = {
    "type": "object",
    "required": ["seq", "type", "action_id", "prev_hash", "hash"],
    "properties": {
        "seq": {"type": "integer", "minimum": 1},
        "chain": {"type": "string"},
        "type": {"type": "string"},
        "action_id": {"type": ["string", "null"]},
        "actor": {"type": "string"},
        "user": {"type": ["string", "null"]},
        "at": {"type": "string"},
        "data": {"type": "object"},
        "prev_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "key_id": {"type": "string"},
        "mac": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "event_id": {
            "type": "string",
            "description": "The outbox event the entry was linked from (Firestore backend): "
            "the `audit_event_id` an intercept or decision answered with",
        },
    },
}

AUDIT_ENTRIES = {
    "type": "object",
    "required": ["entries"],
    "properties": {
        "entries": {"type": "array", "items": AUDIT_ENTRY},
        "next_after": {"type": ["integer", "null"]},
    },
}

AUDIT_VERIFY = {
    "type": "object",
    "required": ["valid", "length", "first_invalid"],
    "properties": {
        "valid": {"type": "boolean"},
        "length": {"type": "integer"},
        "first_invalid": {
            "oneOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "required": ["seq", "reason"],
                    "properties": {"seq": {"type": "integer"}, "reason": {"type": "string"}},
                },
            ]
        },
        "head_hash": {"type": "string"},
        "root_hash": {"type": ["string", "null"]},
        "checkpoints_verified": {"type": "integer"},
        "hmac_checked": {"type": "boolean"},
        "uncovered": {
            "type": "integer",
            "description": "trailing entries under no signed checkpoint",
        },
    },
}

HEALTH = {
    "type": "object",
    "required": ["status", "store", "scheduler", "verifier"],
    "properties": {
        "status": {"type": "string"},
        "store": {"type": "string"},
        "scheduler": {"type": "string"},
        "verifier": {"type": "string", "enum": ["wasm", "python"]},
        "version": {"type": "string"},
    },
}

POLICY_ENVELOPE = {
    "description": "A signed policy bundle (docs/policy.md): the payload and its Ed25519 "
    "signatures over the payload's RFC 8785 form. Whether a signature verifies "
    "under a trusted key is checked cryptographically (422 otherwise).",
    "type": "object",
    "required": ["payload", "signatures"],
    "additionalProperties": False,
    "properties": {
        "payload": {"type": "object"},
        "signatures": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["keyid", "alg", "sig"],
                "additionalProperties": False,
                "properties": {
                    "keyid": {"type": "string"},
                    "alg": {"const": "Ed25519"},
                    "sig": {"type": "string"},
                },
            },
        },
    },
}

POLICY_VIEW = {
    "type": "object",
    "required": ["policy_id", "version", "digest", "payload"],
    "properties": {
        "policy_id": {"type": "string"},
        "version": {"type": "integer"},
        "digest": {"type": "string"},
        "payload": {"type": "object"},
    },
}

HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
AUDIT_CHECKPOINT = {
    "type": "object",
    "required": ["origin", "size", "root_hash", "note", "verifier_key"],
    "properties": {
        "origin": {"type": "string"},
        "size": {"type": "integer", "minimum": 0},
        "root_hash": {"oneOf": [HEX32, {"type": "null"}]},
        "note": {"type": ["string", "null"]},
        "verifier_key": {"type": "string"},
    },
}
AUDIT_PUBLIC_KEY = {
    "type": "object",
    "required": ["origin", "verifier_key", "previous"],
    "properties": {
        "origin": {"type": "string"},
        "verifier_key": {"type": "string"},
        "previous": {"type": "array", "items": {"type": "string"}},
    },
}
INCLUSION_PROOF = {
    "type": "object",
    "required": ["seq", "leaf_index", "tree_size", "leaf_hash", "proof", "root_hash"],
    "properties": {
        "seq": {"type": "integer"},
        "leaf_index": {"type": "integer"},
        "tree_size": {"type": "integer"},
        "entry_hash": HEX32,
        "leaf_hash": HEX32,
        "proof": {"type": "array", "items": HEX32},
        "root_hash": HEX32,
    },
}
CONSISTENCY_PROOF = {
    "type": "object",
    "required": ["from", "to", "proof", "from_root", "to_root"],
    "properties": {
        "from": {"type": "integer"},
        "to": {"type": "integer"},
        "proof": {"type": "array", "items": HEX32},
        "from_root": HEX32,
        "to_root": HEX32,
    },
}

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "trace_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}


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
