"""Policy rule conditions: validation and evaluation (the ``when`` of a rule).

A condition is ``{"all": [c, ...]}``, ``{"any": [c, ...]}``, ``{"not": c}`` or a
leaf ``{"field": "<path>", "<op>": operand}``. The language is deliberately small
so the Python reference and the Rust/WASM evaluator agree on every input:

- no regular expressions (a policy author must not be able to write a ReDoS);
- nesting depth and list sizes are bounded (:data:`MAX_DEPTH`, :data:`MAX_BRANCHES`);
- evaluation never raises: a missing field or a type mismatch makes a leaf false
  (``exists: false`` is the one leaf that is true for a missing field);
- numbers compare only with numbers, and a JSON boolean is not a number;
- JSON ``null`` counts as missing, as do the optional bundle fields left unset;
- the exact operators (``eq`` … ``glob``) compare one scalar as it is; the *text*
  operators (``text_glob``, ``text_in``, ``confusable_with``) see through types and
  spellings: they look at every string inside the value (lists, objects, their keys,
  JSON text inside strings) after Unicode folding (:mod:`vettra.domain.textfold`), so a
  deny rule cannot be dodged by rewrapping or respelling a value.

The semantics of each operator are written out in ``docs/policy.md``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from fnmatch import fnmatchcase, translate
from functools import lru_cache
from typing import Any, TypeGuard

from .errors import FieldError
from .patterns import MAX_PATTERN_LENGTH, is_glob_list
from .textfold import fold, skeleton, texts

MAX_DEPTH = 8
MAX_BRANCHES = 64  # entries in one all/any, and in one operand list
MAX_FIELD_SEGMENTS = 16  # dotted segments after arguments./context.
MAX_OPERAND_STRING = 1024

TOP_FIELDS = frozenset(
    {
        "resource",
        "framework",
        "session_id",
        "tool",
        "service",
        "operation",
        "risk.score",
        "risk.level",
        "risk.category",
        "server",
        "agent",
        "arguments",
        "context",
    }
)
NESTED_ROOTS = ("arguments", "context")

SCALAR_OPS = frozenset({"eq", "ne"})
NUMBER_OPS = frozenset({"gt", "gte", "lt", "lte"})
LIST_OPS = frozenset({"in", "not_in"})
TEXT_OPS = frozenset({"text_glob", "text_in", "confusable_with"})
OPS = (
    SCALAR_OPS
    | NUMBER_OPS
    | LIST_OPS
    | TEXT_OPS
    | {"contains", "exists", "glob", "count_gte", "domain_not_in"}
)
#: Modifier of a text leaf: only strings under a key matching one of these globs count.
KEYS_MODIFIER = "keys"
BRANCH_KEYS = frozenset({"all", "any", "not"})

# Characters that end an e-mail address inside a header-like string, e.g.
# '"Doe, J" <j@x.example>; k@y.example'. Splitting on a fixed set keeps
# address extraction linear (a regex would invite backtracking on big inputs).
_ADDRESS_SEPARATORS = frozenset(" \t\r\n,;<>\"'()[]")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

_MISSING = object()
_MATCHER_CACHE = 1024  # distinct text_glob operands across the active policies


# --------------------------------------------------------------------------- types


def is_number(value: Any) -> TypeGuard[int | float]:
    """JSON number: int or float, never bool (``True == 1`` in Python, not in JSON)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or is_number(value)


def json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON scalars of the same JSON type (1 == 1.0, but "1" != 1, true != 1)."""
    if is_number(a) and is_number(b):
        return a == b
    if isinstance(a, bool) and isinstance(b, bool):
        return a is b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    return False


def ascii_lower(text: str) -> str:
    """Lower-case A-Z only, so every implementation folds case identically."""
    return text.translate(_ASCII_LOWER)


def email_domains(value: Any) -> list[str]:
    """Domains of the addresses found in a string or list of strings.

    Any separator-delimited token holding ``@`` counts as an address; its domain
    is what follows the last ``@``, ASCII-lower-cased, trailing dots removed.
    Erring towards "this is an address" is the safe side for approval rules.
    """
    texts = (
        [value]
        if isinstance(value, str)
        else ([v for v in value if isinstance(v, str)] if isinstance(value, list) else [])
    )
    domains: list[str] = []
    for text in texts:
        token: list[str] = []
        for ch in text + " ":
            if ch in _ADDRESS_SEPARATORS:
                word = "".join(token)
                token.clear()
                if "@" in word:
                    domains.append(ascii_lower(word.rpartition("@")[2]).rstrip("."))
            else:
                token.append(ch)
    return domains


def count_items(value: Any) -> int | None:
    """Length of a list, or number of non-empty comma-separated items of a string."""
    if isinstance(value, list):
        return len(value)
    if isinstance(value, str):
        return sum(1 for part in value.split(",") if part.strip(" \t\r\n"))
    return None


# --------------------------------------------------------------------------- validation


def _valid_field(path: Any) -> bool:
    if not isinstance(path, str):
        return False
    if path in TOP_FIELDS:
        return True
    root, dot, rest = path.partition(".")
    if root not in NESTED_ROOTS or not dot:
        return False
    segments = rest.split(".")
    return len(segments) <= MAX_FIELD_SEGMENTS and all(segments)


def _check_operand(op: str, operand: Any, where: str, errors: list[FieldError]) -> None:
    def bad(message: str) -> None:
        errors.append(FieldError(where, message))

    if isinstance(operand, str) and len(operand) > MAX_OPERAND_STRING:
        bad(f"string longer than {MAX_OPERAND_STRING} characters")
    elif op in SCALAR_OPS or op == "contains":
        if not is_scalar(operand):
            bad(f"expected a string, number or boolean, found {type(operand).__name__}")
    elif op in NUMBER_OPS:
        if not is_number(operand):
            bad(f"expected a number, found {type(operand).__name__}")
    elif op == "count_gte":
        if not (isinstance(operand, int) and not isinstance(operand, bool) and operand >= 0):
            bad("expected a non-negative integer")
    elif op == "exists":
        if not isinstance(operand, bool):
            bad("expected true or false")
    elif op == "glob":
        if not isinstance(operand, str) or not 0 < len(operand) <= MAX_PATTERN_LENGTH:
            bad(f"expected a glob string of 1-{MAX_PATTERN_LENGTH} characters")
    elif op in TEXT_OPS:
        items = operand if isinstance(operand, list) else [operand]
        limit = MAX_PATTERN_LENGTH if op == "text_glob" else MAX_OPERAND_STRING
        if (op == "text_in" and not isinstance(operand, list)) or not 0 < len(
            items
        ) <= MAX_BRANCHES:
            bad(
                f"expected {'a list' if op == 'text_in' else 'a string or a list'} of 1-"
                f"{MAX_BRANCHES} strings"
            )
        elif not all(isinstance(v, str) and 0 < len(v) <= limit and fold(v) for v in items):
            bad(f"expected strings of 1-{limit} characters, not blank once folded")
    elif op in LIST_OPS or op == "domain_not_in":
        want_str = op == "domain_not_in"
        ok_item: Callable[[Any], bool] = (
            (lambda v: isinstance(v, str) and 0 < len(v) <= MAX_OPERAND_STRING)
            if want_str
            else is_scalar
        )
        if not isinstance(operand, list) or len(operand) > MAX_BRANCHES:
            bad(f"expected a list of at most {MAX_BRANCHES} items")
        elif not all(ok_item(v) for v in operand):
            bad(
                "expected non-empty domain strings"
                if want_str
                else "expected strings, numbers or booleans"
            )


def validate_condition(cond: Any, where: str, errors: list[FieldError], depth: int = 1) -> None:
    """Append a :class:`FieldError` for every problem in ``cond`` (paths like ``when.all[0].op``)."""
    if depth > MAX_DEPTH:
        errors.append(FieldError(where, f"conditions nest deeper than {MAX_DEPTH} levels"))
        return
    if not isinstance(cond, dict):
        errors.append(
            FieldError(where, f"expected a condition object, found {type(cond).__name__}")
        )
        return
    branch = BRANCH_KEYS & cond.keys()
    if branch:
        if len(cond) != 1:
            errors.append(FieldError(where, "all/any/not must be the only key of its object"))
            return
        key = next(iter(branch))
        if key == "not":
            validate_condition(cond["not"], f"{where}.not", errors, depth + 1)
            return
        items = cond[key]
        if not isinstance(items, list) or not 0 < len(items) <= MAX_BRANCHES:
            errors.append(
                FieldError(f"{where}.{key}", f"expected a list of 1-{MAX_BRANCHES} conditions")
            )
            return
        for i, item in enumerate(items):
            validate_condition(item, f"{where}.{key}[{i}]", errors, depth + 1)
        return
    if "field" not in cond:
        errors.append(FieldError(f"{where}.field", "a leaf condition needs a field"))
    elif not _valid_field(cond["field"]):
        errors.append(
            FieldError(
                f"{where}.field",
                f"unknown field {cond['field']!r}; expected arguments.<path>, "
                "context.<path> or one of " + ", ".join(sorted(TOP_FIELDS)),
            )
        )
    ops = [k for k in cond if k not in ("field", KEYS_MODIFIER)]
    unknown = [k for k in ops if k not in OPS]
    for key in unknown:
        errors.append(FieldError(f"{where}.{key}", f"unknown operator {key!r}"))
    known = [k for k in ops if k in OPS]
    if len(known) != 1:
        if not unknown:
            errors.append(
                FieldError(f"{where}.op", f"expected exactly one operator, found {len(known)}")
            )
        return
    _check_operand(known[0], cond[known[0]], f"{where}.{known[0]}", errors)
    if KEYS_MODIFIER in cond:
        keys = cond[KEYS_MODIFIER]
        if known[0] not in TEXT_OPS:
            errors.append(
                FieldError(
                    f"{where}.{KEYS_MODIFIER}",
                    "keys applies only to " + ", ".join(sorted(TEXT_OPS)),
                )
            )
        elif not is_glob_list(keys, MAX_BRANCHES):
            errors.append(
                FieldError(
                    f"{where}.{KEYS_MODIFIER}",
                    f"expected a list of 1-{MAX_BRANCHES} key globs of 1-"
                    f"{MAX_PATTERN_LENGTH} characters",
                )
            )


# --------------------------------------------------------------------------- evaluation


def resolve(facts: Mapping[str, Any], path: str) -> Any:
    """Value at ``path`` in the evaluation facts, or the missing marker."""
    if path in facts:
        value = facts[path]
        return _MISSING if value is None else value
    root, _, rest = path.partition(".")
    value = facts.get(root)
    for segment in rest.split("."):
        if not isinstance(value, dict) or segment not in value:
            return _MISSING
        value = value[segment]
    return _MISSING if value is None else value


@lru_cache(maxsize=_MATCHER_CACHE)
def _glob_matcher(globs: tuple[str, ...]) -> Callable[[str], Any]:
    """One compiled alternation of folded globs (operands come from the signed policy)."""
    return re.compile("|".join(f"(?:{translate(fold(g))})" for g in globs)).match


def _text_leaf(op: str, value: Any, operand: Any, keys: Any) -> bool:
    """A text operator: some string inside ``value`` (under ``keys``, if given) matches."""
    wanted = operand if isinstance(operand, list) else [operand]
    key_globs = tuple(skeleton(k) for k in keys) if keys else None
    found = texts(value, key_globs)
    if op == "text_glob":
        match = _glob_matcher(tuple(wanted))
        return any(match(fold(t)) is not None for t in found)
    if op == "text_in":
        return bool({fold(v) for v in wanted}.intersection(fold(t) for t in found))
    shapes = [skeleton(v) for v in wanted]  # confusable_with
    return any(shape in skeleton(t) for t in found for shape in shapes)


def _leaf(op: str, value: Any, operand: Any) -> bool:
    if op == "exists":
        return (value is not _MISSING) is operand
    if value is _MISSING:
        return False
    if op == "eq":
        return json_equal(value, operand)
    if op == "ne":
        # a type mismatch is "not comparable", hence false, not "different"
        same_type = (is_number(value) and is_number(operand)) or (
            type(value) is type(operand) and isinstance(value, (str, bool))
        )
        return same_type and not json_equal(value, operand)
    if op in NUMBER_OPS:
        if not is_number(value):
            return False
        return bool(
            {
                "gt": value > operand,
                "gte": value >= operand,
                "lt": value < operand,
                "lte": value <= operand,
            }[op]
        )
    if op == "in":
        return is_scalar(value) and any(json_equal(value, v) for v in operand)
    if op == "not_in":
        return is_scalar(value) and not any(json_equal(value, v) for v in operand)
    if op == "contains":
        if isinstance(value, str):
            return isinstance(operand, str) and operand in value
        if isinstance(value, list):
            return any(json_equal(item, operand) for item in value)
        return False
    if op == "glob":
        # same glob rules as patterns.tool_matches, but uncached: values are
        # agent-supplied and may be large, so they must not pin memory in an LRU
        return isinstance(value, str) and fnmatchcase(value, operand)
    if op == "count_gte":
        count = count_items(value)
        return count is not None and count >= operand
    if op == "domain_not_in":
        allowed = {ascii_lower(d).rstrip(".") for d in operand}
        return any(domain not in allowed for domain in email_domains(value))
    return False  # pragma: no cover - validation admits only known operators


def condition_holds(cond: Mapping[str, Any], facts: Mapping[str, Any]) -> bool:
    """Evaluate a validated condition against the facts of one action."""
    if "all" in cond:
        return all(condition_holds(c, facts) for c in cond["all"])
    if "any" in cond:
        return any(condition_holds(c, facts) for c in cond["any"])
    if "not" in cond:
        return not condition_holds(cond["not"], facts)
    op = next(k for k in cond if k not in ("field", KEYS_MODIFIER))
    value = resolve(facts, cond["field"])
    if op in TEXT_OPS:
        return value is not _MISSING and _text_leaf(op, value, cond[op], cond.get(KEYS_MODIFIER))
    return _leaf(op, value, cond[op])
