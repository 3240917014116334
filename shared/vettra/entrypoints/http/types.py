"""Framework-neutral HTTP request and response: the ASGI adapter builds a
:class:`Request` and sends a :class:`Response`; handlers see only these."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...domain.canonical import loads_strict
from ...domain.errors import (
    BadQuery,
    MalformedRequest,
    PayloadTooLarge,
    UnsupportedMediaType,
    VettraError,
)

MAX_BODY_BYTES = 256 * 1024
JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
_UNPARSED = object()
_COMMON_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


@dataclass
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    trace_id: str = ""
    path_params: dict[str, str] = field(default_factory=dict)
    principal: Any = None  # set once authenticated (for log lines)
    _parsed: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._parsed = _UNPARSED

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """The body as strict JSON (RFC 8259 without NaN, duplicates or lone surrogates);
        parsed once, later calls return the same value."""
        if self._parsed is not _UNPARSED:
            return self._parsed
        self._parsed = self._parse_json()
        return self._parsed

    def _parse_json(self) -> Any:
        if len(self.body) > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"body is {len(self.body)} bytes; the limit is {MAX_BODY_BYTES}")
        ctype = (self.header("content-type") or "").split(";")[0].strip().lower()
        if ctype != JSON and not ctype.endswith("+json"):
            raise UnsupportedMediaType(
                f"expected Content-Type application/json, found {ctype or 'none'}"
            )
        if not self.body.strip():
            raise MalformedRequest("the request body is empty; expected a JSON object")
        return loads_strict(self.body)

    def query_value(self, name: str) -> str | None:
        values = self.query.get(name)
        if not values:
            return None
        if len(values) > 1:
            raise BadQuery(f"query parameter {name!r} given {len(values)} times; expected once")
        return values[0]

    def query_int(self, name: str, *, default: int | None, low: int, high: int) -> int | None:
        raw = self.query_value(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw, 10)
        except ValueError:
            raise BadQuery(
                f"query parameter {name!r}: expected an integer, found {raw[:32]!r}"
            ) from None
        if not low <= value <= high:
            raise BadQuery(f"query parameter {name!r}: expected {low}..{high}, found {value}")
        return value


@dataclass
class Response:
    status: int
    body: bytes | AsyncIterator[bytes] = b""  # an async iterator is streamed (text/event-stream)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls, value: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        import json as _json

        data = _json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(status, data, {**_COMMON_HEADERS, "Content-Type": JSON, **(headers or {})})

    @classmethod
    def problem(cls, error: VettraError, *, instance: str = "", trace_id: str = "") -> Response:
        import json as _json

        doc = error.problem()
        if instance:
            doc["instance"] = instance
        if trace_id:
            doc["trace_id"] = trace_id
        data = _json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        return cls(
            error.status, data, {**_COMMON_HEADERS, "Content-Type": PROBLEM_JSON, **error.headers}
        )
