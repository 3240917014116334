"""A new user's first hour with `vettra dev`, run as the installed script from outside:
the banner's commands work as printed even when `vettra` is not on PATH, and a busy
port is one clear line, not a traceback."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DevServer

pytestmark = pytest.mark.e2e

SCRIPT = Path(sys.executable).with_name("vettra")
BARE_PATH = "/usr/bin:/bin"  # what a fresh shell has: no .venv/bin


@pytest.fixture
def script() -> Path:
    if not SCRIPT.exists():
        pytest.skip(
            f"the installed vettra script is missing beside {sys.executable}: pip install -e ."
        )
    return SCRIPT


def test_the_banners_token_commands_work_as_printed_without_vettra_on_path(
    script: Path, tmp_path: Path
) -> None:
    server = DevServer(tmp_path / "home", tmp_path / "dev.log")
    env = {**os.environ, "PATH": BARE_PATH}
    proc = subprocess.Popen(
        [str(script), "dev", "--home", str(server.home), "--port", str(server.port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Try:"):
                break
        commands = [line.strip() for line in lines if " token --home " in line]
        assert len(commands) == 2, "".join(lines)
        for command in commands:
            out = subprocess.run(
                shlex.split(command), env=env, capture_output=True, text=True, timeout=60
            )
            assert out.returncode == 0, (command, out.stderr)
            token = out.stdout.strip()
            assert token.count(".") == 2
            import httpx

            r = httpx.get(
                f"http://127.0.0.1:{server.port}/api/actions/pending",
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert r.status_code in (200, 403), r.text  # accepted: the agent may not list
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_busy_port_is_one_clear_line(script: Path, tmp_path: Path) -> None:
    first = DevServer(tmp_path / "one", tmp_path / "one.log").start()
    try:
        out = subprocess.run(
            [str(script), "dev", "--home", str(tmp_path / "two"), "--port", str(first.port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert (
            str(first.port) in lines[0] and "--port" in lines[0] and "Traceback" not in out.stderr
        )
        assert not (tmp_path / "two").exists(), "nothing is written for a server that cannot listen"
    finally:
        first.terminate()
