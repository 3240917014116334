"""The README's SDK examples, extracted and run verbatim against a live ``vettra dev``.

Each ``<!-- example: NAME -->`` block is written to a file and run with the test's Python
(or, for MCP, started by the ``mcp`` package's client as the README's host config says),
with ``VETTRA_URL``/``VETTRA_TOKEN`` set as the README tells the reader to, the user's
Gmail token stored with ``vettra vault put`` and granted to the example's agent, the model
clients pointed at a scripted model (scripted_models.py), and a person deciding through
the approver API.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client as McpClient
from mcp import StdioServerParameters

from ..conftest import mint
from .conftest import USER, Approver, LiveVettra
from .scripted_models import ScriptedModels

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[3] / "README.md"
EXAMPLE = re.compile(
    r"<!-- example: (?P<name>[\w-]+) -->\n```(?P<lang>\w+)\n(?P<code>.*?)\n```", re.S
)
RUN_TIMEOUT_S = 120
REASON = "not today, thanks"


def examples() -> dict[str, str]:
    found = {m["name"]: m["code"] for m in EXAMPLE.finditer(README.read_text())}
    assert found, f"no <!-- example: … --> blocks in {README}"
    return found


def test_the_readme_has_an_example_per_integration():
    assert set(examples()) == {
        "protect", "langchain", "openai-agents", "anthropic", "mcp-server", "mcp-config",
    }  # fmt: skip


@pytest.fixture(scope="module")
def models():
    with ScriptedModels() as scripted:
        yield scripted


def venv_path() -> str:
    """PATH with this interpreter's bin first: `python` and `vettra` as in an active venv."""
    return os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])


def agent_env(live: LiveVettra, models: ScriptedModels, sub: str) -> dict[str, str]:
    """An agent of its own, set up as the README's "Credentials after approval" says: the
    user's tokens are in the vault (the session did `vettra vault put`) and the user
    grants this agent the connections."""
    token = mint(live.server.home, "agent", sub, USER)
    live.grant(sub)
    return {
        **os.environ, **models.env(), "PATH": venv_path(),
        "VETTRA_URL": live.url, "VETTRA_TOKEN": token,
    }  # fmt: skip


def by_agent(sub: str):
    return lambda action: action.raw.get("agent") == sub


def run(name: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = cwd / f"{name.replace('-', '_')}_example.py"
    script.write_text(examples()[name])
    out = subprocess.run(
        [sys.executable, str(script)], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert out.returncode == 0, f"README example {name} failed:\n{out.stdout}\n{out.stderr}"
    return out


SENT = "sent 'Q3 numbers' to bob@example.com"
DENIED = f"Vettra denied gmail.send_message: {REASON}"


# Every example approved; the denial branch where the example itself handles it (protect's
# `except ActionDenied`) or where the reason travels back through the framework to the
# model (openai-agents). The other denials are in each integration's own test.
@pytest.mark.parametrize(
    ("name", "decision", "expected"),
    [
        ("protect", "approve", ["{'name': 'Alice'}", f"{SENT} using a Bearer token"]),
        ("protect", "deny", ["{'name': 'Alice'}", f"not sent: {REASON}"]),
        ("langchain", "approve", [f"success {SENT}"]),
        ("openai-agents", "approve", [f"Done: {SENT}"]),
        ("openai-agents", "deny", [f"Done: {DENIED}"]),
        ("anthropic", "approve", [f"Done: {SENT}"]),
    ],
)
def test_an_sdk_example_runs_as_printed(
    name: str,
    decision: str,
    expected: list[str],
    live: LiveVettra,
    approver: Approver,
    models: ScriptedModels,
    tmp_path: Path,
):
    sub = f"readme-{name}-{uuid.uuid4().hex[:8]}"
    decided = approver.later(by_agent(sub), decision, reason=REASON if decision == "deny" else None)
    out = run(name, agent_env(live, models, sub), tmp_path)
    assert out.stdout.splitlines() == expected, out.stderr
    action = decided.result(timeout=5)
    assert action.tool == "gmail.send_message" and action.risk.level == "MEDIUM"


def test_the_mcp_example_runs_as_configured(
    live: LiveVettra, approver: Approver, models: ScriptedModels, tmp_path: Path
):
    (tmp_path / "mailbox.py").write_text(examples()["mcp-server"])
    config = json.loads(examples()["mcp-config"])["mcpServers"]["mailbox"]
    sub = f"readme-mcp-{uuid.uuid4().hex[:8]}"
    env = agent_env(live, models, sub)
    # the config's env names what the reader fills in: the URL and an agent token
    assert set(config["env"]) == {"VETTRA_URL", "VETTRA_TOKEN"}
    host = StdioServerParameters(
        command=config["command"], args=config["args"], env=env, cwd=str(tmp_path)
    )
    upstream = StdioServerParameters(
        command="python", args=["mailbox.py"], env=env, cwd=str(tmp_path)
    )
    decided = approver.later(by_agent(sub), "deny", reason=REASON)

    async def main() -> tuple[Any, Any, Any, Any]:
        async with McpClient(upstream) as direct, McpClient(host) as proxied:
            return (
                await direct.list_tools(),
                await proxied.list_tools(),
                await proxied.call_tool("get_profile", {}),
                await proxied.call_tool("delete_message", {"message_id": "m1"}),
            )

    direct, listed, profile, deleted = anyio.run(main)
    assert [t.model_dump() for t in listed.tools] == [t.model_dump() for t in direct.tools]
    assert not profile.is_error and profile.content[0].text == "Alice <alice@example.com>"
    assert deleted.is_error and REASON in deleted.content[0].text
    action = decided.result(timeout=5)
    assert action.tool == "gmail.delete_message" and action.risk.level == "HIGH"
