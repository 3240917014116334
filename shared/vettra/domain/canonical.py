"""Canonical JSON (RFC 8785, JSON Canonicalization Scheme) and strict parsing.

Everything Vettra hashes or signs (argument digests, audit entries, policy
bundles) goes through :func:`canonical_json`, so the Python reference, the Rust
verifier and any outside checker agree byte for byte.

RFC 8785 points (the ``rfc8785`` library emits them; the standard library's
encoder is used where its output is provably the same):
- §3.2.2.2 strings: only ``"``, ``\\`` and control characters are escaped, with
  the short forms ``\\b \\f \\n \\r \\t`` and lowercase ``\\u00xx`` otherwise;
- §3.2.2.3 numbers: ECMAScript ``Number.prototype.toString`` form; integers are
  limited to the IEEE-754 exact range (±(2^53-1)) so every reader sees the same value;
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

import rfc8785

from .errors import FieldError, MalformedRequest

MAX_DEPTH = 32
MAX_SAFE_INTEGER = 2**53 - 1
DIGEST_PREFIX = "sha256:"

_SURROGATE = re.compile("[\ud800-\udfff]")


def _reference(value: Any) -> bytes:
    """RFC 8785 by the ``rfc8785`` library (Trail of Bits), its errors as ours.

    It is the reference emitter: ECMAScript number formatting (§3.2.2.3) and
    UTF-16 key order (§3.2.3) are its job, not hand-written code of ours.
    Integers beyond ±(2^53-1) and NaN/Infinity raise :class:`ValueError`, other
    types :class:`TypeError`; a lone surrogate, :class:`UnicodeEncodeError`.
    """
    try:
        try:
            return rfc8785.dumps(value)
        except rfc8785.IntegerDomainError:
            # An integer beyond ±(2^53-1) that is exactly a double is that double
            # (how another parser reads canonical "9007199254740992" back).
            return rfc8785.dumps(_exact_doubles(value))
    except rfc8785.CanonicalizationError as exc:
        if isinstance(exc, (rfc8785.IntegerDomainError, rfc8785.FloatDomainError)):
            raise ValueError(str(exc)) from exc
        raise TypeError(str(exc)) from exc


def _exact_doubles(value: Any) -> Any:
    """``value`` with every integer beyond the safe range that is written exactly as
    a double prints (RFC 8785 Appendix B: 1e20 is "100000000000000000000") replaced
    by that double; other integers stay, and the emitter refuses them."""
    kind = type(value)
    if kind is int and abs(value) > MAX_SAFE_INTEGER:
        as_float = float(value) if abs(value) < 2**1024 else math.inf
        if math.isfinite(as_float) and rfc8785.dumps(as_float).decode() == str(value):
            return as_float
        return value
    if kind is dict:
        return {key: _exact_doubles(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_exact_doubles(item) for item in value]
    return value


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
        safe: bool = -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER  # value is an int here
        return safe
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
    """Return the RFC 8785 canonical UTF-8 bytes of ``value``.

    Values the standard library's C encoder already writes canonically (see
    :func:`_plain`) take that path, about 4x faster than the reference emitter
    (``bench/canonical.py``); everything else goes to the ``rfc8785`` library.
    """
    if _plain(value):
        return json.dumps(
            value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
    return _reference(value)


def canonical_json_slow(value: Any) -> bytes:
    """The reference emitter alone (tests compare the fast path against it)."""
    return _reference(value)


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
        raise MalformedRequest(
            f"JSON nested deeper than {MAX_DEPTH} levels",
            errors=[FieldError(path or "$", "too deeply nested")],
        )
    if isinstance(value, float):
        if not math.isfinite(value):
            raise MalformedRequest(
                "number overflows a 64-bit float",
                errors=[FieldError(path or "$", "number out of range")],
            )
    elif isinstance(value, str):
        if _SURROGATE.search(value):
            raise MalformedRequest(
                "string holds a lone UTF-16 surrogate",
                errors=[FieldError(path or "$", "lone surrogate")],
            )
    elif isinstance(value, bool) or value is None:
        return
    elif isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise MalformedRequest(
                "integer outside the exact range ±(2^53-1)",
                errors=[FieldError(path or "$", "integer too large")],
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            if _SURROGATE.search(key):
                raise MalformedRequest(
                    "object key holds a lone UTF-16 surrogate",
                    errors=[FieldError(path or "$", "lone surrogate in key")],
                )
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
        if math.isfinite(as_float) and _reference(as_float).decode() == str(value):
            return as_float
    return value


def loads_strict(data: bytes | str) -> Any:
    """Parse untrusted JSON, refusing anything that would not canonicalise."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as exc:
        raise MalformedRequest(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from exc
    try:
        value = json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_pairs, parse_int=_parse_int
        )
    except RecursionError as exc:
        raise MalformedRequest(f"JSON nested deeper than {MAX_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError is a ValueError
        raise MalformedRequest(f"body is not valid JSON: {exc}") from exc
    _check(value, 0, "")
    return value
