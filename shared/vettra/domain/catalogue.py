"""The tool catalogue: what each tool does, in the terms of the four risk factors.

The catalogue is data (``vettra/data/catalogue.json``, format in ``docs/risk.md``):
tool-name globs (:mod:`vettra.domain.patterns`) mapped to a profile
``{category, reversibility, blast_radius, sensitivity, description, rules?, show_args?,
scopes?}``. The most specific matching glob wins. ``scopes`` and the top-level
``connections`` (service -> Auth0 connection) say which credential a tool needs
(docs/credentials.md); they play no part in the score. Tools it does not know are classified from
the operation's leading verb with conservative defaults, so an unknown change is never
scored as harmless; a plain read (nothing but a read verb, no word pointing at secrets)
changes nothing and is LOW.

This module also owns the factor vocabulary (:data:`FACTOR_POINTS`), because the
catalogue format is written in it; :mod:`vettra.domain.risk` re-exports it. The
Rust verifier implements the same format and rule vocabulary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from .patterns import MAX_PATTERN_LENGTH, specificity, tool_matches

# The write-up's four-factor table. Options are listed from least to most risky.
FACTOR_POINTS: dict[str, dict[str, int]] = {
    "action_type": {"read": 0, "write": 20, "delete": 35, "financial": 40, "auth": 40},
    "reversibility": {"reversible": 0, "unknown": 15, "irreversible": 25},
    "blast_radius": {"single": 0, "multiple": 12, "system": 20},
    "sensitivity": {"public": 0, "internal": 5, "confidential": 10, "regulated": 15},
}
FACTORS = tuple(FACTOR_POINTS)
CATEGORIES = tuple(FACTOR_POINTS["action_type"])
# A profile names its action type "category"; rules and overrides use the factor name.
_PROFILE_FACTOR_KEYS = {
    "category": "action_type",
    "reversibility": "reversibility",
    "blast_radius": "blast_radius",
    "sensitivity": "sensitivity",
}

CATALOGUE_VERSION = 1
DEFAULT_RESOURCE = "data/catalogue.json"
RULE_OPERATORS = ("present", "count_gte", "equals", "in", "contains_any")
MAX_RULE_REASON = 200
_LOOKUP_CACHE_SIZE = 1024  # tool names come from agents: bound what we remember
_TOKEN_SEPARATORS = re.compile(r"[._\-]+")

# Classification of tools the catalogue does not know (docs/risk.md, "Unknown tools").
VERB_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        (
            "get",
            "list",
            "read",
            "search",
            "fetch",
            "find",
            "describe",
            "view",
            "query",
            "retrieve",
            "lookup",
            "show",
        ),
        "read",
    ),
    **dict.fromkeys(
        (
            "create",
            "update",
            "send",
            "post",
            "write",
            "put",
            "edit",
            "upload",
            "add",
            "set",
            "modify",
            "comment",
            "reply",
            "move",
            "copy",
            "rename",
            "close",
            "archive",
            "cancel",
            "approve",
            "merge",
            "reset",
            "disable",
            "enable",
            "run",
            "execute",
            "deploy",
            "publish",
            "submit",
            "import",
            "export",
            "sync",
            "assign",
            "lock",
            "unlock",
        ),
        "write",
    ),
    **dict.fromkeys(
        ("delete", "remove", "destroy", "drop", "purge", "trash", "wipe", "erase"), "delete"
    ),
    **dict.fromkeys(
        ("pay", "charge", "transfer", "refund", "payout", "purchase", "buy", "withdraw", "invoice"),
        "financial",
    ),
    **dict.fromkeys(
        (
            "grant",
            "revoke",
            "invite",
            "share",
            "impersonate",
            "elevate",
            "promote",
            "sudo",
            "assume",
        ),
        "auth",
    ),
}
# Words that make any operation an authorisation change, whatever its verb: the name is
# all we know about an unknown tool, and "list_admin_keys" may well hand out secrets.
AUTH_WORDS = frozenset(
    {
        "admin",
        "admins",
        "administrator",
        "administrators",
        "permission",
        "permissions",
        "role",
        "roles",
        "privilege",
        "privileges",
    }
)
# Words that say a read exposes secrets, credentials, payment or admin data (docs/risk.md,
# "Tools not in the catalogue"): such a read keeps the conservative profile, or worse.
SENSITIVE_WORDS = frozenset(
    {
        "secret",
        "secrets",
        "credential",
        "credentials",
        "cred",
        "creds",
        "key",
        "keys",
        "apikey",
        "apikeys",
        "privatekey",
        "token",
        "tokens",
        "password",
        "passwords",
        "passwd",
        "passphrase",
        "otp",
        "totp",
        "mfa",
        "2fa",
        "cert",
        "certs",
        "certificate",
        "certificates",
        "ssh",
        "pgp",
        "gpg",
        "vault",
        "keyvault",
        "kms",
        "keychain",
        "keyring",
        "secretmanager",
        "1password",
        "onepassword",
        "lastpass",
        "bitwarden",
        "payment",
        "payments",
        "card",
        "cards",
        "iban",
        "bank",
        "billing",
        "ssn",
        "salary",
        "payroll",
        "admin",
        "admins",
        "administrator",
        "sudo",
    }
)
# A plainly read-only operation of an unknown tool: it changes nothing, so it is
# reversible; what it may expose is still counted (LOW, 10 points).
PLAIN_READ_DEFAULTS = {
    "reversibility": "reversible",
    "blast_radius": "single",
    "sensitivity": "confidential",
}
UNKNOWN_READ_DEFAULTS = {
    "reversibility": "unknown",
    "blast_radius": "single",
    "sensitivity": "regulated",
}
UNKNOWN_CHANGE_DEFAULTS = {
    "reversibility": "unknown",
    "blast_radius": "multiple",
    "sensitivity": "confidential",
}
NO_VERB_CATEGORY = "write"
# "get_and_close": a read verb first does not make a compound operation a plain read.
COMPOUND_WORDS = frozenset({"and", "then"})

_PROFILE_KEYS = {
    "category",
    "reversibility",
    "blast_radius",
    "sensitivity",
    "description",
    "rules",
    "show_args",
    "scopes",
}
_REQUIRED_PROFILE_KEYS = {"category", "reversibility", "blast_radius", "sensitivity", "description"}
_TOP_KEYS = {"version", "description", "service_aliases", "connections", "tools"}
_CONNECTION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SCOPE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,200}$")  # RFC 6749 §3.3 scope-token


@dataclass(frozen=True)
class Rule:
    """An argument rule: when ``op`` holds for ``args``, raise the factors in ``sets``.

    Evaluated by :func:`vettra.domain.risk.rule_holds`.
    """

    args: tuple[str, ...]
    op: str
    operand: Any
    sets: tuple[tuple[str, str], ...]
    reason: str


@dataclass(frozen=True)
class ToolProfile:
    """How the catalogue sees one tool. ``known`` is False for verb-based guesses."""

    pattern: str | None  # the catalogue glob that matched; None when not catalogued
    category: str
    reversibility: str
    blast_radius: str
    sensitivity: str
    description: str
    rules: tuple[Rule, ...] = ()
    show_args: tuple[str, ...] = ()
    known: bool = True
    scopes: tuple[str, ...] = ()  # provider scopes the tool needs (a credential release)

    def choices(self) -> dict[str, str]:
        """Factor name -> option name, before any argument rule or override."""
        return {
            "action_type": self.category,
            "reversibility": self.reversibility,
            "blast_radius": self.blast_radius,
            "sensitivity": self.sensitivity,
        }


def name_tokens(text: str) -> list[str]:
    """Lower-cased words of a tool name or argument key, split on ``.``, ``_`` and ``-``."""
    return [t for t in _TOKEN_SEPARATORS.split(text.lower()) if t]


def sensitive_word(tokens: list[str]) -> str | None:
    """The first token that points at secrets, credentials, payment or admin data."""
    return next((t for t in tokens if t in SENSITIVE_WORDS), None)


def classify_unknown(tool: str) -> ToolProfile:
    """A profile for a tool the catalogue does not list: conservative unless plainly a read.

    A read is *plain* when its first token is a read verb, no later token is a verb of
    another kind (``get_and_delete``), and no token of the service or operation points
    at secrets (:data:`SENSITIVE_WORDS`); it then scores LOW. The arguments are checked
    for the same words by :func:`vettra.domain.risk.assess`.
    """
    service, dot, operation = tool.partition(".")
    tokens = name_tokens(operation if dot else tool)
    auth_word = next((t for t in tokens if t in AUTH_WORDS), None)
    verb = tokens[0] if tokens else ""
    if auth_word is not None:
        category, basis = "auth", f"the word {auth_word!r} in the operation"
    elif verb in VERB_CATEGORIES:
        category, basis = VERB_CATEGORIES[verb], f"the leading verb {verb!r}"
    else:
        category, basis = NO_VERB_CATEGORY, "no recognised verb (treated as a write)"
    if category != "read":
        defaults, how = UNKNOWN_CHANGE_DEFAULTS, "with conservative defaults"
    elif other := next(
        (t for t in tokens[1:] if t in COMPOUND_WORDS or VERB_CATEGORIES.get(t, "read") != "read"),
        None,
    ):
        defaults = UNKNOWN_READ_DEFAULTS
        how = f"with conservative defaults (it also says {other!r})"
    elif word := sensitive_word(name_tokens(service) + tokens if dot else tokens):
        defaults, how = (
            UNKNOWN_READ_DEFAULTS,
            (f"with conservative defaults (the name says {word!r}: it may expose secrets)"),
        )
    else:
        defaults, how = PLAIN_READ_DEFAULTS, "as a plain read: it changes nothing"
    return ToolProfile(
        pattern=None,
        category=category,
        description=(
            f"{tool} is not in the catalogue: classified as {category} from {basis}, {how}"
        ),
        known=False,
        reversibility=defaults["reversibility"],
        blast_radius=defaults["blast_radius"],
        sensitivity=defaults["sensitivity"],
    )


class Catalogue:
    """Tool globs mapped to profiles; build with :meth:`default` or :meth:`from_dict`."""

    def __init__(
        self,
        profiles: Mapping[str, ToolProfile],
        service_aliases: Mapping[str, str] | None = None,
        connections: Mapping[str, str] | None = None,
    ):
        self._profiles = dict(profiles)
        self._aliases = dict(service_aliases or {})
        self._connections = dict(connections or {})
        # Most specific first; ties go to the longer, then the alphabetically first
        # glob, so the choice never depends on file order (the Rust side agrees).
        self._order = sorted(self._profiles, key=lambda p: (-specificity(p), -len(p), p))
        self._find = lru_cache(maxsize=_LOOKUP_CACHE_SIZE)(self._find_uncached)

    @classmethod
    def default(cls) -> Catalogue:
        """The catalogue shipped with the package (loaded once per process)."""
        return _default_catalogue()

    @classmethod
    def from_dict(cls, data: Any) -> Catalogue:
        """Validate catalogue data; ``ValueError`` names every bad entry."""
        problems: list[str] = []
        if not isinstance(data, Mapping):
            raise ValueError("catalogue: expected an object")
        for key in sorted(set(data) - _TOP_KEYS):
            problems.append(f"catalogue: unknown key {key!r}")
        if data.get("version") != CATALOGUE_VERSION:
            problems.append(
                f"catalogue: expected version {CATALOGUE_VERSION}, found {data.get('version')!r}"
            )
        aliases = data.get("service_aliases", {})
        if not isinstance(aliases, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v and "." not in k + v
            for k, v in aliases.items()
        ):
            problems.append(
                "catalogue: service_aliases must map service names to service names (no dots)"
            )
            aliases = {}
        connections = data.get("connections", {})
        if not isinstance(connections, Mapping) or not all(
            isinstance(k, str)
            and k
            and "." not in k
            and isinstance(v, str)
            and _CONNECTION.match(v)
            for k, v in connections.items()
        ):
            problems.append(
                "catalogue: connections must map service names to Auth0 connection names"
            )
            connections = {}
        tools = data.get("tools")
        profiles: dict[str, ToolProfile] = {}
        if not isinstance(tools, Mapping) or not tools:
            problems.append("catalogue: 'tools' must be a non-empty object")
            tools = {}
        for pattern, entry in tools.items():
            profile = _parse_entry(pattern, entry, problems)
            if profile is not None:
                profiles[pattern] = profile
        if problems:
            raise ValueError("; ".join(problems))
        return cls(profiles, aliases, connections)

    @property
    def profiles(self) -> Mapping[str, ToolProfile]:
        """Every catalogue entry, glob -> profile (a copy)."""
        return dict(self._profiles)

    def canonical_tool(self, tool: str) -> str:
        """The tool name with its service alias resolved ("gcal.x" -> "calendar.x")."""
        service, dot, operation = tool.partition(".")
        return self._aliases.get(service, service) + dot + operation if dot else tool

    def profile_for(self, tool: str) -> ToolProfile:
        """The profile of the most specific matching glob, or a verb-based guess."""
        return self._find(self.canonical_tool(tool))

    def credential_need(self, tool: str) -> tuple[str, tuple[str, ...]] | None:
        """``(connection, scopes)`` a release for ``tool`` is for, or None when the catalogue
        names no connection for its service or no scopes for it (nothing is released)."""
        canonical = self.canonical_tool(tool)
        service = canonical.partition(".")[0]
        connection = self._connections.get(service)
        scopes = self.profile_for(tool).scopes
        if connection is None or not scopes:
            return None
        return connection, scopes

    def connections(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """Each Auth0 connection the catalogue names: ``{"services": ..., "scopes": ...}``,
        the scopes being every one a tool of those services needs (sorted)."""
        out: dict[str, dict[str, set[str]]] = {}
        for service, connection in self._connections.items():
            entry = out.setdefault(connection, {"services": set(), "scopes": set()})
            entry["services"].add(service)
            for pattern, profile in self._profiles.items():
                if self.canonical_tool(pattern).partition(".")[0] == service:
                    entry["scopes"].update(profile.scopes)
        return {
            c: {"services": tuple(sorted(e["services"])), "scopes": tuple(sorted(e["scopes"]))}
            for c, e in sorted(out.items())
        }

    def _find_uncached(self, tool: str) -> ToolProfile:
        for pattern in self._order:
            if tool_matches(pattern, tool):
                return self._profiles[pattern]
        return classify_unknown(tool)


def _option_problem(factor: str, option: Any) -> str | None:
    options = FACTOR_POINTS[factor]
    if option not in options:
        return f"{factor} must be one of {', '.join(options)}, found {option!r}"
    return None


def _parse_entry(pattern: Any, entry: Any, problems: list[str]) -> ToolProfile | None:
    where = f"catalogue entry {pattern!r}"
    before = len(problems)
    if not isinstance(pattern, str) or not 0 < len(pattern) <= MAX_PATTERN_LENGTH:
        problems.append(f"{where}: glob must be 1-{MAX_PATTERN_LENGTH} characters")
    elif pattern != pattern.lower():
        problems.append(f"{where}: tool names are lowercase, so this glob never matches")
    if not isinstance(entry, Mapping):
        problems.append(f"{where}: expected an object")
        return None
    for key in sorted(set(entry) - _PROFILE_KEYS):
        problems.append(f"{where}: unknown key {key!r}")
    for key in sorted(_REQUIRED_PROFILE_KEYS - set(entry)):
        problems.append(f"{where}: missing {key!r}")
    for key, factor in _PROFILE_FACTOR_KEYS.items():
        if key in entry and (msg := _option_problem(factor, entry[key])):
            problems.append(f"{where}: {msg}")
    if "description" in entry and not (
        isinstance(entry["description"], str) and entry["description"].strip()
    ):
        problems.append(f"{where}: description must be a non-empty string")
    scopes = entry.get("scopes", [])
    if (
        not isinstance(scopes, list)
        or not all(isinstance(x, str) and _SCOPE.match(x) for x in scopes)
        or len(set(scopes)) != len(scopes)
    ):
        problems.append(f"{where}: scopes must be a list of distinct OAuth scope names")
    show_args = entry.get("show_args", [])
    if not isinstance(show_args, list) or not all(isinstance(a, str) and a for a in show_args):
        problems.append(f"{where}: show_args must be a list of argument names")
    raw_rules = entry.get("rules", [])
    rules: list[Rule] = []
    if not isinstance(raw_rules, list):
        problems.append(f"{where}: rules must be a list")
    else:
        for i, raw in enumerate(raw_rules):
            rule = _parse_rule(raw, f"{where} rule {i}", problems)
            if rule is not None:
                rules.append(rule)
    if len(problems) > before:
        return None
    return ToolProfile(
        pattern=pattern,
        category=entry["category"],
        reversibility=entry["reversibility"],
        blast_radius=entry["blast_radius"],
        sensitivity=entry["sensitivity"],
        description=entry["description"],
        rules=tuple(rules),
        show_args=tuple(show_args),
        scopes=tuple(scopes),
    )


def _parse_rule(raw: Any, where: str, problems: list[str]) -> Rule | None:
    before = len(problems)
    if not isinstance(raw, Mapping) or set(raw) != {"when", "set", "reason"}:
        problems.append(f"{where}: expected {{when, set, reason}}")
        return None
    when, sets, reason = raw["when"], raw["set"], raw["reason"]
    # The reason is shown to approvers as "because <reason>", so it is required.
    if not isinstance(reason, str) or not 0 < len(reason.strip()) <= MAX_RULE_REASON:
        problems.append(f"{where}: reason must be a sentence of 1-{MAX_RULE_REASON} characters")
    if not isinstance(sets, Mapping) or not sets:
        problems.append(f"{where}: set must be a non-empty object")
        sets = {}
    for factor, option in sets.items():
        if factor not in FACTOR_POINTS:
            problems.append(f"{where}: unknown factor {factor!r}")
        elif msg := _option_problem(factor, option):
            problems.append(f"{where}: {msg}")
    if not isinstance(when, Mapping):
        problems.append(f"{where}: when must be an object")
        return None
    ops = [k for k in when if k != "arg"]
    args = when.get("arg")
    args = [args] if isinstance(args, str) else args
    if not isinstance(args, list) or not args or not all(isinstance(a, str) and a for a in args):
        problems.append(f"{where}: when.arg must be an argument name or a list of them")
    if len(ops) != 1 or ops[0] not in RULE_OPERATORS:
        problems.append(
            f"{where}: when needs exactly one operator of {', '.join(RULE_OPERATORS)}, found {ops}"
        )
    elif msg := _operand_problem(ops[0], when[ops[0]]):
        problems.append(f"{where}: {msg}")
    if len(problems) > before:
        return None
    assert isinstance(args, list)  # anything else was a problem above
    return Rule(
        args=tuple(args),
        op=ops[0],
        operand=_freeze(when[ops[0]]),
        sets=tuple(sets.items()),
        reason=reason,
    )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


def _operand_problem(op: str, operand: Any) -> str | None:
    if op == "present" and operand is not True:
        return "present takes true"
    if op == "count_gte" and (
        isinstance(operand, bool) or not isinstance(operand, int) or operand < 1
    ):
        return "count_gte takes a whole number of at least 1"
    if op == "equals" and not _is_scalar(operand):
        return "equals takes a string, number, boolean or null"
    if op == "in" and not (
        isinstance(operand, list) and operand and all(_is_scalar(o) for o in operand)
    ):
        return "in takes a non-empty list of strings, numbers, booleans or null"
    if op == "contains_any" and not (
        isinstance(operand, list) and operand and all(isinstance(o, str) and o for o in operand)
    ):
        return "contains_any takes a non-empty list of non-empty strings"
    return None


def _freeze(operand: Any) -> Any:
    return tuple(operand) if isinstance(operand, list) else operand


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:  # json.loads would silently keep the last one
            raise ValueError(f"catalogue: duplicate key {key!r}")
        obj[key] = value
    return obj


def load_catalogue_json(text: str) -> Catalogue:
    """Parse and validate catalogue JSON text (duplicate keys are an error)."""
    return Catalogue.from_dict(json.loads(text, object_pairs_hook=_reject_duplicates))


@lru_cache(maxsize=1)
def _default_catalogue() -> Catalogue:
    text = resources.files("vettra").joinpath(DEFAULT_RESOURCE).read_text(encoding="utf-8")
    return load_catalogue_json(text)
