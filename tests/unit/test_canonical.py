"""RFC 8785 canonical JSON and strict parsing.

The vectors in tests/vectors/canonical/ are shared with the Rust verifier: each file
is ``{"desc", "input": <JSON text>, "want": <canonical text>}`` or ``"want_err": true``.
"""

from __future__ import annotations

import json
import random
import re
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.canonical import (
    MAX_DEPTH,
    MAX_SAFE_INTEGER,
    canonical_json,
    loads_strict,
    sha256_digest,
)
from vettra.domain.errors import MalformedRequest

from .vectors import vector_files

VECTORS = vector_files("canonical")

ECMA_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]*[1-9])?(e[+-][1-9][0-9]*)?")

# JSON values loads_strict accepts: safe integers, finite floats, no lone surrogates.
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=25,
)


def _vector_params() -> list:
    return [pytest.param(path, id=path.stem) for path in VECTORS]


def test_vector_corpus_is_present_and_well_formed():
    assert len(VECTORS) >= 60
    for path in VECTORS:
        vector = json.loads(path.read_text(encoding="utf-8"))
        assert set(vector) in ({"desc", "input", "want"}, {"desc", "input", "want_err"}), path
        assert isinstance(vector["input"], str) and vector["desc"]


@pytest.mark.parametrize("path", _vector_params())
def test_vector(path: Path):
    vector = json.loads(path.read_text(encoding="utf-8"))
    if vector.get("want_err"):
        # the refusal must come from the parser, not later from the serialiser
        with pytest.raises(MalformedRequest):
            loads_strict(vector["input"].encode("utf-8"))
    else:
        got = canonical_json(loads_strict(vector["input"].encode("utf-8")))
        assert got == vector["want"].encode("utf-8"), vector["desc"]


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b"\xc0\xaf",
        b'"\xe2\x82"',
        b"\xed\xa0\x80",
        b'{"a":"\x80"}',
        b"\xf8\x88\x80\x80\x80",
        b'"\xf4\x90\x80\x80"',
    ],
    ids=[
        "ff",
        "overlong-slash",
        "truncated",
        "encoded-surrogate",
        "bare-continuation",
        "five-byte",
        "above-u10ffff",
    ],
)
def test_invalid_utf8_is_malformed(data: bytes):
    with pytest.raises(MalformedRequest, match="UTF-8"):
        loads_strict(data)


def test_raw_lone_surrogate_in_python_text_is_malformed():
    with pytest.raises(MalformedRequest):
        loads_strict('"\ud800"')


def test_very_deep_nesting_is_malformed_not_recursion_error():
    with pytest.raises(MalformedRequest):
        loads_strict("[" * 100_000 + "]" * 100_000)


def test_huge_integer_text_is_malformed():
    with pytest.raises(MalformedRequest):
        loads_strict("9" * 5000)


def test_digest_form():
    assert sha256_digest({}) == (
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    )
    assert sha256_digest({"b": 1, "a": 2}) == sha256_digest({"a": 2, "b": 1})


@pytest.mark.parametrize("x", [2.0**53, 1e20, -1e21 + 2**20])
def test_large_integral_double_round_trips(x: float):
    assert loads_strict(canonical_json(x)) == x


@given(json_values)
def test_canonical_form_is_a_fixed_point(value):
    once = canonical_json(value)
    assert canonical_json(loads_strict(once)) == once
    assert canonical_json(json.loads(once)) == once


@given(json_values, st.randoms(use_true_random=False))
def test_input_key_order_never_matters(value, rnd: random.Random):
    def shuffled(v):
        if isinstance(v, dict):
            items = list(v.items())
            rnd.shuffle(items)
            return {k: shuffled(x) for k, x in items}
        if isinstance(v, list):
            return [shuffled(x) for x in v]
        return v

    other = shuffled(value)
    assert canonical_json(other) == canonical_json(value)
    text = json.dumps(other, indent=rnd.choice([None, 1, 4]), ensure_ascii=rnd.random() < 0.5)
    assert canonical_json(loads_strict(text)) == canonical_json(value)


def _shortest_digits(x: float) -> tuple[str, int]:
    """Fewest significant digits that read back as ``x`` (ECMAScript Number::toString step 5),
    nearest to ``x`` among those, ties to even; returns (digits, decimal exponent n)."""
    exact = Decimal(x)
    for precision in range(1, 18):
        mantissa, exponent = f"{x:.{precision - 1}e}".split("e")
        scale = int(exponent) - (precision - 1)
        rounded = int(mantissa.replace(".", ""))
        # at a power of two the round-trip interval is lopsided, so a neighbour may win
        fits = [
            m
            for m in (rounded - 1, rounded, rounded + 1)
            if len(str(m)) == precision and float(Decimal(m).scaleb(scale)) == x
        ]
        if fits:
            best = min(fits, key=lambda m: (abs(Decimal(m).scaleb(scale) - exact), m % 2))
            digits = str(best).rstrip("0")
            return digits, scale + precision
    raise AssertionError(f"no representation found for {x!r}")


def _ecmascript_number(x: float) -> str:
    """Reference for ECMAScript Number::toString, written independently of canonical.py."""
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    digits, n = _shortest_digits(abs(x))
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    tail = "." + digits[1:] if k > 1 else ""
    return sign + digits[0] + tail + "e" + ("+" if n - 1 >= 0 else "-") + str(abs(n - 1))


@pytest.mark.parametrize(
    "x, want",
    [
        (2.0**-24, "5.960464477539063e-8"),
        (2.0**-25, "2.9802322387695312e-8"),
        (2.0**70, "1.1805916207174113e+21"),
        (9007199254740993 * 4.0, "36028797018963970"),
        (5e-324, "5e-324"),
        (0.1, "0.1"),
        (-1.5, "-1.5"),
        (123e-20, "1.23e-18"),
    ],
)
def test_numbers_as_node_prints_them(x: float, want: str):
    """Expected strings printed by Node.js 20 (``String(x)``)."""
    assert canonical_json(x).decode() == want
    assert _ecmascript_number(x) == want


@given(st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=500)
def test_numbers_match_an_independent_ecmascript_reference(x: float):
    got = canonical_json(x).decode()
    assert got == _ecmascript_number(x)
    assert ECMA_NUMBER.fullmatch(got)
    assert float(got) == x or (x == 0 and got == "0")


@given(st.integers(min_value=-MAX_SAFE_INTEGER, max_value=MAX_SAFE_INTEGER))
def test_safe_integers_print_as_integers(n: int):
    assert canonical_json(n) == str(n).encode()
    assert canonical_json(float(n)) == str(n).encode()


@given(st.integers(min_value=MAX_SAFE_INTEGER + 1, max_value=10**40), st.booleans())
def test_unsafe_integers_are_refused_unless_printed_doubles(n: int, negative: bool):
    text = str(-n if negative else n)
    if canonical_json(float(text)) == text.encode():
        # exactly how ECMAScript prints some double: accepted as that double
        assert loads_strict(text) == float(text)
    else:
        with pytest.raises(MalformedRequest):
            loads_strict(text)


@given(st.binary(max_size=64))
@settings(max_examples=400)
def test_random_bytes_only_ever_raise_malformed_request(data: bytes):
    try:
        loads_strict(data)
    except MalformedRequest:
        pass


JSONISH = st.text(
    alphabet='{}[],:"\\ 0123456789.eE+-tfnrulasNIy\x00\ud800\u00e9\U0001f600', max_size=40
)


@given(JSONISH)
@settings(max_examples=600)
def test_jsonish_text_only_ever_raises_malformed_request(text: str):
    try:
        value = loads_strict(text)
    except MalformedRequest:
        return
    canonical_json(value)  # whatever loads_strict accepts must canonicalise


@given(st.integers(min_value=MAX_DEPTH + 1, max_value=MAX_DEPTH + 40))
def test_nesting_beyond_the_limit_with_content_is_refused(depth: int):
    with pytest.raises(MalformedRequest):
        loads_strict("[" * depth + "0" + "]" * depth)
