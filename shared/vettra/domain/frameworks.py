"""Framework adapters: raw tool-call shapes to Vettra's ``<service>.<operation>`` form.

Each adapter is a pure function from one framework's raw tool call to a
:class:`ToolCall` ``(tool, arguments, call_id)``. Problems are raised as one
:class:`ValidationFailed` listing every offending field, with paths relative to
the raw shape (``function.arguments``, ``input``, ``args``…).

Shapes accepted (copied from each framework's documentation):

- OpenAI Chat Completions ``message.tool_calls[i]``:
  ``{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}``;
  OpenAI Responses API output item:
  ``{"type": "function_call", "call_id", "name", "arguments": "<JSON text>"}``.
- Anthropic Messages ``tool_use`` content block: ``{"type": "tool_use", "id", "name", "input"}``.
- LangChain ``ToolCall``: ``{"name", "args", "id"?, "type"?: "tool_call"}``.
- MCP ``tools/call`` request params: ``{"name", "arguments"?, "_meta"?}``, plus two
  optional Vettra additions: ``"server"`` naming the service the MCP server fronts, and
  ``"annotations"``, the tool's ``ToolAnnotations`` from ``tools/list`` (MCP spec,
  server/tools "Tool annotations"), whose hints may raise the risk score.

Keys a framework may add over time (``index``, ``status``, ``cache_control``…) are
ignored. Tool-name mapping is described in :func:`map_tool_name` and docs/action-bundle.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from .canonical import loads_strict
from .errors import FieldError, MalformedRequest, ValidationFailed

#: Services whose ``<service>_<operation>`` function names map to ``<service>.<operation>``.
#: The catalogue may extend this list; MCP's ``server`` adds one per call.
KNOWN_SERVICES: tuple[str, ...] = (
    "gmail",
    "calendar",
    "gcal",
    "drive",
    "gdrive",
    "github",
    "slack",
    "stripe",
    "user",
    "iam",
)
#: Service used when a function name names no known service.
FALLBACK_SERVICE = "custom"
#: ``a__b`` spells ``a.b`` in frameworks that forbid dots in function names.
NAMESPACE_SEPARATOR = "__"
#: Claude Code / Agent SDK name MCP tools ``mcp__<server>__<tool>``; the prefix is dropped.
MCP_NAME_PREFIX = "mcp"

MAX_TOOL_LENGTH = 128
SERVICE_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}")
#: Exactly one service and one operation: with a single ``.`` no glob ``*`` can span a
#: service/operation boundary it was not written for (``github.get_*`` must never match
#: ``github.get_x.delete_repository``), whether the glob is the catalogue's or a policy's.
TOOL_PATTERN = re.compile(r"[a-z][a-z0-9_-]{0,62}\.[a-z][a-z0-9_-]{0,126}")

#: MCP ``ToolAnnotations`` hints kept for risk scoring (booleans; ``title`` and keys the
#: spec adds later are ignored). They are the MCP server's claim: they can only raise risk.
MCP_HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")

OPENAI_CHAT_TYPE = "function"
OPENAI_RESPONSES_TYPE = "function_call"
ANTHROPIC_TYPE = "tool_use"
LANGCHAIN_TYPE = "tool_call"

#: Keys that name a tool or carry its arguments in one framework's shape or another's.
#: A raw call holding any of them beyond its own shape's is ambiguous (one name could be
#: scored while another runs), so it is refused rather than guessed at.
IDENTITY_KEYS = frozenset(
    {"name", "function", "tool", "tool_name", "function_call", "arguments", "input", "args"}
)

_JSON_TYPE_NAMES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


class ToolCall(NamedTuple):
    """What an adapter extracts from a raw tool call.

    ``server`` is the MCP server the agent *claims* to be calling (``None`` elsewhere):
    nothing proves it, so it is a fact a policy may pin, never an identity. ``annotations``
    are that server's MCP tool hints (:data:`MCP_HINTS`), claims too.
    """

    tool: str
    arguments: dict[str, Any]
    call_id: str | None
    server: str | None = None
    annotations: dict[str, bool] | None = None


def json_type(value: Any) -> str:
    """JSON name of ``value``'s type, for "expected X, found Y" messages."""
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def tool_problem(tool: str) -> str | None:
    """Why ``tool`` is not a valid ``<service>.<operation>`` name, or None when it is."""
    if len(tool) > MAX_TOOL_LENGTH:
        return f"must be at most {MAX_TOOL_LENGTH} characters, found {len(tool)}"
    if TOOL_PATTERN.fullmatch(tool):
        return None
    if TOOL_PATTERN.fullmatch(tool.lower()):
        return f"must be lowercase; found {tool!r} (did you mean {tool.lower()!r}?)"
    if tool.count(".") > 1:
        service, _, operation = tool.partition(".")
        hint = service + "." + operation.replace(".", "_")
        return (
            "must name exactly one service and one operation (one '.'), found "
            f"{tool.count('.')} dots in {tool!r} (did you mean {hint!r}?)"
        )
    return (
        "must be '<service>.<operation>': lowercase ASCII letters, digits, '_' and '-', "
        f"each part starting with a letter; found {tool!r}"
    )


def map_tool_name(name: str, services: tuple[str, ...] = KNOWN_SERVICES) -> str:
    """Map a framework function name to ``<service>.<operation>`` (lowercased).

    1. a name already holding ``.`` is kept;
    2. ``a__b`` becomes ``a.b`` (a leading ``mcp__`` segment is dropped first);
    3. ``<service>_<rest>`` for a service in ``services`` becomes ``<service>.<rest>``;
    4. anything else becomes ``custom.<name>``.
    The result is not validated here; see :func:`tool_problem`.
    """
    lowered = name.lower()
    if "." in lowered:
        return lowered
    if NAMESPACE_SEPARATOR in lowered:
        parts = lowered.split(NAMESPACE_SEPARATOR)
        if parts[0] == MCP_NAME_PREFIX and len(parts) > 2:
            parts = parts[1:]
        return parts[0] + "." + ".".join(parts[1:])
    for service in sorted(services, key=len, reverse=True):
        if lowered.startswith(service + "_") and len(lowered) > len(service) + 1:
            return service + "." + lowered[len(service) + 1 :]
    return FALLBACK_SERVICE + "." + lowered


class _Fields:
    """Collects field errors while an adapter reads a raw shape."""

    def __init__(self, raw: Any, framework: str) -> None:
        if not isinstance(raw, dict):
            raise ValidationFailed(
                f"invalid {framework} tool call",
                errors=[FieldError("$", f"expected object, found {json_type(raw)}")],
            )
        self.errors: list[FieldError] = []
        self.raw: dict[str, Any] = raw
        self.framework = framework

    def one_identity(
        self, own: frozenset[str] | set[str], obj: dict[str, Any] | None = None, prefix: str = ""
    ) -> None:
        """Refuse keys that name the tool (or its arguments) the way another shape does."""
        source = self.raw if obj is None else obj
        for key in sorted(IDENTITY_KEYS & source.keys() - own):
            self.add(
                prefix + key,
                f"names the tool or its arguments a second way; a "
                f"{self.framework} call of this shape carries only "
                f"{', '.join(sorted(own))}",
            )

    def add(self, path: str, message: str) -> None:
        self.errors.append(FieldError(path or "$", message))

    def get(
        self,
        path: str,
        kind: type,
        *,
        required: bool,
        obj: dict[str, Any] | None = None,
        const: str | None = None,
        nullable: bool = False,
    ) -> Any:
        """Read ``path`` (last segment looked up in ``obj``), checking type and value."""
        source = self.raw if obj is None else obj
        key = path.rsplit(".", 1)[-1]
        if key not in source or (nullable and source[key] is None):
            if required:
                self.add(path, "required")
            return None
        value = source[key]
        if not isinstance(value, kind) or isinstance(value, bool):
            self.add(path, f"expected {_JSON_TYPE_NAMES[kind]}, found {json_type(value)}")
            return None
        if isinstance(value, str) and "\x00" in value:
            self.add(path, "must not contain NUL (\\u0000)")
            return None
        if const is not None and value != const:
            self.add(path, f"expected {const!r}, found {value!r}")
            return None
        return value

    def tool(
        self,
        path: str,
        name: str | None,
        services: tuple[str, ...] = KNOWN_SERVICES,
        server: str | None = None,
    ) -> str | None:
        """Map the raw function ``name`` to a valid tool, or record why it cannot be."""
        if name is None:
            return None
        if not name:
            self.add(path, "must not be empty")
            return None
        if server is not None and "." not in name and NAMESPACE_SEPARATOR not in name:
            tool = server + "." + name.lower().removeprefix(server + "_")
        else:
            tool = map_tool_name(name, services)
        problem = tool_problem(tool)
        if problem:
            self.add(path, f"maps to tool {tool!r}, which {problem}")
            return None
        if server is not None and tool.partition(".")[0] != server:
            # the name carries its own service: two claims of who runs the call
            self.add(
                path,
                f"maps to tool {tool!r} of service {tool.partition('.')[0]!r}, "
                f"but server names {server!r}; name one service",
            )
            return None
        return tool

    def done(
        self,
        tool: str | None,
        arguments: Any,
        call_id: str | None,
        server: str | None = None,
        annotations: dict[str, bool] | None = None,
    ) -> ToolCall:
        """The extracted call, or every collected problem at once."""
        if self.errors or tool is None or not isinstance(arguments, dict):
            raise ValidationFailed(f"invalid {self.framework} tool call", errors=self.errors)
        return ToolCall(tool, arguments, call_id, server, annotations)


def _json_arguments(fields: _Fields, path: str, text: str | None) -> dict[str, Any] | None:
    """Parse a JSON-text ``arguments`` string (OpenAI); ``""`` means no arguments."""
    if text is None:
        return None
    if not text.strip():
        return {}
    try:
        value = loads_strict(text)
    except MalformedRequest as exc:
        fields.add(path, exc.detail.removeprefix("body ").replace("JSON:", "JSON text:", 1))
        return None
    if not isinstance(value, dict):
        fields.add(path, f"expected JSON text of an object, found {json_type(value)}")
        return None
    return value


def from_openai(raw: Any) -> ToolCall:
    """OpenAI Chat Completions ``tool_calls[i]`` or a Responses API ``function_call`` item."""
    fields = _Fields(raw, "openai")
    raw = fields.raw
    if raw.get("type") == OPENAI_RESPONSES_TYPE or ("function" not in raw and "name" in raw):
        fields.one_identity({"name", "arguments"})
        fields.get("type", str, required=False, const=OPENAI_RESPONSES_TYPE)
        call_id = fields.get("call_id", str, required=False)
        fields.get("id", str, required=False)
        tool = fields.tool("name", fields.get("name", str, required=True))
        arguments = _json_arguments(
            fields, "arguments", fields.get("arguments", str, required=True)
        )
        return fields.done(tool, arguments, call_id)
    fields.one_identity({"function"})
    fields.get("type", str, required=False, const=OPENAI_CHAT_TYPE)
    call_id = fields.get("id", str, required=False)
    function = fields.get("function", dict, required=True)
    tool = arguments = None
    if function is not None:
        fields.one_identity({"name", "arguments"}, function, "function.")
        name = fields.get("function.name", str, required=True, obj=function)
        tool = fields.tool("function.name", name)
        text = fields.get("function.arguments", str, required=True, obj=function)
        arguments = _json_arguments(fields, "function.arguments", text)
    return fields.done(tool, arguments, call_id)


def from_anthropic(raw: Any) -> ToolCall:
    """Anthropic Messages API ``tool_use`` content block."""
    fields = _Fields(raw, "anthropic")
    fields.one_identity({"name", "input"})
    fields.get("type", str, required=False, const=ANTHROPIC_TYPE)
    call_id = fields.get("id", str, required=False)
    tool = fields.tool("name", fields.get("name", str, required=True))
    arguments = fields.get("input", dict, required=True)
    return fields.done(tool, arguments, call_id)


def from_langchain(raw: Any) -> ToolCall:
    """LangChain ``ToolCall`` (``AIMessage.tool_calls[i]``); ``id`` may be null."""
    fields = _Fields(raw, "langchain")
    fields.one_identity({"name", "args"})
    fields.get("type", str, required=False, const=LANGCHAIN_TYPE)
    call_id = fields.get("id", str, required=False, nullable=True)
    tool = fields.tool("name", fields.get("name", str, required=True))
    arguments = fields.get("args", dict, required=True)
    return fields.done(tool, arguments, call_id)


def _mcp_hints(fields: _Fields) -> dict[str, bool] | None:
    """The boolean hints of an MCP ``annotations`` object (``None`` when absent)."""
    annotations = fields.get("annotations", dict, required=False, nullable=True)
    if annotations is None:
        return None
    hints: dict[str, bool] = {}
    for key in MCP_HINTS:
        value = annotations.get(key)
        if isinstance(value, bool):
            hints[key] = value
        elif value is not None:
            fields.add(f"annotations.{key}", f"expected boolean, found {json_type(value)}")
    return hints


def from_mcp(raw: Any) -> ToolCall:
    """MCP ``tools/call`` params; ``server`` and ``annotations`` are Vettra's additions.

    ``_meta`` is MCP transport metadata (progress tokens): checked to be an object,
    never part of the arguments or their digest. MCP params carry no call id.
    ``annotations`` is the tool's ``ToolAnnotations`` as ``tools/list`` gave it (what
    ``vettra mcp-proxy`` sends); only its boolean hints are kept, not digested.
    """
    fields = _Fields(raw, "mcp")
    fields.one_identity({"name", "arguments"})
    server = fields.get("server", str, required=False)
    if server is not None:
        server = server.lower()
        if not SERVICE_PATTERN.fullmatch(server):
            fields.add(
                "server",
                "must be a service name: a lowercase letter, then up to "
                f"62 letters, digits, '_' or '-'; found {server!r}",
            )
            server = None
    services = KNOWN_SERVICES + ((server,) if server else ())
    tool = fields.tool("name", fields.get("name", str, required=True), services, server)
    arguments = fields.get("arguments", dict, required=False, nullable=True)
    fields.get("_meta", dict, required=False, nullable=True)
    hints = _mcp_hints(fields)
    return fields.done(tool, {} if arguments is None else arguments, None, server, hints)


def arguments_field(framework: str, raw: Any) -> str:
    """Path of the arguments inside ``raw``, for errors found after adaptation (size, NUL)."""
    if framework == "openai" and isinstance(raw, dict) and "function" in raw:
        return "function.arguments"
    return _ARGUMENTS_FIELDS.get(framework, "arguments")


_ARGUMENTS_FIELDS = {"anthropic": "input", "langchain": "args"}

ADAPTERS: dict[str, Callable[[Any], ToolCall]] = {
    "openai": from_openai,
    "anthropic": from_anthropic,
    "langchain": from_langchain,
    "mcp": from_mcp,
}
