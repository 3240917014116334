"""vettra.extras names, for each ``pyproject.toml`` extra, the modules its distributions
install (so a missing one is reported with the right ``pip install 'vettra[...]'``).

The table is checked against pyproject.toml: every extra but ``test`` is in it, and every
distribution an extra lists installs only top-level modules the table gives that extra
(as this venv's metadata says; a distribution not installed here is taken by its name).
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from vettra import extras

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, list[Requirement]]:
    optional = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    return {
        extra: [r for r in map(Requirement, reqs) if _normal(r.name) != "vettra"]
        for extra, reqs in optional.items()
        if extra != "test"
    }


def _modules_of(distribution: str) -> set[str]:
    installed: dict[str, set[str]] = {}
    for module, owners in importlib.metadata.packages_distributions().items():
        for owner in owners:
            installed.setdefault(_normal(owner), set()).add(module)
    found = installed.get(_normal(distribution))
    if found is None:
        return {distribution.replace("-", "_").lower()}
    return {m for m in found if not m.startswith("_") and m.isidentifier()}


def test_every_extra_is_in_the_table():
    assert set(_declared()) == set(extras.EXTRAS)


@pytest.mark.parametrize("extra", sorted(extras.EXTRAS))
def test_each_distribution_of_an_extra_installs_modules_the_table_names(extra: str):
    _, modules = extras.EXTRAS[extra]
    for requirement in _declared()[extra]:
        unnamed = _modules_of(requirement.name) - set(modules)
        assert not unnamed, f"{requirement.name} ({extra}) installs {sorted(unnamed)}"


def test_a_missing_module_names_its_extra_through_the_import_chain():
    try:
        try:
            raise ModuleNotFoundError("No module named 'mcp_types'", name="mcp_types")
        except ImportError as exc:
            raise ImportError("vettra.sdk.mcp needs the MCP SDK") from exc
    except ImportError as outer:
        assert extras.missing_extra(outer) == ("mcp", "mcp_types")
    assert extras.missing_extra(ModuleNotFoundError(name="cryptography.hazmat")) == (
        "server",
        "cryptography.hazmat",
    )
    # a module no extra installs is a bug, not a missing install: not explained away
    assert extras.missing_extra(ModuleNotFoundError(name="vettra.nothing")) is None
    assert extras.install_hint("server", "uvicorn") == (
        "needs the server's dependencies (no module 'uvicorn'): pip install 'vettra[server]'"
    )
