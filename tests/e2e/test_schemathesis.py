"""Schemathesis against a live ``vettra dev``, once per role: the OpenAPI document is
the contract, checked from outside with every default check (server errors, status
codes, content types, response schemas and headers, positive and negative data,
unsupported methods and Allow, stateful links). Exceptions are in schemathesis.toml,
each by design and with its reason.

Bounded: a fixed seed and a few examples per operation (about 20 s per role here).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import mint

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = 8
SEED = 20261203
RUN_TIMEOUT_S = 240
GENERATOR_RETRIES = 2
ROLES = [("agent", "agent-1", "alice"), ("approver", "alice", None), ("admin", "root-admin", None)]


def _st() -> Path:
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        pytest.skip("schemathesis is not installed: pip install -e '.[test]' (schemathesis>=4)")
    return st


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from .conftest import DevServer

    root = tmp_path_factory.mktemp("schemathesis")
    server = DevServer(root / "home", root / "dev.log").start()
    yield server
    code, _ = server.terminate()
    assert code == 0, server.log()


@pytest.mark.parametrize("role, sub, user", ROLES, ids=[r[0] for r in ROLES])
def test_schemathesis_finds_no_failure(live, tmp_path, role, sub, user) -> None:
    token = mint(live.home, role, sub, user)
    cmd = [
        str(_st()),
        "--config-file",
        str(CONFIG),
        "run",
        f"{live.url}/api/openapi.json",
        "-H",
        f"Authorization: Bearer {token}",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "20",
        "--request-retries",
        "2",
        "--generation-database",
        "none",
        "--no-color",
        "--warnings",
        "off",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    for _ in range(GENERATOR_RETRIES):
        if proc.returncode == 0 or not _only_generator_crashes(proc.stdout):
            break
        # Seen in about one run in five: the generator itself crashes (hypothesis raises
        # FlakyFailure around a SystemError from CPython's AST while describing a lambda)
        # with no check failing against our server. That says nothing of the server, so
        # run again and say so; a real failure, or crashes every time, still fails.
        print(f"\nschemathesis ({role}): the generator crashed with no failed check; running again")
        proc = subprocess.run(
            cmd, cwd=tmp_path, capture_output=True, text=True, timeout=RUN_TIMEOUT_S
        )
    out = proc.stdout
    report = out if len(out) < 12000 else out[:8000] + "\n[...]\n" + out[-4000:]
    assert proc.returncode == 0, (
        f"schemathesis ({role}) exited {proc.returncode}:\n{report}\n{proc.stderr[-2000:]}"
    )
    assert " passed" in report and "failure" not in report.lower().split("test cases:")[-1], report
    print(f"\nschemathesis {role}: " + report.split("Test cases:")[-1].strip().splitlines()[0])


def _only_generator_crashes(out: str) -> bool:
    """True when schemathesis reports runtime errors of its own and no failed check."""
    summary = out.split("Test cases:")[-1].lower() if "Test cases:" in out else out.lower()
    return (
        "runtime error" in out.lower()
        and "failures:" not in out.lower()
        and " failed" not in summary
    )
