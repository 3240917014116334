"""The dashboard in cloud mode, in Debian's Chromium, against real emulators.

What runs: the dashboard built for the cloud by ``web/scripts/dist.mjs --config`` (the
step cloudbuild.yaml runs with Terraform's ``dashboard_config`` output), served by
``vettra dev --backend firestore`` on the official Firestore emulator (firestore.rules
loaded into it) with the official Firebase Auth emulator (npm firebase-tools) behind
``POST /api/auth/firebase-token``, and a stand-in for Auth0 (``tests/idp.py:
Auth0StandIn``: authorization code + PKCE, token endpoint, JWK Set, logout; Auth0 has
no emulator) that the server trusts as its Auth0 issuer.

The tab signs in through the stand-in, trades the ID token for a Firebase custom token
and signs in to the Auth emulator; its queue then listens to Firestore. An agent's MEDIUM
action, intercepted with an Auth0 machine-to-machine token as agents call in the cloud,
appears live (latency printed), is approved through the HTTP API with the Auth0
access token, and the agent's long-poll gets the decision. Another user's action never
shows, and a query wider than the rules allow is refused by the emulator. The tab logs
no console error, reaches no origin beyond the ones its CSP names, and signs out through
Firebase and the stand-in's /v2/logout.

Skipped loudly without Chromium, playwright, Node 20+, the Firestore emulator (Debian's
google-cloud-cli-firestore-emulator, Java) or firebase-tools (make test-deps).
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from ..idp import Auth0StandIn
from .auth_emulator import PROJECT, AuthEmulator, auth_emulator
from .browser import ARTIFACTS, AXE, DELETE_REPO, LIVE_BUDGET_MS, SEND_EMAIL, TIMEOUT_MS, enrol_totp
from .conftest import DevServer
from .firestore_harness import start_firestore
from .test_dashboard_pages import _axe

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "firestore.rules"
DIST = REPO / "web" / "scripts" / "dist.mjs"
CLIENT_ID = "dashboard-spa"
AUDIENCE = "https://vettra.test/api"
ALICE = "auth0|alice"
BOB = "auth0|bob"


@pytest.fixture(scope="module")
def firestore() -> Iterator[Any]:
    yield from start_firestore()


@pytest.fixture(scope="module")
def firebase_auth() -> Iterator[AuthEmulator]:
    yield from auth_emulator()


def load_rules(host: str, project: str) -> None:
    """Release firestore.rules on the emulator for ``project`` (its REST API, as
    @firebase/rules-unit-testing does)."""
    body = json.dumps({"rules": {"files": [{"content": RULES.read_text()}]}}).encode()
    request = urllib.request.Request(
        f"http://{host}/emulator/v1/projects/{project}:securityRules",
        data=body,
        method="PUT",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200


def render(config: dict, out: Path) -> tuple[Path, str]:
    """``node web/scripts/dist.mjs --config``: the cloud build and its Hosting CSP."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("SKIPPED dashboard cloud mode: node not found (web/scripts/dist.mjs)")
    settings = out / "dashboard_config.json"
    settings.write_text(json.dumps(config))
    hosting = out / "firebase.json"
    done = subprocess.run(
        [node, str(DIST), "--config", str(settings), "--out", str(out / "dist"),
         "--firebase-out", str(hosting)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    headers = json.loads(hosting.read_text())["hosting"]["headers"][0]["headers"]
    csp = next(h["value"] for h in headers if h["key"] == "Content-Security-Policy")
    return out / "dist", csp


@dataclass
class CloudSite:
    server: DevServer
    idp: Auth0StandIn
    firebase_auth: AuthEmulator
    firestore_host: str
    csp: str
    origin: str

    def agent(self, user: str) -> httpx.Client:
        """An agent calling as Auth0 lets it in the cloud: an M2M access token for ``user``."""
        return self.server.client(self.idp.agent_token(user))

    def allowed_origins(self) -> tuple[str, ...]:
        connect = next(d for d in self.csp.split("; ") if d.startswith("connect-src "))
        return (self.origin, *connect.split()[2:])


@pytest.fixture(scope="module")
def site(firestore, firebase_auth, tmp_path_factory) -> Iterator[CloudSite]:
    base = tmp_path_factory.mktemp("dashboard-cloud")
    load_rules(firestore.host, PROJECT)
    server = DevServer(base / "home", base / "dev.log")  # picks its port now
    origin = f"http://localhost:{server.port}"
    idp = Auth0StandIn(client_id=CLIENT_ID, audience=AUDIENCE, origin=origin)
    config = {
        "mode": "cloud",
        "orgDomains": ["example.com"],
        "auth0": {"issuer": idp.issuer, "clientId": CLIENT_ID, "audience": AUDIENCE},
        "firebase": {
            "apiKey": "demo-api-key",  # a demo project takes any key
            "authDomain": f"{PROJECT}.firebaseapp.com",
            "projectId": PROJECT,
            "appId": "1:000000000000:web:0000000000000000",
        },
        "emulators": {"auth": firebase_auth.origin, "firestore": f"http://{firestore.host}"},
    }
    dist, csp = render(config, base)
    connect = next(d for d in csp.split("; ") if d.startswith("connect-src ")).split()[2:]
    server.args = ["--backend", "firestore", "--project", PROJECT]
    server.env = {
        "FIRESTORE_EMULATOR_HOST": firestore.host,
        "FIREBASE_AUTH_EMULATOR_HOST": firebase_auth.host,
        "VETTRA_AUTH0_ISSUER": idp.issuer,
        "VETTRA_AUTH0_AUDIENCE": AUDIENCE,
        "VETTRA_AUTH0_CLIENT_ID": CLIENT_ID,
        "VETTRA_WEB_DIR": str(dist),
        "VETTRA_DASHBOARD_CONNECT_SRC": " ".join(connect),
    }
    server.start()
    try:
        yield CloudSite(server, idp, firebase_auth, firestore.host, csp, origin)
    finally:
        code, _ = server.terminate()
        idp.stop()
        assert code == 0, server.log()


@dataclass
class Tab:
    page: Any
    problems: list[str]
    origins: set[str]
    expected: list[str]  # console messages the test provokes on purpose (substrings)


@pytest.fixture
def tab(browser, site) -> Iterator[Tab]:  # browser: Debian's Chromium (browser.py)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    t = Tab(page, [], set(), [])
    page.on("console", lambda m: t.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: t.problems.append(f"pageerror: {e}"))
    page.on("request", lambda r: t.origins.add("{0.scheme}://{0.netloc}".format(urlsplit(r.url))))
    yield t
    context.close()
    unexpected = [p for p in t.problems if not any(e in p for e in t.expected)]
    assert unexpected == [], unexpected
    assert t.origins <= set(site.allowed_origins()), (t.origins, site.allowed_origins())


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for width in (360, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def sign_in(tab: Tab, site: CloudSite, user: str, *, screenshot: bool = False) -> None:
    site.idp.user = user
    page = tab.page
    page.goto(site.origin + "/#/queue")
    page.wait_for_selector("#sign-in")
    if screenshot:
        shot(page, "cloud-signin")
        if AXE.exists():  # the sign-in page is cloud mode's own (local mode's axe tests skip it)
            for width in (360, 1280):
                page.set_viewport_size({"width": width, "height": 900})
                assert _axe(SimpleNamespace(page=page)) == [], width
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector("#queue-title")
    page.wait_for_selector("#live-status[data-state='live']")


def test_sign_in_then_a_pending_action_arrives_live_and_is_approved(tab, site) -> None:
    page = tab.page
    sign_in(tab, site, ALICE, screenshot=True)

    # Auth0's half: code flow with PKCE, and nothing of it left in the address bar
    asked = site.idp.authorizations[-1]
    assert asked["code_challenge_method"] == "S256" and asked["audience"] == AUDIENCE
    assert asked["redirect_uri"] == site.origin + "/" and asked["nonce"] and asked["state"]
    assert "code_verifier" in site.idp.token_requests[-1] and site.idp.token_refusals == []
    assert urlsplit(page.url).query == "" and page.url.endswith("/#/queue"), page.url
    # about:blank, the signed-out page, and Auth0's round trip, whose entry now reads /#/queue
    assert page.evaluate("history.length") == 3
    page.go_back()
    assert page.url == site.origin + "/#/queue"
    page.go_forward()  # a load from history: the tab's session and Firebase user remain
    assert urlsplit(page.url).query == "" and page.url.endswith("/#/queue"), page.url
    page.wait_for_selector("#live-status[data-state='live']")
    # Firebase's half: the custom token signed the tab in to the Auth emulator as alice
    assert ALICE in {a["localId"] for a in site.firebase_auth.accounts()}
    saved = page.evaluate("Object.keys(sessionStorage)")
    assert any(k.startswith("firebase:authUser:") for k in saved), saved
    assert page.locator(".who").inner_text() == f"{ALICE} (approver)"
    response = httpx.get(site.origin + "/", timeout=5)
    assert response.headers["content-security-policy"] == site.csp  # as Hosting sends it

    page.evaluate(
        """() => { window.__seen = {};
        new MutationObserver(() => { for (const el of document.querySelectorAll('article.card'))
          if (!(el.dataset.actionId in window.__seen)) window.__seen[el.dataset.actionId] = Date.now();
        }).observe(document.body, {subtree: true, childList: true}); }"""
    )
    with site.agent(BOB) as bob, site.agent(ALICE) as alice:
        foreign = bob.post("/api/actions/intercept", json=SEND_EMAIL)
        assert foreign.status_code in (200, 201), foreign.text
        latencies = []
        actions = []
        for i in range(4):
            bundle = {**SEND_EMAIL, "arguments": {**SEND_EMAIL["arguments"], "subject": f"c{i}"}}
            sent = time.time() * 1000
            r = alice.post("/api/actions/intercept", json=bundle)
            assert r.status_code in (200, 201), r.text
            assert r.json()["status"] == "pending", r.json()
            assert r.json()["risk"]["level"] == "MEDIUM", r.json()
            action_id = r.json()["action_id"]
            page.wait_for_function("id => id in window.__seen", arg=action_id)
            latencies.append(page.evaluate("id => window.__seen[id]", action_id) - sent)
            actions.append(action_id)
        print(
            f"\ncloud live update (Firestore onSnapshot, emulator), intercept sent -> card on "
            f"screen: p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms "
            f"over {len(latencies)} (local budget {LIVE_BUDGET_MS} ms)"
        )
        assert max(latencies) < 2 * LIVE_BUDGET_MS, latencies
        # bob's action was written first and never reached alice's tab
        assert foreign.json()["action_id"] not in page.evaluate("Object.keys(window.__seen)")
        assert page.locator("article.card").count() == len(actions)
        shot(page, "cloud-queue")

        result: dict[str, Any] = {}

        def wait() -> None:
            r = alice.get(f"/api/actions/{actions[0]}", params={"wait": 30}, timeout=40)
            result["view"] = r.json()

        poller = threading.Thread(target=wait, daemon=True)
        poller.start()
        time.sleep(0.3)
        card = page.locator(f"article.card[data-action-id='{actions[0]}']")
        card.get_by_role("button", name="Approve", exact=True).click()
        poller.join(35)
        view = result["view"]
        assert view["status"] == "approved" and view["decided_by"] == f"approver:{ALICE}", view
        card.wait_for(state="detached")  # the listener saw it leave the pending set


def test_the_rules_refuse_a_query_wider_than_the_users_own(tab, site) -> None:
    """The listener's filters are not what keeps other users' actions out: the rules are.
    The same tab asking for its tenant's whole queue (an admin's query) is refused."""
    sign_in(tab, site, ALICE)
    tab.expected.append("insufficient permissions")  # Firestore's SDK logs the refusal
    # The SDK may first answer from its cache (alice's own documents, which her queue's
    # listeners hold); what counts is the server's answer.
    code = tab.page.evaluate(
        """async () => {
          const cloud = await import('/app/cloud.js');
          const who = JSON.parse(sessionStorage.getItem('vettra.session'));
          const [wide] = cloud.pendingQueries({...who, role: 'admin'});
          return await new Promise((resolve) => {
            const stop = cloud.onSnapshot(wide, {includeMetadataChanges: true}, (s) => {
              if (!s.metadata.fromCache) { stop(); resolve(`allowed: ${s.size} documents`); }
            }, (error) => resolve(error.code));
          });
        }"""
    )
    assert code == "permission-denied"


def test_sign_out_ends_firebase_and_auth0_sessions(tab, site) -> None:
    sign_in(tab, site, ALICE)
    page = tab.page
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_selector("#sign-in")
    logout = site.idp.logouts[-1]
    assert logout == {"client_id": CLIENT_ID, "returnTo": site.origin + "/"}
    keys = page.evaluate("Object.keys(sessionStorage)")
    assert not any(k.startswith("firebase:authUser:") or k == "vettra.session" for k in keys)
    # a stale callback (the code already spent) is refused, and says so
    page.goto(site.origin + "/?code=spent&state=nope")
    assert re.search("not started in this tab", page.locator(".error").inner_text())
    assert urlsplit(page.url).query == ""


def test_the_other_pages_read_the_api_with_the_auth0_token(tab, site) -> None:
    """Overview, audit log, sessions and step-up factors load in cloud mode from the same
    API, the Auth0 access token as bearer: no console error (a refused request is one)."""
    sign_in(tab, site, ALICE)
    page = tab.page
    responses: list[tuple[int, str]] = []
    page.on(
        "response",
        lambda r: (
            responses.append((r.status, urlsplit(r.url).path))
            if urlsplit(r.url).path.startswith("/api/")
            else None
        ),
    )
    for route in ("overview", "audit", "sessions", "factors"):
        page.goto(f"{site.origin}/#/{route}")
        page.locator(f"section.page[data-loaded]:has(#{route}-title)").wait_for()  # read
        shot(page, f"cloud-{route}")
    assert responses and all(status < 400 for status, _ in responses), responses
    paths = {path for _, path in responses}
    assert {
        "/api/audit/entries",
        "/api/approvals/sessions",
        "/api/approvals/stepup/factors",
    } <= paths


def test_a_high_action_is_approved_with_a_totp_step_up(tab, site) -> None:
    """Step-up in cloud mode: the same inline TOTP check, through the API with the Auth0
    token, and the action (live from Firestore) approved once the code verifies."""
    sign_in(tab, site, ALICE)
    page = tab.page
    # enrol over HTTP with the tab's own token (browser.py's helper reads it from the tab)
    totp = enrol_totp(SimpleNamespace(page=page, live=site.server))
    with site.agent(ALICE) as alice:
        r = alice.post("/api/actions/intercept", json=DELETE_REPO)
        assert r.status_code in (200, 201) and r.json()["risk"]["level"] == "HIGH", r.text
        action_id = r.json()["action_id"]
        card = page.locator(f"article.card[data-action-id='{action_id}']")
        card.wait_for()
        assert "step up" in card.locator(".stepup-note").inner_text()
        card.get_by_role("button", name="Approve", exact=True).click()
        # the enrolment spent this 30 s step's code: the next step's (one step of drift)
        card.get_by_label("6-digit code from your authenticator app").fill(
            totp.at(time.time() + 30)
        )
        card.get_by_role("button", name="Verify code and approve").click()
        card.wait_for(state="detached")
        view = alice.get(f"/api/actions/{action_id}").json()
        assert view["status"] == "approved" and view["decided_by"] == f"approver:{ALICE}", view
