"""Step-up over the real HTTP server: TOTP and a software WebAuthn authenticator.

The authenticator is written here (WebAuthn L3 §6.1, §6.5, §8.7 "none" attestation):
an EC P-256 key from ``cryptography``, CBOR from ``cbor2``, authenticatorData with
rpIdHash, flags and signCount, and an ES256 signature over
authenticatorData || SHA-256(clientDataJSON).
"""

from __future__ import annotations

import hashlib
import json
import os
from base64 import urlsafe_b64decode, urlsafe_b64encode
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from .approvals import decide, enrol_totp, totp_code
from .scenarios import CHARGE_500, DELETE_REPO

PROBLEM = "application/problem+json"
RP_ID, ORIGIN = "localhost", "http://localhost:8080"  # the server's defaults
OTHER_REPO = {"tool": "github.delete_repo", "arguments": {"repo": "acme/web"}}

FLAG_UP, FLAG_UV, FLAG_AT = 0x01, 0x04, 0x40
COSE_KTY_EC2, COSE_ALG_ES256, COSE_CRV_P256 = 2, -7, 1


def b64(data: bytes) -> str:
    return urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftAuthenticator:
    """A platform authenticator in software: one P-256 credential, a signature counter."""

    def __init__(self, rp_id: str = RP_ID, origin: str = ORIGIN):
        self.rp_id, self.origin = rp_id, origin
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.credential_id = os.urandom(32)
        self.sign_count = 0

    def _cose_public_key(self) -> bytes:
        numbers = self.key.public_key().public_numbers()
        return cbor2.dumps(
            {
                1: COSE_KTY_EC2,
                3: COSE_ALG_ES256,
                -1: COSE_CRV_P256,
                -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big"),
            }
        )

    def _client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}
        ).encode()

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        """navigator.credentials.create() → RegistrationResponseJSON."""
        assert options["rp"]["id"] == self.rp_id
        attested = (
            len(self.credential_id).to_bytes(2, "big")
            + self.credential_id
            + self._cose_public_key()
        )
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([FLAG_UP | FLAG_UV | FLAG_AT])
            + self.sign_count.to_bytes(4, "big")
            + bytes(16)
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(self._client_data("webauthn.create", options["challenge"])),
                "attestationObject": b64(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(self, options: dict[str, Any], *, sign_count: int | None = None) -> dict[str, Any]:
        """navigator.credentials.get() → AuthenticationResponseJSON (counter +1 unless given)."""
        assert options["rpId"] == self.rp_id
        assert b64(self.credential_id) in [c["id"] for c in options["allowCredentials"]]
        self.sign_count = self.sign_count + 1 if sign_count is None else sign_count
        client_data = self._client_data("webauthn.get", options["challenge"])
        auth_data = (
            hashlib.sha256(self.rp_id.encode()).digest()
            + bytes([FLAG_UP | FLAG_UV])
            + self.sign_count.to_bytes(4, "big")
        )
        signature = self.key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64(self.credential_id),
            "rawId": b64(self.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64(client_data),
                "authenticatorData": b64(auth_data),
                "signature": b64(signature),
                "userHandle": None,
            },
            "clientExtensionResults": {},
        }


# -- helpers ------------------------------------------------------------------------------------


def _intercept(agent, bundle: dict) -> dict:
    r = agent.post("/api/actions/intercept", json=bundle)
    assert r.status_code == 201, r.text
    assert r.json()["step_up_required"] is True
    return r.json()


def _approve(client, action_id: str, token: str | None) -> Any:
    return decide(
        client, action_id, "approve", **({} if token is None else {"step_up_token": token})
    )


def _refused_with_step_up(r: Any) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == PROBLEM
    assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"]
    assert "max_age=300" in r.headers["www-authenticate"]


# -- TOTP ---------------------------------------------------------------------------------------


def test_totp_step_up_approves_a_high_action_once(server, agent, alice, bob, admin) -> None:
    a, b = _intercept(agent, DELETE_REPO), _intercept(agent, CHARGE_500)
    secret = enrol_totp(alice)  # spends the current step's code

    challenge = alice.post("/api/approvals/stepup/trigger", json={"action_id": a["action_id"]})
    assert challenge.status_code == 200, challenge.text
    ch = challenge.json()
    assert ch["methods"] == ["totp"] and "webauthn" not in ch
    assert (ch["action_id"], ch["args_digest"]) == (a["action_id"], a["args_digest"])

    verified = alice.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": ch["challenge_id"], "code": totp_code(secret, 1)},
    )
    assert verified.status_code == 200, verified.text
    token = verified.json()["step_up_token"]
    assert verified.json()["amr"] == ["otp"] and verified.json()["expires_at"].endswith("Z")

    approved = _approve(alice, a["action_id"], token)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    assert agent.get(f"/api/actions/{a['action_id']}").json()["status"] == "approved"

    # the same token on another HIGH action, and on the same one again
    _refused_with_step_up(_approve(alice, b["action_id"], token))
    assert _approve(alice, a["action_id"], token).status_code == 409

    # bob: alice's action and challenge are not his to see; his token is not alice's
    assert (
        bob.post("/api/approvals/stepup/trigger", json={"action_id": b["action_id"]}).status_code
        == 404
    )
    other = alice.post("/api/approvals/stepup/trigger", json={"action_id": b["action_id"]}).json()
    assert (
        bob.post(
            "/api/approvals/stepup/verify",
            json={"challenge_id": other["challenge_id"], "code": totp_code(secret, -1)},
        ).status_code
        == 404
    )
    bob_secret = enrol_totp(bob)
    bobs = bob.post("/api/approvals/stepup/trigger", json={}).json()
    bob_token = bob.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": bobs["challenge_id"], "code": totp_code(bob_secret, 1)},
    ).json()["step_up_token"]
    assert _approve(bob, b["action_id"], bob_token).status_code == 404
    _refused_with_step_up(_approve(alice, b["action_id"], bob_token))
    assert agent.get(f"/api/actions/{b['action_id']}").json()["status"] == "pending"

    # the audit trail links the step-up to the approval, and holds no secret, code or token
    trail = [e["type"] for e in alice.get(f"/api/audit/action/{a['action_id']}").json()["entries"]]
    # (the replay of the spent token afterwards is itself recorded as a refused decision)
    assert trail == [
        "action.intercepted",
        "stepup.verified",
        "stepup.redeemed",
        "action.approved",
        "action.decision_rejected",
    ]
    log = admin.get("/api/audit/entries").text
    assert secret not in log and bob_secret not in log and token not in log and bob_token not in log
    assert "stepup.enrolled" in log


def test_totp_lockout_answers_429_with_retry_after(agent, alice) -> None:
    secret = enrol_totp(alice)
    ch = alice.post("/api/approvals/stepup/trigger", json={"purpose": "preauth:ses_1"}).json()
    assert ch["purpose"] == "preauth:ses_1" and ch["action_id"] is None
    wrong = f"{(int(totp_code(secret)) + 500_000) % 10**6:06d}"
    for _ in range(5):
        _refused_with_step_up(
            alice.post(
                "/api/approvals/stepup/verify",
                json={"challenge_id": ch["challenge_id"], "code": wrong},
            )
        )
    locked = alice.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": ch["challenge_id"], "code": totp_code(secret, 1)},
    )
    assert locked.status_code == 429 and locked.headers["content-type"] == PROBLEM
    assert 290 <= int(locked.headers["retry-after"]) <= 300
    assert locked.json()["status"] == 429


def test_step_up_endpoints_refuse_agents_strangers_and_bad_input(agent, alice, bob) -> None:
    for path, body in (
        ("enroll", {"method": "totp"}),
        ("trigger", {}),
        ("verify", {"challenge_id": "stc_x", "code": "123456"}),
    ):
        r = agent.post(f"/api/approvals/stepup/{path}", json=body)
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM, path
    no_factor = alice.post("/api/approvals/stepup/trigger", json={})
    assert no_factor.status_code == 409
    secret = enrol_totp(alice)
    bad = [
        ("enroll", {"method": "sms"}),
        ("enroll", {"method": "totp", "code": "123456"}),
        ("enroll", {"method": "totp", "enrollment_id": "enr_x"}),
        ("enroll", {"method": "webauthn", "enrollment_id": "enr_x", "code": "123456"}),
        ("trigger", {"action_id": "act_x", "purpose": "p"}),
        ("trigger", {"purpose": "has space"}),
        ("trigger", {"extra": 1}),
        ("verify", {"challenge_id": "stc_x"}),
        ("verify", {"challenge_id": "stc_x", "code": "12345"}),
        ("verify", {"challenge_id": "stc_x", "code": "123456", "webauthn": {}}),
        ("verify", {"challenge_id": "bad id", "code": "123456"}),
    ]
    for path, body in bad:
        r = alice.post(f"/api/approvals/stepup/{path}", json=body)
        assert r.status_code == 422 and r.headers["content-type"] == PROBLEM, (path, body, r.text)
        assert r.json()["errors"], (path, body)
    assert (
        alice.post(
            "/api/approvals/stepup/verify",
            content=b"{",
            headers={"Content-Type": "application/json"},
        ).status_code
        == 400
    )
    assert (
        alice.post("/api/approvals/stepup/trigger", json={"action_id": "act_missing"}).status_code
        == 404
    )
    assert (
        alice.post(
            "/api/approvals/stepup/verify", json={"challenge_id": "stc_missing", "code": "123456"}
        ).status_code
        == 404
    )
    ch = alice.post("/api/approvals/stepup/trigger", json={}).json()
    malformed = alice.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": ch["challenge_id"], "webauthn": {"id": 5}},
    )
    assert malformed.status_code == 422
    # bad input changed nothing: the challenge still works
    ok = alice.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": ch["challenge_id"], "code": totp_code(secret, 1)},
    )
    assert ok.status_code == 200, ok.text
    # a second factor needs a step-up first
    again = alice.post("/api/approvals/stepup/enroll", json={"method": "totp"})
    assert again.status_code == 401


# -- WebAuthn -----------------------------------------------------------------------------------


def _finish_passkey(client, enrollment_id: str, credential: dict) -> Any:
    return client.post(
        "/api/approvals/stepup/enroll",
        json={"method": "webauthn", "enrollment_id": enrollment_id, "credential": credential},
    )


def _enrol_passkey(client, authenticator: SoftAuthenticator) -> None:
    started = client.post("/api/approvals/stepup/enroll", json={"method": "webauthn"})
    assert started.status_code == 200, started.text
    body = started.json()
    options = body["options"]
    assert options["rp"]["id"] == RP_ID and options["attestation"] == "none"
    done = _finish_passkey(client, body["enrollment_id"], authenticator.create(options))
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "active" and done.json()["credential_id"] == b64(
        authenticator.credential_id
    )


def _trigger(client, action_id: str) -> dict:
    r = client.post("/api/approvals/stepup/trigger", json={"action_id": action_id})
    assert r.status_code == 200, r.text
    assert r.json()["methods"] == ["webauthn"]
    return r.json()


def _verify(client, challenge_id: str, assertion: dict) -> Any:
    return client.post(
        "/api/approvals/stepup/verify", json={"challenge_id": challenge_id, "webauthn": assertion}
    )


def test_webauthn_step_up_is_bound_single_use_and_counter_checked(agent, alice, bob) -> None:
    authenticator = SoftAuthenticator()
    _enrol_passkey(alice, authenticator)
    a, b = _intercept(agent, DELETE_REPO), _intercept(agent, OTHER_REPO)
    ch_a, ch_b = _trigger(alice, a["action_id"]), _trigger(alice, b["action_id"])
    assert ch_a["webauthn"]["challenge"] != ch_b["webauthn"]["challenge"]
    assert ch_a["webauthn"]["userVerification"] == "preferred"

    for_a = authenticator.get(ch_a["webauthn"])
    _refused_with_step_up(
        _verify(alice, ch_b["challenge_id"], for_a)
    )  # A's assertion cannot serve B
    assert _verify(bob, ch_a["challenge_id"], for_a).status_code == 404  # nor bob

    verified = _verify(alice, ch_a["challenge_id"], for_a)
    assert verified.status_code == 200, verified.text
    assert verified.json()["amr"] == ["hwk", "user", "mfa"]
    token_a = verified.json()["step_up_token"]
    _refused_with_step_up(_verify(alice, ch_a["challenge_id"], for_a))  # replayed assertion

    # a counter that did not increase (stored 1) is a cloned authenticator
    _refused_with_step_up(
        _verify(alice, ch_b["challenge_id"], authenticator.get(ch_b["webauthn"], sign_count=1))
    )
    _refused_with_step_up(
        _verify(alice, ch_b["challenge_id"], authenticator.get(ch_b["webauthn"], sign_count=0))
    )
    for_b = authenticator.get(ch_b["webauthn"], sign_count=7)
    token_b = _verify(alice, ch_b["challenge_id"], for_b).json()["step_up_token"]

    _refused_with_step_up(_approve(alice, b["action_id"], token_a))
    assert _approve(alice, a["action_id"], token_a).json()["status"] == "approved"
    assert _approve(alice, b["action_id"], token_b).json()["status"] == "approved"


def test_webauthn_registration_is_checked(alice) -> None:
    started = alice.post("/api/approvals/stepup/enroll", json={"method": "webauthn"}).json()
    wrong_origin = SoftAuthenticator(origin="https://evil.example").create(started["options"])
    r = _finish_passkey(alice, started["enrollment_id"], wrong_origin)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    no_factor = alice.post("/api/approvals/stepup/trigger", json={})
    assert no_factor.status_code == 409  # nothing was enrolled
    wrong_challenge = SoftAuthenticator().create(
        {**started["options"], "challenge": b64(os.urandom(32))}
    )
    r = _finish_passkey(alice, started["enrollment_id"], wrong_challenge)
    assert r.status_code == 422
    good = SoftAuthenticator()
    ok = _finish_passkey(alice, started["enrollment_id"], good.create(started["options"]))
    assert ok.status_code == 200, ok.text
    assert unb64(ok.json()["credential_id"]) == good.credential_id
    assert alice.post("/api/approvals/stepup/trigger", json={}).json()["methods"] == ["webauthn"]
