"""The dashboard's static index: what is served from a web root and what never is."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vettra.entrypoints import dashboard
from vettra.entrypoints.dashboard import StaticSite, web_root

REPO = Path(__file__).resolve().parents[2]


def _site(tmp_path: Path) -> tuple[Path, StaticSite]:
    root = tmp_path / "web"
    (root / "app").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>x</title>")
    (root / "app" / "main.js").write_text("export {};")
    (root / "app" / "notes.md").write_text("not a served type")
    (root / ".env").write_text("SECRET=1")
    (root / "app" / ".hidden.js").write_text("hidden")
    (root / "package.json").write_text("{}")
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "node_modules" / "x" / "index.js").write_text("dev only")
    outside = tmp_path / "outside.js"
    outside.write_text("outside the root")
    os.symlink(outside, root / "app" / "link.js")
    os.symlink(tmp_path, root / "up")
    return root, StaticSite.load(root)


def test_only_regular_files_of_known_types_inside_the_root_are_indexed(tmp_path) -> None:
    _root, site = _site(tmp_path)
    assert sorted(site.assets) == ["/", "/app/main.js", "/index.html", "/verifier.wasm"]
    assert site.lookup("/app/main.js").content_type == "text/javascript; charset=utf-8"
    assert site.lookup("/").body == site.lookup("/index.html").body
    for path in ("/app/link.js", "/up/outside.js", "/.env", "/package.json", "/app/notes.md",
                 "/node_modules/x/index.js", "/app/", "/app"):  # fmt: skip
        assert site.lookup(path) is None, path


@pytest.mark.parametrize(
    "path",
    [
        "/../etc/passwd",
        "/app/../index.html",
        "/./index.html",
        "/app//main.js",
        "/a\\b",
        "/x\x00",
        "/\x1b[31m",
        "relative",
    ],  # fmt: skip
)
def test_paths_that_could_name_no_file_are_refused(path) -> None:
    assert dashboard._unsafe(path)


def test_ordinary_paths_are_not_refused() -> None:
    for path in ("/", "/index.html", "/app/main.js", "/vendor/eventsource-parser/index.js"):
        assert not dashboard._unsafe(path)


def test_the_csp_allows_nothing_inline_and_no_other_origin() -> None:
    directives = dict(d.split(" ", 1) for d in dashboard.CSP.split("; "))
    assert directives["default-src"] == "'none'"
    for name in ("style-src", "img-src", "font-src", "connect-src"):
        assert directives[name] == "'self'", name
    # compiling WebAssembly (the verifier) is the one thing added: no eval, nothing inline
    assert directives["script-src"] == "'self' 'wasm-unsafe-eval'"
    assert dashboard.CSP.count("unsafe") == 1 and "http" not in dashboard.CSP
    assert directives["frame-ancestors"] == "'none'"
    assert directives["require-trusted-types-for"] == "'script'"


def test_the_checkout_web_root_is_found_and_the_env_overrides_it(tmp_path) -> None:
    assert web_root({}).resolve() == REPO / "web"
    other, _site_ = _site(tmp_path)
    assert web_root({dashboard.ENV_WEB_DIR: str(other)}) == other
    # a VETTRA_WEB_DIR without index.html is not a web root: the next candidate is used
    assert web_root({dashboard.ENV_WEB_DIR: str(tmp_path / "missing")}).resolve() == REPO / "web"


def test_the_package_data_carries_every_served_file() -> None:
    """A wheel holds web/ through shared/vettra/web (a link to it): every file the server
    would serve matches one of pyproject's package-data patterns."""
    import fnmatch
    import tomllib

    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["vettra"]
    assert (REPO / "shared" / "vettra" / "web").resolve() == REPO / "web"
    site = StaticSite.load(REPO / "web")
    for path in site.assets:
        if path == "/" or path in dashboard.PACKAGE_ASSETS:
            continue
        name = "web" + path
        assert any(
            fnmatch.fnmatchcase(name, p) and name.count("/") == p.count("/") for p in patterns
        ), name


def test_the_verifier_module_served_is_the_package_s_own_and_the_page_pins_its_digest() -> None:
    """/verifier.wasm is data/verifier.wasm byte for byte, and web/app/wasm.js checks the
    digest build.sh recorded (update MODULE_SHA256 there after a rebuild)."""
    import hashlib
    import re

    data = REPO / "shared" / "vettra" / "data"
    site = StaticSite.load(REPO / "web")
    served = site.lookup("/verifier.wasm")
    assert served is not None and served.content_type == "application/wasm"
    assert served.body == (data / "verifier.wasm").read_bytes()
    recorded = (data / "verifier.wasm.sha256").read_text().split()[0]
    assert hashlib.sha256(served.body).hexdigest() == recorded
    pinned = re.search(r'MODULE_SHA256 = "([0-9a-f]{64})"', (REPO / "web/app/wasm.js").read_text())
    assert pinned and pinned[1] == recorded, "web/app/wasm.js pins another module digest"


VENDORED = {
    "vendor/eventsource-parser/index.js": "eventsource-parser/dist/index.js",
    "vendor/eventsource-parser/parse.js": "eventsource-parser/dist/parse.js",
    "vendor/eventsource-parser/errors.js": "eventsource-parser/dist/errors.js",
    "vendor/eventsource-parser/LICENSE": "eventsource-parser/LICENSE",
    "vendor/qrcode-generator.mjs": "qrcode-generator/dist/qrcode.mjs",
    "vendor/canonicalize/canonicalize.js": "canonicalize/lib/canonicalize.js",
    "vendor/canonicalize/LICENSE": "canonicalize/LICENSE",
}


def test_vendored_libraries_are_the_locked_npm_packages_files() -> None:
    import json

    modules = REPO / "web" / "node_modules"
    if not modules.is_dir():
        pytest.skip("web/node_modules is not installed (make web-deps): vendored copies unchecked")
    lock = json.loads((REPO / "web" / "package-lock.json").read_text())["packages"]
    for vendored, source in VENDORED.items():
        assert (REPO / "web" / vendored).read_bytes() == (modules / source).read_bytes(), vendored
        package = source.split("/")[0]
        wanted = json.loads((REPO / "web" / "package.json").read_text())["dependencies"][package]
        assert lock[f"node_modules/{package}"]["version"] == wanted


def test_the_shipped_dashboard_has_no_inline_script_or_style_and_names_no_other_origin() -> None:
    import re

    site = StaticSite.load(REPO / "web")
    html = site.lookup("/").body.decode()
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all("src=" in attrs and not body.strip() for attrs, body in scripts)
    assert (
        "<style" not in html
        and " style=" not in html
        and " on" not in html.split("<body")[1].split(">")[0]
    )
    for path, asset in site.assets.items():
        if asset.content_type.startswith(("text/javascript", "text/html", "text/css")):
            text = asset.body.decode()
            # every import / src / href / url() names this origin (a path), never a host
            for ref in re.findall(
                r"""(?:from\s+|import\s*\(\s*|src=|href=|url\()\s*["']([^"']+)["']""", text
            ):
                assert not re.match(r"^(https?:)?//", ref), (path, ref)


def test_the_hosting_copy_carries_the_verifier_module_and_its_loader() -> None:
    """web/scripts/dist.mjs (cloudbuild's `npm run build`) writes web/dist, which
    firebase.json serves: it must hold the same module bytes at /verifier.wasm."""
    import json
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("SKIPPED the Hosting copy check: no `node` (apt-get install nodejs)")
    assert json.loads((REPO / "firebase.json").read_text())["hosting"]["public"] == "web/dist"
    subprocess.run(
        [node, str(REPO / "web" / "scripts" / "dist.mjs")], check=True, capture_output=True
    )
    dist = REPO / "web" / "dist"
    data = REPO / "shared" / "vettra" / "data" / "verifier.wasm"
    assert (dist / "verifier.wasm").read_bytes() == data.read_bytes()
    for name in ("app/verifier.mjs", "app/wasm.js", "app/pages/audit.js", "index.html"):
        assert (dist / name).read_bytes() == (REPO / "web" / name).read_bytes(), name
