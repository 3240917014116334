"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme) and strict parsing.

Everything Vettra hashes or signs (argument digests, audit entries, policy
bundles) goes through :func:`canonical_json`, so the Python reference, the Rust
verifier and any outside checker agree byte for byte.

RFC 8785 points honoured here:
- §3.2.2.2 strings: only ``"``, ``\\`` and control characters are escaped, with
  the short forms ``\\b \\f \\n \\r \\t`` and lowercase ``\\u00xx`` otherwise;
- §3.2.2.3 numbers: ECMAScript ``Number.prototype.toString`` form; integers are
  limited to the IEEE-754 exact range (±2^53) so every reader sees the same value;
- §3.2.3 object members sorted by their UTF-16 code units.

:func:`loads_strict` is the only JSON reader for untrusted input: it refuses
NaN/Infinity, duplicate keys, lone surrogates, numbers outside the exact range
and nesting deeper than :data:`MAX_DEPTH`, raising :class:`MalformedRequest`.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from .errors import FieldError, MalformedRequest

MAX_DEPTH = 32
MAX_SAFE_INTEGER = 2**53 - 1
DIGEST_PREFIX = "sha256:"

_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n",
            "\r": "\\r", "\t": "\\t"}
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group(0)
    return _ESCAPES.get(ch) or "\\u%04x" % ord(ch)


def _string(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, s) + '"'


def _number(n: int | float) -> str:
    if isinstance(n, bool):  # pragma: no cover - guarded by caller
        raise TypeError("bool is not a number")
    if isinstance(n, int):
        if abs(n) > MAX_SAFE_INTEGER and _number(float(n)) != str(n):
            raise ValueError(f"integer {n} is outside the exact range ±(2^53-1) "
                             "and is not how any double prints")
        return str(n)
    if not math.isfinite(n):
        raise ValueError("NaN and Infinity have no JSON form")
    if n == 0:
        return "0"
    if n.is_integer() and abs(n) <= MAX_SAFE_INTEGER:
        return str(int(n))
    # repr gives the shortest round-tripping digits; re-lay them out as ECMAScript does.
    mantissa, _, exp_text = repr(abs(n)).partition("e")
    int_part, _, frac_part = mantissa.partition(".")
    all_digits = int_part + frac_part
    lead = len(all_digits) - len(all_digits.lstrip("0"))
    digits = all_digits[lead:]
    # position of the decimal point, counted from the first significant digit
    point = len(int_part) + (int(exp_text) if exp_text else 0) - lead
    digits = digits.rstrip("0") or "0"
    k, n_exp = len(digits), point
    sign = "-" if n < 0 else ""
    if k <= n_exp <= 21:
        out = digits + "0" * (n_exp - k)
    elif 0 < n_exp <= 21:
        out = digits[:n_exp] + "." + digits[n_exp:]
    elif -6 < n_exp <= 0:
        out = "0." + "0" * (-n_exp) + digits
    else:
        e = n_exp - 1
        esign = "+" if e >= 0 else "-"
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + esign + str(abs(e))
    return sign + out


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _emit(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_string(value))
    elif isinstance(value, (int, float)):
        out.append(_number(value))
    elif isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise TypeError(f"object keys must be strings, found {type(key).__name__}")
        out.append("{")
        first = True
        for key in sorted(value, key=_utf16_key):
            if not first:
                out.append(",")
            first = False
            out.append(_string(key))
            out.append(":")
            _emit(value[key], out)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _emit(item, out)
        out.append("]")
    else:
        raise TypeError(f"cannot canonicalise {type(value).__name__}")


def _plain(value: Any, depth: int = 0) -> bool:
    """True when the C encoder's output is already canonical for ``value``.

    ``json.dumps(sort_keys=True, ensure_ascii=False)`` escapes exactly as §3.2.2.2
    does; it differs from RFC 8785 only for floats (``1e-07``, ``1.0``), for ints
    beyond 2^53, and for key order when a key holds a character above U+FFFF
    (code-point vs UTF-16 order). Everything Vettra hashes on the hot path is
    free of those, so checking is much cheaper than emitting in Python.
    """
    if depth > MAX_DEPTH:
        return False
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or (not key.isascii() and max(key) > "\uffff"):
                return False
            if not _plain(item, depth + 1):
                return False
        return True
    if kind is list or kind is tuple:
        return all(_plain(item, depth + 1) for item in value)
    return False


def canonical_json(value: Any) -> bytes:
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``."""
    if _plain(value):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False).encode("utf-8")
    out: list[str] = []
    _emit(value, out)
    return "".join(out).encode("utf-8")


def canonical_json_slow(value: Any) -> bytes:
    """The reference emitter alone (tests compare the fast path against it)."""
    out: list[str] = []
    _emit(value, out)
    return "".join(out).encode("utf-8")


def sha256_digest(value: Any) -> str:
    """``"sha256:<hex>"`` of the canonical form of ``value`` (the ``args_digest`` form)."""
    return DIGEST_PREFIX + hashlib.sha256(canonical_json(value)).hexdigest()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _check(value: Any, depth: int, path: str) -> None:
    if isinstance(value, (dict, list)) and depth >= MAX_DEPTH:
        raise MalformedRequest(f"JSON nested deeper than {MAX_DEPTH} levels",
                               errors=[FieldError(path or "$", "too deeply nested")])
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MalformedRequest("number overflows a 64-bit float",
                                   errors=[FieldError(path or "$", "number out of range")])
    elif isinstance(value, str):
        if _SURROGATE.search(value):
            raise MalformedRequest("string holds a lone UTF-16 surrogate",
                                   errors=[FieldError(path or "$", "lone surrogate")])
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise MalformedRequest("integer outside the exact range ±(2^53-1)",
                                   errors=[FieldError(path or "$", "integer too large")])
    elif isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                raise MalformedRequest("object key holds a lone UTF-16 surrogate",
                                       errors=[FieldError(path or "$", "lone surrogate in key")])
            _check(item, depth + 1, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, depth + 1, f"{path}[{i}]")


def _parse_int(text: str) -> int | float:
    value = int(text)
    if abs(value) > MAX_SAFE_INTEGER:
        # A large double is written as ECMAScript prints it, without a fraction
        # (RFC 8785 Appendix B: 1e20 -> "100000000000000000000"). Accept such text
        # as that double, so canonical output reads back; any other large integer
        # would be read differently by different parsers, and _check refuses it.
        as_float = float(value)
        if math.isfinite(as_float) and _number(as_float) == str(value):
            return as_float
    return value


def loads_strict(data: bytes | str) -> Any:
    """Parse untrusted JSON, refusing anything that would not canonicalise."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        value = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_pairs,
                           parse_int=_parse_int)
    except RecursionError as exc:
        raise MalformedRequest(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise MalformedRequest(f"body is not valid JSON: {exc}") from exc
    _check(value, 0, "")
    return value
