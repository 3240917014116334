"""The deploy bundle serves requests from nothing but itself and PyPI.

``make functions-bundle`` writes what Cloud Build uploads: ``main.py``, the vendored
``vettra`` package with its data files, and ``requirements.txt``. Here that folder gets
a venv of its own (``python -m venv``, then ``pip install -r requirements.txt`` from
PyPI: nothing of the repository's venv, no ``PYTHONPATH``), and functions-framework, as
the Cloud Functions runtime runs it, serves targets from the bundle directory:
``health`` unauthenticated, and ``intercept`` with a token ``vettra token`` minted for
the same home. One bundle and one venv per test session (the install takes a while;
pip's cache makes later sessions quicker).
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ..integration.scenarios import SEND_EMAIL
from ..venvs import VenvFailed, private_venv
from .conftest import free_port, mint

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "shared" / "vettra"
BOOT_TIMEOUT_S = 60.0  # a fresh venv compiles every module on the first import
PROBLEM = "application/problem+json"


@pytest.fixture(scope="session")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make functions-bundle`` into a temporary folder (BUNDLE=...)."""
    out = tmp_path_factory.mktemp("bundle") / "functions"
    done = subprocess.run(
        ["make", "--no-print-directory", "functions-bundle", f"BUNDLE={out}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"make functions-bundle failed:\n{done.stdout}\n{done.stderr}"
    return out


@pytest.fixture(scope="session")
def bundle_venv(bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding exactly ``pip install -r <bundle>/requirements.txt``: its bin folder."""
    path = tmp_path_factory.mktemp("bundle-venv") / "venv"
    try:
        python = private_venv(path, ["-r", str(bundle / "requirements.txt")])
    except VenvFailed as exc:
        pytest.fail(f"the bundle's requirements.txt does not install from PyPI: {exc}")
    return python.parent


def _clean_env(home: Path) -> dict[str, str]:
    """What a function instance has: its configuration, not the developer's environment."""
    return {
        "PATH": os.defpath,
        "HOME": str(home.parent),
        "LANG": "C.UTF-8",
        "VETTRA_BACKEND": "local",
        "VETTRA_MODE": "local",
        "VETTRA_HOME": str(home),
        "VETTRA_LOG_LEVEL": "WARNING",
    }


class Served:
    """``functions-framework --asgi --source main.py --target NAME`` run from the bundle."""

    def __init__(self, venv_bin: Path, bundle: Path, target: str, home: Path, log: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(
                [
                    str(venv_bin / "functions-framework"),
                    "--asgi",
                    "--source",
                    "main.py",
                    "--target",
                    target,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                cwd=bundle,
                env=_clean_env(home),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def wait_listening(self, path: str) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"functions-framework exited {self.proc.returncode}:\n{self.log()}"
                )
            try:
                httpx.get(self.url + path, timeout=2)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(
            f"functions-framework not listening after {BOOT_TIMEOUT_S}s:\n{self.log()}"
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def serve(bundle: Path, bundle_venv: Path, tmp_path: Path) -> Iterator:
    started: list[Served] = []

    def start(target: str, home: Path, probe: str) -> Served:
        served = Served(bundle_venv, bundle, target, home, tmp_path / f"{target}.log")
        started.append(served)
        served.wait_listening(probe)
        return served

    yield start
    for served in started:
        served.stop()


def _files(root: Path) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }


def test_the_bundle_is_main_requirements_and_the_whole_package(bundle: Path) -> None:
    assert filecmp.cmp(bundle / "main.py", REPO / "functions" / "main.py", shallow=False)
    assert filecmp.cmp(
        bundle / "requirements.txt", REPO / "functions" / "requirements.txt", shallow=False
    )
    vendored = bundle / "vettra"
    assert _files(vendored) == _files(PACKAGE)  # every module and data file, nothing else
    assert {"data/catalogue.json", "data/default-policy.json"} <= _files(vendored)
    assert not list(bundle.rglob("__pycache__"))
    assert sorted(p.name for p in bundle.iterdir()) == ["main.py", "requirements.txt", "vettra"]


def test_the_venv_holds_the_requirements_and_not_the_package(
    bundle: Path, bundle_venv: Path, tmp_path: Path
) -> None:
    """vettra is importable only as the bundle's own folder, as on Cloud Functions."""
    env = _clean_env(tmp_path / "home")

    def probe(cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(bundle_venv / "python"),
                "-c",
                "import functions_framework, vettra; print(vettra.__file__)",
            ],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    here = probe(bundle)
    assert here.returncode == 0, here.stderr
    assert Path(here.stdout.strip()).resolve() == (bundle / "vettra" / "__init__.py").resolve()
    elsewhere = probe(tmp_path)
    assert elsewhere.returncode == 1
    assert "No module named 'vettra'" in elsewhere.stderr


def test_health_target_answers_from_the_bundle(serve, tmp_path: Path) -> None:
    home = tmp_path / "health-home"
    served = serve("health", home, "/health")
    r = httpx.get(served.url + "/health", timeout=10)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok" and body["store"] == "sqlite", body
    assert r.headers["x-trace-id"]
    assert (home / "vettra.db").exists()  # the configured home, not a default one
    other = httpx.get(served.url + "/api/policy", timeout=10)  # the policy target's route
    assert other.status_code == 404 and other.headers["content-type"] == PROBLEM


def test_intercept_target_decides_with_a_vettra_token(serve, tmp_path: Path) -> None:
    home = tmp_path / "intercept-home"
    token = mint(home, "agent", "agent-1", "alice")  # the CLI a user has, on the same home
    served = serve("intercept", home, "/health")
    with httpx.Client(base_url=served.url, timeout=20) as client:
        refused = client.post("/api/actions/intercept", json=SEND_EMAIL)
        assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM
        assert refused.headers["www-authenticate"].startswith("Bearer")
        r = client.post(
            "/api/actions/intercept",
            json=SEND_EMAIL,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["status"], body["risk"]["level"], body["step_up_required"]) == (
            "pending",
            "MEDIUM",
            False,
        )
        assert body["action_id"].startswith("act_")
