"""The same module and JS loader in Chromium: a page imports web/app/verifier.mjs (the
dashboard's copy, which wasm-verifier/js/verifier.mjs re-exports),
loads the shipped verifier.wasm over HTTP (digest checked), runs every shared vector
(wasm-verifier/js/test/vectors.mjs) and posts the result back to this test's server.
Skipped, saying so, where no Chromium is installed (apt-get install chromium)."""

from __future__ import annotations

import functools
import http.server
import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"
DATA = REPO / "shared" / "vettra" / "data"
JS = REPO / "wasm-verifier" / "js"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PAGE = """<!doctype html><meta charset="utf-8"><title>verifier vectors</title>
<script type="module">
import { loadVerifier } from "./verifier.mjs";
import { checkVectors } from "./vectors.mjs";
let result;
try {
  const digest = (await (await fetch("verifier.wasm.sha256")).text()).split(/\\s+/)[0];
  const v = await loadVerifier(new URL("verifier.wasm", location.href), { expectedSha256: digest });
  const vectors = await (await fetch("vectors.json")).json();
  const catalogue = await (await fetch("catalogue.json")).json();
  result = { info: v.info(), ...checkVectors(v, vectors, catalogue), agent: navigator.userAgent };
} catch (e) {
  result = { error: String(e && e.stack || e) };
}
await fetch("/result", { method: "POST", body: JSON.stringify(result) });
</script>"""


def _dir(name: str) -> list[list[Any]]:
    base = VECTORS / name
    paths = sorted(base.glob("*.json")) if base.is_dir() else []
    return [[p.name, json.loads(p.read_text("utf-8"))] for p in paths]


def _site(root: Path) -> None:
    shutil.copy(REPO / "web" / "app" / "verifier.mjs", root / "verifier.mjs")
    shutil.copy(JS / "test" / "vectors.mjs", root / "vectors.mjs")
    for name in ("verifier.wasm", "verifier.wasm.sha256", "catalogue.json"):
        shutil.copy(DATA / name, root / name)
    bundle = {
        "canonical": _dir("canonical"),
        "merkle": _dir("merkle"),
        "policy": _dir("policy"),
        "decide": _dir("risk") + _dir("differential"),
        "checkpoint": _dir("checkpoint"),
        "audit": json.loads((VECTORS / "audit" / "saved-checkpoints.json").read_text("utf-8")),
    }
    (root / "vectors.json").write_text(json.dumps(bundle), encoding="utf-8")
    (root / "index.html").write_text(PAGE, encoding="utf-8")


@pytest.mark.e2e
def test_chromium_runs_the_vectors_through_the_same_module(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("SKIPPED the in-browser vector run: no `chromium` (apt-get install chromium)")
    site = tmp_path / "site"
    site.mkdir()
    _site(site)
    posted: dict[str, Any] = {}
    done = threading.Event()

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {
            **http.server.SimpleHTTPRequestHandler.extensions_map,
            ".mjs": "text/javascript",
            ".wasm": "application/wasm",
        }

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            length = int(self.headers["Content-Length"])
            posted.update(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()
            done.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/index.html"
    browser = subprocess.Popen(
        [chromium, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert done.wait(120), "the page never posted its result"
    finally:
        browser.terminate()
        browser.wait(15)
        server.shutdown()
        server.server_close()
    assert "error" not in posted, posted.get("error")
    assert posted["info"]["ok"] and posted["info"]["ed25519"] is True
    assert posted["failures"] == [] and posted["count"] > 550, posted
