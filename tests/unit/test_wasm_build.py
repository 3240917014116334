"""The committed module is the one its sources build: the recorded digest, the Unicode
tables and the bounds generated from the Python reference, a reproducible rebuild with wasm-verifier/build.sh (which installs Debian's
Rust and the Ed25519 crates through apt when they are missing; skipped, naming what
is missing, where that cannot be done), and the crate's own ``cargo test``."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import unicodedata
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CRATE = REPO / "wasm-verifier"
MODULE = REPO / "shared" / "vettra" / "data" / "verifier.wasm"
DIGEST = MODULE.with_name("verifier.wasm.sha256")
BUILD = CRATE / "build.sh"
TOOLCHAIN_MISSING = 3  # build.sh's exit status when it cannot install what it needs


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def test_the_recorded_digest_is_the_module_s() -> None:
    recorded = DIGEST.read_text("ascii").split()
    assert recorded == [hashlib.sha256(MODULE.read_bytes()).hexdigest(), "verifier.wasm"]


def _python(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300)


def test_the_rust_bounds_are_the_python_reference_s() -> None:
    result = _python(str(CRATE / "gen" / "limits.py"), "--check")
    assert result.returncode == 0, result.stderr


def test_a_bound_changed_in_python_makes_the_rust_bounds_stale(tmp_path: Path) -> None:
    """The check above would catch a drift: a changed bound renders another file."""
    script = tmp_path / "drift.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(CRATE / 'gen')!r})\n"
        "import limits\n"
        "from vettra.domain import policy_schema\n"
        "before = limits.render()\n"
        "policy_schema.MAX_RULES += 1\n"
        "after = limits.render()\n"
        "assert before != after\n"
        "assert f'MAX_RULES: usize = {policy_schema.MAX_RULES};' in after\n",
        encoding="utf-8",
    )
    result = _python(str(script))
    assert result.returncode == 0, result.stderr


def test_the_unicode_tables_are_this_interpreter_s() -> None:
    header = (CRATE / "src" / "tables.rs").read_text("utf-8").splitlines()[2:4]
    versions = {line.split()[2].rstrip(":"): line.split('"')[1] for line in header}
    here = {
        "UNIDATA_VERSION": unicodedata.unidata_version,
        "CONFUSABLES_VERSION": metadata.version("confusable-homoglyphs"),
    }
    if versions != here:
        pytest.skip(f"tables.rs was generated for {versions}, this interpreter has {here}")
    result = _python(str(CRATE / "gen" / "tables.py"), "--check")
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="session")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """The module built from source once per session (minutes on a fresh machine: apt)."""
    out = tmp_path_factory.mktemp("wasm") / "verifier.wasm"
    result = subprocess.run(
        ["bash", str(BUILD), "--out", str(out)], capture_output=True, text=True, timeout=1800
    )
    if result.returncode == TOOLCHAIN_MISSING:
        pytest.skip(
            "SKIPPED the reproducible-build check: wasm-verifier/build.sh cannot install "
            f"Debian's Rust toolchain or the Ed25519 crates here:\n{_tail(result.stderr)}"
        )
    assert result.returncode == 0, _tail(result.stderr, 40)
    return out.read_bytes()


@pytest.mark.slow
def test_a_rebuild_matches_the_committed_module(rebuilt: bytes) -> None:
    committed = MODULE.read_bytes()
    assert rebuilt == committed, (
        f"wasm-verifier/build.sh gives sha256 {hashlib.sha256(rebuilt).hexdigest()}, the "
        f"committed module is {hashlib.sha256(committed).hexdigest()}: run build.sh and "
        "commit shared/vettra/data/verifier.wasm and its .sha256"
    )


@pytest.mark.slow
def test_cargo_test_runs_every_vector(rebuilt: bytes) -> None:
    """Native tests of the crate (tests/vectors.rs reads ../tests/vectors)."""
    result = subprocess.run(
        ["bash", str(BUILD), "--test"], capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, _tail(result.stderr, 60)
    assert "test result: ok. 6 passed" in result.stderr, _tail(result.stderr, 40)
