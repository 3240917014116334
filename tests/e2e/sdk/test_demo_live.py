"""``vettra demo`` (the installed CLI) against a live server: the table and the exit code."""

from __future__ import annotations

import os
import subprocess

import pytest

from ..conftest import free_port, run_cli, vettra_command
from .conftest import LiveVettra

pytestmark = pytest.mark.e2e


def rows_of(stdout: str) -> dict[str, str]:
    """Table rows by their number."""
    return {
        line.split()[0]: line for line in stdout.splitlines() if line[:1].isdigit() and "  " in line
    }


def test_the_five_scenarios_and_the_injection(live: LiveVettra):
    out = run_cli("demo", "--url", live.url, "--home", str(live.server.home))
    rows = rows_of(out.stdout)
    assert sorted(rows) == ["1", "2", "3", "4", "5", "6"], out.stdout
    assert "✅ allowed, ran" in rows["1"] and "LOW" in rows["1"]
    assert "MEDIUM" in rows["2"] and "approved by the user" in rows["2"]
    assert "step-up required" in rows["3"] and "HIGH 90" in rows["3"]
    assert "step-up required" in rows["4"] and "HIGH" in rows["4"]
    assert "denied" in rows["5"] and "admin" in rows["5"]
    # the injected forward was flagged HIGH, held, and the user's reason is shown
    assert "HIGH" in rows["6"] and "prompt injection" in rows["6"]
    assert all(line.rstrip().endswith("yes") for line in rows.values()), out.stdout
    assert "could not decide" not in out.stdout


def test_without_an_approver_the_medium_and_the_injection_wait(live: LiveVettra):
    env = {**os.environ, "VETTRA_TOKEN": live.agent_token}
    env.pop("VETTRA_APPROVER_TOKEN", None)
    out = subprocess.run(
        [*vettra_command(), "demo", "--url", live.url],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    rows = rows_of(out.stdout)
    assert "queued for approval" in rows["2"]
    assert "step-up required" in rows["6"] and "HIGH" in rows["6"]
    assert "attacker@evil.example" in rows["6"]
    assert "wait in the dashboard" in out.stdout


def test_clear_errors_without_a_home_or_a_server(live: LiveVettra, tmp_path):
    missing = run_cli("demo", "--home", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 2 and "no Vettra home" in missing.stderr
    down_url = f"http://127.0.0.1:{free_port()}"
    down = run_cli("demo", "--url", down_url, "--home", str(live.server.home), check=False)
    assert down.returncode == 1 and f"no Vettra answering at {down_url}" in down.stderr
    assert "Traceback" not in down.stderr
