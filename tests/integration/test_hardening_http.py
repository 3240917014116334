"""Hardening from the outside review (issue 7): idempotency scope, hostile tokens, guards.

Everything here goes over a real HTTP server on a temporary home.
"""

from __future__ import annotations

from .scenarios import SEND_EMAIL

PROBLEM = "application/problem+json"


def _audit_for(admin, action_id: str) -> list[dict]:
    r = admin.get("/api/audit/entries", params={"action_id": action_id})
    assert r.status_code == 200, r.text
    return r.json()["entries"]


# -- 1. Idempotency is scoped to the whole principal ---------------------------------------


def test_a_key_reused_for_another_user_gets_its_own_action(server, alice, admin) -> None:
    key = {"Idempotency-Key": "k-shared-1"}
    with (
        server.client("agent", "agent-1", "alice") as for_alice,
        server.client("agent", "agent-1", "bob") as for_bob,
        server.client("approver", "bob") as bob,
    ):
        first = for_alice.post("/api/actions/intercept", json=SEND_EMAIL, headers=key)
        assert first.status_code == 201, first.text
        approved = alice.post(
            "/api/actions/approve",
            json={"action_id": first.json()["action_id"], "decision": "approve"},
        )
        assert approved.status_code == 200
        r = for_bob.post("/api/actions/intercept", json=SEND_EMAIL, headers=key)
        assert r.status_code == 201, r.text
        assert "Idempotent-Replayed" not in r.headers
        mine = r.json()
        assert mine["action_id"] != first.json()["action_id"]
        assert mine["status"] == "pending"
        # written for bob, in bob's queue, with its own audit entry
        assert [a["action_id"] for a in bob.get("/api/actions/pending").json()["actions"]] == [
            mine["action_id"]
        ]
        assert [e["type"] for e in _audit_for(admin, mine["action_id"])] == ["action.intercepted"]
        # and a retry by the same principal replays its own action
        again = for_bob.post("/api/actions/intercept", json=SEND_EMAIL, headers=key)
        assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
        assert again.json()["action_id"] == mine["action_id"]


def test_a_key_is_not_shared_across_agents(server) -> None:
    key = {"Idempotency-Key": "k-shared-2"}
    with (
        server.client("agent", "agent-1", "alice") as one,
        server.client("agent", "agent-2", "alice") as two,
    ):
        a = one.post("/api/actions/intercept", json=SEND_EMAIL, headers=key)
        b = two.post("/api/actions/intercept", json=SEND_EMAIL, headers=key)
        assert (a.status_code, b.status_code) == (201, 201)
        assert a.json()["action_id"] != b.json()["action_id"]


def test_a_key_is_not_shared_across_sessions(server) -> None:
    key = {"Idempotency-Key": "k-shared-4"}
    with server.client("agent", "agent-1", "alice") as agent:
        sessions = [
            agent.post("/api/approvals/sessions", json={}).json()["session_id"] for _ in range(2)
        ]
        made = [
            agent.post("/api/actions/intercept", json={**SEND_EMAIL, "session_id": s}, headers=key)
            for s in sessions
        ]
        assert [r.status_code for r in made] == [201, 201], [r.text for r in made]
        assert made[0].json()["action_id"] != made[1].json()["action_id"]
        again = agent.post(
            "/api/actions/intercept", json={**SEND_EMAIL, "session_id": sessions[1]}, headers=key
        )
        assert again.status_code == 200 and again.json()["action_id"] == made[1].json()["action_id"]


def test_the_409_never_tells_one_principal_about_another(server) -> None:
    key = {"Idempotency-Key": "k-shared-3"}
    other_body = {**SEND_EMAIL, "arguments": {**SEND_EMAIL["arguments"], "subject": "other"}}
    with (
        server.client("agent", "agent-1", "alice") as for_alice,
        server.client("agent", "agent-1", "bob") as for_bob,
    ):
        assert (
            for_alice.post("/api/actions/intercept", json=SEND_EMAIL, headers=key).status_code
            == 201
        )
        # another principal with another body: a new action, not "already used"
        r = for_bob.post("/api/actions/intercept", json=other_body, headers=key)
        assert r.status_code == 201, r.text
        # the same principal with another body: its own 409
        mine = for_alice.post("/api/actions/intercept", json=other_body, headers=key)
        assert mine.status_code == 409
        assert mine.headers["content-type"] == PROBLEM


# -- 6. Tokens: hostile claims signed with the home's real key answer 401 -----------------


def _hostile(home, payload: str) -> str:
    """A compact JWS over ``payload`` (raw JSON text), signed by the home's identity key."""
    from cryptography.hazmat.primitives import serialization
    from joserfc import jws
    from joserfc.jwk import OKPKey

    from vettra.adapters.local_identity import ALGORITHM
    from vettra.adapters.local_keys import LocalKeyStore

    pem = (
        LocalKeyStore(home)
        .identity_signing_key()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key = OKPKey.import_key(pem)
    return jws.serialize_compact(
        {"alg": ALGORITHM, "kid": key.thumbprint()[:16], "typ": "JWT"},
        payload.encode("ascii"),
        key,
        algorithms=[ALGORITHM],
    )


def _claims(**override: str) -> str:
    import json
    import time

    now = int(time.time())
    fields = {
        "iss": '"vettra-local"',
        "aud": '"vettra"',
        "sub": '"agent-1"',
        "role": '"agent"',
        "user": '"alice"',
        "tenant": '"default"',
        "iat": str(now),
        "nbf": str(now - 30),
        "exp": str(now + 3600),
        "jti": json.dumps("j1"),
    }
    fields.update(override)
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items() if v is not None) + "}"


HOSTILE_CLAIMS = {
    "exp-nan": {"exp": "NaN"},
    "exp-infinity": {"exp": "Infinity"},
    "exp-neg-infinity": {"exp": "-Infinity"},
    "exp-1e308": {"exp": "1e308"},
    "exp-float": {"exp": "4102444800.5"},
    "exp-true": {"exp": "true"},
    "exp-string": {"exp": '"4102444800"'},
    "exp-negative": {"exp": "-1"},
    "exp-far-future": {"exp": "4102444800000"},
    "exp-huge-int": {"exp": "9" * 400},
    "exp-missing": {"exp": None},
    "nbf-nan": {"nbf": "NaN"},
    "nbf-float": {"nbf": "1.5"},
    "nbf-bool": {"nbf": "false"},
    "nbf-string": {"nbf": '"0"'},
    "nbf-far-future": {"nbf": "4102444800000"},
    "iat-nan": {"iat": "NaN"},
    "iat-infinity": {"iat": "Infinity"},
    "iat-bool": {"iat": "true"},
    "iat-negative": {"iat": "-5"},
    "iat-1e308": {"iat": "1e308"},
    "sub-lone-surrogate": {"sub": '"\\ud800"'},
    "user-lone-surrogate": {"user": '"al\\udfffice"'},
    "tenant-lone-surrogate": {"tenant": '"\\udc00"'},
    "jti-lone-surrogate": {"jti": '"\\ud83d"'},
    "extra-lone-surrogate": {"note": '{"x": ["\\ud800"]}'},
    "iss-missing": {"iss": None},
}


def test_well_formed_minted_claims_are_accepted(server, home) -> None:
    import httpx

    r = httpx.post(
        f"{server.url}/api/actions/intercept",
        json=SEND_EMAIL,
        headers={"Authorization": f"Bearer {_hostile(home, _claims())}"},
    )
    assert r.status_code == 201, r.text


import pytest  # noqa: E402


@pytest.mark.parametrize("override", list(HOSTILE_CLAIMS.values()), ids=list(HOSTILE_CLAIMS))
def test_hostile_claims_answer_401(server, home, override) -> None:
    import httpx

    token = _hostile(home, _claims(**override))
    for method, path, body in (
        ("POST", "/api/actions/intercept", SEND_EMAIL),
        ("GET", "/api/actions/act_0123456789abcdef0123456789abcdef", None),
    ):
        r = httpx.request(
            method, f"{server.url}{path}", json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 401, (path, r.status_code, r.text)
        assert r.headers["content-type"] == PROBLEM
        assert r.json()["status"] == 401
