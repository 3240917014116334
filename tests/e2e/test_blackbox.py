"""Acceptance test from outside: ``vettra dev`` as a subprocess, tokens from
``vettra token``, the API over HTTP with httpx, the log through ``vettra audit``.

Nothing here imports the product; the process is signalled (SIGTERM, SIGKILL)
exactly as an operator or a crash would.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ..integration.scenarios import (
    CHARGE_500,
    DELETE_REPO,
    EXPECTED,
    GRANT_ADMIN,
    READ_PROFILE,
    SEND_EMAIL,
)
from .conftest import (
    LOAD_CALLERS,
    DevServer,
    Load,
    chain_length,
    entries_of,
    mint,
    mint_many,
    run_cli,
    seqs_are_gap_free,
)

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
INTERCEPT = "/api/actions/intercept"
APPROVE = "/api/actions/approve"
DECISION_TYPES = {"action.approved", "action.denied", "action.expired"}
SCENARIO_IDS = ["read-profile", "send-email", "delete-repo", "charge-500", "grant-admin"]
EXPIRY_BOUND_S = 75  # how long an expired token may still be accepted (clock-skew leeway)


class Product:
    """The shared server of this module and its callers' tokens."""

    def __init__(self, server: DevServer, tokens: dict[str, str], short_lived_minted: float):
        self.server = server
        self.tokens = tokens
        self.short_lived_minted = short_lived_minted
        self.agent = server.client(tokens["agent"])
        self.alice = server.client(tokens["alice"])
        self.bob = server.client(tokens["bob"])
        self.admin = server.client(tokens["admin"])

    def close(self) -> None:
        for c in (self.agent, self.alice, self.bob, self.admin):
            c.close()


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    base = tmp_path_factory.mktemp("blackbox")
    # The server first: it creates the home's keys. (Minting in parallel on a fresh
    # home races on key creation; see test_parallel_first_use_of_a_home.)
    server = DevServer(base / "home", base / "dev.log").start()
    minted = time.time()
    tokens = mint_many(
        server.home,
        {
            "agent": ("agent", "agent-1", "alice"),
            "agent2": ("agent", "agent-2", "alice"),
            "alice": ("approver", "alice"),
            "bob": ("approver", "bob"),
            "admin": ("admin", "root"),
            "short": ("approver", "alice", None, 1),
        },
    )
    tokens["foreign"] = mint(base / "other-home", "agent", "agent-1", "alice")
    product = Product(server, tokens, minted)
    yield product
    product.close()
    code, took = server.terminate()
    assert code == 0 and took < 5, (code, took, server.log())


def _is_problem(r: httpx.Response, status: int | None = None) -> dict:
    assert r.headers.get("content-type") == PROBLEM, (r.status_code, r.headers, r.text)
    doc = r.json()
    assert {"type", "title", "status", "detail"} <= set(doc), doc
    assert doc["status"] == r.status_code
    if status is not None:
        assert r.status_code == status, r.text
    return doc


def _audit_types(admin: httpx.Client, action_id: str) -> list[str]:
    r = admin.get(f"/api/audit/action/{action_id}")
    assert r.status_code == 200, r.text
    return [e["type"] for e in r.json()["entries"]]


# -- the five scenarios ----------------------------------------------------------


@pytest.mark.parametrize("bundle, status, level, step_up", EXPECTED, ids=SCENARIO_IDS)
def test_scenario(product, bundle, status, level, step_up) -> None:
    r = product.agent.post(INTERCEPT, json=bundle)
    assert r.status_code in (200, 201, 202), r.text
    body = r.json()
    assert (body["status"], body["risk"]["level"], body["step_up_required"]) == (
        status,
        level,
        step_up,
    )
    assert body["args_digest"].startswith("sha256:")
    assert set(body["risk"]["factors"]) == {
        "action_type",
        "reversibility",
        "blast_radius",
        "sensitivity",
    }
    if status == "denied":
        assert isinstance(body["reason"], str) and body["reason"].strip()
    if status == "pending":
        deadline = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
        assert deadline > datetime.now(UTC)
    # The answer is what a later read says, and the log has it.
    seen = product.agent.get(f"/api/actions/{body['action_id']}")
    assert seen.status_code == 200 and seen.json()["status"] == status
    assert _audit_types(product.admin, body["action_id"]) == ["action.intercepted"]


def test_high_risk_needs_step_up_then_deny_reaches_the_agent(product) -> None:
    action = product.agent.post(INTERCEPT, json=DELETE_REPO).json()
    aid = action["action_id"]
    r = product.alice.post(APPROVE, json={"action_id": aid, "decision": "approve"})
    _is_problem(r, 401)
    assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
    r = product.alice.post(
        APPROVE, json={"action_id": aid, "decision": "deny", "reason": "never delete prod"}
    )
    assert r.status_code == 200 and r.json()["status"] == "denied"
    seen = product.agent.get(f"/api/actions/{aid}").json()
    assert seen["status"] == "denied" and seen["reason"] == "never delete prod"
    again = product.alice.post(APPROVE, json={"action_id": aid, "decision": "deny"})
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM


def test_decision_conflict_is_a_valid_problem_document(product) -> None:
    aid = product.agent.post(INTERCEPT, json=SEND_EMAIL).json()["action_id"]
    assert (
        product.alice.post(APPROVE, json={"action_id": aid, "decision": "deny"}).status_code == 200
    )
    _is_problem(product.alice.post(APPROVE, json={"action_id": aid, "decision": "approve"}), 409)


# -- idempotency ---------------------------------------------------------------------


def test_idempotency(product) -> None:
    before = chain_length(product.admin)
    key = {"Idempotency-Key": f"e2e-{time.time_ns()}"}
    first = product.agent.post(INTERCEPT, json=SEND_EMAIL, headers=key)
    again = product.agent.post(INTERCEPT, json=SEND_EMAIL, headers=key)
    assert first.status_code in (200, 201) and "idempotent-replayed" not in first.headers
    assert again.status_code == 200, again.text
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.json()["action_id"] == first.json()["action_id"]
    other = product.agent.post(
        INTERCEPT,
        json={**SEND_EMAIL, "arguments": {**SEND_EMAIL["arguments"], "to": "eve@example.com"}},
        headers=key,
    )
    _is_problem(other, 409)
    assert chain_length(product.admin) == before + 1


# -- ownership and authentication ------------------------------------------------------


def test_another_approver_sees_404_and_agents_get_403(product) -> None:
    aid = product.agent.post(INTERCEPT, json=SEND_EMAIL).json()["action_id"]
    _is_problem(product.bob.get(f"/api/actions/{aid}"), 404)
    _is_problem(product.bob.post(APPROVE, json={"action_id": aid, "decision": "approve"}), 404)
    _is_problem(product.bob.get(f"/api/audit/action/{aid}"), 404)
    assert aid not in [
        a["action_id"] for a in product.bob.get("/api/actions/pending").json()["actions"]
    ]
    with product.server.client(product.tokens["agent2"]) as other_agent:  # same user, other agent
        _is_problem(other_agent.get(f"/api/actions/{aid}"), 404)
    for method, path, body in [
        ("GET", "/api/actions/pending", None),
        ("POST", APPROVE, {"action_id": aid, "decision": "approve"}),
        ("GET", "/api/audit/entries", None),
        ("GET", "/api/audit/verify", None),
    ]:
        _is_problem(product.agent.request(method, path, json=body), 403)
    # nothing moved: still alice's, still pending
    assert product.alice.get(f"/api/actions/{aid}").json()["status"] == "pending"
    assert aid in [
        a["action_id"] for a in product.alice.get("/api/actions/pending").json()["actions"]
    ]


@pytest.mark.parametrize("who", ["none", "garbage", "foreign-home"])
def test_bad_tokens_get_401(product, who) -> None:
    token = {"none": None, "garbage": "not.a.token", "foreign-home": product.tokens["foreign"]}[who]
    with product.server.client(token) as c:
        for method, path, body in [
            ("POST", INTERCEPT, SEND_EMAIL),
            ("GET", "/api/actions/pending", None),
            ("GET", "/api/audit/verify", None),
            ("GET", "/api/openapi.json", None),
        ]:
            r = c.request(method, path, json=body)
            _is_problem(r, 401)
            assert r.headers["www-authenticate"].lower().startswith("bearer"), (
                r.headers
            )  # RFC 6750 §3
    assert httpx.get(product.server.url + "/health").status_code == 200


# -- malformed and hostile input -----------------------------------------------------------

HOSTILE = [
    ("bad-json", b'{"tool": "gmail.send_message", "arguments": {', "application/json"),
    ("not-utf8", b"\xff\xfe{\x00}", "application/json"),
    ("wrong-types", b'{"tool": 5, "arguments": "all of them"}', "application/json"),
    ("missing-arguments", b'{"tool": "gmail.send_message"}', "application/json"),
    (
        "unknown-enum",
        b'{"tool": "gmail.send_message", "arguments": {}, "framework": "skynet"}',
        "application/json",
    ),
    (
        "bool-timeout",
        b'{"tool": "gmail.send_message", "arguments": {}, "timeout_s": true}',
        "application/json",
    ),
    ("nan", b'{"tool": "gmail.send_message", "arguments": {"n": NaN}}', "application/json"),
    (
        "duplicate-keys",
        b'{"tool": "user.get_profile", "tool": "iam.grant_role", "arguments": {}}',
        "application/json",
    ),
    (
        "too-big",
        b'{"tool": "gmail.send_message", "arguments": {"body": "' + b"A" * (257 * 1024) + b'"}}',
        "application/json",
    ),
    ("wrong-content-type", json.dumps(SEND_EMAIL).encode(), "text/plain"),
    ("form-encoded", b"tool=gmail.send_message", "application/x-www-form-urlencoded"),
    ("deep-array", b"[" * 100_000 + b"]" * 100_000, "application/json"),
    (
        "deep-arguments",
        b'{"tool": "gmail.send_message", "arguments": '
        + b'{"a":' * 2000
        + b"1"
        + b"}" * 2000
        + b"}",
        "application/json",
    ),
]


def test_hostile_input_is_a_clear_4xx_and_writes_nothing(product) -> None:
    before = chain_length(product.admin)
    aid = product.agent.post(INTERCEPT, json=SEND_EMAIL).json()["action_id"]
    before += 1
    seen: dict[str, int] = {}
    for name, body, ctype in HOSTILE:
        try:
            r = product.agent.post(INTERCEPT, content=body, headers={"Content-Type": ctype})
        except httpx.TransportError:  # a server may close on a body it refused unread
            assert name == "too-big", name
            continue
        seen[name] = r.status_code
        assert r.status_code in (400, 413, 415, 422), (name, r.status_code, r.text[:300])
        doc = _is_problem(r)
        if r.status_code == 422:
            assert doc.get("errors"), (name, doc)
    for name, body in [
        ("approve-unknown-enum", {"action_id": aid, "decision": "maybe"}),
        ("approve-wrong-type", {"action_id": 7, "decision": "approve"}),
        ("approve-hostile-id", {"action_id": "../../etc/passwd", "decision": "approve"}),
        ("approve-extra-field", {"action_id": aid, "decision": "approve", "is_admin": True}),
    ]:
        r = product.alice.post(APPROVE, json=body)
        seen[name] = r.status_code
        assert r.status_code in (400, 422), (name, r.text)
        _is_problem(r)
    assert seen.get("too-big", 413) == 413 and seen["wrong-content-type"] == 415
    assert seen["unknown-enum"] == 422 and seen["bad-json"] == 400
    # a raw request announcing a huge body is refused from its headers alone
    with socket.create_connection(("127.0.0.1", product.server.port), timeout=5) as s:
        s.sendall(
            b"POST /api/actions/intercept HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer "
            + product.tokens["agent"].encode()
            + b"\r\nContent-Length: 104857600\r\n\r\n{"
        )
        head = s.recv(65536).split(b"\r\n", 1)[0]
    assert b" 413 " in head, head
    assert product.alice.get(f"/api/actions/{aid}").json()["status"] == "pending"
    assert chain_length(product.admin) == before
    assert httpx.get(product.server.url + "/health").status_code == 200


# -- concurrency ------------------------------------------------------------------------------

AGENT_THREADS, PER_THREAD = 8, 25
MIX = [READ_PROFILE, SEND_EMAIL, DELETE_REPO, CHARGE_500, GRANT_ADMIN, SEND_EMAIL]


def test_concurrent_intercepts_and_decisions_keep_one_gap_free_chain(product) -> None:
    server, tokens = product.server, product.tokens
    submitted: dict[str, dict] = {}
    decided: dict[str, str] = {}  # action id -> status the one winning decision set
    races: list[tuple[int, int]] = []  # (200s, 409s) per approve-vs-deny race
    failures: list[str] = []
    lock = threading.Lock()
    todo: queue.Queue = queue.Queue()

    def agent_worker(n: int) -> None:
        with server.client(tokens["agent" if n % 2 else "agent2"]) as c:
            for i in range(PER_THREAD):
                bundle = MIX[(n + i) % len(MIX)]
                r = c.post(INTERCEPT, json=bundle)
                if r.status_code not in (200, 201):
                    with lock:
                        failures.append(f"intercept {r.status_code} {r.text[:200]}")
                    continue
                body = r.json()
                with lock:
                    submitted[body["action_id"]] = body
                if body["status"] == "pending":
                    todo.put(body)
        todo.put(None)

    def decide(c: httpx.Client, aid: str, decision: str) -> httpx.Response:
        return c.post(APPROVE, json={"action_id": aid, "decision": decision})

    def decider() -> None:
        done, n = 0, 0
        with server.client(tokens["alice"]) as c, server.client(tokens["alice"]) as c2:
            while done < AGENT_THREADS:
                item = todo.get()
                if item is None:
                    done += 1
                    continue
                n += 1
                aid = item["action_id"]
                if n % 4 == 0:  # a race: approve and deny at once; exactly one wins
                    results: dict[str, httpx.Response] = {}
                    gate = threading.Barrier(2)

                    def go(
                        client: httpx.Client,
                        decision: str,
                        gate: threading.Barrier = gate,
                        results: dict[str, httpx.Response] = results,
                        aid: str = aid,
                    ) -> None:
                        gate.wait()
                        results[decision] = decide(client, aid, decision)

                    ts = [
                        threading.Thread(target=go, args=(c, "deny")),
                        threading.Thread(target=go, args=(c2, "approve")),
                    ]
                    for t in ts:
                        t.start()
                    for t in ts:
                        t.join()
                    codes = Counter(r.status_code for r in results.values())
                    with lock:
                        races.append((codes[200], codes[409] + codes[401]))
                        for r in results.values():
                            if r.status_code == 200:
                                decided[aid] = r.json()["status"]
                    continue
                decision = "approve" if (n % 2 and not item["step_up_required"]) else "deny"
                r = decide(c, aid, decision)
                with lock:
                    if r.status_code == 200:
                        decided[aid] = r.json()["status"]
                    else:
                        failures.append(f"{decision} {r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=agent_worker, args=(n,)) for n in range(AGENT_THREADS)]
    threads += [threading.Thread(target=decider) for _ in range(1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "workers hung"
    assert not failures, failures[:5]
    assert len(submitted) == AGENT_THREADS * PER_THREAD
    assert races and all(wins == 1 and losses == 1 for wins, losses in races), races

    report = product.admin.get("/api/audit/verify").json()
    assert report["valid"] is True and report["first_invalid"] is None, report
    entries = entries_of(product.admin)
    assert len(entries) == report["length"]
    assert seqs_are_gap_free(entries), [e["seq"] for e in entries][:50]
    for prev, entry in zip(entries, entries[1:], strict=False):
        assert entry["prev_hash"] == prev["hash"], entry["seq"]

    by_action: dict[str, list[str]] = defaultdict(list)
    for e in entries:
        if e["action_id"]:
            by_action[e["action_id"]].append(e["type"])
    for aid, _body in submitted.items():
        types = by_action.get(aid, [])
        assert types.count("action.intercepted") == 1, (aid, types)
        decisions = [t for t in types if t in DECISION_TYPES]
        if aid in decided:
            assert decisions == [f"action.{decided[aid]}"], (aid, types, decided[aid])
        else:
            assert decisions == [], (aid, types)
    # every decided action in the whole log carries exactly one decision
    for aid, types in by_action.items():
        assert sum(t in DECISION_TYPES for t in types) <= 1, (aid, types)
    # what the log says is what the API says
    for aid, status in decided.items():
        assert product.alice.get(f"/api/actions/{aid}").json()["status"] == status


# -- crash safety ------------------------------------------------------------------------------


def test_kill_9_under_load_loses_nothing_acknowledged(dev_server_factory) -> None:
    server = dev_server_factory("crash")
    tokens = mint_many(server.home, LOAD_CALLERS)
    agent, alice, admin = (server.client(tokens[k]) for k in ("agent", "alice", "admin"))
    short = agent.post(INTERCEPT, json={**SEND_EMAIL, "timeout_s": 2}).json()
    assert short["status"] == "pending"
    deadline = datetime.fromisoformat(short["expires_at"].replace("Z", "+00:00")).timestamp()

    load = Load(server, MIX)
    acked, decided, lock = load.acked, load.decided, load.lock
    load.start(
        tokens["agent"],
        tokens["alice"],
        agents=4,
        decision="deny",
        pending_limit=20,
        spare=[short["action_id"]],
    )
    started = time.monotonic()
    # Load until enough is acknowledged, but crash well before the short deadline.
    while time.monotonic() - started < 5 and time.time() < deadline - 0.7:
        with lock:
            if len(acked) >= 80 and len(decided) >= 5:
                break
        time.sleep(0.02)
    server.kill9()
    killed_at = time.time()
    load.stop()
    assert len(acked) >= 20 and decided, (len(acked), len(decided))
    assert killed_at < deadline, (
        "the short deadline passed before the crash; the test proves nothing"
    )

    time.sleep(
        max(0.0, deadline - time.time() + 0.3)
    )  # the deadline passes while the server is down
    server.start()
    booted = time.monotonic()

    # The overdue action is expired by the re-armed timer, and the log says so.
    while True:
        types = _audit_types(admin, short["action_id"])
        if "action.expired" in types or time.monotonic() - booted > 5:
            break
        time.sleep(0.1)
    assert types == ["action.intercepted", "action.expired"], types
    assert agent.get(f"/api/actions/{short['action_id']}").json()["status"] == "expired"

    report = admin.get("/api/audit/verify").json()
    assert report["valid"] is True, report
    entries = entries_of(admin)
    assert seqs_are_gap_free(entries) and len(entries) == report["length"]
    intercepted = Counter(e["action_id"] for e in entries if e["type"] == "action.intercepted")
    denials = Counter(e["action_id"] for e in entries if e["type"] == "action.denied")
    for aid, status in acked.items():
        r = agent.get(f"/api/actions/{aid}")
        assert r.status_code == 200, (aid, r.text)
        now = r.json()["status"]
        if aid in decided:
            assert now == "denied", (aid, now)
        elif now != status:
            # a deny that committed just before the kill, its answer lost with the process
            assert (status, now) == ("pending", "denied") and denials[aid] == 1, (aid, status, now)
        assert intercepted[aid] == 1, aid
    for aid in decided:
        assert denials[aid] == 1, aid
    for c in (agent, alice, admin):
        c.close()
    code, took = server.terminate()
    assert code == 0 and took < 5, (code, took)


# -- the offline verifier ---------------------------------------------------------------------


def test_audit_export_then_verify_and_tamper(product, tmp_path: Path) -> None:
    home = str(product.server.home)
    product.agent.post(INTERCEPT, json=SEND_EMAIL)
    length = chain_length(product.admin)
    exported = tmp_path / "audit.jsonl"
    run_cli("audit", "export", "--home", home, "-o", str(exported))
    pubkey = run_cli("audit", "pubkey", "--home", home).stdout.strip()
    lines = exported.read_text().splitlines()
    parsed = [json.loads(line) for line in lines]
    # export lines: a header, {"checkpoint": note}s, then {"body": entry body, "hash", "mac"}s
    entry_rows = [
        i for i, d in enumerate(parsed) if isinstance(d.get("body"), dict) and "seq" in d["body"]
    ]
    assert len(entry_rows) >= length, (len(entry_rows), length)

    # docs/api.md: verification needs only the public key; with --home it also checks the HMACs
    for extra in ([], ["--home", home]):
        ok = run_cli(
            "audit", "verify", str(exported), "--pubkey", pubkey, "--quiet", *extra, check=False
        )
        assert ok.returncode == 0, (extra, ok.stdout, ok.stderr)

    row = next(
        i
        for i in entry_rows[len(entry_rows) // 2 :]
        if parsed[i]["body"]["type"] == "action.intercepted"
    )
    victim = parsed[row]["body"]
    victim["data"]["status"] = "allowed" if victim["data"]["status"] != "allowed" else "denied"
    lines[row] = json.dumps(parsed[row], separators=(",", ":"), ensure_ascii=False)
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join(lines) + "\n")
    for extra in ([], ["--home", home]):
        bad = run_cli(
            "audit", "verify", str(tampered), "--pubkey", pubkey, "--quiet", *extra, check=False
        )
        assert bad.returncode not in (0, 2), (extra, bad.returncode, bad.stdout, bad.stderr)
        assert f"seq {victim['seq']}" in bad.stdout + bad.stderr, (extra, bad.stdout, bad.stderr)


# -- first use of a home from several processes ---------------------------------------------


def test_parallel_first_use_of_a_home(tmp_path: Path) -> None:
    for trial in range(3):  # the race is likely, not certain, on any one fresh home
        home = tmp_path / f"fresh-{trial}"
        tokens = mint_many(home, {f"t{i}": ("approver", f"user-{i}") for i in range(8)})
        server = DevServer(home, tmp_path / f"fresh-{trial}.log").start()
        try:
            for name, token in tokens.items():
                with server.client(token) as c:
                    assert c.get("/api/actions/pending").status_code == 200, name
        finally:
            server.terminate()


# -- last: a token minted with --ttl 1 at module start stops working --------------------------


def test_expired_token_gets_401(product) -> None:
    with product.server.client(product.tokens["short"]) as c:
        while True:
            r = c.get("/api/actions/pending")
            if r.status_code == 401 or time.time() - product.short_lived_minted > EXPIRY_BOUND_S:
                break
            assert r.status_code == 200, r.text
            time.sleep(0.5)
        _is_problem(r, 401)
