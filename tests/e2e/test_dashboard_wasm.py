"""The audit page's Verify in Chromium with the backend's own WASM module: the page
fetches /verifier.wasm (the package's data/verifier.wasm), checks its pinned SHA-256
before compiling it (CSP: 'wasm-unsafe-eval' and nothing broader), self-checks it against
WebCrypto, and says which verifier checked. An honest log passes with WASM named; a
second Verify after the log grew checks the new checkpoint's consistency proof against
the one verified before, and refuses a history that does not extend it; a module that
is altered or missing is not used: the WebCrypto verifier checks instead and the page
says so. (Tampered exports failing at their first bad entry, with WASM named:
test_dashboard_pages.py.) No console errors, no CSP violations.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .browser import SEND_EMAIL, admin_tab, csp_violations, wait_for_checkpoint
from .conftest import mint

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "shared" / "vettra" / "data" / "verifier.wasm"
VERIFY_TIMEOUT_MS = 30_000


def _history(web_server, web_admin, n: int = 3) -> None:
    """A few entries, then a signed checkpoint over all of them."""
    with web_server.client(mint(web_server.home, "agent", "bot-w", "alice-w")) as agent:
        for i in range(n):
            agent.post("/api/actions/intercept", json={**SEND_EMAIL, "context": {"w": i}})
    wait_for_checkpoint(web_admin)


def _audit(tab: Any) -> None:
    tab.page.evaluate("location.hash = '#/audit'")
    tab.page.locator("section.page[data-loaded]:has(#audit-title)").wait_for()


def _engine(tab: Any, name: str) -> str:
    line = tab.page.locator(f"#verify-engine[data-engine='{name}']")
    line.wait_for()
    return str(line.inner_text())


def _verify(tab: Any, wanted: str) -> str:
    tab.page.get_by_role("button", name="Verify the log").click()
    outcome = tab.page.locator("#verify-outcome").filter(has_text=wanted)
    outcome.wait_for(timeout=VERIFY_TIMEOUT_MS)
    return str(outcome.inner_text())


def _clean(tab: Any) -> None:
    assert csp_violations(tab.page) == []
    tab.page.context.close()
    assert tab.problems == [], tab.problems


def test_verify_uses_the_wasm_module_and_checks_consistency_with_the_last_checkpoint(
    browser, web_server, web_admin
) -> None:
    _history(web_server, web_admin)
    tab = admin_tab(browser, web_server, web_admin, "wasm-admin")
    served: list[int] = []
    tab.page.on(
        "response", lambda r: served.append(r.status) if r.url.endswith("/verifier.wasm") else None
    )
    try:
        _audit(tab)
        assert "the WASM verifier" in _engine(tab, "WASM")
        text = _verify(tab, "Valid")
        assert "hashes and links intact" in text and "checked by the WASM verifier" in text
        assert tab.page.locator("#verify-outcome").get_attribute("data-engine") == "WASM"
        assert served == [200], served  # fetched once, from this origin

        # the log grew and a new checkpoint signed it: the next Verify checks the new
        # checkpoint's consistency proof against the one this browser verified before
        saved = tab.page.evaluate("JSON.parse(localStorage.getItem('vettra.checkpoint'))")
        _history(web_server, web_admin, 2)
        assert wait_for_checkpoint(web_admin) > saved["size"]
        text = _verify(tab, "consistent with the checkpoint you verified before")
        assert f"verified before ({saved['size']} entries)" in text, text
        # a browser that remembers another history (a rewritten log, as far as it knows)
        tab.page.evaluate(
            """() => { const cp = JSON.parse(localStorage.getItem('vettra.checkpoint'));
            localStorage.setItem('vettra.checkpoint', JSON.stringify(
              {...cp, size: cp.size - 1, root: 'ab'.repeat(32)})); }"""
        )
        text = _verify(tab, "The log was rewritten")
        assert "the consistency proof fails" in text and "WASM verifier" in text, text
        assert "checked by the WASM verifier" in text

    finally:
        _clean(tab)


@pytest.mark.parametrize("how", ["altered", "missing"])
def test_a_module_that_is_altered_or_missing_is_not_used_and_webcrypto_checks(
    browser, web_server, web_admin, how
) -> None:
    _history(web_server, web_admin, 1)
    tab = admin_tab(browser, web_server, web_admin, f"wasm-{how}")
    bytes_ = bytearray(MODULE.read_bytes())
    bytes_[len(bytes_) // 2] ^= 0x01  # one bit: still a loadable module, not this one

    def serve(route: Any) -> None:
        if how == "altered":
            route.fulfill(status=200, body=bytes(bytes_), content_type="application/wasm")
        else:
            route.fulfill(status=404, body="{}", content_type="application/problem+json")

    tab.page.route("**/verifier.wasm", serve)
    try:
        tab.page.reload()  # the module is chosen once per page load
        tab.page.wait_for_selector("#queue-title")
        _audit(tab)
        note = _engine(tab, "WebCrypto")
        assert note.startswith("Verifier: WebCrypto (fallback). The WASM verifier was not used")
        assert (
            ("expected" in note and "refused" in note) if how == "altered" else "HTTP 404" in note
        )
        assert tab.page.locator("#verify-engine.verifier-fallback").is_visible()
        text = _verify(tab, "Valid")
        assert "checked by the WebCrypto verifier" in text
        assert tab.page.locator("#verify-outcome").get_attribute("data-engine") == "WebCrypto"
    finally:
        if how == "missing":  # Chromium logs the 404 this test serves on purpose
            refused = "Failed to load resource: the server responded with a status of 404"
            tab.problems[:] = [p for p in tab.problems if refused not in p]  # type: ignore[attr-defined]
        _clean(tab)
