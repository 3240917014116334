"""Schema of ``vettra.policy/v1`` payloads: strict validation with field paths.

Every problem is reported at once, each as a :class:`FieldError` whose path
reads like ``rules[2].when.all[0].op``, so a policy author fixes a bundle in
one round trip. Unknown keys are errors at every level: a misspelt ``"wen"``
must not silently turn a conditional rule into an unconditional one (or the
reverse). Limits bound the work one evaluation can cost.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from .errors import FieldError
from .patterns import MAX_PATTERN_LENGTH, is_glob_list
from .policy_conditions import validate_condition
from .risk import HIGH_FROM, MEDIUM_FROM, validate_override

SCHEMA = "vettra.policy/v1"

DENY = "deny"
REQUIRE_STEP_UP = "require_step_up"
REQUIRE_APPROVAL = "require_approval"
ALLOW = "allow"
SEVERITY = {ALLOW: 0, REQUIRE_APPROVAL: 1, REQUIRE_STEP_UP: 2, DENY: 3}
PENDING_LEVEL = {REQUIRE_APPROVAL: "MEDIUM", REQUIRE_STEP_UP: "HIGH"}

# The product's own levels (docs/api.md): a policy may lower these, never raise them.
PRODUCT_APPROVAL_THRESHOLD = MEDIUM_FROM  # the risk levels' own bounds, defined once in risk.py
PRODUCT_STEP_UP_THRESHOLD = HIGH_FROM
MAX_RULES = 500
MAX_OVERRIDES = 500
MAX_TOOL_PATTERNS = 64
MAX_ID_LENGTH = 64
MAX_TEXT_LENGTH = 1024
MAX_TIMEOUT_S = 86_400  # a day: longer holds are forgotten, not approved
MAX_VERSION = 2**53 - 1  # the exact-integer range canonical JSON allows
#: What happens to a hold nobody answered (``timeouts.on_expiry``): the policy's verb, kept
#: as is on the action. v1 knows one: refuse it (the action's status becomes ``expired``).
ON_EXPIRY_DENY = "deny"
ON_EXPIRY_VALUES = (ON_EXPIRY_DENY,)
MAX_APPROVERS = 20  # a quorum names people, not a directory
MAX_APPROVER_ID_LENGTH = 256
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")

_TOP_KEYS = {
    "schema",
    "policy_id",
    "version",
    "description",
    "thresholds",
    "timeouts",
    "overrides",
    "rules",
}
_REQUIRED_TOP = {"schema", "policy_id", "version", "thresholds", "timeouts", "rules"}
_RULE_KEYS = {"id", "effect", "tools", "when", "reason", "timeout_s", "approvers"}
_APPROVERS_KEYS = {"quorum", "of"}
_REQUIRED_RULE = {"id", "effect", "tools", "reason"}
_TIMEOUT_KEYS = ("MEDIUM", "HIGH", "max", "on_expiry")


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_keys(
    obj: dict[str, Any], allowed: set[str], required: set[str], where: str, errors: list[FieldError]
) -> None:
    prefix = f"{where}." if where else ""
    for key in sorted(k for k in obj if k not in allowed):
        errors.append(FieldError(f"{prefix}{key}", "unknown field"))
    for key in sorted(required - obj.keys()):
        errors.append(FieldError(f"{prefix}{key}", "required field is missing"))


def _check_text(value: Any, where: str, errors: list[FieldError], *, limit: int) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        errors.append(FieldError(where, f"expected a string of 1-{limit} characters"))


def _check_id(value: Any, where: str, errors: list[FieldError]) -> None:
    if not (isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and set(value) <= _ID_CHARS):
        errors.append(FieldError(where, f"expected 1-{MAX_ID_LENGTH} characters of a-z 0-9 - _ ."))


def _check_thresholds(t: Any, errors: list[FieldError]) -> None:
    if not isinstance(t, dict):
        errors.append(FieldError("thresholds", "expected an object"))
        return
    _check_keys(t, {"approval", "step_up"}, {"approval", "step_up"}, "thresholds", errors)
    limits = {"approval": PRODUCT_APPROVAL_THRESHOLD, "step_up": PRODUCT_STEP_UP_THRESHOLD}
    for key, limit in limits.items():
        if key in t and not (_is_int(t[key]) and 0 <= t[key] <= limit):
            errors.append(
                FieldError(
                    f"thresholds.{key}",
                    f"expected an integer 0-{limit} "
                    "(a policy may only be stricter than the product)",
                )
            )
    a, s = t.get("approval"), t.get("step_up")
    if _is_int(a) and _is_int(s) and a > s:
        errors.append(FieldError("thresholds.approval", f"must not exceed step_up ({a} > {s})"))


def _check_timeouts(o: Any, errors: list[FieldError]) -> None:
    if not isinstance(o, dict):
        errors.append(FieldError("timeouts", "expected an object"))
        return
    _check_keys(o, set(_TIMEOUT_KEYS), set(_TIMEOUT_KEYS), "timeouts", errors)
    for key in ("MEDIUM", "HIGH", "max"):
        if key in o and not (_is_int(o[key]) and 1 <= o[key] <= MAX_TIMEOUT_S):
            errors.append(FieldError(f"timeouts.{key}", f"expected seconds, 1-{MAX_TIMEOUT_S}"))
    if "on_expiry" in o and o["on_expiry"] not in ON_EXPIRY_VALUES:
        errors.append(FieldError("timeouts.on_expiry", f"expected one of {ON_EXPIRY_VALUES}"))


def _override_problems(override: Any) -> list[str]:
    """Problems with one risk override, judged by the risk engine that applies it."""
    return validate_override(override)


def _check_rule(rule: Any, where: str, errors: list[FieldError], seen: set[str]) -> None:
    if not isinstance(rule, dict):
        errors.append(FieldError(where, "expected a rule object"))
        return
    _check_keys(rule, _RULE_KEYS, _REQUIRED_RULE, where, errors)
    if "id" in rule:
        _check_id(rule["id"], f"{where}.id", errors)
        if isinstance(rule["id"], str):
            if rule["id"] in seen:
                errors.append(FieldError(f"{where}.id", f"duplicate rule id {rule['id']!r}"))
            seen.add(rule["id"])
    effect = rule.get("effect")
    if "effect" in rule and effect not in SEVERITY:
        errors.append(FieldError(f"{where}.effect", f"expected one of {sorted(SEVERITY)}"))
    tools = rule.get("tools")
    if "tools" in rule and not is_glob_list(tools, MAX_TOOL_PATTERNS):
        errors.append(
            FieldError(
                f"{where}.tools",
                f"expected 1-{MAX_TOOL_PATTERNS} glob strings "
                f"of at most {MAX_PATTERN_LENGTH} characters",
            )
        )
    if "reason" in rule:
        _check_text(rule["reason"], f"{where}.reason", errors, limit=MAX_TEXT_LENGTH)
    if "when" in rule:
        validate_condition(rule["when"], f"{where}.when", errors)
    if "timeout_s" in rule:
        if effect not in PENDING_LEVEL:
            errors.append(
                FieldError(
                    f"{where}.timeout_s", "only require_approval/require_step_up rules hold actions"
                )
            )
        elif not (_is_int(rule["timeout_s"]) and 1 <= rule["timeout_s"] <= MAX_TIMEOUT_S):
            errors.append(FieldError(f"{where}.timeout_s", f"expected seconds, 1-{MAX_TIMEOUT_S}"))
    if "approvers" in rule:
        if effect not in PENDING_LEVEL:
            errors.append(
                FieldError(
                    f"{where}.approvers",
                    "only require_approval/require_step_up rules wait for approvers",
                )
            )
        else:
            _check_approvers(rule["approvers"], f"{where}.approvers", errors)


def _check_approvers(approvers: Any, where: str, errors: list[FieldError]) -> None:
    """A quorum ``{"quorum": k, "of": [user ids]}``: 1 <= k <= len(of) <= MAX_APPROVERS."""
    if not isinstance(approvers, dict):
        errors.append(FieldError(where, "expected an object {quorum, of}"))
        return
    _check_keys(approvers, _APPROVERS_KEYS, _APPROVERS_KEYS, where, errors)
    names = approvers.get("of")
    if "of" in approvers:
        if not (
            isinstance(names, list)
            and 0 < len(names) <= MAX_APPROVERS
            and all(
                isinstance(n, str) and 0 < len(n) <= MAX_APPROVER_ID_LENGTH and n == n.strip()
                for n in names
            )
        ):
            errors.append(
                FieldError(
                    f"{where}.of",
                    f"expected 1-{MAX_APPROVERS} user ids (strings of "
                    f"1-{MAX_APPROVER_ID_LENGTH} characters, no surrounding spaces)",
                )
            )
            names = None
        elif len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            errors.append(
                FieldError(f"{where}.of", f"user ids must be distinct, found {duplicates} twice")
            )
    quorum = approvers.get("quorum")
    if "quorum" in approvers:
        if not (_is_int(quorum) and quorum >= 1):
            errors.append(FieldError(f"{where}.quorum", "expected an integer >= 1"))
        elif isinstance(names, list) and quorum > len(set(names)):
            errors.append(
                FieldError(
                    f"{where}.quorum",
                    f"expected at most the {len(set(names))} "
                    f"approver(s) named in of, found {quorum}",
                )
            )


def validate_payload(payload: Any) -> list[FieldError]:
    """Every problem with a policy payload, with field paths such as ``rules[2].when.op``."""
    if not isinstance(payload, dict):
        return [FieldError("$", f"expected a policy object, found {type(payload).__name__}")]
    errors: list[FieldError] = []
    _check_keys(payload, _TOP_KEYS, _REQUIRED_TOP, "", errors)
    if "schema" in payload and payload["schema"] != SCHEMA:
        errors.append(FieldError("schema", f"expected {SCHEMA!r}, found {payload['schema']!r}"))
    if "policy_id" in payload:
        _check_id(payload["policy_id"], "policy_id", errors)
    if "version" in payload and not (
        _is_int(payload["version"]) and 1 <= payload["version"] <= MAX_VERSION
    ):
        errors.append(FieldError("version", "expected an integer >= 1"))
    if "description" in payload:
        _check_text(payload["description"], "description", errors, limit=MAX_TEXT_LENGTH)
    if "thresholds" in payload:
        _check_thresholds(payload["thresholds"], errors)
    if "timeouts" in payload:
        _check_timeouts(payload["timeouts"], errors)
    overrides = payload.get("overrides", [])
    if not isinstance(overrides, list) or len(overrides) > MAX_OVERRIDES:
        errors.append(FieldError("overrides", f"expected a list of at most {MAX_OVERRIDES}"))
    else:
        for i, override in enumerate(overrides):
            errors.extend(FieldError(f"overrides[{i}]", p) for p in _override_problems(override))
    rules = payload.get("rules")
    if "rules" in payload and (not isinstance(rules, list) or len(rules) > MAX_RULES):
        errors.append(FieldError("rules", f"expected a list of at most {MAX_RULES} rules"))
    elif isinstance(rules, list):
        seen: set[str] = set()
        for i, rule in enumerate(rules):
            _check_rule(rule, f"rules[{i}]", errors, seen)
    return errors
