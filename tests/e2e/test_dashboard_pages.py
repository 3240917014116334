"""The dashboard's other pages in headless Chromium: step-up factors (TOTP with its QR
code, a passkey in the DevTools virtual authenticator, removal behind a step-up), the
threat simulation decided from the queue, the audit log verified in the browser (and a
tampered export failing where it was changed), sessions pre-authorised and revoked, the
overview's numbers and charts; axe-core and screenshots for each page.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pyotp
import pytest

from .browser import (
    ARTIFACTS,
    AXE,
    CSP_WATCH,
    SEND_EMAIL,
    Dashboard,
    _joined,
    admin_tab,
    csp_violations,
    enrol_totp,
    session_client,
    sign_in_link,
    virtual_authenticator,
    wait_for_checkpoint,
)
from .conftest import mint, run_cli

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PAGES = ["queue", "overview", "audit", "sessions", "factors", "connections", "simulate"]


#: Seconds a handed-out TOTP code must stay acceptable: typing it, clicking, the request.
SUBMIT_MARGIN_S = 12


class Codes:
    """Fresh TOTP codes: the server takes each 30 s step once, one step of drift either
    way; this hands out a step not used yet that is acceptable now."""

    def __init__(self, totp: pyotp.TOTP, used_now: bool = True):
        self.totp = totp
        self.used = {self._step()} if used_now else set()  # the enrolment spent "now"

    @staticmethod
    def _step() -> int:
        return int(time.time() // 30)

    def next(self) -> str:
        while True:
            at = time.time()
            now = int(at // 30)
            # the next step first: it stays acceptable longest. A step is taken until the
            # server's clock is one step past it, i.e. until (step + 2) * 30; one that
            # ends sooner than the page needs to fill and submit the code is skipped
            # (the previous step, late in the current one, failed CI with a 401)
            for step in (now + 1, now, now - 1):
                if step not in self.used and (step + 2) * 30 - at > SUBMIT_MARGIN_S:
                    self.used.add(step)
                    return self.totp.at(step * 30)
            time.sleep(30 - at % 30 + 0.1)


def _go(dash: Dashboard, page: str) -> None:
    """Open a page and wait until its data has loaded (``data-loaded`` on its section)."""
    dash.page.evaluate(f"location.hash = '#/{page}'")
    dash.page.locator(f"section.page[data-loaded]:has(#{page}-title)").wait_for()


def _axe(dash: Dashboard) -> list[tuple[str, str]]:
    dash.page.evaluate(AXE.read_text())
    report = json.loads(
        dash.page.evaluate(
            "async () => JSON.stringify(await axe.run(document, {resultTypes: ['violations']}))"
        )
    )
    return [
        (v["id"], str([n["target"] for n in v["nodes"]][:3]))
        for v in report["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_factors_enrol_totp_with_its_qr_add_a_passkey_and_remove_one(dash) -> None:
    cdp, authenticator = virtual_authenticator(dash)
    _go(dash, "factors")
    page = dash.page
    assert "None yet" in page.locator(".factor-list").inner_text()
    page.get_by_role("button", name="Add an authenticator app").click()
    qr = page.get_by_role("img", name="QR code of the new authenticator secret")
    qr.wait_for()
    assert qr.evaluate("el => el.tagName.toLowerCase()") == "svg"
    assert qr.locator("path").get_attribute("d").count("h1v1h-1z") > 200  # the modules
    secret = page.locator("#totp-secret").inner_text()
    totp = pyotp.TOTP(secret)
    codes = Codes(totp)
    page.get_by_label("The 6-digit code it shows now").fill(totp.now())
    page.get_by_role("button", name="Confirm").click()
    row = page.locator("tr[data-factor='totp']")
    row.wait_for()
    assert "never" in row.inner_text()  # not used yet
    dash.shot("factors")

    # a second factor needs a step-up with the first
    page.get_by_role("button", name="Add a passkey").click()
    page.get_by_label("6-digit code from your authenticator app").fill(codes.next())
    page.get_by_role("button", name="Verify code and add a factor").click()
    page.locator("tr[data-factor]:not([data-factor='totp'])").wait_for()
    (passkey_row,) = page.locator("tr[data-factor]:not([data-factor='totp'])").all()
    assert "Passkey" in passkey_row.inner_text()
    assert "never" not in page.locator("tr[data-factor='totp']").inner_text()  # just used

    # removing the app needs a step-up too: answered with the passkey
    page.get_by_role("button", name="Remove Authenticator app (TOTP)").click()
    page.get_by_role("button", name="Use a passkey to remove this Authenticator app (TOTP)").click()
    page.locator("tr[data-factor='totp']").wait_for(state="detached")
    assert page.locator("tr[data-factor]").count() == 1
    creds = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(creds) == 1
    with session_client(dash) as me:
        factors = me.get("/api/approvals/stepup/factors").json()["factors"]
    assert [f["method"] for f in factors] == ["webauthn"] and factors[0]["last_used_at"]


def test_the_threat_simulation_runs_and_each_held_action_is_decided_from_the_queue(dash):
    codes = Codes(enrol_totp(dash))
    _go(dash, "simulate")
    page = dash.page
    assert page.locator("article.sim").count() == 6
    page.get_by_role("button", name="Run all scenarios").click()
    page.locator("article.sim .sim-result[data-outcome]").nth(5).wait_for()
    results = page.locator("article.sim .sim-result").all_inner_texts()
    assert all(r.startswith("✓ As expected") for r in results), results
    outcomes = page.locator("article.sim .sim-result").evaluate_all(
        "els => els.map(e => e.dataset.outcome)"
    )
    assert outcomes == ["allowed", "pending", "pending", "pending", "denied", "pending"]
    dash.shot("simulate")
    assert page.locator("#pending-badge").inner_text() == "4"  # live, before any reload

    _go(dash, "queue")
    cards = page.locator("article.card")
    cards.nth(3).wait_for()
    tools = cards.evaluate_all("els => els.map(e => e.querySelector('h2').innerText)")
    assert sorted(tools) == sorted(
        ["gmail.send_message", "github.delete_repo", "stripe.create_charge", "gmail.send_message"]
    )
    injection = page.locator("article.card", has_text="billing@evil.example")
    assert "outside your organisation" in injection.locator(".hl-outside").inner_text()
    # the agent's stated reason is shown: here it gives the injection away
    assert "IGNORE PREVIOUS INSTRUCTIONS" in injection.locator(".agent-reason").inner_text()
    injection.get_by_role("button", name="Deny", exact=True).click()
    injection.get_by_label("Reason for the agent (optional)").fill("prompt injection")
    injection.locator("form.deny-form").get_by_role("button", name="Deny").click()
    injection.wait_for(state="detached")
    email = page.locator("article.card", has_text="bob@example.net")
    email.get_by_role("button", name="Approve", exact=True).click()
    email.wait_for(state="detached")
    for tool in ("github.delete_repo", "stripe.create_charge"):
        card = page.locator("article.card", has=page.get_by_role("heading", name=tool))
        card.get_by_role("button", name="Approve", exact=True).click()
        card.get_by_label("6-digit code from your authenticator app").fill(codes.next())
        card.get_by_role("button", name="Verify code and approve").click()
        card.wait_for(state="detached")
    assert page.locator("article.card").count() == 0
    with session_client(dash) as me:
        entries = me.get("/api/audit/entries", params={"limit": 1000}).json()["entries"]
    decided = [e["type"] for e in entries if e["type"] in ("action.approved", "action.denied")]
    assert sorted(decided) == ["action.approved"] * 3 + ["action.denied"]

    _go(dash, "audit")
    page.get_by_role("button", name="Verify the log").click()
    outcome = page.locator("#verify-outcome")
    outcome.filter(has_text="Valid").wait_for(timeout=30_000)
    assert "hash correctly" in outcome.inner_text()
    # each entry's digest and inclusion proof checked by the backend's own module
    assert outcome.get_attribute("data-engine") == "WASM"
    dash.shot("audit")


def test_an_admin_verifies_the_whole_chain_and_a_tampered_export_fails_where_changed(
    browser, web_server, web_admin, tmp_path
) -> None:
    d = admin_tab(browser, web_server, web_admin)
    try:
        # some history, then wait until a signed checkpoint covers it
        with web_server.client(mint(web_server.home, "agent", "bot-x", "alice-x")) as agent:
            for i in range(5):
                agent.post("/api/actions/intercept", json={**SEND_EMAIL, "context": {"n": i}})
        wait_for_checkpoint(web_admin)
        _go(d, "audit")
        d.page.get_by_role("button", name="Verify the log").click()
        d.page.locator("#verify-outcome").filter(has_text="Valid").wait_for(timeout=30_000)
        assert "hashes and links intact" in d.page.locator("#verify-outcome").inner_text()

        export = tmp_path / "log.jsonl"
        run_cli("audit", "export", "--home", str(web_server.home), "-o", str(export))
        lines = export.read_text().splitlines()
        entry_lines = [i for i, line in enumerate(lines) if line.startswith('{"body":')]
        upload = d.page.get_by_label("Or verify an export file (vettra audit export)")

        upload.set_input_files(str(export))
        d.page.locator("#verify-outcome").filter(has_text="is valid").wait_for()

        # an entry edited in place: its hash no longer matches
        target = entry_lines[3]
        edited = lines.copy()
        edited[target] = edited[target].replace('"chain":"default"', '"chain":"defau1t"', 1)
        assert edited[target] != lines[target]
        tampered = tmp_path / "edited.jsonl"
        tampered.write_text("\n".join(edited) + "\n")
        upload.set_input_files(str(tampered))
        where = d.page.locator("#verify-where")
        where.wait_for()
        # the WASM verifier's words (audit_verify's): what the entry hashes to, what it says
        assert where.inner_text().startswith("Breaks at entry 4: hash mismatch: expected ")
        assert d.page.locator("#verify-outcome").get_attribute("data-engine") == "WASM"

        # an entry deleted: the next one's seq is a gap
        cut = tmp_path / "cut.jsonl"
        cut.write_text("\n".join(lines[:target] + lines[target + 1 :]) + "\n")
        upload.set_input_files(str(cut))
        d.page.locator("#verify-where").filter(has_text="gap").wait_for()
        assert d.page.locator("#verify-where").inner_text().startswith("Breaks at entry 4: gap")
        # edited, re-hashed and re-linked to the end (no key needed for that): the
        # hashes and links hold, but the signed checkpoints' Merkle roots do not
        relinked = _rehashed(lines, entry_lines, target)
        forged = tmp_path / "relinked.jsonl"
        forged.write_text("\n".join(relinked) + "\n")
        upload.set_input_files(str(forged))
        d.page.locator("#verify-where").filter(has_text="inconsistent checkpoint").wait_for()
        assert "do not match the signed root" in d.page.locator("#verify-where").inner_text()
        d.shot("audit-tampered")
        assert csp_violations(d.page) == []
    finally:
        d.page.context.close()
    assert d.problems == []


def _rehashed(lines: list[str], entry_lines: list[int], target: int) -> list[str]:
    """The export with entry ``target`` edited and every later entry re-hashed and re-linked,
    as someone holding the file (but no key) could do."""
    import hashlib

    out = lines.copy()
    previous = None
    for i in entry_lines:
        if i < target:
            continue
        line = out[i]
        tail = re.search(r',"hash":"([0-9a-f]{64})","mac":"[0-9a-f]{64}"}$', line)
        assert tail is not None and line.startswith('{"body":'), line[:80]
        body, old_hash = line[8 : tail.start()], tail.group(1)
        if i == target:
            body = body.replace('"chain":"default"', '"chain":"defau1t"', 1)
        if previous is not None:
            old_prev = json.loads(body)["prev_hash"]
            body = body.replace(f'"prev_hash":"{old_prev}"', f'"prev_hash":"{previous}"', 1)
        new_hash = hashlib.sha256(body.encode()).hexdigest()
        out[i] = '{"body":' + body + line[tail.start() :].replace(old_hash, new_hash, 1)
        previous = new_hash
    return out


def test_sessions_are_pre_authorised_with_a_step_up_and_revoked(dash) -> None:
    codes = Codes(enrol_totp(dash))
    opened = dash.agent.post("/api/approvals/sessions", json={"label": "Quarterly report"})
    assert opened.status_code == 201, opened.text
    session_id = opened.json()["session_id"]
    _go(dash, "sessions")
    card = dash.page.locator(f"article[data-session-id='{session_id}']")
    card.wait_for()
    assert card.get_by_role("heading", name="Quarterly report").is_visible()
    assert card.locator(".state").inner_text() == "active"
    card.get_by_role("button", name="Pre-authorise").click()
    card.get_by_label("Up to").select_option("MEDIUM")
    card.get_by_label("for").select_option("1800")
    card.get_by_role("button", name="Continue").click()
    card.get_by_label("6-digit code from your authenticator app").fill(codes.next())
    card.get_by_role("button", name="Verify code and pre-authorise this session").click()
    card = dash.page.locator(f"article[data-session-id='{session_id}']")
    card.locator(".state", has_text="pre-authorised up to MEDIUM").wait_for()
    dash.shot("sessions")
    run = dash.intercept({**SEND_EMAIL, "session_id": session_id})
    assert run["status"] == "approved" or run["status"] == "allowed", run  # not held
    card.get_by_role("button", name="Revoke").click()
    dash.page.locator(
        f"article[data-session-id='{session_id}'] .state", has_text="revoked"
    ).wait_for()
    after = dash.intercept({**SEND_EMAIL, "session_id": session_id})
    assert after["status"] == "denied"


def test_the_overview_counts_and_charts_the_decisions(dash) -> None:
    held = [dash.intercept({**SEND_EMAIL, "context": {"n": i}}) for i in range(3)]
    dash.intercept({"tool": "user.get_profile", "arguments": {}})  # LOW, allowed at once
    with session_client(dash) as me:
        for action in held[:2]:
            me.post(
                "/api/actions/approve",
                json={"action_id": action["action_id"], "decision": "approve"},
            )
    dash.card(held[2]["action_id"]).wait_for()
    _go(dash, "overview")
    page = dash.page
    page.locator("#stat-pending").wait_for()
    assert page.locator("#stat-pending").inner_text() == "1"
    assert page.locator("#stat-decisions").inner_text() == "3"
    rows = page.locator("#decision-table tbody tr").all_inner_texts()
    assert [r.split("\t") for r in rows] == [["LOW", "1"], ["MEDIUM", "2"], ["HIGH", "0"]]
    assert page.get_by_role("img", name="Decisions over time, stacked by risk level").is_visible()
    assert page.get_by_role("img", name="Decisions by risk level").is_visible()
    assert "Valid" in page.locator(".overview .ok").first.inner_text()
    dash.shot("overview")


def test_every_page_passes_axe_at_360_and_1280(dash) -> None:
    if not AXE.exists():
        pytest.skip("SKIPPED the axe-core check: web/node_modules is not installed (make web-deps)")
    dash.intercept(SEND_EMAIL)
    dash.agent.post("/api/approvals/sessions", json={"label": "axe"})
    bad: dict[str, Any] = {}
    for name in PAGES:
        _go(dash, name)
        for width in (360, 1280):
            dash.page.set_viewport_size({"width": width, "height": 900})
            found = _axe(dash)
            if found:
                bad[f"{name}@{width}"] = found
        if name != "queue":
            dash.shot(f"page-{name}")
    assert bad == {}, bad
    for name in PAGES[1:]:
        for width in (360, 1280):
            assert (ARTIFACTS / f"page-{name}-{width}.png").stat().st_size > 1000


def _quorum_rule(dash, web_admin, tmp_path, tool: str, of: list[str]) -> None:
    """Sign and activate the current policy plus a rule holding ``tool`` for 2 of ``of``."""
    home = str(dash.live.home)
    payload = json.loads(run_cli("policy", "show", "--home", home).stdout)
    payload["version"] += 1
    payload["rules"].append(
        {
            "id": f"two-of-{len(of)}-{tool.replace('.', '-').replace('_', '-')}",
            "effect": "require_approval",
            "tools": [tool],
            "approvers": {"quorum": 2, "of": of},
            "reason": "two of the maintainers decide",
        }
    )
    source, signed = tmp_path / "policy.json", tmp_path / "signed.json"
    source.write_text(json.dumps(payload))
    run_cli("policy", "sign", str(source), "--home", home, "-o", str(signed))
    r = web_admin.post("/api/policy", json=json.loads(signed.read_text()))
    assert r.status_code == 200, r.text


def test_a_quorum_card_shows_who_has_voted_and_leaves_at_quorum(dash, web_admin, tmp_path):
    _quorum_rule(dash, web_admin, tmp_path, "github.create_issue", [dash.user, "q-bob", "q-carol"])

    action = dash.intercept(
        {"tool": "github.create_issue", "arguments": {"repo": "acme/api", "title": "flaky"}}
    )
    card = dash.card(action["action_id"])
    card.wait_for()
    quorum = card.locator(".quorum")
    names = ", ".join(
        f"{n} (you)" if n == dash.user else n for n in sorted([dash.user, "q-bob", "q-carol"])
    )  # as the server lists them
    assert quorum.inner_text() == f"Needs 2 of 3 approvers (0 so far): {names}"
    poll = dash.long_poll(action["action_id"])
    card.get_by_role("button", name="Approve", exact=True).click()
    card.locator(".quorum .voted").wait_for()
    assert "(1 so far)" in card.locator(".quorum").inner_text()
    assert card.locator(".quorum .voted").inner_text() == f"✓ {dash.user} (you)"
    assert card.locator("button.approve").is_disabled()
    assert card.locator("button.approve").inner_text() == "Approved by you"
    dash.shot("quorum")
    with dash.live.client(mint(dash.live.home, "approver", "q-bob")) as bob:
        vote = bob.post(
            "/api/actions/approve", json={"action_id": action["action_id"], "decision": "approve"}
        )
        assert vote.status_code == 200 and vote.json()["status"] == "approved", vote.text
    assert _joined(poll)["status"] == "approved"
    card.wait_for(state="detached")


def test_a_vote_appears_live_on_the_other_approver_s_open_card(
    dash, browser, web_server, web_admin, tmp_path
) -> None:
    """Two approvers of a 2-of-3 rule, each with the dashboard open: the first one's vote
    shows on the other's card without a reload (GET /api/events, action.voted), and the
    second vote approves the action, which leaves both queues."""
    other = f"{dash.user[:20]}-peer"
    _quorum_rule(dash, web_admin, tmp_path, "github.create_branch", [dash.user, other, "q-carol"])
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(CSP_WATCH)
    peer = context.new_page()
    problems: list[str] = []
    peer.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    peer.on("pageerror", lambda e: problems.append(str(e)))
    try:
        peer.goto(sign_in_link(web_admin, web_server, other))
        peer.wait_for_selector("#queue-title")
        action = dash.intercept(
            {"tool": "github.create_branch", "arguments": {"repo": "acme/api", "branch": "fix"}}
        )
        mine = dash.card(action["action_id"])
        theirs = peer.locator(f"article.card[data-action-id='{action['action_id']}']")
        mine.wait_for()
        theirs.wait_for()
        assert "(0 so far)" in theirs.locator(".quorum").inner_text()
        loads = peer.evaluate("performance.getEntriesByType('navigation').length")
        mine.get_by_role("button", name="Approve", exact=True).click()
        clicked = time.monotonic()
        theirs.locator(".quorum .voted").wait_for()
        shown_ms = (time.monotonic() - clicked) * 1000
        assert theirs.locator(".quorum .voted").inner_text() == f"✓ {dash.user}"
        assert "(1 so far)" in theirs.locator(".quorum").inner_text()
        assert theirs.locator("button.approve").is_enabled()  # their own vote is still to give
        assert peer.evaluate("performance.getEntriesByType('navigation').length") == loads
        print(f"\nquorum vote on the other approver's open card after {shown_ms:.0f} ms")
        theirs.get_by_role("button", name="Approve", exact=True).click()
        theirs.wait_for(state="detached")
        mine.wait_for(state="detached")
        with session_client(dash) as me:
            view = me.get(f"/api/actions/{action['action_id']}").json()
        assert view["status"] == "approved", view
        assert csp_violations(peer) == []
    finally:
        context.close()
    assert problems == [], problems
