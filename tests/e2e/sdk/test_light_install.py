"""``pip install vettra`` is the agent-side SDK and nothing of the server, from a built wheel.

The wheel is built from a copy of the source (``pip wheel --no-deps``: setuptools in
pip's isolated build environment) and installed WITHOUT extras into an empty venv, with
pip as this machine configures it (the dependencies come from the index or pip's cache;
if pip cannot get them the tests skip, saying so). Then, from that venv only (its own
interpreter and ``vettra`` script, no PYTHONPATH, run outside the checkout):

- the installed distributions are the closure of the wheel's base requirements, and
  none that an extra names (cryptography, uvicorn, wasmtime, jsonschema...);
- ``vettra.sdk.Client`` intercepts a LOW tool at the live ``vettra dev`` (started from
  the repository's venv) and gets ``allowed``, and ``@protect`` runs the function;
- ``vettra dev`` prints the one line naming ``pip install 'vettra[server]'`` and exits 2,
  ``vettra mcp-proxy`` names ``vettra[mcp]``, and ``vettra demo`` runs its table.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from ...venvs import VenvFailed, private_venv
from ..conftest import free_port, mint
from .conftest import USER, LiveVettra

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[3]
#: What the SDK needs, and so all that `pip install vettra` may ask for.
BASE = {"httpx", "tenacity", "rfc8785"}
#: Installed by `python -m venv` itself, not by the wheel.
VENV_OWN = {"pip", "setuptools"}
#: A few of the server's, named outright (the test below also checks every extra's).
SERVER_SIDE = {"cryptography", "uvicorn", "wasmtime", "jsonschema", "joserfc", "webauthn"}
RUN_TIMEOUT_S = 120


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _source_copy(dest: Path) -> Path:
    """What the wheel is built from: pyproject.toml, README.md and shared/ (the dashboard's
    files through the web symlink, as copies), so no build/ or egg-info lands in the
    checkout."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "shared",
        dest / "shared",
        symlinks=False,
        ignore=shutil.ignore_patterns("__pycache__", "node_modules", "*.egg-info"),
    )
    return dest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    source = _source_copy(root / "src")
    out = root / "dist"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        pytest.skip(f"SKIPPED LOUDLY: pip could not build the wheel (setuptools>=77): {tail}")
    (built,) = out.glob("vettra-*.whl")
    return built


@pytest.fixture(scope="module")
def light(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin folder of an empty venv holding `pip install <the wheel>`, no extras."""
    path = tmp_path_factory.mktemp("light") / "venv"
    try:
        python = private_venv(path, [str(wheel)])
    except VenvFailed as exc:
        pytest.skip(f"SKIPPED LOUDLY: pip could not install the wheel's dependencies: {exc}")
    return python.parent


def _env(**extra: str) -> dict[str, str]:
    """A user's shell: no PYTHONPATH or VETTRA_* of this session."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYTHONHOME") and not k.startswith("VETTRA_")
    }
    return {**env, **extra}


def _run(light: Path, cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(light / argv[0]), *argv[1:]],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=cwd,
        env=_env(**env),
    )


def _site_packages(light: Path) -> Path:
    (site,) = light.parent.glob("lib/python*/site-packages")
    return site


def _requirements(dist: importlib.metadata.Distribution) -> list[Requirement]:
    return [Requirement(r) for r in dist.requires or ()]


def _applies(req: Requirement, extras: set[str]) -> bool:
    """Whether ``req`` is installed for these extras here (its marker, this platform)."""
    if req.marker is None:
        return True
    return any(req.marker.evaluate({"extra": e}) for e in extras | {""})


def test_the_wheel_installs_only_what_the_sdk_needs(light: Path):
    dists = {
        _normal(d.metadata["Name"]): d
        for d in importlib.metadata.distributions(path=[str(_site_packages(light))])
    }
    vettra = dists["vettra"]
    base = [r for r in _requirements(vettra) if _applies(r, set())]
    assert {_normal(r.name) for r in base} == BASE, "pip install vettra asks for more than the SDK"
    # the closure of those, as installed: every installed distribution is in it
    closure: set[str] = set()
    todo = [(r, set(r.extras)) for r in base]
    while todo:
        req, extras = todo.pop()
        name = _normal(req.name)
        if name in closure:
            continue
        closure.add(name)
        assert name in dists, f"{name} is required but not installed"
        todo += [(r, set(r.extras)) for r in _requirements(dists[name]) if _applies(r, extras)]
    assert set(dists) - VENV_OWN == closure | {"vettra"}
    # nothing any extra names (server, cloud, the frameworks, the tests' tools)
    optional = {_normal(r.name) for r in _requirements(vettra) if r not in base} - closure
    optional.discard("vettra")  # cloud extends vettra[server]
    assert SERVER_SIDE <= optional
    assert optional & set(dists) == set(), "an extra's distribution was installed"


SDK_PROBE = r"""
import importlib.metadata, json, os, sys

import vettra.sdk
from vettra.sdk import Client, protect

ran = []
with Client(
    os.environ["AGENT_URL"], token=os.environ["AGENT_TOKEN"], timeout=10.0, decision_timeout_s=30.0
) as client:
    authorization = client.authorize("user.get_profile", {})

    @protect(client)
    def user_get_profile():
        ran.append("ran")
        return {"name": "Alice"}

    result = user_get_profile()
print(json.dumps({
    "sdk": vettra.sdk.__file__,
    "status": authorization.action.status,
    "action_id": authorization.action.action_id,
    "level": authorization.action.risk.level,
    "result": result,
    "ran": ran,
    "user_agent": vettra.sdk.USER_AGENT,
    "version": importlib.metadata.version("vettra"),
    "loaded": sorted({m.split(".")[0] for m in sys.modules}),
}))
"""


def test_the_installed_sdk_gets_a_low_tool_allowed_by_a_live_server(
    light: Path, live: LiveVettra, tmp_path: Path
):
    done = _run(
        light, tmp_path, "python", "-c", SDK_PROBE, AGENT_URL=live.url, AGENT_TOKEN=live.agent_token
    )
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout)
    assert Path(out["sdk"]).is_relative_to(_site_packages(light)), "not the installed wheel"
    assert out["status"] == "allowed" and out["level"] == "LOW"
    assert out["result"] == {"name": "Alice"} and out["ran"] == ["ran"]
    assert out["user_agent"] == f"vettra-sdk-python/{out['version']}"
    assert not SERVER_SIDE & set(out["loaded"])
    # the server recorded that very action as allowed (read as the user, from outside)
    with live.user_api() as user:
        seen = user.get(f"/api/actions/{out['action_id']}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["status"] == "allowed" and seen.json()["tool"] == "user.get_profile"


def _one_line_hint(done: subprocess.CompletedProcess[str], command: str, extra: str) -> None:
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"vettra {command} needs ")
    assert lines[0].endswith(f"pip install 'vettra[{extra}]'")


def test_server_commands_name_the_server_extra_in_one_line(light: Path, tmp_path: Path):
    home = tmp_path / "home"
    dev = _run(light, tmp_path, "vettra", "dev", "--home", str(home), "--port", str(free_port()))
    _one_line_hint(dev, "dev", "server")
    assert not home.exists(), "vettra dev touched the home before saying what is missing"
    token = _run(light, tmp_path, "vettra", "token", "--home", str(home), "--role", "agent",
                 "--sub", "a", "--user", USER)  # fmt: skip
    _one_line_hint(token, "token", "server")
    assert _run(light, tmp_path, "vettra", "--help").returncode == 0


def test_mcp_proxy_names_the_mcp_extra(light: Path, tmp_path: Path):
    done = _run(light, tmp_path, "vettra", "mcp-proxy", "--", "true", VETTRA_TOKEN="t")
    _one_line_hint(done, "mcp-proxy", "mcp")


def test_the_demo_runs_from_the_sdk_alone(light: Path, live: LiveVettra, tmp_path: Path):
    """Tokens from the environment (minting them from a home is the server's)."""
    done = _run(
        light, tmp_path, "vettra", "demo", "--url", live.url,
        VETTRA_TOKEN=mint(live.server.home, "agent", "light-demo", USER),
        VETTRA_APPROVER_TOKEN=live.approver_token,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [line for line in done.stdout.splitlines() if line[:1].isdigit() and "  " in line]
    assert len(rows) == 6 and "✅ allowed, ran" in rows[0], done.stdout
    home = _run(light, tmp_path, "vettra", "demo", "--url", live.url,
                "--home", str(live.server.home))  # fmt: skip
    assert home.returncode == 2 and "Traceback" not in home.stderr
    assert "pip install 'vettra[server]'" in home.stderr and "$VETTRA_TOKEN" in home.stderr
