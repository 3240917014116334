"""The approver's dashboard in headless Chromium (Debian's ``chromium`` package, driven by
the ``playwright`` package with ``executable_path``; no browser is ever downloaded).

One ``vettra dev`` and one browser per module; each test signs a user of its own in by a
one-time link and plays the agent over HTTP, so the queues never mix. Every page must
log no console error and load nothing from another origin (checked after each test).
Screenshots at 360 and 1280 px go to ``tests/artifacts/dashboard/``.
"""

from __future__ import annotations

import json
import re
import socket
import statistics
import threading
import time

import httpx
import pytest

from .browser import (
    AXE,
    CHARGE_500,
    DELETE_REPO,
    LIVE_BUDGET_MS,
    SEND_EMAIL,
    TIMEOUT_MS,
    _joined,
    enrol_totp,
    virtual_authenticator,
)
from .conftest import mint, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# -- sign-in ------------------------------------------------------------------------------


def test_sign_in_by_link_then_sign_out(browser, web_server) -> None:
    user = "signin-alice"
    printed = run_cli("link", "--home", str(web_server.home), "--sub", user).stdout.strip()
    assert re.fullmatch(
        rf"http://localhost:{web_server.port}/#signin=vsl_[A-Za-z0-9_-]{{43}}", printed
    )
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(printed)
    page.wait_for_selector("#queue-title")
    assert "signin" not in page.url and page.url.endswith("/#/queue")
    # the code's history entry was replaced, not pushed: back is the blank tab, and
    # forward again is the queue, never the code
    assert page.evaluate("history.length") == 2
    page.go_back()
    assert page.url == "about:blank"
    page.go_forward()
    page.wait_for_selector("#queue-title")
    assert page.url.endswith("/#/queue")
    assert page.locator(".who").inner_text() == f"{user} (approver)"
    token = page.evaluate("JSON.parse(sessionStorage.getItem('vettra.session')).token")
    assert token.startswith("vds_")
    assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""
    page.reload()  # the tab keeps its session; the code is not needed (nor usable) again
    page.wait_for_selector("#queue-title")

    other = context.new_page()  # the same link in another tab: already used
    other.goto(printed)
    other.wait_for_selector("#signin-title")
    assert "not valid" in other.locator(".signin .error").inner_text()
    assert "signin" not in other.url

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("#signin-title")
    assert page.evaluate("sessionStorage.getItem('vettra.session')") is None
    revoked = httpx.get(
        web_server.url + "/api/dashboard/session",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert revoked.status_code == 401  # signed out on the server, not only forgotten
    context.close()
    assert errors == []


# -- the queue ----------------------------------------------------------------------------


def test_a_card_says_what_the_action_is_and_approve_reaches_the_agent(dash) -> None:
    action = dash.intercept(SEND_EMAIL)
    card = dash.card(action["action_id"])
    card.wait_for()
    assert card.evaluate("el => el.tagName") == "ARTICLE"
    assert card.get_by_role("heading", level=2).inner_text() == "gmail.send_message"
    assert (
        card.locator(".summary").inner_text() == "Send an email to bob@evil.example: “Q3 numbers”"
    )
    assert card.locator(".target").inner_text() == "bob@evil.example"
    assert "MEDIUM · risk 50/100" in card.locator(".badge").inner_text()
    factors = card.locator(".factors li").all_inner_texts()
    assert [f.split("\n")[0] for f in factors] == [
        "Action type",
        "Reversibility",
        "Blast radius",
        "Sensitivity",
    ]
    card.locator(".reasons summary").click()
    assert "Reversibility: irreversible (+25)" in card.locator(".reasons").inner_text()
    assert card.locator(".hl-outside").inner_text().startswith("to bob@evil.example")
    assert card.locator("dd.marked mark").inner_text() == '"bob@evil.example"'
    assert re.fullmatch(r"1[45]:\d\d left", card.locator("time.countdown").inner_text())
    first = card.locator("time.countdown").inner_text()
    dash.page.wait_for_timeout(1500)
    assert card.locator("time.countdown").inner_text() != first  # it counts down live
    dash.shot("queue")

    poll = dash.long_poll(action["action_id"])
    card.get_by_role("button", name="Approve", exact=True).click()
    view = _joined(poll)
    assert view["status"] == "approved" and view["decided_by"] == f"approver:{dash.user}"
    card.wait_for(state="detached")


def test_recipients_inside_the_organisation_are_not_flagged_as_outside(dash) -> None:
    action = dash.intercept(
        {"tool": "gmail.send_message", "arguments": {"to": ["ann@example.com", "eve@evil.example"]}}
    )
    card = dash.card(action["action_id"])
    card.wait_for()
    assert card.locator(".hl-outside").all_inner_texts() == [
        "to eve@evil.example — outside your organisation"
    ]
    assert card.locator(".hl-recipient").all_inner_texts() == [
        "to ann@example.com — inside your organisation"
    ]


def test_deny_with_a_reason_that_the_agent_receives(dash) -> None:
    action = dash.intercept(SEND_EMAIL)
    card = dash.card(action["action_id"])
    card.wait_for()
    poll = dash.long_poll(action["action_id"])
    card.get_by_role("button", name="Deny", exact=True).click()
    reason = card.get_by_label("Reason for the agent (optional)")
    assert reason.evaluate("el => el === document.activeElement")
    reason.fill("Not to that address, please")
    dash.shot("deny")
    card.locator("form.deny-form").get_by_role("button", name="Deny").click()
    view = _joined(poll)
    assert view["status"] == "denied"
    assert view["reason"] == "Not to that address, please"
    card.wait_for(state="detached")


def test_keyboard_shortcuts_move_approve_and_deny(dash) -> None:
    first = dash.intercept(SEND_EMAIL)
    second = dash.intercept(
        {**SEND_EMAIL, "arguments": {**SEND_EMAIL["arguments"], "subject": "2"}}
    )
    dash.card(second["action_id"]).wait_for()
    page = dash.page
    page.locator("#queue-title").focus()
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.dataset.actionId") == first["action_id"]
    page.keyboard.press("j")
    assert page.evaluate("document.activeElement.dataset.actionId") == second["action_id"]
    page.keyboard.press("k")
    assert page.evaluate("document.activeElement.dataset.actionId") == first["action_id"]
    poll_first = dash.long_poll(first["action_id"])
    page.keyboard.press("d")
    # type only once the reason field has the focus (a loaded machine paints it later)
    dash.card(first["action_id"]).get_by_label("Reason for the agent (optional)").wait_for()
    page.wait_for_function("document.activeElement && document.activeElement.name === 'reason'")
    page.keyboard.type("keyboard says no")
    page.keyboard.press("Enter")
    assert _joined(poll_first)["reason"] == "keyboard says no"
    dash.card(first["action_id"]).wait_for(state="detached")
    # the focus moved on to the next card: approve it with "a"
    page.wait_for_function(
        "id => document.activeElement && document.activeElement.dataset.actionId === id",
        arg=second["action_id"],
    )
    poll_second = dash.long_poll(second["action_id"])
    page.keyboard.press("a")
    assert _joined(poll_second)["status"] == "approved"
    page.keyboard.press("?")
    assert page.locator("dialog#shortcuts").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("dialog#shortcuts").is_visible()


def test_the_countdown_reaches_zero_and_the_card_leaves(dash) -> None:
    action = dash.intercept({**SEND_EMAIL, "timeout_s": 3})
    card = dash.card(action["action_id"])
    card.wait_for()
    assert re.fullmatch(r"0:0[1-3] left", card.locator("time.countdown").inner_text())
    poll = dash.long_poll(action["action_id"])
    dash.page.wait_for_function(
        "id => !document.querySelector(`article[data-action-id='${id}']`)",
        arg=action["action_id"],
        timeout=10_000,
    )
    assert _joined(poll)["status"] == "expired"


def test_batch_approves_medium_and_never_high(dash) -> None:
    mediums = [
        dash.intercept({**SEND_EMAIL, "arguments": {**SEND_EMAIL["arguments"], "subject": str(i)}})
        for i in range(3)
    ]
    high = dash.intercept(DELETE_REPO)
    dash.card(high["action_id"]).wait_for()
    assert dash.card(high["action_id"]).locator(".batch-select").count() == 0
    dash.page.get_by_role("button", name="Select all MEDIUM").click()
    batch = dash.page.locator("#batch-approve")
    assert batch.inner_text() == "Approve 3 selected MEDIUM"
    polls = [dash.long_poll(m["action_id"]) for m in mediums]
    batch.click()
    assert [_joined(p)["status"] for p in polls] == ["approved"] * 3
    for m in mediums:
        dash.card(m["action_id"]).wait_for(state="detached")
    assert dash.card(high["action_id"]).is_visible()
    still = dash.agent.get(f"/api/actions/{high['action_id']}").json()
    assert still["status"] == "pending"


# -- step-up --------------------------------------------------------------------------------


def test_step_up_with_a_totp_code_inline(dash) -> None:
    totp = enrol_totp(dash)
    action = dash.intercept(DELETE_REPO)
    card = dash.card(action["action_id"])
    card.wait_for()
    assert "step up" in card.locator(".stepup-note").inner_text()
    poll = dash.long_poll(action["action_id"])
    card.get_by_role("button", name="Approve", exact=True).click()
    code = card.get_by_label("6-digit code from your authenticator app")
    code.fill("000000")
    dash.expected_refusals.append(401)  # the wrong code
    card.get_by_role("button", name="Verify code and approve").click()
    card.locator(".stepup-status.error").wait_for()
    assert "failed" in card.locator(".stepup-status").inner_text().lower()
    assert dash.agent.get(f"/api/actions/{action['action_id']}").json()["status"] == "pending"
    dash.shot("stepup-totp")
    # the enrolment spent this 30 s step's code: the next step's (one step of drift allowed)
    code.fill(totp.at(time.time() + 30))
    card.get_by_role("button", name="Verify code and approve").click()
    view = _joined(poll)
    assert view["status"] == "approved"
    card.wait_for(state="detached")


def test_step_up_with_a_passkey_in_the_virtual_authenticator(dash) -> None:
    cdp, authenticator = virtual_authenticator(dash)
    # enrol through the page's own WebAuthn code (navigator.credentials.create)
    enrolled = dash.page.evaluate(
        """async () => {
            const { api } = await import('/app/api.js');
            const { create } = await import('/app/webauthn.js');
            const start = await api('/api/approvals/stepup/enroll', {method: 'POST', body: {method: 'webauthn'}});
            const credential = await create(start.options);
            return api('/api/approvals/stepup/enroll', {method: 'POST',
                body: {method: 'webauthn', enrollment_id: start.enrollment_id, credential}});
        }"""
    )
    assert enrolled["status"] == "active"
    action = dash.intercept(CHARGE_500)
    card = dash.card(action["action_id"])
    card.wait_for()
    poll = dash.long_poll(action["action_id"])
    card.get_by_role("button", name="Approve", exact=True).click()
    card.get_by_role("button", name="Use a passkey to approve").click()
    view = _joined(poll)
    assert view["status"] == "approved"
    card.wait_for(state="detached")
    creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(creds) == 1 and creds[0]["signCount"] >= 2  # registration, then the assertion


# -- live updates ---------------------------------------------------------------------------

_WATCH = """() => {
  window.__seen = {};
  new MutationObserver(() => {
    for (const el of document.querySelectorAll('article.card')) {
      if (!(el.dataset.actionId in window.__seen)) window.__seen[el.dataset.actionId] = Date.now();
    }
  }).observe(document.body, {subtree: true, childList: true});
}"""


def test_a_new_pending_action_appears_in_under_500_ms(dash) -> None:
    dash.page.evaluate(_WATCH)
    latencies = []
    for i in range(8):
        sent = time.time() * 1000
        action = dash.intercept(
            {**SEND_EMAIL, "arguments": {**SEND_EMAIL["arguments"], "subject": f"live {i}"}}
        )
        dash.page.wait_for_function("id => id in window.__seen", arg=action["action_id"])
        latencies.append(dash.page.evaluate("id => window.__seen[id]", action["action_id"]) - sent)
        time.sleep(0.2)
    print(
        f"\nlive update, intercept sent -> card on screen: p50 {statistics.median(latencies):.0f} ms, "
        f"max {max(latencies):.0f} ms over {len(latencies)} (budget {LIVE_BUDGET_MS} ms)"
    )
    assert max(latencies) < LIVE_BUDGET_MS, latencies


class DroppingProxy:
    """A TCP relay in front of the server that can cut every connection and refuse new
    ones for a while: a network drop, as the browser sees it."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down = threading.Event()
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.down.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.open |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def drop(self) -> None:
        self.down.set()
        with self.lock:
            for s in self.open:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open.clear()

    def restore(self) -> None:
        self.down.clear()

    def close(self) -> None:
        self.drop()
        self.listener.close()


def test_a_dropped_stream_resumes_with_last_event_id_and_loses_nothing(
    browser, web_server, web_admin
):
    user = "reconnect-user"
    proxy = DroppingProxy(web_server.port)
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    resumes: list[str | None] = []
    page.on(
        "request",
        lambda r: (
            resumes.append(r.headers.get("last-event-id")) if "/api/events" in r.url else None
        ),
    )
    code = web_admin.post("/api/dashboard/links", json={"sub": user}).json()["code"]
    try:
        with (
            web_server.client(mint(web_server.home, "agent", "bot-r", user)) as agent,
            web_server.client(mint(web_server.home, "approver", user)) as me,
        ):
            page.goto(f"http://localhost:{proxy.port}/#signin={code}")
            page.wait_for_selector("#live-status[data-state='live']")
            before = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()
            page.locator(f"article[data-action-id='{before['action_id']}']").wait_for()

            proxy.drop()  # the stream breaks; meanwhile the agent and the user go on
            page.locator("#live-status[data-state='reconnecting']").wait_for()
            during = [
                agent.post(
                    "/api/actions/intercept",
                    json={"tool": "gmail.send_message", "arguments": {"to": f"x{i}@evil.example"}},
                ).json()
                for i in range(3)
            ]
            decided = me.post(
                "/api/actions/approve", json={"action_id": before["action_id"], "decision": "deny"}
            )
            assert decided.status_code == 200
            time.sleep(0.5)
            proxy.restore()

            for action in during:
                page.locator(f"article[data-action-id='{action['action_id']}']").wait_for()
            page.locator(f"article[data-action-id='{before['action_id']}']").wait_for(
                state="detached"
            )
            page.locator("#live-status[data-state='live']").wait_for()
            shown = page.locator("article.card").evaluate_all(
                "els => els.map(e => e.dataset.actionId)"
            )
            assert sorted(shown) == sorted(a["action_id"] for a in during)
            # the first stream opened fresh; the next came back with the id it had reached
            assert resumes[0] is None and any(r and r.isdigit() for r in resumes[1:]), resumes
    finally:
        context.close()
        proxy.close()
    assert errors == []


# -- quality --------------------------------------------------------------------------------


def test_axe_finds_no_serious_or_critical_violation_at_360_and_1280(dash) -> None:
    if not AXE.exists():
        pytest.skip("SKIPPED the axe-core check: web/node_modules is not installed (make web-deps)")
    dash.intercept(SEND_EMAIL)
    dash.intercept(DELETE_REPO)
    dash.page.locator("article.card").nth(1).wait_for()
    dash.page.locator("article.card").first.locator(".reasons summary").click()
    dash.page.evaluate(AXE.read_text())
    for width in (360, 1280):
        dash.page.set_viewport_size({"width": width, "height": 900})
        report = dash.page.evaluate(
            "async () => JSON.stringify(await axe.run(document, {resultTypes: ['violations']}))"
        )
        bad = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in json.loads(report)["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        assert bad == [], (width, bad)
