"""Private virtualenvs for what must not share the repository's venv.

The functions bundle is proven by installing its own ``requirements.txt`` into an
empty venv (nothing of ours leaks in), and checkov pins versions that clash with
our test extra (and ships its own ``hcl2`` module, which python-hcl2 also installs).
Both come from PyPI through pip as configured on the machine; pip's wheel cache
makes a rebuild cheap. A venv is built once per ``stamp``: a later call finds the
stamp and reuses it; concurrent builders queue on a file lock.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

INSTALL_TIMEOUT_S = 900


class VenvFailed(RuntimeError):
    """``python -m venv`` or ``pip install`` failed; the message ends with pip's last lines."""


def private_venv(path: Path, pip_args: Sequence[str], *, stamp: str | None = None) -> Path:
    """The interpreter of a venv at ``path`` holding ``pip install <pip_args>``.

    ``stamp`` (default: the arguments) names what the venv holds; a venv whose stamp
    matches is reused as it is, any other is rebuilt from nothing.
    """
    python = path / "bin" / "python"
    marker = path / ".vettra-installed"
    want = stamp if stamp is not None else " ".join(pip_args)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.parent / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if python.exists() and marker.exists() and marker.read_text() == want:
            return python
        # sys.executable may itself be a venv's: `-m venv` bases the new one on the
        # interpreter underneath, without this venv's site-packages
        _run([sys.executable, "-m", "venv", "--clear", str(path)])
        _run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            + list(pip_args)
        )
        marker.write_text(want)
    return python


def _run(command: list[str]) -> None:
    what = " ".join(command[:6])
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise VenvFailed(f"{what}: {exc}") from exc
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise VenvFailed(f"{what} exited {done.returncode}: " + " | ".join(tail))
