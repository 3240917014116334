"""web/scripts/dist.mjs: the Hosting build, and cloud mode's config.js and CSP rendered from
Terraform's ``dashboard_config`` output (cloudbuild.yaml's hosting step). Run with Node
(skipped loudly without it); the rendered config.js is imported by Node as the browser
would, and the rendered CSP must be exactly what ``vettra dev`` sends for the same origins.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from vettra.entrypoints import dashboard

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "web" / "scripts" / "dist.mjs"
GOOGLE = (
    "https://identitytoolkit.googleapis.com",
    "https://securetoken.googleapis.com",
    "https://firestore.googleapis.com",
)

#: the shape `terraform output -json dashboard_config` prints (terraform/outputs.tf)
TERRAFORM_OUTPUT = {
    "mode": "cloud",
    "orgDomains": ["acme.example"],
    "auth0": {
        "issuer": "https://acme.eu.auth0.com/",
        "clientId": "spa123",
        "audience": "https://vettra.acme.example/api",
    },
    "firebase": {
        "apiKey": "AIzaSyPublicKey",
        "authDomain": "acme-prod.firebaseapp.com",
        "projectId": "acme-prod",
        "appId": "1:123:web:abc",
    },
}


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.skip("SKIPPED web/scripts/dist.mjs tests: node not found on PATH")
    return path


def run(node: str, tmp: Path, config: Any) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    settings = tmp / "dashboard_config.json"
    settings.write_text(config if isinstance(config, str) else json.dumps(config))
    out, hosting = tmp / "site" / "dist", tmp / "site" / "firebase.deploy.json"
    done = subprocess.run(
        [node, str(DIST), "--config", str(settings), "--out", str(out),
         "--firebase-out", str(hosting)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done, out, hosting


def imported_config(node: str, dist: Path) -> dict[str, Any]:
    script = "import(process.argv[1]).then((m) => console.log(JSON.stringify(m.config)))"
    done = subprocess.run(
        [node, "-e", script, (dist / "app" / "config.js").as_uri()],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def csp_of(hosting: Path) -> str:
    rules = json.loads(hosting.read_text())["hosting"]["headers"]
    return next(
        h["value"] for r in rules for h in r["headers"] if h["key"] == "Content-Security-Policy"
    )


def test_terraform_s_output_becomes_config_js_and_the_hosting_csp(node, tmp_path) -> None:
    done, dist, hosting = run(node, tmp_path, TERRAFORM_OUTPUT)
    assert done.returncode == 0, done.stderr
    assert imported_config(node, dist) == TERRAFORM_OUTPUT
    origins = ("https://acme.eu.auth0.com", *GOOGLE)
    assert csp_of(hosting) == dashboard.security_headers(origins)["Content-Security-Policy"]
    rendered = json.loads(hosting.read_text())["hosting"]
    original = json.loads((REPO / "firebase.json").read_text())["hosting"]
    assert rendered["public"] == "dist"  # relative to the rendered file, as firebase reads it
    assert rendered["rewrites"] == original["rewrites"]
    # everything but config.js is the checkout's web/ file for file
    for path in (REPO / "web" / "app").glob("*.js"):
        if path.name != "config.js":
            assert (dist / "app" / path.name).read_bytes() == path.read_bytes(), path.name
    assert (dist / "vendor" / "firebase" / "firebase.js").exists()
    assert not (dist / "node_modules").exists() and not (dist / "package.json").exists()


def test_emulators_replace_the_google_origins(node, tmp_path) -> None:
    config = {
        **TERRAFORM_OUTPUT,
        "auth0": {**TERRAFORM_OUTPUT["auth0"], "issuer": "http://127.0.0.1:4000/"},
        "emulators": {"auth": "http://127.0.0.1:9099", "firestore": "http://127.0.0.1:8080/"},
    }
    done, dist, hosting = run(node, tmp_path, config)
    assert done.returncode == 0, done.stderr
    assert imported_config(node, dist)["emulators"] == {
        "auth": "http://127.0.0.1:9099",
        "firestore": "http://127.0.0.1:8080",
    }
    connect = next(d for d in csp_of(hosting).split("; ") if d.startswith("connect-src"))
    assert connect == (
        "connect-src 'self' http://127.0.0.1:4000 http://127.0.0.1:9099 http://127.0.0.1:8080"
    )


def _changed(path: str, value: Any) -> dict[str, Any]:
    config = json.loads(json.dumps(TERRAFORM_OUTPUT))
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return config


@pytest.mark.parametrize(
    ("config", "says"),
    [
        ("{not json", "cannot read"),
        (_changed("mode", "local"), 'mode "cloud"'),
        (_changed("auth0.issuer", "http://acme.eu.auth0.com/"), "https (or http on loopback)"),
        (_changed("auth0.issuer", "https://acme.eu.auth0.com"), "ending with /"),
        (_changed("auth0.issuer", "https://acme.eu.auth0.com/x/"), "no path"),
        (_changed("auth0.issuer", "https://acme.eu.auth0.com/?x=1"), "must be plain"),
        (_changed("auth0.clientId", None), "auth0.clientId"),
        (_changed("auth0.audience", ""), "auth0.audience"),
        (_changed("firebase.apiKey", 7), "firebase.apiKey"),
        (_changed("clientSecret", "s3cret"), "unknown settings: clientSecret"),
        (_changed("emulators", {"auth": "https://emulator.example"}), "http on loopback"),
    ],  # fmt: skip
)
def test_a_bad_config_is_refused_and_nothing_is_written(node, tmp_path, config, says) -> None:
    done, dist, hosting = run(node, tmp_path, config)
    assert done.returncode == 2 and says in done.stderr, done.stderr
    assert not dist.exists() and not hosting.exists()
    assert "s3cret" not in done.stderr + done.stdout


def test_without_a_config_the_build_is_the_local_dashboard(node, tmp_path) -> None:
    out = tmp_path / "dist"
    done = subprocess.run(
        [node, str(DIST), "--out", str(out)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    config = (REPO / "web" / "app" / "config.js").read_bytes()
    assert (out / "app" / "config.js").read_bytes() == config
    assert imported_config(node, out)["mode"] == "local"
