"""Connecting an account from the dashboard in headless Chromium, against ``vettra dev``
(Auth0 Token Vault configured to the tests' local authorization server,
tests/token_endpoint.py): the person ticks a scope on *Connected accounts*, Connect
sends the tab to "Auth0", which redirects back through the callback to the page, which
says the account is connected and shows the link; then an agent's approved action is
redeemed with the refresh token the callback stored. A declined consent comes back as
an error and stores nothing. The server ran at DEBUG: its log holds no code and no
refresh token. The page raises no console error (CSP included).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from .browser import SEND_EMAIL, TIMEOUT_MS
from .conftest import DevServer, mint

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

GMAIL_SEND = "https://www.googleapis.com/auth/gmail.send"


@pytest.fixture
def server(tmp_path, endpoint) -> Iterator[DevServer]:
    dev = DevServer(
        tmp_path / "home", tmp_path / "dev.log", ["--log-level", "DEBUG"], env=endpoint.env()
    )
    endpoint.callbacks.append(f"http://localhost:{dev.port}/api/vault/callback")
    dev.start()
    yield dev
    code, _ = dev.terminate()
    assert code == 0, dev.log()


@pytest.fixture
def tab(browser, server, endpoint) -> Iterator[Any]:
    with server.client(mint(server.home, "admin", "ops")) as admin:
        r = admin.post("/api/dashboard/links", json={"sub": "alice"})
        assert r.status_code == 201, r.text
        link = f"http://localhost:{server.port}{r.json()['path']}"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    problems: list[str] = []
    foreign: list[str] = []
    allowed = (f"http://localhost:{server.port}/", endpoint.base + "/authorize", "data:")
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("request", lambda r: None if r.url.startswith(allowed) else foreign.append(r.url))
    page.goto(link)
    page.wait_for_selector("#queue-title")
    yield page
    context.close()
    assert problems == [] and foreign == [], (problems, foreign)


def _open(page: Any) -> Any:
    page.evaluate("location.hash = '#/connections'")
    page.locator("section.page[data-loaded]:has(#connections-title)").wait_for()
    return page.locator("article[data-connection='google-oauth2']")


def test_a_person_connects_google_and_an_agent_gets_a_credential_with_it(
    tab, server, endpoint
) -> None:
    card = _open(tab)
    assert card.locator(".linked").inner_text() == "not connected"
    card.get_by_label(GMAIL_SEND).check()
    card.get_by_role("button", name="Connect google-oauth2").click()
    tab.wait_for_url(re.compile(r"#/connections$"))
    tab.locator("section.page[data-loaded]:has(#connections-title)").wait_for()
    assert tab.locator(".outcome [role=status]").inner_text() == "google-oauth2 is connected."
    card = tab.locator("article[data-connection='google-oauth2']")
    assert card.locator(".linked").inner_text() != "not connected"
    assert card.get_by_role("button", name="Reconnect google-oauth2").is_visible()
    [asked] = endpoint.authorizations
    assert asked["connection_scope"] == GMAIL_SEND and endpoint.violations == []
    # the stored refresh token works: grant, intercept, approve, redeem
    with (
        server.client(mint(server.home, "approver", "alice")) as alice,
        server.client(mint(server.home, "agent", "agent-1", "alice")) as agent,
    ):
        r = alice.post(
            "/api/inventory/permissions",
            json={"agent": "agent-1", "connection": "google-oauth2", "scopes": [GMAIL_SEND]},
        )
        assert r.status_code == 201, r.text
        action = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()
        decided = alice.post(
            "/api/actions/approve", json={"action_id": action["action_id"], "decision": "approve"}
        )
        assert decided.status_code == 200, decided.text
        r = agent.post(
            f"/api/actions/{action['action_id']}/credential",
            json={"args_digest": action["args_digest"]},
        )
        assert r.status_code == 200, r.text
        assert r.json()["access_token"].startswith("ya29.PLANTED-connected-")
    log = server.log_path.read_text(errors="replace")
    secrets = [v for issued in endpoint.issued for v in issued.values()]
    assert len(secrets) == 2  # one code, one refresh token
    for secret in secrets + [endpoint.client_secret]:
        assert secret not in log and httpx.URL(f"/?q={secret}").query.decode() not in log


def test_a_declined_consent_comes_back_as_an_error_and_stores_nothing(tab, endpoint) -> None:
    endpoint.consent = False
    card = _open(tab)
    card.get_by_label(GMAIL_SEND).check()
    card.get_by_role("button", name="Connect google-oauth2").click()
    tab.wait_for_url(re.compile(r"#/connections$"))
    alert = tab.locator(".outcome [role=alert]")
    assert "declined" in alert.inner_text() and alert.inner_text().startswith("google-oauth2")
    assert tab.locator("article[data-connection='google-oauth2'] .linked").inner_text() == (
        "not connected"
    )
