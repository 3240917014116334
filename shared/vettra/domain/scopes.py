"""Provider OAuth scopes in plain language (``vettra/data/scopes.json``).

One book for the permission inventory's translations (``GET
/api/inventory/scope-translate``) and for the release rule "the token carries what the
tool needs" (:meth:`ScopeBook.covers`): each scope has a sentence a person can judge, a
risk hint (``low`` | ``medium`` | ``high``) and the narrower scopes it includes (Gmail's
``https://mail.google.com/`` includes ``gmail.send``; GitHub's ``repo`` includes
``public_repo``). A scope the book does not hold is answered as unknown, with no guess.

Spelling, as each provider documents it: Google scopes are URLs (``gmail.send`` is
accepted as the short form of ``https://www.googleapis.com/auth/gmail.send``);
Microsoft Graph permissions are case-insensitive and may carry the
``https://graph.microsoft.com/`` prefix; the others are matched exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

RISKS = ("low", "medium", "high")
UNKNOWN_RISK = "unknown"
RESOURCE = "data/scopes.json"
MAX_SCOPES = 50
MAX_SCOPE_LENGTH = 200
_RANK = {"low": 0, "medium": 1, "high": 2}
UNKNOWN_TEXT = (
    "Vettra does not know this scope, so it cannot say what it allows. Read the provider's "
    "documentation before granting it, and treat it as broad until then."
)


@dataclass(frozen=True)
class ScopeInfo:
    provider: str
    scope: str  # as the book spells it
    service: str
    text: str
    risk: str
    includes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "scope": self.scope,
            "service": self.service,
            "text": self.text,
            "risk": self.risk,
        }


@dataclass(frozen=True)
class _Provider:
    name: str
    label: str
    connections: tuple[str, ...]
    scopes: Mapping[str, ScopeInfo]
    short_prefix: str = ""
    strip_prefix: str = ""
    case_insensitive: bool = False

    def find(self, scope: str) -> ScopeInfo | None:
        if self.strip_prefix and scope.lower().startswith(self.strip_prefix.lower()):
            scope = scope[len(self.strip_prefix) :]
        if self.case_insensitive:
            return self.scopes.get(scope.lower())
        found = self.scopes.get(scope)
        if found is None and self.short_prefix and "/" not in scope:
            found = self.scopes.get(self.short_prefix + scope)
        return found


class ScopeBook:
    """The providers' scopes; build with :meth:`default` or :meth:`from_dict`."""

    def __init__(self, providers: Mapping[str, _Provider]):
        self._providers = dict(providers)
        self._by_connection = {c: p for p in self._providers.values() for c in p.connections}

    @classmethod
    def default(cls) -> ScopeBook:
        return _default_book()

    @classmethod
    def from_dict(cls, data: Any) -> ScopeBook:
        """Validate the book; ``ValueError`` names the first bad entry."""
        if not isinstance(data, Mapping) or data.get("version") != 1:
            raise ValueError("scopes: expected {'version': 1, 'providers': {...}}")
        providers: dict[str, _Provider] = {}
        for name, raw in (data.get("providers") or {}).items():
            providers[name] = _parse_provider(name, raw)
        if not providers:
            raise ValueError("scopes: no providers")
        return cls(providers)

    @property
    def providers(self) -> list[str]:
        return sorted(self._providers)

    def size(self) -> int:
        return sum(len(p.scopes) for p in self._providers.values())

    def provider_of(self, connection: str) -> str | None:
        """The provider behind an Auth0 connection name (``google-oauth2`` → ``google``)."""
        found = self._by_connection.get(connection)
        return found.name if found else None

    def lookup(self, scope: str, provider: str | None = None) -> list[ScopeInfo]:
        """What ``scope`` means: one entry per provider that knows it (the named one only
        when ``provider`` is given); empty when none does."""
        chosen = [self._providers[provider]] if provider else self._providers.values()
        return [info for p in chosen if (info := p.find(scope)) is not None]

    def translate(self, scope: str, provider: str | None = None) -> dict[str, Any]:
        """The inventory's answer for one scope; ambiguous ones carry the riskiest reading."""
        matches = self.lookup(scope, provider)
        if not matches:
            return {
                "scope": scope,
                "known": False,
                "provider": provider,
                "text": UNKNOWN_TEXT,
                "risk": UNKNOWN_RISK,
                "matches": [],
            }
        worst = max(matches, key=lambda m: _RANK[m.risk])
        return {
            "scope": scope,
            "known": True,
            "provider": worst.provider,
            "service": worst.service,
            "text": worst.text,
            "risk": worst.risk,
            "matches": [m.as_dict() for m in matches],
        }

    def expand(self, provider: str | None, granted: Iterable[str]) -> set[str]:
        """``granted`` and every scope they include, transitively, in the book's spelling."""
        out: set[str] = set()
        todo = list(granted)
        book = self._providers.get(provider or "")
        while todo:
            scope = todo.pop()
            info = book.find(scope) if book else None
            name = info.scope if info else scope
            if name in out:
                continue
            out.add(name)
            if info:
                todo.extend(info.includes)
        return out

    def covers(
        self, provider: str | None, granted: Iterable[str], needed: Iterable[str]
    ) -> list[str]:
        """The needed scopes that ``granted`` does not include (empty: all covered)."""
        have = self.expand(provider, granted)
        book = self._providers.get(provider or "")
        missing = []
        for scope in needed:
            info = book.find(scope) if book else None
            if (info.scope if info else scope) not in have:
                missing.append(scope)
        return missing


def _parse_provider(name: str, raw: Any) -> _Provider:
    where = f"scopes: provider {name!r}"
    if not isinstance(raw, Mapping) or not isinstance(raw.get("scopes"), Mapping):
        raise ValueError(f"{where}: expected an object with 'scopes'")
    folded = bool(raw.get("case_insensitive"))
    scopes: dict[str, ScopeInfo] = {}
    for scope, entry in raw["scopes"].items():
        if not isinstance(entry, Mapping) or not isinstance(entry.get("text"), str):
            raise ValueError(f"{where}: scope {scope!r} needs a 'text'")
        if entry.get("risk") not in RISKS:
            raise ValueError(f"{where}: scope {scope!r}: risk must be one of {', '.join(RISKS)}")
        includes = tuple(entry.get("includes") or ())
        key = scope.lower() if folded else scope
        scopes[key] = ScopeInfo(
            provider=name,
            scope=scope,
            service=str(entry.get("service") or raw.get("name") or name),
            text=entry["text"],
            risk=entry["risk"],
            includes=includes,
        )
    for info in scopes.values():
        for inner in info.includes:
            if (inner.lower() if folded else inner) not in scopes:
                raise ValueError(f"{where}: {info.scope!r} includes unknown {inner!r}")
    return _Provider(
        name=name,
        label=str(raw.get("name") or name),
        connections=tuple(raw.get("connections") or ()),
        scopes=scopes,
        short_prefix=str(raw.get("short_prefix") or ""),
        strip_prefix=str(raw.get("strip_prefix") or ""),
        case_insensitive=folded,
    )


@lru_cache(maxsize=1)
def _default_book() -> ScopeBook:
    text = resources.files("vettra").joinpath(RESOURCE).read_text(encoding="utf-8")
    return ScopeBook.from_dict(json.loads(text))
