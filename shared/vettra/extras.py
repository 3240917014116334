"""Which optional install (a ``pyproject.toml`` extra) brings which import, and the one
line that says what to install when one is missing.

``pip install vettra`` is the agent-side SDK; the server, the cloud backend and the
framework integrations are extras. Standard library only: the SDK and the ``vettra``
command import this before anything optional. ``tests/unit/test_extras.py`` checks the
table against ``pyproject.toml``.
"""

from __future__ import annotations

#: extra -> (what it is, the top-level modules its distributions install)
EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "server": (
        "the server's dependencies",
        (
            "cryptography",
            "joserfc",
            "jsonschema",
            "referencing",
            "pyotp",
            "tqdm",
            "webauthn",
            "confusable_homoglyphs",
            "uvicorn",
            "httptools",
            "uvloop",
            "wasmtime",
            "authlib",
        ),
    ),
    "cloud": (
        "the Google Cloud libraries",
        ("google", "firebase_admin", "functions_framework"),
    ),
    "mcp": ("the MCP SDK", ("mcp", "mcp_types")),
    "langchain": ("langchain-core", ("langchain_core", "pydantic", "pydantic_core")),
    "openai-agents": ("the OpenAI Agents SDK", ("agents",)),
    "anthropic": ("the Anthropic SDK", ("anthropic",)),
}


def extra_for(module: str | None) -> str | None:
    """The extra that installs ``module`` (a dotted name), or None if none does."""
    top = (module or "").split(".")[0]
    for extra, (_, modules) in EXTRAS.items():
        if top in modules:
            return extra
    return None


def install_hint(extra: str, module: str | None = None) -> str:
    """``needs <what> (no module 'm'): pip install 'vettra[<extra>]'``."""
    missing = f" (no module {module!r})" if module else ""
    return f"needs {EXTRAS[extra][0]}{missing}: pip install 'vettra[{extra}]'"


def missing_extra(exc: BaseException) -> tuple[str, str] | None:
    """(extra, missing module) when ``exc`` or what caused it is a ``ModuleNotFoundError``
    of a module an extra installs; None for anything else (a bug, not a missing install)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ModuleNotFoundError):
            extra = extra_for(seen.name)
            if extra is not None:
                return extra, str(seen.name)
        seen = seen.__cause__
    return None
