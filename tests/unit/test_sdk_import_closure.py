"""``import vettra.sdk`` is light: httpx, tenacity and two pure Vettra modules, no server.

Each closure is measured in a fresh interpreter (``sys.modules`` after the import and
after building a client), against httpx's own closure measured the same way, so the
check does not depend on what else this environment has installed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
before = set(sys.modules)
{code}
print(json.dumps(sorted(set(sys.modules) - before)))
"""

HTTPX_ONLY = "import httpx\nhttpx.Client().close()\nhttpx.AsyncClient()"
SDK = (
    "import vettra.sdk\n"
    "vettra.sdk.Client('http://127.0.0.1:9', token='t').close()\n"
    "vettra.sdk.AsyncClient('http://127.0.0.1:9', token='t')"
)

#: What the SDK may add to httpx's closure: itself, the pure naming and digest modules it
#: shares with the server (so names and digests cannot drift), and two small libraries.
ALLOWED_EXTRA_PREFIXES = (
    "vettra.sdk",
    "tenacity",
    "rfc8785",
)
ALLOWED_EXTRA = {
    "vettra",
    "vettra.domain",
    "vettra.domain.canonical",
    "vettra.domain.errors",
    "vettra.domain.frameworks",
    "vettra.domain.statuses",
}
#: The server's dependencies and layers, none of which an agent should have to load.
SERVER_SIDE = (
    "cryptography",
    "joserfc",
    "jsonschema",
    "referencing",
    "pyotp",
    "webauthn",
    "uvicorn",
    "tqdm",
    "confusable_homoglyphs",
    "google",
    "vettra.bootstrap",
    "vettra.services",
    "vettra.adapters",
    "vettra.entrypoints",
    "vettra.cli",
    "langchain_core",
    "agents",
    "anthropic",
    "mcp",
)


def closure(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(code=code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return set(json.loads(out.stdout))


@pytest.fixture(scope="module")
def closures() -> tuple[set[str], set[str]]:
    return closure(HTTPX_ONLY), closure(SDK)


def _stdlib(name: str) -> bool:
    return (
        name.split(".")[0].lstrip("_") in sys.stdlib_module_names
        or name.split(".")[0] in sys.stdlib_module_names
    )


def test_the_sdk_adds_nothing_heavier_than_httpx(closures):
    httpx_closure, sdk_closure = closures
    extra = {
        m
        for m in sdk_closure - httpx_closure
        if not _stdlib(m)
        and m not in ALLOWED_EXTRA
        and not any(m == p or m.startswith(p + ".") for p in ALLOWED_EXTRA_PREFIXES)
    }
    assert extra == set(), f"import vettra.sdk also loads {sorted(extra)}"
    assert "vettra.sdk._client" in sdk_closure and "tenacity" in sdk_closure


def test_no_server_dependency_is_loaded(closures):
    _, sdk_closure = closures
    loaded = sorted(m for m in sdk_closure for p in SERVER_SIDE if m == p or m.startswith(p + "."))
    assert loaded == [], f"import vettra.sdk loads server-side modules: {loaded}"
