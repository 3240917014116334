"""Step-up service: enrol a second factor, challenge it, verify it, redeem the grant.

RFC 9470: approving a ``step_up_required`` action needs a step-up token that is
fresh (``max_age``), bound to the approving user and to the action's id and
``args_digest`` (or, for pre-authorisation, to a named purpose), and used once.
Factors: TOTP (RFC 6238, via pyotp), WebAuthn passkeys (py_webauthn) and, when an
issuer is configured, an OIDC ID token proving recent MFA (:mod:`.oidc_stepup`).

Every state change and its audit event share one unit of work. TOTP secrets live
only in the store: returned once at enrolment, never logged nor audited. Tokens are
stored by digest. TOTP secrets are sealed at rest through the key store
(:meth:`KeyStore.seal_secret`, AES-GCM locally), bound to the document they sit in,
so the database alone never yields one (docs/step-up.md, *Storage*). The WebAuthn ceremonies are in :mod:`.passkeys`, loaded on first use.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from ..domain import stepup as rules
from ..domain.actions import PENDING, Action, rfc3339
from ..domain.audit import event_by
from ..domain.errors import (
    Conflict,
    FieldError,
    NotFound,
    StepUpRequired,
    TooManyRequests,
    Unavailable,
    ValidationFailed,
)
from ..domain.identity import DECIDERS, Principal
from ..domain.stepup import Binding, Failures, Grant, StepUpSettings

PENDING_ENROLMENTS = "stepup_enrolments"
TOTP_FACTORS = "stepup_totp"
PASSKEYS = "stepup_passkeys"
CHALLENGES = "stepup_challenges"
USED_CHALLENGES = "stepup_challenges_used"
USED_TOTP_STEPS = "stepup_totp_used"
FAILURES = "stepup_failures"
GRANTS = "stepup_grants"
USED_GRANTS = "stepup_grants_used"
USED_ID_TOKENS = "stepup_oidc_used"

ENROLLED = "stepup.enrolled"
VERIFIED = "stepup.verified"
FAILED = "stepup.failed"
LOCKED_OUT = "stepup.locked_out"
REDEEMED = "stepup.redeemed"

#: The sealed form of a TOTP secret in a document; ``secret`` is what older builds stored.
SEALED = "secret_sealed"
LEGACY_PLAINTEXT = "secret"

_ID_BYTES = 16
_TOKEN_BYTES = 32


def _new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(_ID_BYTES)


def _passkeys() -> Any:
    from . import passkeys  # py_webauthn (and pyOpenSSL) load on first passkey use only

    return passkeys


def _oidc_stepup() -> Any:
    from . import oidc_stepup  # joserfc loads on first OIDC use only

    return oidc_stepup


class StepUpService:
    """What ``deps.step_up`` is: the HTTP routes and ``actions.decide`` call it."""

    def __init__(
        self,
        store: Any,
        clock: Any,
        settings: StepUpSettings | None = None,
        *,
        fetch_json: Any = None,
        sealer: Any = None,
    ):
        self._store = store
        self._sealer = sealer  # the KeyStore: seal_secret / open_secret
        self._clock = clock
        self.settings = settings or StepUpSettings()
        self._fetch_json = fetch_json  # the OIDC issuer's discovery and JWK Set (an adapter)
        self._id_tokens: Any = None

    @property
    def max_age_s(self) -> int:
        return self.settings.max_age_s

    # -- redeeming a grant (RFC 9470) --------------------------------------------------------

    def require(
        self, principal: Principal, action: Action, token: str | None, *, uow: Any = None
    ) -> None:
        """Consume a step-up token bound to ``principal`` and ``action`` (id and args_digest).

        Pass the caller's ``uow`` when already inside one, so the redemption commits
        (or rolls back) with the approval; otherwise it commits on its own.
        """
        self._redeem(principal, Binding.for_action(action.id, action.args_digest), token, uow)

    def require_purpose(
        self, principal: Principal, purpose: str, token: str | None, *, uow: Any = None
    ) -> None:
        """Consume a step-up token bound to ``principal`` and ``purpose`` (``preauth:<id>``…)."""
        self._redeem(principal, Binding.for_purpose(purpose), token, uow)

    def _redeem(self, principal: Principal, binding: Binding, token: str | None, uow: Any) -> None:
        if not token:
            raise StepUpRequired(
                f"{binding.describe()} needs a fresh step-up: POST "
                "/api/approvals/stepup/trigger, then /verify, and send the "
                "step_up_token",
                max_age=self.max_age_s,
            )
        if uow is not None:
            self._redeem_in(uow, principal, binding, token)
            return
        with self._store.unit_of_work() as own:
            self._redeem_in(own, principal, binding, token)
            own.commit()

    def _redeem_in(self, uow: Any, principal: Principal, binding: Binding, token: str) -> None:
        now = self._clock.now()
        grant_id = rules.token_id(token)
        doc = uow.docs.get(GRANTS, grant_id)
        if doc is None:
            raise StepUpRequired(
                "the step-up token is not one this server issued", max_age=self.max_age_s
            )
        grant = Grant.from_doc(doc)
        grant.check(principal.tenant, principal.user, binding, now, self.max_age_s)
        try:
            uow.docs.create(
                USED_GRANTS,
                grant_id,
                {"at": now.isoformat()},
                owner=rules.owner_key(principal.tenant, principal.user),
            )
        except Conflict:
            raise StepUpRequired(
                "the step-up token was already used; step up again", max_age=self.max_age_s
            ) from None
        self._audit(
            uow,
            principal,
            REDEEMED,
            binding,
            {"challenge_id": grant.challenge_id, "method": grant.method, "amr": list(grant.amr)},
        )

    # -- enrolment ---------------------------------------------------------------------------

    def enroll(self, principal: Principal, body: Mapping[str, Any]) -> dict[str, Any]:
        """One endpoint, four steps: start or finish, TOTP or WebAuthn (see docs/step-up.md)."""
        principal.require(*DECIDERS)
        method, enrollment_id = body["method"], body.get("enrollment_id")
        if enrollment_id is None:
            return self._start(principal, method, body.get("step_up_token"))
        if method == rules.TOTP:
            return self._confirm_totp(principal, enrollment_id, body["code"])
        return self._finish_webauthn(principal, enrollment_id, body["credential"])

    def _start(
        self, principal: Principal, method: str, step_up_token: str | None
    ) -> dict[str, Any]:
        now = self._clock.now()
        owner = rules.owner_key(principal.tenant, principal.user)
        enrollment_id = _new_id("enr_")
        expires_at = now + timedelta(seconds=rules.ENROLLMENT_TTL_S)
        with self._store.unit_of_work() as uow:
            if self._methods(uow, owner):
                # Otherwise a stolen bearer token could enrol the thief's own factor
                # (with OIDC configured, the first enrolment needs an OIDC step-up too).
                if not step_up_token:
                    raise StepUpRequired(
                        "a step-up method is already enrolled: adding another needs a step-up for "
                        f"purpose {rules.ENROLL_PURPOSE!r} (send step_up_token)",
                        max_age=self.max_age_s,
                    )
                self._redeem_in(
                    uow, principal, Binding.for_purpose(rules.ENROLL_PURPOSE), step_up_token
                )
            pending: dict[str, Any] = {
                "method": method,
                "tenant": principal.tenant,
                "user": principal.user,
                "expires_at": expires_at.isoformat(),
            }
            if method == rules.TOTP:
                secret = rules.new_totp_secret()
                pending[SEALED] = self._seal(PENDING_ENROLMENTS, enrollment_id, secret)
                answer = {
                    "secret": secret,
                    "digits": rules.TOTP_DIGITS,
                    "period": rules.TOTP_PERIOD_S,
                    "otpauth_uri": rules.totp(secret).provisioning_uri(name=principal.user),
                }
            else:
                existing = [p["credential_id"] for p in uow.docs.list(PASSKEYS, owner)]
                pending["challenge"], options = _passkeys().registration_options(
                    self.settings, principal.user, rules.user_handle(owner), existing
                )
                answer = {"options": options}
            uow.docs.put(PENDING_ENROLMENTS, enrollment_id, pending, owner=owner)
            uow.commit()
        return {
            "method": method,
            "enrollment_id": enrollment_id,
            "expires_at": rfc3339(expires_at),
            "status": "pending",
            **answer,
        }

    def _pending_enrolment(
        self, uow: Any, principal: Principal, enrollment_id: str, method: str, now: datetime
    ) -> dict[str, Any]:
        doc: dict[str, Any] | None = uow.docs.get(PENDING_ENROLMENTS, enrollment_id)
        if doc is None or (doc["tenant"], doc["user"], doc["method"]) != (
            principal.tenant,
            principal.user,
            method,
        ):
            raise NotFound(f"no pending {method} enrolment {enrollment_id}")
        if now >= datetime.fromisoformat(doc["expires_at"]):
            raise Conflict(f"enrolment {enrollment_id} expired at {doc['expires_at']}; start again")
        return doc

    def _confirm_totp(self, principal: Principal, enrollment_id: str, code: str) -> dict[str, Any]:
        now = self._clock.now()
        owner = rules.owner_key(principal.tenant, principal.user)
        with self._store.unit_of_work() as uow:
            pending = self._pending_enrolment(uow, principal, enrollment_id, rules.TOTP, now)
            secret = self._unseal(PENDING_ENROLMENTS, enrollment_id, pending)
            step = rules.match_totp(secret, code, now)
            if step is None:
                raise ValidationFailed(
                    "the code does not match the new secret (check the device clock)",
                    errors=[FieldError("code", "does not match the enrolled secret")],
                )
            uow.docs.create(
                USED_TOTP_STEPS, f"{owner}:{step}", {"at": now.isoformat()}, owner=owner
            )
            uow.docs.put(
                TOTP_FACTORS,
                owner,
                {
                    SEALED: self._seal(TOTP_FACTORS, owner, secret),
                    "enrollment_id": enrollment_id,
                    "confirmed_at": now.isoformat(),
                },
                owner=owner,
            )
            return self._enrolled(uow, principal, rules.TOTP, enrollment_id)

    def _finish_webauthn(
        self, principal: Principal, enrollment_id: str, credential: Mapping[str, Any]
    ) -> dict[str, Any]:
        now = self._clock.now()
        owner = rules.owner_key(principal.tenant, principal.user)
        with self._store.unit_of_work() as uow:
            pending = self._pending_enrolment(uow, principal, enrollment_id, rules.WEBAUTHN, now)
            verified = _passkeys().verify_registration(
                self.settings, credential, pending["challenge"]
            )
            credential_id = verified.credential_id
            try:
                uow.docs.create(
                    PASSKEYS,
                    credential_id,
                    {
                        "credential_id": credential_id,
                        "tenant": principal.tenant,
                        "user": principal.user,
                        "public_key": verified.public_key,
                        "sign_count": verified.sign_count,
                        "aaguid": verified.aaguid,
                        "created_at": now.isoformat(),
                    },
                    owner=owner,
                )
            except Conflict:
                raise Conflict("this passkey is already registered") from None
            return self._enrolled(
                uow,
                principal,
                rules.WEBAUTHN,
                enrollment_id,
                audited={"credential_id": credential_id, "aaguid": verified.aaguid},
                answered={"credential_id": credential_id},
            )

    def _enrolled(
        self,
        uow: Any,
        principal: Principal,
        method: str,
        enrollment_id: str,
        audited: dict[str, Any] | None = None,
        answered: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The end of an enrolment whose factor ``uow`` has stored: the pending enrolment
        goes, the log records it (with ``audited``), and the answer says it is active."""
        uow.docs.delete(PENDING_ENROLMENTS, enrollment_id)
        done = {"method": method, "enrollment_id": enrollment_id}
        self._audit(uow, principal, ENROLLED, None, {**done, **(audited or {})})
        uow.commit()
        return {**done, "status": "active", **(answered or {})}

    # -- challenge ---------------------------------------------------------------------------

    def trigger(
        self, principal: Principal, action_id: str | None = None, purpose: str | None = None
    ) -> dict[str, Any]:
        """A challenge for the caller's enrolled factors, bound to an action or a purpose."""
        principal.require(*DECIDERS)
        now = self._clock.now()
        owner = rules.owner_key(principal.tenant, principal.user)
        challenge_id = _new_id("stc_")
        expires_at = now + timedelta(seconds=rules.CHALLENGE_TTL_S)
        with self._store.unit_of_work() as uow:
            binding = (
                self._action_binding(uow, principal, action_id, now)
                if action_id is not None
                else Binding.for_purpose(purpose or rules.GENERIC_PURPOSE)
            )
            methods = self._methods(uow, owner)
            if not methods:
                raise Conflict(
                    "no step-up method is enrolled: POST /api/approvals/stepup/enroll first"
                )
            uow.docs.put(
                CHALLENGES,
                challenge_id,
                {
                    "tenant": principal.tenant,
                    "user": principal.user,
                    "binding": binding.as_dict(),
                    "methods": methods,
                    "created_at": now.isoformat(),
                    "expires_at": expires_at.isoformat(),
                },
                owner=owner,
            )
            answer: dict[str, Any] = {
                "challenge_id": challenge_id,
                "methods": methods,
                "expires_at": rfc3339(expires_at),
                "max_age": self.max_age_s,
                **binding.as_dict(),
            }
            if rules.WEBAUTHN in methods:
                answer["webauthn"] = self._assertion_options(uow, owner, challenge_id, binding)
            if rules.OIDC in methods:  # for /authorize?prompt=login&max_age=…&acr_values=…&nonce=…
                answer["oidc"] = {
                    "issuer": self.settings.oidc_issuer,
                    "max_age": self.max_age_s,
                    "nonce": rules.oidc_nonce(challenge_id, binding),
                    "acr_values": _oidc_stepup().MFA_ACR,
                }
            uow.commit()
        return answer

    def _action_binding(
        self, uow: Any, principal: Principal, action_id: str, now: datetime
    ) -> Binding:
        action = uow.actions.get(action_id)
        # the owner, or a named approver of a quorum action (each steps up for their own vote)
        if action is None or not action.visible_to(principal.tenant, principal.user):
            raise NotFound(f"no action {action_id}")
        if action.status != PENDING or action.overdue(now):
            raise Conflict(f"action {action_id} is no longer pending")
        return Binding.for_action(action.id, action.args_digest)

    def _methods(self, uow: Any, owner: str) -> list[str]:
        methods = [rules.TOTP] if uow.docs.get(TOTP_FACTORS, owner) else []
        methods += [rules.WEBAUTHN] if uow.docs.list(PASSKEYS, owner, limit=1) else []
        return methods + ([rules.OIDC] if self.settings.oidc_enabled else [])

    def _assertion_options(
        self, uow: Any, owner: str, challenge_id: str, binding: Binding
    ) -> dict[str, Any]:
        options: dict[str, Any] = _passkeys().assertion_options(  # the lazily loaded module is Any
            self.settings,
            rules.webauthn_challenge(challenge_id, binding),
            [p["credential_id"] for p in uow.docs.list(PASSKEYS, owner)],
        )
        return options

    # -- verification ------------------------------------------------------------------------

    def verify(
        self,
        principal: Principal,
        challenge_id: str,
        *,
        code: str | None = None,
        assertion: Mapping[str, Any] | None = None,
        id_token: str | None = None,
    ) -> dict[str, Any]:
        """Check one factor against the challenge; on success issue a single-use grant."""
        principal.require(*DECIDERS)
        now = self._clock.now()
        owner = rules.owner_key(principal.tenant, principal.user)
        # The issuer's keys are fetched before the unit of work: no network under the store's lock.
        id_proof = self._validate_id_token(principal, id_token) if id_token is not None else None
        with self._store.unit_of_work() as uow:
            challenge = self._open_challenge(uow, principal, challenge_id, now)
            binding = Binding.from_dict(challenge["binding"])
            amr: tuple[str, ...]
            if code is not None:
                method, amr, failure = (
                    rules.TOTP,
                    (rules.AMR_OTP,),
                    self._check_totp(uow, owner, code, now),
                )
            elif id_token is not None:
                method = rules.OIDC
                amr, failure = self._check_id_token(
                    uow, owner, challenge_id, challenge, binding, id_proof, now
                )
            else:
                method = rules.WEBAUTHN
                amr, failure = self._check_assertion(
                    uow, owner, challenge_id, binding, assertion or {}
                )
            if failure is not None:
                self._record_failure(
                    uow, principal, owner, method, challenge_id, binding, failure, now
                )
                uow.commit()
                raise StepUpRequired(f"step-up failed: {failure}", max_age=self.max_age_s)
            uow.docs.create(USED_CHALLENGES, challenge_id, {"at": now.isoformat()}, owner=owner)
            token = rules.TOKEN_PREFIX + secrets.token_urlsafe(_TOKEN_BYTES)
            expires_at = now + timedelta(seconds=self.max_age_s)
            grant = Grant(
                principal.tenant,
                principal.user,
                binding,
                method,
                amr,
                challenge_id,
                now,
                expires_at,
            )
            uow.docs.create(GRANTS, rules.token_id(token), grant.to_doc(), owner=owner)
            self._audit(
                uow,
                principal,
                VERIFIED,
                binding,
                {
                    "method": method,
                    "amr": list(amr),
                    "challenge_id": challenge_id,
                    "expires_at": rfc3339(expires_at),
                },
            )
            uow.commit()
        return {
            "step_up_token": token,
            "token_type": "step_up",
            "expires_at": rfc3339(expires_at),
            "max_age": self.max_age_s,
            "amr": list(amr),
            "challenge_id": challenge_id,
            **binding.as_dict(),
        }

    def _open_challenge(
        self, uow: Any, principal: Principal, challenge_id: str, now: datetime
    ) -> dict[str, Any]:
        challenge: dict[str, Any] | None = uow.docs.get(CHALLENGES, challenge_id)
        if challenge is None or (challenge["tenant"], challenge["user"]) != (
            principal.tenant,
            principal.user,
        ):
            raise NotFound(f"no step-up challenge {challenge_id}")
        if uow.docs.get(USED_CHALLENGES, challenge_id) is not None:
            raise StepUpRequired(
                f"challenge {challenge_id} was already used; trigger a new one",
                max_age=self.max_age_s,
            )
        if now >= datetime.fromisoformat(challenge["expires_at"]):
            raise StepUpRequired(
                f"challenge {challenge_id} expired at {challenge['expires_at']}; trigger a new one",
                max_age=self.max_age_s,
            )
        return challenge

    def _refuse_if_locked(self, uow: Any, owner: str, now: datetime) -> None:
        locked = Failures.from_doc(uow.docs.get(FAILURES, owner)).locked_for(now)
        if locked:
            raise TooManyRequests(
                f"too many failed codes or ID tokens: TOTP and OIDC verification "
                f"is locked for {locked} s",
                retry_after=locked,
            )

    def _check_totp(self, uow: Any, owner: str, code: str, now: datetime) -> str | None:
        """None when ``code`` is good and now spent; otherwise why not (a counted failure)."""
        self._refuse_if_locked(uow, owner, now)
        factor = uow.docs.get(TOTP_FACTORS, owner)
        if factor is None:
            raise Conflict("no confirmed TOTP enrolment; use another method or enrol TOTP")
        if LEGACY_PLAINTEXT in factor:  # stored by an older build: seal it now
            factor = {
                **{k: v for k, v in factor.items() if k != LEGACY_PLAINTEXT},
                SEALED: self._seal(TOTP_FACTORS, owner, factor[LEGACY_PLAINTEXT]),
            }
            uow.docs.put(TOTP_FACTORS, owner, factor, owner=owner)
        step = rules.match_totp(self._unseal(TOTP_FACTORS, owner, factor), code, now)
        if step is None:
            return "the code does not match"
        try:
            uow.docs.create(
                USED_TOTP_STEPS, f"{owner}:{step}", {"at": now.isoformat()}, owner=owner
            )
        except Conflict:
            return "the code was already used"
        uow.docs.delete(FAILURES, owner)
        # the factors list shows when each factor was last used (passkeys keep theirs too)
        uow.docs.put(TOTP_FACTORS, owner, {**factor, "last_used_at": now.isoformat()}, owner=owner)
        return None

    def _validate_id_token(self, principal: Principal, id_token: str) -> Any:
        """The ID token's proof, or the :class:`StepUpRequired` refusing it (counted later)."""
        if not self.settings.oidc_enabled:
            raise Conflict(
                "OIDC step-up is not configured (oidc_issuer, oidc_audience); use another method"
            )
        if self._id_tokens is None:
            if self._fetch_json is None:
                raise Unavailable(
                    "no OIDC fetcher wired: bootstrap passes adapters.oidc_http.fetch_json"
                )
            self._id_tokens = _oidc_stepup().IdTokenVerifier(
                self.settings, self._clock, self._fetch_json
            )
        try:
            return self._id_tokens.validate(id_token, sub=principal.sub)
        except StepUpRequired as exc:
            return exc

    def _check_id_token(
        self,
        uow: Any,
        owner: str,
        challenge_id: str,
        challenge: Mapping[str, Any],
        binding: Binding,
        proof: Any,
        now: datetime,
    ) -> tuple[tuple[str, ...], str | None]:
        """OIDC Core §3.1.3.7 checks done, now the challenge's nonce, and the token spent once."""
        self._refuse_if_locked(uow, owner, now)
        if isinstance(proof, StepUpRequired):
            return (), proof.detail
        try:
            proof.check_challenge(
                rules.oidc_nonce(challenge_id, binding),
                datetime.fromisoformat(challenge["created_at"]),
            )
        except StepUpRequired as exc:
            return (), exc.detail
        try:
            uow.docs.create(USED_ID_TOKENS, proof.replay_id, {"at": now.isoformat()}, owner=owner)
        except Conflict:
            return (), "the ID token was already used"
        uow.docs.delete(FAILURES, owner)
        return proof.amr, None

    def _check_assertion(
        self,
        uow: Any,
        owner: str,
        challenge_id: str,
        binding: Binding,
        assertion: Mapping[str, Any],
    ) -> tuple[tuple[str, ...], str | None]:
        passkeys = _passkeys()
        credential_id, credential = passkeys.parse_assertion(assertion)
        passkey = uow.docs.get(PASSKEYS, credential_id)
        if passkey is None or rules.owner_key(passkey["tenant"], passkey["user"]) != owner:
            return (), "the passkey is not registered to this user"
        try:
            verified = passkeys.verify_assertion(
                self.settings,
                credential,
                rules.webauthn_challenge(challenge_id, binding),
                passkey["public_key"],
            )
            rules.check_sign_count(int(passkey["sign_count"]), verified.sign_count)
        except StepUpRequired as exc:
            return (), exc.detail
        uow.docs.put(
            PASSKEYS,
            passkey["credential_id"],
            {
                **passkey,
                "sign_count": verified.sign_count,
                "last_used_at": self._clock.now().isoformat(),
            },
            owner=owner,
        )
        # py_webauthn already refused an assertion without user presence.
        return rules.amr_for_webauthn(True, verified.user_verified), None

    def _record_failure(
        self,
        uow: Any,
        principal: Principal,
        owner: str,
        method: str,
        challenge_id: str,
        binding: Binding,
        reason: str,
        now: datetime,
    ) -> None:
        data: dict[str, Any] = {"method": method, "challenge_id": challenge_id, "reason": reason}
        if method in (rules.TOTP, rules.OIDC):
            failures = Failures.from_doc(uow.docs.get(FAILURES, owner)).add(now)
            uow.docs.put(FAILURES, owner, failures.to_doc(), owner=owner)
            data["recent_failures"] = len(failures.times) or rules.MAX_FAILURES
            if failures.just_locked:
                self._audit(uow, principal, FAILED, binding, data)
                self._audit(
                    uow,
                    principal,
                    LOCKED_OUT,
                    binding,
                    {
                        "method": method,
                        "locked_until": rfc3339(failures.locked_until),
                        "failures": rules.MAX_FAILURES,
                        "window_s": rules.FAILURE_WINDOW_S,
                    },
                )
                return
        self._audit(uow, principal, FAILED, binding, data)

    def _seal(self, collection: str, doc_id: str, secret: str) -> dict[str, str]:
        if self._sealer is None:
            raise Unavailable("no secret sealer wired: bootstrap passes the key store")
        return dict(self._sealer.seal_secret(secret.encode(), context=f"{collection}/{doc_id}"))

    def _unseal(self, collection: str, doc_id: str, doc: Mapping[str, Any]) -> str:
        if self._sealer is None:
            raise Unavailable("no secret sealer wired: bootstrap passes the key store")
        if SEALED not in doc and LEGACY_PLAINTEXT in doc:  # a pending enrolment of an older build
            return str(doc[LEGACY_PLAINTEXT])
        try:
            return bytes(
                self._sealer.open_secret(doc[SEALED], context=f"{collection}/{doc_id}")
            ).decode()
        except (KeyError, ValueError) as exc:
            # altered at rest, moved from another user's record, or its data key is gone
            raise Unavailable(f"the stored step-up secret does not open: {exc}") from None

    def _audit(
        self,
        uow: Any,
        principal: Principal,
        kind: str,
        binding: Binding | None,
        data: dict[str, Any],
    ) -> None:
        if binding is not None:
            data = {**data, **{k: v for k, v in binding.as_dict().items() if v is not None}}
        action_id = binding.action_id if binding else None
        uow.audit.record(event_by(principal, kind, self._clock.now(), data, action_id=action_id))
