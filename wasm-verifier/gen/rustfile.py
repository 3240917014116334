"""What every generator in this folder does with the Rust file it renders."""

from __future__ import annotations

import sys
from pathlib import Path


def write_or_check(out: Path, text: str, script: str) -> int:
    """With ``--check`` on the command line: 1 if ``out`` is not ``text``, else 0.
    Without: write ``text`` to ``out``."""
    name = Path(script).name
    if "--check" in sys.argv:
        if not out.exists() or out.read_text(encoding="utf-8") != text:
            print(f"{out} is out of date: run {name}", file=sys.stderr)
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text)} bytes)")
    return 0
