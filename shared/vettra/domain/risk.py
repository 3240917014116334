"""Risk scoring: the write-up's four-factor table, 0-100, deterministic.

``score = action_type (0-40) + reversibility (0-25) + blast_radius (0-20)
+ sensitivity (0-15)``; LOW is 0-19, MEDIUM 20-54, HIGH 55-100 (docs/api.md), and
financial or authorisation actions are HIGH whatever they score.

The factors come from three layers, applied in this order (docs/risk.md):

1. the tool's catalogue profile (:mod:`vettra.domain.catalogue`), or a verb-based
   conservative guess for a tool it does not list;
2. the profile's argument rules, which can only *raise* a factor: the agent chooses
   the arguments, so arguments must never talk an action down;
3. the signed policy's overrides, which may raise or lower (the policy is trusted),
   except that nothing takes a financial or auth action out of forced HIGH.

No clock, no randomness, no I/O: the same bundle always gets the same assessment,
which the Rust/WASM verifier reproduces.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .catalogue import (
    FACTOR_POINTS,
    FACTORS,
    UNKNOWN_READ_DEFAULTS,
    Catalogue,
    Rule,
    ToolProfile,
    sensitive_word,
)
from .patterns import MAX_PATTERN_LENGTH, tool_matches
from .textfold import is_suspicious, texts

__all__ = [
    "LOW",
    "MEDIUM",
    "HIGH",
    "FACTOR_POINTS",
    "FORCED_HIGH_CATEGORIES",
    "RiskAssessment",
    "level_for",
    "assess",
    "validate_override",
    "rule_holds",
    "count_items",
]

LOW, MEDIUM, HIGH = "LOW", "MEDIUM", "HIGH"
MEDIUM_FROM = 20  # LOW is 0-19
HIGH_FROM = 55  # MEDIUM is 20-54, HIGH 55-100
MAX_SCORE = sum(max(options.values()) for options in FACTOR_POINTS.values())
FORCED_HIGH_CATEGORIES = frozenset({"financial", "auth"})
OVERRIDE_KEYS = frozenset({"tool", "set", "reason"})
MAX_OVERRIDE_REASON = 500
_LIST_SEPARATORS = re.compile(r"[,;]")  # "a@x, b@y; c@z" names three recipients
MAX_SHOWN_VALUE = 80  # characters of an argument value quoted in a reason
_ABSENT = object()  # an argument path that is not there (null is a value, this is not)
_WORD_SEPARATORS = re.compile(r"[^0-9a-z]+")
MAX_SCANNED_STRINGS = 4096  # argument strings looked at for secret words (bounded work)
# A value spelled to look like something else (mixed scripts, invisible characters) is
# shown to a person: at least MEDIUM even for a read (docs/risk.md, "Disguised values").
SUSPICIOUS_RAISE = {"reversibility": "unknown", "sensitivity": "regulated"}
MAX_JUDGED_TEXTS = 256
# MCP tool annotations (MCP spec, server/tools "Tool annotations") are the MCP server's
# claims about its tool: each may raise factors, none lowers one (readOnlyHint: true and
# destructiveHint: false change nothing; the catalogue or the verb still decides).
MCP_HINT_RAISES: tuple[tuple[str, bool, dict[str, str], str], ...] = (
    (
        "destructiveHint",
        True,
        {"action_type": "delete", "reversibility": "unknown"},
        "the MCP server marks the tool destructive (destructiveHint: true)",
    ),
    (
        "readOnlyHint",
        False,
        {"action_type": "write"},
        "the MCP server says the tool is not read-only (readOnlyHint: false)",
    ),
)

_FACTOR_LABELS = {
    "action_type": "Action type",
    "reversibility": "Reversibility",
    "blast_radius": "Blast radius",
    "sensitivity": "Sensitivity",
}

assert MAX_SCORE == 100, "the factor table must add up to 100"


class BundleLike(Protocol):
    """The parts of an action bundle (``action_bundle.ActionBundle``) that scoring reads."""

    @property
    def tool(self) -> str: ...
    @property
    def arguments(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class RiskAssessment:
    """The score, its level and every reason behind it."""

    score: int
    level: str
    category: str
    factors: dict[str, int]  # factor -> points
    choices: dict[str, str]  # factor -> option name
    reasons: tuple[str, ...]
    forced_high: bool

    def as_dict(self) -> dict[str, Any]:
        """docs/api.md's ``risk`` object (JSON-ready)."""
        return {
            "score": self.score,
            "level": self.level,
            "category": self.category,
            "factors": dict(self.factors),
            "reasons": list(self.reasons),
        }


def level_for(score: int, category: str) -> str:
    """LOW/MEDIUM/HIGH for a score; financial and auth categories are always HIGH."""
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= MAX_SCORE:
        raise ValueError(f"expected a score from 0 to {MAX_SCORE}, found {score!r}")
    if category not in FACTOR_POINTS["action_type"]:
        raise ValueError(
            f"expected a category of {', '.join(FACTOR_POINTS['action_type'])}, found {category!r}"
        )
    if category in FORCED_HIGH_CATEGORIES or score >= HIGH_FROM:
        return HIGH
    return MEDIUM if score >= MEDIUM_FROM else LOW


def validate_override(override: Any) -> list[str]:
    """Problems with one policy risk override ``{tool, set, reason?}``; empty if valid."""
    if not isinstance(override, Mapping):
        return ["expected an object {tool, set, reason?}"]
    problems = [f"unknown key {key!r}" for key in sorted(set(override) - OVERRIDE_KEYS, key=str)]
    tool = override.get("tool")
    if not isinstance(tool, str) or not 0 < len(tool) <= MAX_PATTERN_LENGTH:
        problems.append(f"tool must be a glob of 1-{MAX_PATTERN_LENGTH} characters")
    sets = override.get("set")
    if not isinstance(sets, Mapping) or not sets:
        problems.append("set must be a non-empty object of factor -> option")
    else:
        for factor, option in sets.items():
            if factor not in FACTOR_POINTS:
                problems.append(
                    f"set: unknown factor {factor!r} (expected one of {', '.join(FACTORS)})"
                )
            elif option not in FACTOR_POINTS[factor]:
                problems.append(
                    f"set.{factor}: unknown option {option!r} (expected one of "
                    f"{', '.join(FACTOR_POINTS[factor])})"
                )
    reason = override.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_OVERRIDE_REASON:
        problems.append(f"reason must be a string of at most {MAX_OVERRIDE_REASON} characters")
    return problems


def assess(
    bundle: BundleLike,
    catalogue: Catalogue | None = None,
    overrides: Sequence[Mapping[str, Any]] = (),
) -> RiskAssessment:
    """Score one action bundle. ``ValueError`` if an override is malformed."""
    catalogue = catalogue if catalogue is not None else Catalogue.default()
    for i, override in enumerate(overrides):
        if problems := validate_override(override):
            raise ValueError(f"risk override {i}: " + "; ".join(problems))
    tool = bundle.tool
    arguments = bundle.arguments if isinstance(bundle.arguments, Mapping) else {}
    profile = catalogue.profile_for(tool)
    choices = profile.choices()
    source = dict.fromkeys(
        FACTORS,
        "from the catalogue" if profile.known else "the default for tools not in the catalogue",
    )
    reasons = [_identity_reason(tool, profile)]
    if (server := getattr(bundle, "server", None)) is not None:
        reasons.append(
            f"MCP server {server!r} is the agent's claim, not proven: the tool was scored as {tool}"
        )
    if (
        not profile.known
        and profile.category == "read"
        and profile.reversibility == "reversible"
        and (word := _secret_word_in(arguments)) is not None
    ):
        # a plain read asking for a secret is no longer plain: conservative again
        for factor, option in UNKNOWN_READ_DEFAULTS.items():
            if FACTOR_POINTS[factor][option] > FACTOR_POINTS[factor][choices[factor]]:
                choices[factor] = option
                source[factor] = f"because an argument mentions {word!r}: it may expose secrets"

    for rule in profile.rules:
        if not rule_holds(rule, arguments):
            continue
        for factor, option in rule.sets:
            # Raise only: the agent picks the arguments, so they can never lower risk.
            if FACTOR_POINTS[factor][option] > FACTOR_POINTS[factor][choices[factor]]:
                choices[factor], source[factor] = option, f"because {rule.reason}"

    hints = getattr(bundle, "annotations", None) or {}
    for key, value, raises, hint_why in MCP_HINT_RAISES:
        if hints.get(key) is value:
            for factor, option in raises.items():
                if FACTOR_POINTS[factor][option] > FACTOR_POINTS[factor][choices[factor]]:
                    choices[factor], source[factor] = option, f"because {hint_why}"
    if hints:
        shown = ", ".join(f"{k}: {str(v).lower()}" for k, v in sorted(hints.items()))
        reasons.append(
            f"MCP tool annotations ({shown}) are the server's claim, not proven: "
            "they can raise the score, never lower it"
        )

    if (why := _disguised(arguments)) is not None:
        for factor, option in SUSPICIOUS_RAISE.items():
            if FACTOR_POINTS[factor][option] > FACTOR_POINTS[factor][choices[factor]]:
                choices[factor], source[factor] = option, f"because {why}"

    # Decided before overrides so that a policy cannot un-force a financial/auth action.
    protected = choices["action_type"] in FORCED_HIGH_CATEGORIES
    names = {tool, catalogue.canonical_tool(tool)}
    for override in overrides:
        if not any(tool_matches(override["tool"], name) for name in sorted(names)):
            continue
        why = f"set by the policy override for {override['tool']!r}"
        if override.get("reason"):
            why += f": {override['reason']}"
        for factor, option in override["set"].items():
            if factor == "action_type" and protected and option not in FORCED_HIGH_CATEGORIES:
                current = choices["action_type"]
                reasons.append(
                    f"Ignored the action type {why}: it would move a {current} "
                    f"action to {option}, and {current} actions stay HIGH"
                )
                continue
            choices[factor], source[factor] = option, why

    factors = {f: FACTOR_POINTS[f][choices[f]] for f in FACTORS}
    score = sum(factors.values())
    category = choices["action_type"]
    forced_high = protected or category in FORCED_HIGH_CATEGORIES
    level = HIGH if forced_high else level_for(score, category)

    reasons.extend(
        f"{_FACTOR_LABELS[f]}: {choices[f]} (+{factors[f]}), {source[f]}" for f in FACTORS
    )
    if shown := _shown_arguments(profile, arguments):
        reasons.append("Arguments: " + shown)
    if forced_high:
        reasons.append(
            f"Forced HIGH: {category} actions are always HIGH, whatever the score ({score})"
        )
    return RiskAssessment(
        score=score,
        level=level,
        category=category,
        factors=factors,
        choices=choices,
        reasons=tuple(reasons),
        forced_high=forced_high,
    )


def rule_holds(rule: Rule, arguments: Mapping[str, Any]) -> bool:
    """Whether the condition holds for these call arguments (never raises)."""
    values = [_lookup(arguments, path) for path in rule.args]
    if rule.op == "count_gte":
        return bool(sum(count_items(v) for v in values) >= rule.operand)
    present = [v for v in values if v is not _ABSENT]
    if rule.op == "present":
        return any(v not in (None, "", [], {}) for v in present)
    scalars = [item for v in present for item in (v if isinstance(v, list) else [v])]
    if rule.op == "equals":
        return any(_same(s, rule.operand) for s in scalars)
    if rule.op == "in":
        return any(_same(s, o) for s in scalars for o in rule.operand)
    # contains_any: a case-insensitive substring of some string value
    texts = [s.lower() for s in scalars if isinstance(s, str)]
    return any(needle.lower() in text for text in texts for needle in rule.operand)


def _secret_word_in(arguments: Mapping[str, Any]) -> str | None:
    """A :data:`~vettra.domain.catalogue.SENSITIVE_WORDS` word in some argument string value.

    Keys are not read: ``page_token`` or an S3 object ``key`` names a parameter, not what
    is read; the values say what is asked for (``"secret/prod/db"``, ``"stripe_api_key"``).
    """
    stack: list[Any] = [arguments]
    seen = 0
    while stack and seen < MAX_SCANNED_STRINGS:
        value = stack.pop()
        if isinstance(value, str):
            seen += 1
            if word := sensitive_word(_WORD_SEPARATORS.split(value.lower())):
                return word
        elif isinstance(value, Mapping):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


def _disguised(arguments: Mapping[str, Any]) -> str | None:
    """Why some argument string or key looks disguised (``textfold.is_suspicious``).

    ASCII texts are skipped at once; at most :data:`MAX_JUDGED_TEXTS` non-ASCII ones
    are judged, so 64 KiB of agent input costs milliseconds. (Deny rules do not rely on
    this: their text operators read every text.)
    """
    if json.dumps(arguments, ensure_ascii=False, default=str).isascii():
        return None  # one C-speed pass: ASCII text is never disguised
    judged = 0
    for text in texts(arguments):
        if text.isascii():
            continue
        if (why := is_suspicious(text)) is not None:
            return "an argument may be disguised: " + why
        judged += 1
        if judged >= MAX_JUDGED_TEXTS:
            break
    return None


def _lookup(arguments: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted argument path, or ``_ABSENT``."""
    value: Any = arguments
    for key in path.split("."):
        if not isinstance(value, Mapping) or key not in value:
            return _ABSENT
        value = value[key]
    return value


def count_items(value: Any) -> int:
    """How many things (recipients, users…) an argument names.

    A string counts its non-empty comma/semicolon-separated parts; a list sums its
    items' counts; null or absent counts 0; anything else (an object, a number) is 1.
    Over-counting a quoted display name with a comma only ever errs towards risk.
    """
    if value is _ABSENT or value is None:
        return 0
    if isinstance(value, str):
        return sum(1 for part in _LIST_SEPARATORS.split(value) if part.strip())
    if isinstance(value, list):
        return sum(count_items(item) for item in value)
    return 1


def _same(value: Any, expected: Any) -> bool:
    """Rule equality: strings case- and space-insensitive; bools never equal numbers."""
    if isinstance(value, str) and isinstance(expected, str):
        return value.strip().lower() == expected.lower()
    if isinstance(value, bool) or isinstance(expected, bool):
        return isinstance(value, bool) and isinstance(expected, bool) and value == expected
    if isinstance(value, (int, float)) and isinstance(expected, (int, float)):
        return value == expected
    return False


def _identity_reason(tool: str, profile: ToolProfile) -> str:
    if not profile.known:
        return profile.description  # already says the tool is not in the catalogue
    return f"{tool} matches catalogue entry {profile.pattern!r}: {profile.description}"


def _shown_arguments(profile: ToolProfile, arguments: Mapping[str, Any]) -> str:
    """``name=value`` for the profile's ``show_args`` present in the call, for approvers."""
    parts = []
    for name in profile.show_args:
        if name in arguments:
            text = json.dumps(arguments[name], ensure_ascii=False, sort_keys=True, default=str)
            if len(text) > MAX_SHOWN_VALUE:
                text = text[: MAX_SHOWN_VALUE - 1] + "…"
            parts.append(f"{name}={text}")
    return ", ".join(parts)
