"""JSON Schemas (2020-12) for request bodies and responses.

The same objects validate requests at the edge and are embedded in the OpenAPI
3.1 document, so the document describes exactly what the server enforces.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator

from ...domain.errors import FieldError, ValidationFailed

import re as _re

ID = {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"}
#: Idempotency-Key (header): printable ASCII, 1-255 characters.
IDEMPOTENCY_KEY = {"type": "string", "pattern": "^[ -~]{1,255}$", "minLength": 1, "maxLength": 255}
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

INTERCEPT_REQUEST = {
    "description": "The action bundle (API.md), or a raw OpenAI/Anthropic/LangChain/MCP tool call "
                   "with `framework` naming which; see docs/action-bundle.md.",
    "type": "object",
    "properties": {
        "tool": {"type": "string", "maxLength": 128, "description": "<service>.<operation>"},
        "arguments": {"type": "object"},
        "framework": {"type": "string", "enum": ["plain", "openai", "anthropic", "langchain", "mcp"]},
        "session_id": {"type": "string"},
        "resource": {"type": "string", "maxLength": 512},
        "context": {"type": "object"},
        "timeout_s": {"type": "integer", "minimum": 1, "maximum": 86400},
        "tool_call": {"type": "object"},
    },
}

RISK = {
    "type": "object",
    "required": ["score", "level", "factors", "reasons"],
    "properties": {
        "score": {"type": "integer", "minimum": 0, "maximum": 100},
        "level": LEVEL,
        "category": {"type": "string"},
        "factors": {"type": "object", "required": ["action_type", "reversibility", "blast_radius", "sensitivity"],
                    "additionalProperties": {"type": "integer"}},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
}

ACTION = {
    "type": "object",
    "required": ["action_id", "status", "risk", "step_up_required", "expires_at", "args_digest", "reason"],
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
        "audit_seq": {"type": ["integer", "null"]},
        "created_at": {"type": "string"},
        "decided_at": RFC3339_OR_NULL,
        "decided_by": {"type": ["string", "null"]},
        "quorum": {"type": "object", "required": ["required", "approvals", "of"],
                   "description": "k-of-n named approvers (policy rule `approvers`)",
                   "properties": {"required": {"type": "integer", "minimum": 1},
                                  "approvals": {"type": "array", "items": {"type": "string"}},
                                  "of": {"type": "array", "items": {"type": "string"}}}},
    },
}

ACTION_LIST = {"type": "object", "required": ["actions"],
               "properties": {"actions": {"type": "array", "items": ACTION}}}

AUDIT_ENTRY = {
    "type": "object",
    "required": ["seq", "type", "action_id", "prev_hash", "hash"],
    "properties": {
        "seq": {"type": "integer", "minimum": 1}, "chain": {"type": "string"},
        "type": {"type": "string"}, "action_id": {"type": ["string", "null"]},
        "actor": {"type": "string"}, "user": {"type": ["string", "null"]},
        "at": {"type": "string"}, "data": {"type": "object"},
        "prev_hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "hash": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "key_id": {"type": "string"}, "mac": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
    },
}

AUDIT_ENTRIES = {"type": "object", "required": ["entries"],
                 "properties": {"entries": {"type": "array", "items": AUDIT_ENTRY},
                                "next_after": {"type": ["integer", "null"]}}}

AUDIT_VERIFY = {
    "type": "object",
    "required": ["valid", "length", "first_invalid"],
    "properties": {
        "valid": {"type": "boolean"}, "length": {"type": "integer"},
        "first_invalid": {"oneOf": [{"type": "null"},
                                    {"type": "object", "required": ["seq", "reason"],
                                     "properties": {"seq": {"type": "integer"}, "reason": {"type": "string"}}}]},
        "head_hash": {"type": "string"}, "root_hash": {"type": ["string", "null"]},
        "checkpoints_verified": {"type": "integer"}, "hmac_checked": {"type": "boolean"},
    },
}

HEALTH = {"type": "object", "required": ["status", "store", "scheduler", "verifier"],
          "properties": {"status": {"type": "string"}, "store": {"type": "string"},
                         "scheduler": {"type": "string"}, "verifier": {"type": "string", "enum": ["wasm", "python"]},
                         "version": {"type": "string"}}}

POLICY_ENVELOPE = {
    "type": "object", "required": ["payload", "signatures"],
    "properties": {"payload": {"type": "object"},
                   "signatures": {"type": "array", "items": {"type": "object"}}},
}

POLICY_VIEW = {"type": "object", "required": ["policy_id", "version", "digest", "payload"],
               "properties": {"policy_id": {"type": "string"}, "version": {"type": "integer"},
                              "digest": {"type": "string"}, "payload": {"type": "object"}}}

HEX32 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
AUDIT_CHECKPOINT = {
    "type": "object", "required": ["origin", "size", "root_hash", "note", "verifier_key"],
    "properties": {"origin": {"type": "string"}, "size": {"type": "integer", "minimum": 0},
                   "root_hash": {"oneOf": [HEX32, {"type": "null"}]},
                   "note": {"type": ["string", "null"]}, "verifier_key": {"type": "string"}},
}
AUDIT_PUBLIC_KEY = {
    "type": "object", "required": ["origin", "verifier_key", "previous"],
    "properties": {"origin": {"type": "string"}, "verifier_key": {"type": "string"},
                   "previous": {"type": "array", "items": {"type": "string"}}},
}
INCLUSION_PROOF = {
    "type": "object", "required": ["seq", "leaf_index", "tree_size", "leaf_hash", "proof", "root_hash"],
    "properties": {"seq": {"type": "integer"}, "leaf_index": {"type": "integer"},
                   "tree_size": {"type": "integer"}, "entry_hash": HEX32, "leaf_hash": HEX32,
                   "proof": {"type": "array", "items": HEX32}, "root_hash": HEX32},
}
CONSISTENCY_PROOF = {
    "type": "object", "required": ["from", "to", "proof", "from_root", "to_root"],
    "properties": {"from": {"type": "integer"}, "to": {"type": "integer"},
                   "proof": {"type": "array", "items": HEX32}, "from_root": HEX32, "to_root": HEX32},
}

PROBLEM = {
    "type": "object", "required": ["type", "title", "status", "detail"],
    "properties": {"type": {"type": "string"}, "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"},
                   "instance": {"type": "string"}, "trace_id": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"],
                                                          "properties": {"field": {"type": "string"},
                                                                         "message": {"type": "string"}}}}},
}


#: Every named schema: request bodies, responses and the problem document. Other
#: route modules add theirs with :func:`register`; the OpenAPI document lists them all.
REGISTRY: dict[str, dict[str, Any]] = {}


def register(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    if REGISTRY.get(name, schema) is not schema:
        raise ValueError(f"schema {name!r} is registered twice")
    REGISTRY[name] = schema
    return schema


for _name in ("ID", "APPROVE_REQUEST", "INTERCEPT_REQUEST", "RISK", "ACTION", "ACTION_LIST",
              "AUDIT_ENTRY", "AUDIT_ENTRIES", "AUDIT_VERIFY", "HEALTH", "POLICY_ENVELOPE",
              "POLICY_VIEW", "PROBLEM", "AUDIT_CHECKPOINT", "AUDIT_PUBLIC_KEY", "INCLUSION_PROOF",
              "CONSISTENCY_PROOF"):
    register(_name, globals()[_name])


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(REGISTRY[name])


def _path(error: Any) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        parts.append(missing)
    elif error.validator == "additionalProperties" and "'" in error.message:
        parts.append(error.message.split("'")[1])
    return ".".join(p for p in parts if p) or "$"


def validate(schema_name: str, value: Any) -> Any:
    """Raise :class:`ValidationFailed` naming every offending field."""
    errors = sorted(_validator(schema_name).iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        fields = [FieldError(_path(e), e.message[:300]) for e in errors]
        raise ValidationFailed(f"{len(fields)} field(s) failed validation", errors=fields)
    return value
