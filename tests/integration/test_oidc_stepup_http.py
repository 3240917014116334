"""OIDC step-up over the real HTTP server, against a real (local) identity provider.

The server is bootstrapped with ``oidc_issuer`` pointing at :class:`FakeIdP` (discovery
and a JWK Set over ``http.server`` on 127.0.0.1); ID tokens are signed there with RSA
keys made in the test. No factor is enrolled: OIDC alone is offered.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vettra.bootstrap import Config, Runtime, bootstrap
from vettra.services.stepup import USED_CHALLENGES

from ..unit.test_oidc_stepup import AUDIENCE, MFA_ACR, FakeIdP, hs256_with_public_key, unsigned
from .scenarios import CHARGE_500, DELETE_REPO

PROBLEM = "application/problem+json"


@pytest.fixture
def runtime(home: Path, idp: FakeIdP) -> Iterator[Runtime]:
    """Overrides conftest's runtime: the same embedded stack, with OIDC step-up configured."""
    rt = bootstrap(Config(home=home, extra={"oidc_issuer": idp.issuer, "oidc_audience": AUDIENCE}))
    rt.start()
    yield rt
    rt.close()


def _intercept(agent, bundle: dict = DELETE_REPO) -> dict:
    r = agent.post("/api/actions/intercept", json=bundle)
    assert r.status_code == 201 and r.json()["step_up_required"] is True, r.text
    return r.json()


def _trigger(client, action_id: str) -> dict:
    r = client.post("/api/approvals/stepup/trigger", json={"action_id": action_id})
    assert r.status_code == 200, r.text
    return r.json()


def _verify(client, challenge: dict, id_token: str) -> Any:
    return client.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": challenge["challenge_id"], "id_token": id_token},
    )


def _refused_with_step_up(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == PROBLEM
    assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
    assert "max_age=300" in r.headers["www-authenticate"]


def test_an_id_token_with_recent_mfa_approves_a_high_action(idp, agent, alice, admin) -> None:
    a = _intercept(agent)
    ch = _trigger(alice, a["action_id"])
    assert ch["methods"] == ["oidc"] and "webauthn" not in ch
    assert ch["oidc"]["issuer"] == idp.issuer and ch["oidc"]["max_age"] == 300
    assert ch["oidc"]["acr_values"] == MFA_ACR and len(ch["oidc"]["nonce"]) == 43

    id_token = idp.id_token(ch["oidc"]["nonce"])
    verified = _verify(alice, ch, id_token)
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["amr"] == ["pwd", "mfa"] and body["token_type"] == "step_up"
    assert (body["action_id"], body["args_digest"]) == (a["action_id"], a["args_digest"])

    approved = alice.post(
        "/api/actions/approve",
        json={
            "action_id": a["action_id"],
            "decision": "approve",
            "step_up_token": body["step_up_token"],
        },
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text

    trail = alice.get(f"/api/audit/action/{a['action_id']}").json()["entries"]
    assert [e["type"] for e in trail] == [
        "action.intercepted",
        "stepup.verified",
        "stepup.redeemed",
        "action.approved",
    ]
    log = admin.get("/api/audit/entries").text
    assert '"oidc"' in log and id_token not in log and id_token.split(".")[2] not in log


# Each refusal: (desc, how to make the token from (idp, challenge, other action's challenge), detail wants)
Forge = Callable[[FakeIdP, dict, dict], str]
REFUSALS: list[tuple[str, Forge, str]] = [
    (
        "token for another action",
        lambda idp, ch, other: idp.id_token(other["oidc"]["nonce"]),
        "nonce",
    ),
    (
        "stale auth_time",
        lambda idp, ch, _: idp.id_token(ch["oidc"]["nonce"], auth_time=int(time.time()) - 400),
        "more than max_age",
    ),
    (
        "no MFA in amr or acr",
        lambda idp, ch, _: idp.id_token(ch["oidc"]["nonce"], amr=["pwd"]),
        "multi-factor",
    ),
    (
        "wrong audience",
        lambda idp, ch, _: idp.id_token(ch["oidc"]["nonce"], aud="other-client"),
        "aud",
    ),
    (
        "wrong issuer",
        lambda idp, ch, _: idp.id_token(ch["oidc"]["nonce"], iss="https://evil.example/"),
        "iss",
    ),
    (
        "expired",
        lambda idp, ch, _: idp.id_token(ch["oidc"]["nonce"], exp=int(time.time()) - 5),
        "expired",
    ),
    (
        "signed by an unknown key",
        lambda idp, ch, _: idp.id_token(ch["oidc"]["nonce"], key=FakeIdP._rsa("rogue")),
        "kid 'rogue'",
    ),
    (
        "signed by another key under a known kid",
        lambda idp, ch, _: idp.id_token(ch["oidc"]["nonce"], key=FakeIdP._rsa("k1")),
        "signature",
    ),
    (
        "alg none",
        lambda idp, ch, _: unsigned({"alg": "none", "kid": "k1"}, idp.claims(ch["oidc"]["nonce"])),
        "'none'",
    ),
    (
        "HS256 keyed with the public key",
        lambda idp, ch, _: hs256_with_public_key(idp, idp.claims(ch["oidc"]["nonce"])),
        "'HS256'",
    ),
    ("sub of another user", lambda idp, ch, _: idp.id_token(ch["oidc"]["nonce"], sub="bob"), "sub"),
]


@pytest.mark.parametrize("desc,forge,want", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_id_tokens_answer_401_and_are_audited(
    idp, agent, alice, admin, desc, forge, want
) -> None:
    a, b = _intercept(agent), _intercept(agent, CHARGE_500)
    ch, other = _trigger(alice, a["action_id"]), _trigger(alice, b["action_id"])
    token = forge(idp, ch, other)
    r = _verify(alice, ch, token)
    _refused_with_step_up(r)
    assert want in r.json()["detail"], r.json()["detail"]
    assert agent.get(f"/api/actions/{a['action_id']}").json()["status"] == "pending"
    failed = [
        e
        for e in alice.get(f"/api/audit/action/{a['action_id']}").json()["entries"]
        if e["type"] == "stepup.failed"
    ]
    assert len(failed) == 1
    assert token not in admin.get("/api/audit/entries").text


def test_an_id_token_is_single_use(runtime, idp, agent, alice) -> None:
    a = _intercept(agent)
    ch = _trigger(alice, a["action_id"])
    token = idp.id_token(ch["oidc"]["nonce"])
    assert _verify(alice, ch, token).status_code == 200
    _refused_with_step_up(_verify(alice, ch, token))  # the challenge is spent ...
    with runtime.deps.store.unit_of_work() as uow:  # ... and even were it not,
        uow.docs.delete(USED_CHALLENGES, ch["challenge_id"])
        uow.commit()
    replay = _verify(alice, ch, token)  # the token's jti is
    _refused_with_step_up(replay)
    assert "already used" in replay.json()["detail"]


def test_failed_id_tokens_count_toward_the_lockout(idp, agent, alice) -> None:
    ch = _trigger(alice, _intercept(agent)["action_id"])
    for _ in range(5):
        _refused_with_step_up(_verify(alice, ch, idp.id_token(ch["oidc"]["nonce"], amr=["pwd"])))
    locked = _verify(alice, ch, idp.id_token(ch["oidc"]["nonce"]))
    assert locked.status_code == 429 and 290 <= int(locked.headers["retry-after"]) <= 300


def test_the_identity_provider_down_answers_503(idp, agent, alice) -> None:
    ch = _trigger(alice, _intercept(agent)["action_id"])
    token = idp.id_token(ch["oidc"]["nonce"])
    idp.stop()
    r = _verify(alice, ch, token)
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, r.text


def test_a_key_rotation_at_the_identity_provider_is_picked_up_after_one_refresh(
    idp, agent, alice
) -> None:
    first = _trigger(alice, _intercept(agent)["action_id"])
    assert _verify(alice, first, idp.id_token(first["oidc"]["nonce"])).status_code == 200
    assert idp.jwks_fetches() == 1
    idp.rotate("k2")
    second = _trigger(alice, _intercept(agent, CHARGE_500)["action_id"])
    r = _verify(alice, second, idp.id_token(second["oidc"]["nonce"]))
    assert r.status_code == 200, r.text
    assert idp.jwks_fetches() == 2


def test_id_tokens_are_schema_checked(alice) -> None:
    for body in (
        {"challenge_id": "stc_x", "id_token": "not a jwt"},
        {"challenge_id": "stc_x", "id_token": "a.b.c", "code": "123456"},
    ):
        assert alice.post("/api/approvals/stepup/verify", json=body).status_code in (400, 422)
