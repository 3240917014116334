"""wasm-verifier/js/verifier.mjs in Node: every shared vector through the JS loader and
the shipped module (node's own test runner; no npm packages)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEST = REPO / "wasm-verifier" / "js" / "test" / "vectors.test.mjs"


def test_node_runs_the_vectors_through_the_js_loader() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "SKIPPED the JS loader's vector run: no `node` on PATH (apt-get install nodejs)"
        )
    result = subprocess.run(
        [node, "--test", str(TEST)], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "# fail 0" in result.stdout and "# pass 3" in result.stdout, result.stdout[-2000:]
