"""Text as a reader sees it: Unicode folding, confusable skeletons, suspicious spellings.

Deny rules must not be dodged by respelling a value (``ADMIN``, fullwidth ``ａｄｍｉｎ``,
a Cyrillic ``а`` in ``аdmin``, a zero-width space in ``ad\u200bmin``) or by rewrapping it
(``["roles/owner"]``, ``{"role": {"name": "owner"}}``, JSON text inside a string). This
module gives the policy conditions (``docs/policy.md``, "Text operators") and the risk
engine three pure functions:

- :func:`fold` — the *text key*: NFKC, full case folding (Unicode §3.13), NFKC again,
  then every default-ignorable / format character (zero-width, bidi controls, variation
  selectors, soft hyphen) and all whitespace removed;
- :func:`skeleton` — the fold, decomposed (NFD) with combining marks dropped, every
  character replaced by the representative of its confusable class (UTS #39 §4
  ``confusables.txt`` data, as shipped by the ``confusable_homoglyphs`` package);
- :func:`is_suspicious` — a value mixing scripts inside one word, hiding invisible
  characters, or spelling a Latin-looking word in another script.

Confusables: ``confusables.txt`` maps a character to a prototype; the package ships the
pairs in both directions. A non-ASCII character (after folding) listed as confusable with
one ASCII letter or digit is replaced by it (the first such, in the data's order); ASCII
itself is left alone, so two different ASCII letters never meet (joining the pairs
transitively would: ``r`` and ``t``, ``n`` and ``v`` end up in one class through
non-Latin glyphs). Multi-character prototypes (``m`` ~ ``rn``) are not used.

Pure Python (``unicodedata`` and the pure-Python ``confusable_homoglyphs`` data): the
domain layer stays free of native dependencies.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from fnmatch import fnmatchcase
from functools import lru_cache
from typing import Any

from confusable_homoglyphs import categories as _categories
from confusable_homoglyphs.confusables import confusables_data as _CONFUSABLES

#: Bidi marks the package wraps around right-to-left glyphs in its data.
_DATA_MARKS = "\u200e\u200f"
#: Scripts that never make a word mixed (punctuation, digits, combining marks).
NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED", "Unknown"})
#: Default-ignorable characters outside category Cf (UAX #44 Default_Ignorable_Code_Point).
_IGNORABLE_EXTRA = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0") | frozenset(
    chr(c) for c in [*range(0x180B, 0x1810), *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0)]
)
#: JSON text inside a string (and JSON text inside that...) is looked into this deep.
MAX_JSON_TEXT_DEPTH = 16  # each level doubles its escapes: 64 KiB cannot nest much deeper
MAX_JSON_TEXT_LENGTH = 64 * 1024
_JSON_TEXT = re.compile(r"\s*[\[{]")  # JSON text of an array or object starts so
#: Strings and keys one value may yield (agent-supplied: the work must stay bounded).
MAX_TEXTS = 8192
_FOLD_CACHE = 4096
#: A value longer than this is not an identifier spelled in another script.
MAX_DISGUISED_WORD = 64
#: Only short strings (key names, role names, operands) are memoised: values come from
#: agents and may be large, so they must not pin memory in an LRU.
MAX_CACHED_LENGTH = 256


#: Planes holding every format (Cf) and non-spacing mark (Mn) character: 0, 1 and 14.
_MARK_PLANES = (range(0x0000, 0x20000), range(0xE0000, 0xE1000))


def _ignorable(ch: str) -> bool:
    return ch.isspace() or unicodedata.category(ch) == "Cf" or ch in _IGNORABLE_EXTRA


def _char_class(codes: list[int]) -> re.Pattern[str]:
    """A character class of ``codes`` written as ranges (a set of single characters is slow)."""
    parts, start = [], None
    for i, code in enumerate(codes):
        if start is None:
            start = code
        if i + 1 == len(codes) or codes[i + 1] != code + 1:
            last = "-" + re.escape(chr(code)) if code != start else ""
            parts.append(re.escape(chr(start)) + last)
            start = None
    return re.compile("[" + "".join(parts) + "]+")


@lru_cache(maxsize=1)
def _strippers() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Compiled classes of ignorable characters and of combining marks (built once, ~50 ms):
    a regex deletes them at C speed, where a Python loop per character cost 1.5 s on 64 KiB."""
    ignorable: list[int] = []
    marks: list[int] = []
    for plane in _MARK_PLANES:
        for code in plane:
            ch = chr(code)
            if _ignorable(ch):
                ignorable.append(code)
            elif unicodedata.category(ch) == "Mn":
                marks.append(code)
    return _char_class(ignorable), _char_class(marks)


def fold(text: str) -> str:
    """The text key: NFKC, case-folded, NFKC, without invisible characters or whitespace."""
    return _fold_short(text) if len(text) <= MAX_CACHED_LENGTH else _fold(text)


def skeleton(text: str) -> str:
    """The folded text with every non-ASCII character replaced by its ASCII confusable."""
    return _skeleton_short(text) if len(text) <= MAX_CACHED_LENGTH else _skeleton(text)


def _fold(text: str) -> str:
    if text.isascii():
        return "".join(text.lower().split())  # ASCII: casefold is lower(), NFKC is identity
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return _strippers()[0].sub("", folded)


@lru_cache(maxsize=1)
def _representatives() -> tuple[dict[int, str], dict[int, str]]:
    """Non-ASCII character -> the ASCII letter or digit it is listed as confusable with.

    Two tables: one for characters as written (``˛`` looks like ``i`` but folds to a
    bare combining mark, so it must be mapped before folding), one for the folded forms
    of those characters that are not combining marks (what folding may produce).
    """
    raw: dict[int, str] = {}
    folded: dict[int, str] = {}
    for source, glyphs in _CONFUSABLES.items():
        a = source.strip(_DATA_MARKS)
        if len(a) != 1 or a.isascii():
            continue
        for glyph in glyphs:  # the data lists the prototype first for a source character
            b = fold(glyph["c"].strip(_DATA_MARKS))
            if len(b) == 1 and b.isascii() and b.isalnum():
                raw.setdefault(ord(a), b)
                f = fold(a)
                if len(f) == 1 and not f.isascii() and unicodedata.category(f) != "Mn":
                    folded.setdefault(ord(f), b)
                break
    return raw, folded


def _skeleton(text: str) -> str:
    if text.isascii():
        return fold(text)  # ASCII is its own skeleton (and skips building the tables)
    raw, reps = _representatives()
    folded = fold(text.translate(raw))
    if folded.isascii():
        return folded
    return _strippers()[1].sub("", unicodedata.normalize("NFD", folded)).translate(reps)


_fold_short = lru_cache(maxsize=_FOLD_CACHE)(_fold)
_skeleton_short = lru_cache(maxsize=_FOLD_CACHE)(_skeleton)


@lru_cache(maxsize=_FOLD_CACHE)
def _script(ch: str) -> str:
    alias: str = _categories.alias(ch)  # the package is untyped; alias() returns a str
    return alias


def is_suspicious(text: str) -> str | None:
    """Why ``text`` looks like a disguise, or ``None``: ASCII text never is.

    - an invisible character (format / default-ignorable, e.g. U+200B) inside it;
    - a word (whitespace-separated) that mixes scripts, ignoring Common and Inherited
      (``аdmin`` with a Cyrillic ``а``);
    - a value of one word wholly in a script other than Latin whose skeleton is a plain
      ASCII word (``ѕиdо``-like spellings entirely in Cyrillic); prose (several words) and
      accented Latin (``café``) are not judged so, or every Russian sentence and French
      word would look like a disguise.
    """
    if text.isascii():
        return None
    if any(not ch.isspace() and _ignorable(ch) for ch in text):
        return "it holds invisible characters"
    words = text.split()
    for word in words:
        if word.isascii():
            continue
        scripts = {_script(ch) for ch in word} - NEUTRAL_SCRIPTS
        if len(scripts) > 1:
            return f"the word {word!r} mixes scripts ({', '.join(sorted(scripts))})"
        folded = fold(word)
        if (
            len(words) == 1
            and len(word) <= MAX_DISGUISED_WORD
            and scripts
            and scripts != {"LATIN"}
            and not folded.isascii()
            and len(folded) > 1
        ):
            shape = skeleton(word)
            if shape.isascii() and shape.isalpha():
                return f"the word {word!r} looks like the Latin {shape!r}"
    return None


def texts(value: Any, keys: tuple[str, ...] | None = None) -> Iterator[str]:
    """Every string inside ``value``: itself, list items, object keys and values, and the
    same inside JSON text held in a string, at most :data:`MAX_TEXTS` of them.

    With ``keys`` (globs matched against each key's :func:`skeleton`, so ``rоle`` with a
    Cyrillic ``о`` is still ``role``), only strings that sit under a matching key at any
    depth count; a key itself counts when it or one
    of its ancestors matches (``{"permissions": {"admin": true}}`` yields ``admin``).
    """

    def matches(name: str) -> bool:
        shape = skeleton(name)
        return keys is None or any(fnmatchcase(shape, k) for k in keys)

    count = 0
    stack: list[tuple[Any, bool, int]] = [(value, keys is None, 0)]
    while stack and count < MAX_TEXTS:
        item, inside, depth = stack.pop()
        if isinstance(item, str):
            if inside:
                count += 1
                yield item
            if (
                depth < MAX_JSON_TEXT_DEPTH
                and len(item) <= MAX_JSON_TEXT_LENGTH
                and _JSON_TEXT.match(item)
            ):
                try:
                    stack.append((json.loads(item), inside, depth + 1))
                except (ValueError, RecursionError):
                    pass  # not JSON (or nested past the parser's limit): yielded as text
        elif isinstance(item, list):
            stack.extend((v, inside, depth) for v in reversed(item))
        elif isinstance(item, dict):
            for name, v in reversed(list(item.items())):
                under = inside or matches(name)
                if under:
                    count += 1
                    yield name
                stack.append((v, under, depth))
