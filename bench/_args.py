"""The benches' command lines, declared as keyword defaults: ``--name`` for each, typed by
its default, with the bench's module docstring as ``--help``."""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple


class Opt(NamedTuple):
    """An option's default with a line of help (a bare default needs none)."""

    default: Any
    help: str


#: Options more than one bench takes, declared once.
SECONDS = Opt(5.0, "how long each timed load runs")
BIG = Opt(1_000_000, "entries in the big log")


def parse_options(doc: str | None, argv: list[str] | None = None, **options: Any) -> Any:
    """``argparse`` over ``--NAME`` for each keyword (``_`` in a name is ``-`` on the
    command line): ``False`` makes a flag, ``None`` a text option without a default, any
    other default an option of its type."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name, option in options.items():
        default, help_text = option if isinstance(option, Opt) else (option, None)
        flag = "--" + name.replace("_", "-")
        if default is False:
            parser.add_argument(flag, action="store_true", help=help_text)
        else:
            kind = str if default is None else type(default)
            parser.add_argument(flag, type=kind, default=default, help=help_text)
    return parser.parse_args(argv)
