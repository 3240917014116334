"""Step-up (RFC 9470 / RFC 6238): the pure rules and the service on the embedded store.

Time is a FakeClock; TOTP codes are computed here with pyotp from the enrolled
secret, as an authenticator app would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyotp
import pytest

from vettra.adapters.clock import FakeClock
from vettra.bootstrap import Config, bootstrap
from vettra.domain import stepup as rules
from vettra.domain.actions import rfc3339
from vettra.domain.errors import (
    Conflict,
    Forbidden,
    NotFound,
    StepUpRequired,
    TooManyRequests,
    ValidationFailed,
)
from vettra.domain.identity import Principal
from vettra.domain.stepup import Binding, Failures, StepUpSettings
from vettra.services import actions
from vettra.services.stepup import StepUpService

ALICE = Principal("alice", "approver", "alice")
BOB = Principal("bob", "approver", "bob")
AGENT = Principal("agent-1", "agent", "alice")
DELETE_REPO = {"tool": "github.delete_repo", "arguments": {"repo": "acme/api"}}
DELETE_OTHER = {"tool": "github.delete_repo", "arguments": {"repo": "acme/web"}}
STEP = rules.TOTP_PERIOD_S


class Env:
    def __init__(self, home: Path, max_age_s: int | None = None):
        self.clock = FakeClock(datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC))
        extra = {"step_up_max_age_s": max_age_s} if max_age_s else {}
        self.runtime = bootstrap(Config(home=home, extra=extra), clock=self.clock)
        self.deps = self.runtime.deps
        self.svc: StepUpService = self.deps.step_up

    def code(self, secret: str, steps: int = 0) -> str:
        return pyotp.TOTP(secret).at(self.clock.now() + timedelta(seconds=steps * STEP))

    def enrol_totp(self, who: Principal = ALICE, **kw: Any) -> str:
        started = self.svc.enroll(who, {"method": "totp", **kw})
        secret = started["secret"]
        self.svc.enroll(
            who,
            {
                "method": "totp",
                "enrollment_id": started["enrollment_id"],
                "code": self.code(secret),
            },
        )
        self.clock.advance(2 * STEP)  # past the confirming code's step, even with drift
        return secret

    def high_action(self, bundle: dict = DELETE_REPO) -> Any:
        return actions.intercept(self.deps, AGENT, bundle).action

    def token_for(self, secret: str, who: Principal = ALICE, **trigger: Any) -> str:
        challenge = self.svc.trigger(who, **trigger)
        return self.svc.verify(who, challenge["challenge_id"], code=self.code(secret))[
            "step_up_token"
        ]

    def audit(self) -> list[dict[str, Any]]:
        return [e.as_dict() for e in self.deps.store.audit_log.entries("default")]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path / "home")
    yield e
    e.runtime.close()


# -- pure rules ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "stored, received, ok",
    [
        (0, 0, True),
        (0, 1, True),
        (5, 6, True),
        (5, 5, False),
        (5, 3, False),
        (5, 0, False),
        (0, 7, True),
    ],
)
def test_sign_count_rule_webauthn_7_2_step_21(stored: int, received: int, ok: bool) -> None:
    if ok:
        rules.check_sign_count(stored, received)
    else:
        with pytest.raises(StepUpRequired, match=f"stored {stored}, received {received}"):
            rules.check_sign_count(stored, received)


def test_webauthn_challenge_binds_action_and_arguments() -> None:
    a = Binding.for_action("act_a", "sha256:" + "a" * 64)
    seen = {
        rules.webauthn_challenge("stc_1", a),
        rules.webauthn_challenge("stc_2", a),
        rules.webauthn_challenge("stc_1", Binding.for_action("act_b", a.args_digest)),
        rules.webauthn_challenge("stc_1", Binding.for_action("act_a", "sha256:" + "b" * 64)),
        rules.webauthn_challenge("stc_1", Binding.for_purpose("act_a")),
    }
    assert len(seen) == 5 and all(len(c) == 32 for c in seen)
    assert rules.webauthn_challenge("stc_1", a) == rules.webauthn_challenge("stc_1", a)


def test_match_totp_accepts_one_step_either_side_only() -> None:
    secret = pyotp.random_base32()
    now = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
    step = pyotp.TOTP(secret).timecode(now)
    for offset in (-1, 0, 1):
        code = pyotp.TOTP(secret).at(now + timedelta(seconds=offset * STEP))
        assert rules.match_totp(secret, code, now) == step + offset
    for offset in (-2, 2):
        code = pyotp.TOTP(secret).at(now + timedelta(seconds=offset * STEP))
        if all(
            code != pyotp.TOTP(secret).at(now + timedelta(seconds=o * STEP)) for o in (-1, 0, 1)
        ):
            assert rules.match_totp(secret, code, now) is None


def test_failures_lock_on_the_fifth_within_the_window_and_forget_old_ones() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)
    f = Failures()
    for i in range(rules.MAX_FAILURES - 1):
        f = f.add(now + timedelta(seconds=i))
        assert f.locked_for(now) == 0
    assert (
        f.add(now + timedelta(seconds=rules.FAILURE_WINDOW_S + 10)).locked_for(now) == 0
    )  # old ones aged out
    locked = f.add(now + timedelta(seconds=10))
    assert locked.just_locked and locked.locked_for(now + timedelta(seconds=10)) == rules.LOCKOUT_S
    assert locked.locked_for(now + timedelta(seconds=10 + rules.LOCKOUT_S)) == 0
    assert Failures.from_doc(json.loads(json.dumps(locked.to_doc()))) == locked


def test_settings_from_extra_then_env_then_defaults() -> None:
    assert StepUpSettings.from_sources() == StepUpSettings()
    env = {
        "VETTRA_RP_ID": "vettra.example",
        "VETTRA_ORIGIN": "https://vettra.example, https://b.example",
    }
    s = StepUpSettings.from_sources({}, env)
    assert (s.rp_id, s.origins) == (
        "vettra.example",
        ("https://vettra.example", "https://b.example"),
    )
    s = StepUpSettings.from_sources(
        {"rp_id": "x.example", "origin": "https://x.example", "step_up_max_age_s": 60}, env
    )
    assert (s.rp_id, s.origins, s.max_age_s) == ("x.example", ("https://x.example",), 60)


# -- TOTP enrolment and verification ------------------------------------------------------------


def test_totp_enrolment_is_active_only_after_a_valid_first_code(env: Env) -> None:
    started = env.svc.enroll(ALICE, {"method": "totp"})
    assert started["otpauth_uri"].startswith("otpauth://totp/") and started["status"] == "pending"
    assert pyotp.parse_uri(started["otpauth_uri"]).secret == started["secret"]
    env.high_action()
    with pytest.raises(Conflict, match="no step-up method"):
        env.svc.trigger(ALICE, purpose="generic")
    wrong = f"{(int(env.code(started['secret'])) + 1) % 10**6:06d}"
    with pytest.raises(ValidationFailed):
        env.svc.enroll(
            ALICE, {"method": "totp", "enrollment_id": started["enrollment_id"], "code": wrong}
        )
    with pytest.raises(NotFound):  # someone else's enrolment
        env.svc.enroll(
            BOB,
            {
                "method": "totp",
                "enrollment_id": started["enrollment_id"],
                "code": env.code(started["secret"]),
            },
        )
    done = env.svc.enroll(
        ALICE,
        {
            "method": "totp",
            "enrollment_id": started["enrollment_id"],
            "code": env.code(started["secret"]),
        },
    )
    assert done["status"] == "active" and "secret" not in done
    assert env.svc.trigger(ALICE)["methods"] == ["totp"]
    kinds = [e["type"] for e in env.audit()]
    assert "stepup.enrolled" in kinds
    assert started["secret"] not in json.dumps(env.audit())


def test_expired_enrolment_cannot_be_confirmed(env: Env) -> None:
    started = env.svc.enroll(ALICE, {"method": "totp"})
    env.clock.advance(rules.ENROLLMENT_TTL_S)
    with pytest.raises(Conflict, match="expired"):
        env.svc.enroll(
            ALICE,
            {
                "method": "totp",
                "enrollment_id": started["enrollment_id"],
                "code": env.code(started["secret"]),
            },
        )


def test_verify_issues_a_token_bound_to_the_action(env: Env) -> None:
    secret = env.enrol_totp()
    action = env.high_action()
    challenge = env.svc.trigger(ALICE, action_id=action.id)
    assert (challenge["action_id"], challenge["args_digest"]) == (action.id, action.args_digest)
    code = env.code(secret)
    out = env.svc.verify(ALICE, challenge["challenge_id"], code=code)
    assert out["amr"] == ["otp"] and out["step_up_token"].startswith("vst_")
    assert (
        out["expires_at"] == rfc3339(env.clock.now() + timedelta(seconds=300))
        and out["max_age"] == 300
    )
    log = json.dumps(env.audit())
    assert out["step_up_token"] not in log and secret not in log and f'"{code}"' not in log
    verified = [e for e in env.audit() if e["type"] == "stepup.verified"]
    assert verified[-1]["action_id"] == action.id and verified[-1]["data"]["amr"] == ["otp"]
    env.svc.require(ALICE, action, out["step_up_token"])


@pytest.mark.parametrize("steps", [-1, 1])
def test_one_step_of_clock_drift_is_accepted(env: Env, steps: int) -> None:
    secret = env.enrol_totp()
    challenge = env.svc.trigger(ALICE)
    assert env.svc.verify(ALICE, challenge["challenge_id"], code=env.code(secret, steps))[
        "amr"
    ] == ["otp"]


def test_two_steps_of_drift_are_refused(env: Env) -> None:
    secret = env.enrol_totp()
    challenge = env.svc.trigger(ALICE)
    far = env.code(secret, 2)
    if far in {env.code(secret, s) for s in (-1, 0, 1)}:
        pytest.skip("the code two steps ahead happens to equal a nearby one")
    with pytest.raises(StepUpRequired, match="does not match"):
        env.svc.verify(ALICE, challenge["challenge_id"], code=far)


def test_a_code_is_single_use_per_time_step(env: Env) -> None:
    secret = env.enrol_totp()
    first, second = env.svc.trigger(ALICE), env.svc.trigger(ALICE)
    code = env.code(secret)
    env.svc.verify(ALICE, first["challenge_id"], code=code)
    with pytest.raises(StepUpRequired, match="already used"):
        env.svc.verify(ALICE, second["challenge_id"], code=code)
    failed = [e for e in env.audit() if e["type"] == "stepup.failed"]
    assert failed and failed[-1]["data"]["reason"] == "the code was already used"
    assert code not in json.dumps(failed)
    env.clock.advance(STEP)
    env.svc.verify(ALICE, second["challenge_id"], code=env.code(secret))


def test_a_challenge_is_single_use_and_expires(env: Env) -> None:
    secret = env.enrol_totp()
    challenge = env.svc.trigger(ALICE)
    env.svc.verify(ALICE, challenge["challenge_id"], code=env.code(secret))
    with pytest.raises(StepUpRequired, match="already used"):
        env.svc.verify(ALICE, challenge["challenge_id"], code=env.code(secret, 1))
    late = env.svc.trigger(ALICE)
    env.clock.advance(rules.CHALLENGE_TTL_S)
    with pytest.raises(StepUpRequired, match="expired"):
        env.svc.verify(ALICE, late["challenge_id"], code=env.code(secret))


def test_lockout_after_five_failures_and_its_expiry(env: Env) -> None:
    secret = env.enrol_totp()
    challenge = env.svc.trigger(ALICE, purpose="generic")
    good = env.code(secret)
    wrong = f"{(int(good) + 500_000) % 10**6:06d}"
    for _ in range(rules.MAX_FAILURES):
        with pytest.raises(StepUpRequired):
            env.svc.verify(ALICE, challenge["challenge_id"], code=wrong)
    with pytest.raises(TooManyRequests) as locked:
        env.svc.verify(ALICE, challenge["challenge_id"], code=good)  # even the right code
    assert locked.value.status == 429 and locked.value.headers["Retry-After"] == str(
        rules.LOCKOUT_S
    )
    types = [e["type"] for e in env.audit()]
    assert (
        types.count("stepup.failed") == rules.MAX_FAILURES and types.count("stepup.locked_out") == 1
    )
    env.clock.advance(rules.LOCKOUT_S - 1)
    with pytest.raises(TooManyRequests) as still:
        env.svc.verify(ALICE, challenge["challenge_id"], code=env.code(secret))
    assert still.value.headers["Retry-After"] == "1"
    env.clock.advance(1)
    fresh = env.svc.trigger(ALICE)
    assert env.svc.verify(ALICE, fresh["challenge_id"], code=env.code(secret))["amr"] == ["otp"]


def test_lockout_is_per_user(env: Env) -> None:
    alice_secret, bob_secret = env.enrol_totp(ALICE), env.enrol_totp(BOB)
    challenge = env.svc.trigger(ALICE)
    wrong = f"{(int(env.code(alice_secret)) + 1) % 10**6:06d}"
    for _ in range(rules.MAX_FAILURES):
        with pytest.raises(StepUpRequired):
            env.svc.verify(ALICE, challenge["challenge_id"], code=wrong)
    bobs = env.svc.trigger(BOB)
    assert env.svc.verify(BOB, bobs["challenge_id"], code=env.code(bob_secret))["amr"] == ["otp"]


# -- redeeming the grant -------------------------------------------------------------------------


def test_token_is_single_use(env: Env) -> None:
    secret = env.enrol_totp()
    action = env.high_action()
    token = env.token_for(secret, action_id=action.id)
    env.svc.require(ALICE, action, token)
    with pytest.raises(StepUpRequired, match="already used") as again:
        env.svc.require(ALICE, action, token)
    assert "max_age=300" in again.value.headers["WWW-Authenticate"]
    assert 'error="insufficient_user_authentication"' in again.value.headers["WWW-Authenticate"]


def test_token_for_one_action_does_not_approve_another(env: Env) -> None:
    secret = env.enrol_totp()
    a, b = env.high_action(), env.high_action(DELETE_OTHER)
    token = env.token_for(secret, action_id=a.id)
    with pytest.raises(StepUpRequired, match=f"not to action {b.id}"):
        env.svc.require(ALICE, b, token)
    with pytest.raises(StepUpRequired, match="arguments"):
        env.svc.require(ALICE, replace(a, args_digest="sha256:" + "0" * 64), token)
    env.svc.require(ALICE, a, token)  # refusals did not spend it


def test_token_expires_after_max_age(tmp_path: Path) -> None:
    env = Env(tmp_path / "home", max_age_s=60)
    try:
        secret = env.enrol_totp()
        action = env.high_action()
        token = env.token_for(secret, action_id=action.id)
        env.clock.advance(60)
        with pytest.raises(StepUpRequired, match="expired") as late:
            env.svc.require(ALICE, action, token)
        assert "max_age=60" in late.value.headers["WWW-Authenticate"]
    finally:
        env.runtime.close()


def test_token_of_another_user_is_refused(env: Env) -> None:
    env.enrol_totp(ALICE)
    bob_secret = env.enrol_totp(BOB)
    action = env.high_action()
    with pytest.raises(NotFound):
        env.svc.trigger(BOB, action_id=action.id)
    bobs = env.token_for(bob_secret, BOB, purpose="generic")
    with pytest.raises(StepUpRequired, match="another user"):
        env.svc.require(ALICE, action, bobs)


def test_missing_or_unknown_token(env: Env) -> None:
    action = env.high_action()
    for token in (None, "", "vst_not-issued"):
        with pytest.raises(StepUpRequired) as refused:
            env.svc.require(ALICE, action, token)
        assert refused.value.status == 401


def test_purpose_tokens(env: Env) -> None:
    secret = env.enrol_totp()
    action = env.high_action()
    token = env.token_for(secret, purpose="preauth:ses_1")
    with pytest.raises(StepUpRequired, match="purpose"):
        env.svc.require(ALICE, action, token)
    with pytest.raises(StepUpRequired, match="purpose"):
        env.svc.require_purpose(ALICE, "preauth:ses_2", token)
    env.svc.require_purpose(ALICE, "preauth:ses_1", token)
    with pytest.raises(StepUpRequired, match="already used"):
        env.svc.require_purpose(ALICE, "preauth:ses_1", token)
    env.clock.advance(STEP)
    action_token = env.token_for(secret, action_id=action.id)
    with pytest.raises(StepUpRequired, match=f"bound to action {action.id}"):
        env.svc.require_purpose(ALICE, f"preauth:{action.id}", action_token)


def test_redeeming_inside_the_callers_unit_of_work_rolls_back_with_it(env: Env) -> None:
    secret = env.enrol_totp()
    action = env.high_action()
    token = env.token_for(secret, action_id=action.id)
    with env.deps.store.unit_of_work() as uow:
        env.svc.require(ALICE, action, token, uow=uow)  # the caller then fails: no commit
    env.svc.require(ALICE, action, token)  # so the token is still unspent


def test_decide_approves_with_the_token_and_spends_it(env: Env) -> None:
    secret = env.enrol_totp()
    action = env.high_action()
    token = env.token_for(secret, action_id=action.id)
    assert (
        actions.decide(env.deps, ALICE, action.id, "approve", step_up_token=token)["status"]
        == "approved"
    )
    types = [e["type"] for e in env.audit() if e["action_id"] == action.id]
    assert types[-2:] == ["stepup.redeemed", "action.approved"]


# -- access and re-enrolment ---------------------------------------------------------------------


def test_agents_and_strangers_are_refused(env: Env) -> None:
    secret = env.enrol_totp()
    with pytest.raises(Forbidden):
        env.svc.enroll(AGENT, {"method": "totp"})
    with pytest.raises(Forbidden):
        env.svc.trigger(AGENT)
    challenge = env.svc.trigger(ALICE)
    with pytest.raises(Forbidden):
        env.svc.verify(AGENT, challenge["challenge_id"], code=env.code(secret))
    with pytest.raises(NotFound):
        env.svc.verify(BOB, challenge["challenge_id"], code=env.code(secret))
    with pytest.raises(NotFound):
        env.svc.trigger(ALICE, action_id="act_missing")


def test_trigger_for_a_decided_action_is_a_conflict(env: Env) -> None:
    env.enrol_totp()
    action = env.high_action()
    actions.decide(env.deps, ALICE, action.id, "deny")
    with pytest.raises(Conflict, match="no longer pending"):
        env.svc.trigger(ALICE, action_id=action.id)


def test_adding_a_factor_when_one_exists_needs_a_step_up(env: Env) -> None:
    secret = env.enrol_totp()
    with pytest.raises(StepUpRequired, match="already enrolled"):
        env.svc.enroll(ALICE, {"method": "totp"})
    with pytest.raises(StepUpRequired, match="purpose"):
        env.svc.enroll(ALICE, {"method": "webauthn", "step_up_token": env.token_for(secret)})
    env.clock.advance(STEP)
    token = env.token_for(secret, purpose=rules.ENROLL_PURPOSE)
    started = env.svc.enroll(ALICE, {"method": "webauthn", "step_up_token": token})
    assert started["options"]["rp"]["id"] == "localhost" and started["options"]["challenge"]
    assert started["options"]["authenticatorSelection"]["userVerification"] == "preferred"
