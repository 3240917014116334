"""The shared test vectors under ``tests/vectors`` (read by other implementations too) as
pytest parameters, so that every vector test finds, checks and names its cases alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1] / "vectors"


def vector_files(folder: str, pattern: str = "*.json") -> list[Path]:
    """The vector files of ``tests/vectors/<folder>`` matching ``pattern``, in name order."""
    return sorted((ROOT / folder).glob(pattern))


def vector_cases(files: list[Path], kind: str, *, format: str | None = None) -> list[Any]:
    """One ``pytest.param(doc, case)`` for each case of each file of this ``kind``, named
    ``file:index:desc``; with ``format``, every file read must declare that format."""
    params = []
    for path in files:
        doc = json.loads(path.read_text("utf-8"))
        if format is not None:
            assert doc["format"] == format, path
        if doc["kind"] == kind:
            params += [
                pytest.param(doc, case, id=f"{path.name}:{i}:{case['desc']}")
                for i, case in enumerate(doc["cases"])
            ]
    return params
