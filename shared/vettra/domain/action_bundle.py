"""The action bundle: what an agent asks to do, validated and digested.

:func:`parse_bundle` reads the already-parsed JSON body of
``POST /api/actions/intercept`` (see docs/api.md, "Actions") and returns an
:class:`ActionBundle`, or raises one :class:`ValidationFailed` whose ``errors``
name every offending field by dotted path (RFC 9457 problem details, §3).

Three body shapes are accepted:

- the plain bundle (``framework`` absent or ``"plain"``, or any ``framework`` with a
  ``tool`` key, which labels a plain bundle with its origin): unknown keys refused;
- a raw framework tool call beside ``framework`` and the envelope fields
  (``session_id``, ``resource``, ``context``, ``timeout_s``);
- the same raw call under ``tool_call``, with the envelope fields beside it.

``args_digest`` is ``sha256:`` over the RFC 8785 canonical form of ``arguments``;
the credential released later is bound to it ("what was approved is what runs").
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from .canonical import DIGEST_PREFIX, MAX_DEPTH, MAX_SAFE_INTEGER, canonical_json
from .errors import FieldError, ValidationFailed
from .frameworks import (
    ADAPTERS,
    KNOWN_SERVICES,
    MAX_TOOL_LENGTH,
    TOOL_PATTERN,
    ToolCall,
    arguments_field,
    json_type,
    tool_problem,
)

__all__ = [
    "ActionBundle",
    "FRAMEWORKS",
    "KNOWN_SERVICES",
    "MAX_TOOL_LENGTH",
    "TOOL_PATTERN",
    "parse_bundle",
]

PLAIN = "plain"
FRAMEWORKS = (PLAIN, "openai", "anthropic", "langchain", "mcp")
#: Key under which a raw framework tool call may be nested.
RAW_CALL_KEY = "tool_call"
ENVELOPE_FIELDS = ("session_id", "resource", "context", "timeout_s")
PLAIN_FIELDS = ("tool", "arguments", "framework") + ENVELOPE_FIELDS

MAX_ARGUMENTS_BYTES = 64 * 1024
MAX_CONTEXT_BYTES = 8 * 1024
MAX_RESOURCE_LENGTH = 512
MIN_TIMEOUT_S = 1
MAX_TIMEOUT_S = 86_400
SESSION_ID_PATTERN = re.compile(r"ses_[A-Za-z0-9_-]{1,64}")
NUL = "\x00"
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class ActionBundle:
    """A validated tool call in Vettra's own terms (docs/api.md's action bundle)."""

    tool: str
    service: str
    operation: str
    arguments: dict[str, Any]
    framework: str
    session_id: str | None
    resource: str | None
    context: dict[str, Any]
    timeout_s: int | None
    call_id: str | None  # the framework's tool-call id, when the raw shape had one
    args_digest: str  # "sha256:<hex>" of the RFC 8785 canonical form of ``arguments``
    # The MCP server the agent claims to call (framework "mcp" only): a claim, not a proof.
    server: str | None = None
    # That server's MCP tool hints (frameworks.MCP_HINTS), claims too: they only raise risk.
    annotations: dict[str, bool] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form with docs/api.md's field names (a deep copy)."""
        return asdict(self)


def _prefixed(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return prefix if path == "$" else f"{prefix}.{path}"


def _json_value_problems(value: Any, path: str, depth: int = 0) -> list[FieldError]:
    """What stops ``value`` from being canonical JSON (types, NUL, range, depth)."""
    if depth > MAX_DEPTH:
        return [FieldError(path, f"nested deeper than {MAX_DEPTH} levels")]
    if isinstance(value, str):
        if NUL in value:
            return [FieldError(path, "must not contain NUL (\\u0000)")]
        if _SURROGATE.search(value):
            return [FieldError(path, "holds a lone UTF-16 surrogate")]
        return []
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            return [FieldError(path, "integer outside the exact range ±(2^53-1)")]
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [FieldError(path, "number is not finite")]
    if isinstance(value, list):
        return [
            e
            for i, item in enumerate(value)
            for e in _json_value_problems(item, f"{path}[{i}]", depth + 1)
        ]
    if isinstance(value, dict):
        problems = []
        for key, item in value.items():
            if not isinstance(key, str) or NUL in key or _SURROGATE.search(key):
                problems.append(FieldError(path, f"key {key!r} is not a valid JSON string"))
                continue
            problems.extend(_json_value_problems(item, f"{path}.{key}", depth + 1))
        return problems
    return [FieldError(path, f"expected a JSON value, found {json_type(value)}")]


def _check_object(
    body: dict[str, Any], name: str, limit: int, errors: list[FieldError]
) -> tuple[dict[str, Any], bytes] | None:
    """A free-form JSON object field within ``limit`` canonical bytes: ``(value, canonical)``."""
    value = body[name]
    if not isinstance(value, dict):
        errors.append(FieldError(name, f"expected object, found {json_type(value)}"))
        return None
    problems = _json_value_problems(value, name)
    if problems:
        errors.extend(problems)
        return None
    canonical = canonical_json(value)
    if len(canonical) > limit:
        errors.append(
            FieldError(
                name, f"canonical form must be at most {limit} bytes, found {len(canonical)}"
            )
        )
        return None
    return value, canonical


def _check_string(body: dict[str, Any], name: str, errors: list[FieldError]) -> str | None:
    value = body[name]
    if not isinstance(value, str):
        errors.append(FieldError(name, f"expected string, found {json_type(value)}"))
        return None
    if NUL in value:
        errors.append(FieldError(name, "must not contain NUL (\\u0000)"))
        return None
    return value


def _check_envelope(body: dict[str, Any], errors: list[FieldError]) -> dict[str, Any]:
    """Validate ``session_id``, ``resource``, ``context`` and ``timeout_s`` if present."""
    out: dict[str, Any] = {"session_id": None, "resource": None, "context": {}, "timeout_s": None}
    if "session_id" in body:
        value = _check_string(body, "session_id", errors)
        if value is not None and not SESSION_ID_PATTERN.fullmatch(value):
            errors.append(
                FieldError(
                    "session_id",
                    "must look like 'ses_' followed by 1 to 64 "
                    f"of A-Z a-z 0-9 _ -; found {value!r}",
                )
            )
        elif value is not None:
            out["session_id"] = value
    if "resource" in body:
        value = _check_string(body, "resource", errors)
        if value is not None and len(value) > MAX_RESOURCE_LENGTH:
            errors.append(
                FieldError(
                    "resource",
                    f"must be at most {MAX_RESOURCE_LENGTH} characters, found {len(value)}",
                )
            )
        elif value is not None:
            out["resource"] = value
    if "context" in body:
        checked = _check_object(body, "context", MAX_CONTEXT_BYTES, errors)
        out["context"] = checked[0] if checked else None
    if "timeout_s" in body:
        value = body["timeout_s"]
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(FieldError("timeout_s", f"expected integer, found {json_type(value)}"))
        elif not MIN_TIMEOUT_S <= value <= MAX_TIMEOUT_S:
            errors.append(
                FieldError(
                    "timeout_s",
                    f"must be between {MIN_TIMEOUT_S} and {MAX_TIMEOUT_S} seconds, found {value}",
                )
            )
        else:
            out["timeout_s"] = value
    return out


def _check_framework(body: dict[str, Any], errors: list[FieldError]) -> str | None:
    value = body.get("framework", PLAIN)
    if not isinstance(value, str):
        errors.append(FieldError("framework", f"expected string, found {json_type(value)}"))
        return None
    if value not in FRAMEWORKS:
        errors.append(
            FieldError(
                "framework",
                f"unknown framework {value!r}; expected one of " + ", ".join(FRAMEWORKS),
            )
        )
        return None
    return value


def _plain_call(body: dict[str, Any], errors: list[FieldError]) -> tuple[ToolCall, bytes] | None:
    """The ``tool`` and ``arguments`` of a plain bundle; unknown keys refused."""
    for key in body:
        if key not in PLAIN_FIELDS:
            errors.append(
                FieldError(str(key), "unknown field; allowed: " + ", ".join(PLAIN_FIELDS))
            )
    tool = None
    if "tool" not in body:
        errors.append(FieldError("tool", "required"))
    else:
        tool = _check_string(body, "tool", errors)
        problem = tool_problem(tool) if tool is not None else None
        if problem:
            errors.append(FieldError("tool", problem))
            tool = None
    if "arguments" not in body:
        errors.append(FieldError("arguments", "required"))
        return None
    checked = _check_object(body, "arguments", MAX_ARGUMENTS_BYTES, errors)
    return (ToolCall(tool, checked[0], None), checked[1]) if tool and checked else None


def _raw_call(
    body: dict[str, Any], framework: str, errors: list[FieldError]
) -> tuple[ToolCall, bytes] | None:
    """Run the framework's adapter on the raw call (nested or beside the envelope)."""
    if RAW_CALL_KEY in body:
        raw, prefix = body[RAW_CALL_KEY], RAW_CALL_KEY
        allowed = (RAW_CALL_KEY, "framework") + ENVELOPE_FIELDS
        for key in body:
            if key not in allowed:
                errors.append(
                    FieldError(
                        str(key), "unknown field beside 'tool_call'; allowed: " + ", ".join(allowed)
                    )
                )
    else:
        raw = {k: v for k, v in body.items() if k != "framework" and k not in ENVELOPE_FIELDS}
        prefix = ""
    try:
        call = ADAPTERS[framework](raw)
    except ValidationFailed as exc:
        errors.extend(FieldError(_prefixed(prefix, e.field), e.message) for e in exc.errors)
        return None
    args_path = _prefixed(prefix, arguments_field(framework, raw))
    problems = _json_value_problems(call.arguments, args_path)
    if problems:
        errors.extend(problems)
        return None
    canonical = canonical_json(call.arguments)
    if len(canonical) > MAX_ARGUMENTS_BYTES:
        errors.append(
            FieldError(
                args_path,
                f"canonical form must be at most "
                f"{MAX_ARGUMENTS_BYTES} bytes, found {len(canonical)}",
            )
        )
        return None
    return call, canonical


def parse_bundle(body: Any) -> ActionBundle:
    """Validate an intercept body and return its :class:`ActionBundle`.

    Raises :class:`ValidationFailed` listing every problem found, never another error.
    """
    if not isinstance(body, dict):
        raise ValidationFailed(
            "the action bundle must be a JSON object",
            errors=[FieldError("$", f"expected object, found {json_type(body)}")],
        )
    errors: list[FieldError] = []
    framework = _check_framework(body, errors)
    if framework is None:  # unknown framework: still report the plain fields if present
        checked = _plain_call(body, errors) if "tool" in body else None
    elif framework == PLAIN or ("tool" in body and RAW_CALL_KEY not in body):
        checked = _plain_call(body, errors)
    else:
        checked = _raw_call(body, framework, errors)
    envelope = _check_envelope(body, errors)
    if errors or checked is None or framework is None:
        raise ValidationFailed(
            f"the action bundle has {len(errors)} invalid field(s)", errors=errors
        )
    call, canonical = checked
    service, operation = call.tool.split(".", 1)
    # The bundle owns a copy of what was checked: re-reading the canonical bytes copies
    # and normalises in one C-speed step (cheaper than deepcopy), and the digest is of
    # exactly those bytes.
    arguments = json.loads(canonical)
    return ActionBundle(
        tool=call.tool,
        service=service,
        operation=operation,
        arguments=arguments,
        framework=framework,
        session_id=envelope["session_id"],
        resource=envelope["resource"],
        context=copy.deepcopy(envelope["context"]),
        timeout_s=envelope["timeout_s"],
        call_id=call.call_id,
        server=call.server,
        annotations=dict(call.annotations) if call.annotations is not None else None,
        args_digest=DIGEST_PREFIX + hashlib.sha256(canonical).hexdigest(),
    )
