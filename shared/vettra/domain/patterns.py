"""Tool-name patterns shared by the catalogue, risk overrides and policy rules.

A pattern is a shell-style glob over the whole tool name (``"<service>.<operation>"``):
``*`` matches any run of characters (dots included), ``?`` one character, and
``[...]`` a class. Matching is case-sensitive and anchored, so ``"gmail.*"`` never
matches ``"gmailx.read"``. The Rust verifier implements the same rules.

``*`` may match a dot, and that is safe only because a tool name has exactly one
(``frameworks.TOOL_PATTERN``, enforced when the bundle is parsed): ``github.get_*`` can
match ``github.get_file`` but no ``github.get_x.delete_repository`` ever reaches a glob
(docs/action-bundle.md). Keeping ``*`` free to cross the dot keeps ``"*"`` and
``"*.delete_account"`` matching every service.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

MAX_PATTERN_LENGTH = 128


def is_glob_list(value: Any, max_items: int) -> bool:
    """True for a list of 1 to ``max_items`` globs of 1-:data:`MAX_PATTERN_LENGTH` characters."""
    return (
        isinstance(value, list)
        and 0 < len(value) <= max_items
        and all(isinstance(p, str) and 0 < len(p) <= MAX_PATTERN_LENGTH for p in value)
    )


@lru_cache(maxsize=4096)
def tool_matches(pattern: str, tool: str) -> bool:
    """True when ``tool`` matches the glob ``pattern`` as a whole."""
    return fnmatchcase(tool, pattern)


def specificity(pattern: str) -> int:
    """How specific a pattern is: literal characters count, wildcards do not.

    Used to pick the most specific catalogue entry when several match.
    """
    return sum(1 for ch in pattern if ch not in "*?[]")
