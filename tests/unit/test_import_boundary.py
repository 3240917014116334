"""The domain, services and ports never import cloud SDKs, Flask,
functions-framework or wasmtime (STYLE.md §1): walk their ASTs and check."""

from __future__ import annotations

import ast
from pathlib import Path

import vettra

PACKAGE = Path(vettra.__file__).parent
PURE = [PACKAGE / "domain", PACKAGE / "services", PACKAGE / "ports.py"]
FORBIDDEN = ("google", "flask", "functions_framework", "wasmtime", "firebase_admin", "werkzeug",
             "sqlite3", "httpx")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _files() -> list[Path]:
    files: list[Path] = []
    for root in PURE:
        files += [root] if root.is_file() else sorted(root.rglob("*.py"))
    return files


def test_pure_layers_exist() -> None:
    assert len(_files()) >= 8, "expected the domain and service modules to be found"


def test_no_infrastructure_imports_in_domain_services_or_ports() -> None:
    offenders = [f"{path.relative_to(PACKAGE)}:{line} imports {name}"
                 for path in _files() for line, name in _imports(path)
                 if name.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_importing_the_package_connects_nothing() -> None:
    import subprocess
    import sys

    # Some site packages pre-import namespace packages (e.g. google.cloud from a
    # *-nspkg.pth file), so compare against what the bare interpreter had.
    code = ("import sys; before=set(sys.modules);"
            "import vettra, vettra.bootstrap, vettra.entrypoints.http.routes, vettra.cli;"
            "bad=[m for m in set(sys.modules)-before if m.split('.')[0] in"
            " ('sqlite3','google','flask','wasmtime','grpc','firebase_admin','functions_framework')];"
            "print(','.join(sorted(bad)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
