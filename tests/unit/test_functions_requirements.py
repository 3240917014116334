"""functions/requirements.txt lists every distribution a deployed function imports.

The import closure of functions/main.py is built from the source (every ``import``
statement, also those inside functions - the lazy ones run on the first request),
following the vettra package and stopping at third-party modules. Each
third-party module is mapped to the distribution that installed it; each must be
named in the file. Transitive imports of those distributions are theirs to
declare (pip resolves them).
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "functions" / "main.py"
REQUIREMENTS = ROOT / "functions" / "requirements.txt"
PACKAGE = ROOT / "shared" / "vettra"
FIRST_PARTY = "vettra"


def _module_file(name: str) -> Path | None:
    """The source file of first-party module ``name`` (a package's __init__.py)."""
    parts = name.split(".")[1:]
    base = PACKAGE.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _imports(path: Path, module: str) -> set[str]:
    names: set[str] = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            names.add(target)
            # `from . import x` / `from pkg import sub`: sub may be a module
            names.update(f"{target}.{alias.name}" for alias in node.names)
    return names


def closure() -> tuple[set[str], set[str]]:
    """(first-party modules reached, third-party module names imported by them)."""
    seen: set[str] = set()
    third: set[str] = set()
    todo = [("__main__", MAIN)]
    while todo:
        module, path = todo.pop()
        for name in _imports(path, module):
            top = name.split(".")[0]
            if top == FIRST_PARTY:
                file = _module_file(name)
                if file is not None and name not in seen:
                    seen.add(name)
                    todo.append((name, file))
            elif top and top not in sys.stdlib_module_names and top != "__future__":
                third.add(name)
    return seen, third


def _distribution_of(module: str) -> str | None:
    """The distribution that installed ``module`` (namespace packages: by file)."""
    top = module.split(".")[0]
    owners = importlib.metadata.packages_distributions().get(top, [])
    if len(owners) == 1:
        return owners[0]
    while module:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin not in (None, "namespace"):
            origin = Path(spec.origin).resolve()
            for name in owners:
                dist = importlib.metadata.distribution(name)
                for file in dist.files or ():
                    if Path(dist.locate_file(file)).resolve() == origin:
                        return name
        module = module.rpartition(".")[0]
    return owners[0] if owners else None


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def listed() -> set[str]:
    names = set()
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(_normal(re.split(r"[\s<>=!~\[;]", line, maxsplit=1)[0]))
    return names


def test_the_closure_reaches_the_runtime_the_functions_build() -> None:
    first, _ = closure()
    assert {
        "vettra.entrypoints.functions",
        "vettra.entrypoints.asgi",
        "vettra.bootstrap",
        "vettra.services.stepup",
    } <= first


def test_every_imported_distribution_is_in_functions_requirements() -> None:
    _, third = closure()
    missing: dict[str, list[str]] = {}
    unknown = []
    for module in sorted(third):
        dist = _distribution_of(module)
        if dist is None:
            unknown.append(module)
        elif _normal(dist) not in listed():
            missing.setdefault(dist, []).append(module.split(".")[0])
    missing = {dist: sorted(set(tops)) for dist, tops in missing.items()}
    assert not missing, f"functions/requirements.txt lacks {missing}"
    assert not unknown, f"imported by a function but not installed here: {unknown}"


def test_the_server_stack_is_not_imported_by_a_function() -> None:
    """uvicorn runs ``vettra dev`` only: Cloud Functions bring their own server."""
    first, third = closure()
    assert "vettra.entrypoints.server" not in first and "vettra.cli" not in first
    assert not any(m.split(".")[0] == "uvicorn" for m in third)
