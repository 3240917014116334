"""Step-up factors (list with last use, removal behind a step-up) and the threat
simulation (the write-up's five scenarios and a prompt injection, intercepted for real)."""

from __future__ import annotations

import pytest

from vettra.services import simulation

from .approvals import TotpDevice, enrol_totp_device
from .test_stepup_http import SoftAuthenticator

PROBLEM = "application/problem+json"


def _step_up_for(client, purpose: str, device: TotpDevice) -> str:
    challenge = client.post("/api/approvals/stepup/trigger", json={"purpose": purpose}).json()
    r = client.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": challenge["challenge_id"], "code": device.code()},
    )
    assert r.status_code == 200, r.text
    return r.json()["step_up_token"]


def test_factors_are_listed_with_their_last_use(alice, bob) -> None:
    assert alice.get("/api/approvals/stepup/factors").json() == {"factors": []}
    device = enrol_totp_device(alice)
    (totp,) = alice.get("/api/approvals/stepup/factors").json()["factors"]
    assert totp["factor_id"] == "totp" and totp["method"] == "totp"
    assert totp["created_at"] and totp["last_used_at"] is None
    assert totp["removal_purpose"] == "stepup.remove:totp"
    _step_up_for(alice, "generic", device)
    (used,) = alice.get("/api/approvals/stepup/factors").json()["factors"]
    assert used["last_used_at"] is not None
    assert bob.get("/api/approvals/stepup/factors").json() == {"factors": []}  # own only


def test_removing_a_factor_needs_a_step_up_bound_to_it(alice, bob, agent) -> None:
    device = enrol_totp_device(alice)
    refused = alice.post("/api/approvals/stepup/factors/remove", json={"factor_id": "totp"})
    assert refused.status_code == 401 and refused.headers["content-type"] == PROBLEM
    assert "insufficient_user_authentication" in refused.headers["www-authenticate"]
    wrong = _step_up_for(alice, "generic", device)  # a step-up for another purpose
    r = alice.post(
        "/api/approvals/stepup/factors/remove", json={"factor_id": "totp", "step_up_token": wrong}
    )
    assert r.status_code == 401
    assert len(alice.get("/api/approvals/stepup/factors").json()["factors"]) == 1
    assert (
        bob.post("/api/approvals/stepup/factors/remove", json={"factor_id": "totp"}).status_code
        == 404
    )
    assert agent.get("/api/approvals/stepup/factors").status_code == 403

    token = _step_up_for(alice, "stepup.remove:totp", device)
    r = alice.post(
        "/api/approvals/stepup/factors/remove", json={"factor_id": "totp", "step_up_token": token}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"removed": "totp", "factors": []}
    again = alice.post(
        "/api/approvals/stepup/factors/remove", json={"factor_id": "totp", "step_up_token": token}
    )
    assert again.status_code == 404  # gone (and the token is spent anyway)


def test_a_passkey_is_listed_and_removed_with_a_step_up_of_another_factor(alice) -> None:
    device = enrol_totp_device(alice)
    authenticator = SoftAuthenticator()
    start = alice.post(
        "/api/approvals/stepup/enroll",
        json={
            "method": "webauthn",
            "step_up_token": _step_up_for(alice, "stepup.enroll", device),
        },
    ).json()
    done = alice.post(
        "/api/approvals/stepup/enroll",
        json={
            "method": "webauthn",
            "enrollment_id": start["enrollment_id"],
            "credential": authenticator.create(start["options"]),
        },
    )
    assert done.status_code == 200, done.text
    factors = alice.get("/api/approvals/stepup/factors").json()["factors"]
    assert [f["method"] for f in factors] == ["totp", "webauthn"]
    passkey = factors[1]
    token = _step_up_for(alice, passkey["removal_purpose"], device)
    r = alice.post(
        "/api/approvals/stepup/factors/remove",
        json={"factor_id": passkey["factor_id"], "step_up_token": token},
    )
    assert r.status_code == 200 and [f["method"] for f in r.json()["factors"]] == ["totp"]


@pytest.mark.parametrize(
    "body", [{}, {"factor_id": ""}, {"factor_id": "a/b"}, {"factor_id": "totp", "x": 1}]
)
def test_bad_removals_are_422(alice, body) -> None:
    r = alice.post("/api/approvals/stepup/factors/remove", json=body)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM


def test_every_scenario_gives_what_the_write_up_says(alice, bob, agent) -> None:
    listed = alice.get("/api/simulations").json()["scenarios"]
    assert [s["scenario"] for s in listed] == [s.name for s in simulation.SCENARIOS]
    assert len(listed) == 6
    outcomes = {}
    for s in listed:
        r = alice.post("/api/simulations", json={"scenario": s["scenario"]})
        assert r.status_code == 201, r.text
        run = r.json()
        assert run["as_expected"], run
        assert run["action"]["agent"] == simulation.SIM_AGENT and run["action"]["user"] == "alice"
        outcomes[s["scenario"]] = (run["outcome"]["status"], run["outcome"]["level"])
    assert outcomes == {
        "read-profile": ("allowed", "LOW"),
        "send-email": ("pending", "MEDIUM"),
        "delete-repo": ("pending", "HIGH"),
        "charge-500": ("pending", "HIGH"),
        "grant-admin": ("denied", "HIGH"),
        "prompt-injection": ("pending", "MEDIUM"),
    }
    pending = alice.get("/api/actions/pending").json()["actions"]
    assert len(pending) == 4  # held in alice's own queue, nobody else's
    assert bob.get("/api/actions/pending").json()["actions"] == []
    assert agent.post("/api/simulations", json={"scenario": "send-email"}).status_code == 403
    bad = alice.post("/api/simulations", json={"scenario": "rm-rf"})
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM
