"""``vettra demo`` (the installed CLI) against a live server: the table and the exit code."""

from __future__ import annotations

import os
import subprocess

import pytest

from ..conftest import free_port, mint, run_cli, vettra_command
from .conftest import LiveVettra

pytestmark = pytest.mark.e2e


def rows_of(stdout: str) -> dict[str, str]:
    """Table rows by their number."""
    return {
        line.split()[0]: line for line in stdout.splitlines() if line[:1].isdigit() and "  " in line
    }


def demo_with_tokens(
    live: LiveVettra, agent: str, approver: str | None
) -> subprocess.CompletedProcess[str]:
    """`vettra demo` with tokens from the environment only (no home: no setup); exit 0."""
    env = {**os.environ, "VETTRA_TOKEN": agent}
    env.pop("VETTRA_APPROVER_TOKEN", None)
    if approver is not None:
        env["VETTRA_APPROVER_TOKEN"] = approver
    out = subprocess.run(
        [*vettra_command(), "demo", "--url", live.url],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out


def test_the_five_scenarios_and_the_injection(live: LiveVettra):
    out = run_cli("demo", "--url", live.url, "--home", str(live.server.home))
    rows = rows_of(out.stdout)
    assert sorted(rows) == ["1", "2", "3", "4", "5", "6"], out.stdout
    assert "✅ allowed, ran" in rows["1"] and "LOW" in rows["1"]
    # the approved e-mail ran with a credential really released: alice's stored Gmail
    # token (the session's `vettra vault put`), under the grant the demo made as alice
    assert "MEDIUM" in rows["2"] and "✅ allowed, ran" in rows["2"]
    assert "approved by the user, then sent to bob@example.com with a Bearer token from " \
        "google-oauth2" in rows["2"]  # fmt: skip
    assert "setup: using the access_token alice stored for google-oauth2" in out.stdout
    assert "granted 'vettra-demo' https://www.googleapis.com/auth/gmail.send on " \
        "google-oauth2 as alice" in out.stdout  # fmt: skip
    assert live.provider_tokens["google-oauth2"] not in out.stdout + out.stderr
    assert "step-up required" in rows["3"] and "HIGH 90" in rows["3"]
    assert "step-up required" in rows["4"] and "HIGH" in rows["4"]
    assert "denied" in rows["5"] and "admin" in rows["5"]
    # the injected forward was flagged HIGH, held, and the user's reason is shown
    assert "HIGH" in rows["6"] and "prompt injection" in rows["6"]
    assert all(line.rstrip().endswith("yes") for line in rows.values()), out.stdout
    assert "could not decide" not in out.stdout


def test_for_a_user_with_nothing_stored_it_stores_a_made_up_token_and_says_so(
    live: LiveVettra,
):
    first = run_cli("demo", "--url", live.url, "--home", str(live.server.home), "--user", "carol")
    assert "setup: stored a made-up google-oauth2 token for carol in the local vault" in (
        first.stdout
    )
    assert "nothing reaches Google" in first.stdout
    assert "✅ allowed, ran" in rows_of(first.stdout)["2"], first.stdout
    listed = run_cli("vault", "list", "--home", str(live.server.home), "--user", "carol")
    assert listed.stdout.startswith("google-oauth2\taccess_token\t")
    assert "vettra-demo-not-a-google-token-" not in first.stdout + listed.stdout
    # a second run finds both in place and changes nothing
    again = run_cli("demo", "--url", live.url, "--home", str(live.server.home), "--user", "carol")
    assert "setup: using the access_token carol stored for google-oauth2" in again.stdout
    assert "carol had already granted 'vettra-demo'" in again.stdout
    assert "✅ allowed, ran" in rows_of(again.stdout)["2"], again.stdout


def test_an_agent_the_user_granted_nothing_is_approved_but_not_run(live: LiveVettra):
    """Tokens from the environment (no home: no setup): the real release refuses the
    ungranted agent (403 not-permitted), and the row and a note say so."""
    out = demo_with_tokens(
        live, mint(live.server.home, "agent", "demo-ungranted", "alice"), live.approver_token
    )
    rows = rows_of(out.stdout)
    assert "☑️ approved, not run" in rows["2"] and "[not-permitted]" in rows["2"], out.stdout
    assert rows["2"].rstrip().endswith("yes")
    assert "setup:" not in out.stdout
    assert "note: the e-mail was approved but released no credential" in out.stdout


def test_without_an_approver_the_medium_and_the_injection_wait(live: LiveVettra):
    out = demo_with_tokens(live, live.agent_token, None)
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
