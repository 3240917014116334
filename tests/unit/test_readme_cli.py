"""The README documents every CLI command and every option (issue: the newcomer's first
hour): the parser the ``vettra`` script runs is walked, so a command or option added
without a line in the README fails here."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

from vettra.cli import build_parser

README = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(build_parser()))


def _mentioned(option: str) -> bool:
    """``--out`` is not documented by ``--output``: the option must end where it ends."""
    return re.search(re.escape(option) + r"(?![\w-])", README) is not None


def test_the_walk_sees_the_commands() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"dev", "token", "audit verify", "vault put", "receipt verify"} <= names


def test_every_command_is_in_the_readme() -> None:
    missing = [
        "vettra " + " ".join(path)
        for path, parser in COMMANDS
        if path and ("vettra " + " ".join(path)) not in README
    ]
    assert missing == []


def test_every_option_is_in_the_readme() -> None:
    missing = sorted(
        f"vettra {' '.join(path)} {option}"
        for path, parser in COMMANDS
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help" and not _mentioned(option)
    )
    assert missing == []
