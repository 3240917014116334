"""The domain, services and ports never import cloud SDKs, Flask,
functions-framework or wasmtime, nor the package's own adapters and entry points
(docs/architecture.md): walk their ASTs, resolving relative imports, and check."""

from __future__ import annotations

import ast
from pathlib import Path

import vettra

PACKAGE = Path(vettra.__file__).parent
PURE = [PACKAGE / "domain", PACKAGE / "services", PACKAGE / "ports.py"]
FORBIDDEN = (
    "google",
    "flask",
    "functions_framework",
    "wasmtime",
    "firebase_admin",
    "werkzeug",
    "sqlite3",
    "httpx",
)
#: The package's own outer layers: the pure ones reach them only through ports.
FORBIDDEN_OWN = (
    "vettra.adapters",
    "vettra.entrypoints",
    "vettra.bootstrap",
    "vettra.cli",
    "vettra.audit_cli",
)


#: Third-party libraries the pure layers may use: deterministic computation with no
#: I/O of its own (docs/architecture.md, "What the pure layers may import"). Anything
#: else from outside the standard library sits behind a port, in an adapter.
PURE_LIBRARIES = (
    "cryptography",
    "pyotp",
    "webauthn",
    "joserfc",
    "rfc8785",
    "confusable_homoglyphs",
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts)


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    """The absolute module ``from .x import y`` names, as Python resolves it (PEP 328)."""
    if node.level == 0:
        return node.module or ""
    # A module's package is its parent; a package's ``__init__`` is its own package.
    package = _module_name(path).split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node)
            found.append((node.lineno, module))
            # ``from .. import adapters`` names the module in the alias, not in ``module``.
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _files() -> list[Path]:
    files: list[Path] = []
    for root in PURE:
        files += [root] if root.is_file() else sorted(root.rglob("*.py"))
    return files


def test_pure_layers_exist() -> None:
    assert len(_files()) >= 8, "expected the domain and service modules to be found"


def test_no_infrastructure_imports_in_domain_services_or_ports() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)}:{line} imports {name}"
        for path in _files()
        for line, name in _imports(path)
        if name.split(".")[0] in FORBIDDEN
        or any(name == own or name.startswith(own + ".") for own in FORBIDDEN_OWN)
    ]
    assert offenders == []


def test_pure_layers_use_only_the_listed_libraries() -> None:
    import sys

    outside = sorted(
        {
            f"{path.relative_to(PACKAGE)} imports {name}"
            for path in _files()
            for _, name in _imports(path)
            if name.split(".")[0] not in sys.stdlib_module_names
            and name.split(".")[0] not in PURE_LIBRARIES
            and not name.startswith("vettra")
            and name.split(".")[0] != "__future__"
        }
    )
    assert outside == [], "add a port, or list the library in PURE_LIBRARIES and the docs"


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    """``from ..adapters import x`` inside services must count as ``vettra.adapters``."""
    fake = PACKAGE / "services" / "actions.py"
    node = ast.parse("from ..adapters.sqlite_store import SqliteStore").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _absolute(fake, node) == "vettra.adapters.sqlite_store"
    node = ast.parse("from .. import adapters").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _absolute(fake, node) == "vettra"
    init = PACKAGE / "domain" / "__init__.py"
    node = ast.parse("from .errors import NotFound").body[0]
    assert isinstance(node, ast.ImportFrom)
    assert _absolute(init, node) == "vettra.domain.errors"


def test_importing_the_package_connects_nothing() -> None:
    import subprocess
    import sys

    # Some site packages pre-import namespace packages (e.g. google.cloud from a
    # *-nspkg.pth file), so compare against what the bare interpreter had.
    code = (
        "import sys; before=set(sys.modules);"
        "import vettra, vettra.bootstrap, vettra.entrypoints.http.routes, vettra.cli;"
        # the cloud adapters import their client libraries only when first used
        "import vettra.adapters.pubsub_bus, vettra.adapters.pubsub_consumer,"
        " vettra.adapters.pubsub_admin;"
        "bad=[m for m in set(sys.modules)-before if m.split('.')[0] in"
        " ('sqlite3','google','flask','wasmtime','grpc','firebase_admin','functions_framework')];"
        "print(','.join(sorted(bad)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_adapters_are_built_only_in_bootstrap() -> None:
    """Wiring in one place: outside ``adapters/`` and ``bootstrap.py`` no module calls an
    adapter class (entry points and the CLI ask ``bootstrap`` for what they need)."""
    adapter_classes = {
        node.name
        for path in sorted((PACKAGE / "adapters").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_")
    }
    assert {"SqliteStore", "LocalKeyStore", "LocalIdentity", "LocalTimer"} <= adapter_classes
    outside = [
        p
        for p in sorted(PACKAGE.rglob("*.py"))
        if "adapters" not in p.relative_to(PACKAGE).parts and p.name != "bootstrap.py"
    ]
    builds = []
    for path in outside:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in adapter_classes:
                    builds.append(f"{path.relative_to(PACKAGE)}:{node.lineno} builds {name}")
    assert builds == []
