"""Step-up rules: what a fresh second factor proves, to whom, for what, and for how long.

Pure functions and frozen values, no I/O; :mod:`vettra.services.stepup` stores them.

- RFC 9470 (OAuth 2.0 Step Up Authentication Challenge): a step-up grant is
  short-lived (``max_age``), names its authentication methods (``amr``, RFC 8176
  values) and is bound to one user and one action (id *and* ``args_digest``) or one
  named purpose (``preauth:<session_id>``). It is redeemed once.
- RFC 6238 (TOTP) §5.2: 6 digits, 30 s steps, one step of clock drift either way;
  a code is accepted at most once per user and time step.
- WebAuthn Level 3 §7.2 step 21: a signature counter that does not increase signals
  a cloned authenticator.
- OpenID Connect Core §3.1.2.1/§3.1.3.7: an OIDC ID token proving recent MFA is a
  third method; its ``nonce`` is derived from the challenge like the WebAuthn challenge.
"""

from __future__ import annotations

import hashlib
import hmac
from base64 import urlsafe_b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp

from .canonical import canonical_json
from .errors import StepUpRequired

TOTP = "totp"
WEBAUTHN = "webauthn"
OIDC = "oidc"  # an ID token from the configured issuer (not enrolled)
METHODS = (TOTP, WEBAUTHN, OIDC)

TOTP_DIGITS = 6
TOTP_PERIOD_S = 30
TOTP_DRIFT_STEPS = 1  # RFC 6238 §6: accept the previous and the next step
TOTP_ISSUER = "Vettra"
TOTP_SECRET_CHARS = 32  # base32: 160 bits
USER_HANDLE_BYTES = 16

MAX_FAILURES = 5  # failed TOTP verifications ...
FAILURE_WINDOW_S = 300  # ... within this window ...
LOCKOUT_S = 300  # ... lock TOTP verification for this long

DEFAULT_MAX_AGE_S = 300  # RFC 9470 max_age of a step-up grant
CHALLENGE_TTL_S = 300
ENROLLMENT_TTL_S = 600
WEBAUTHN_TIMEOUT_MS = 120_000

DEFAULT_RP_ID = "localhost"
DEFAULT_ORIGIN = "http://localhost:8080"
RP_NAME = "Vettra"

# RFC 8176 authentication method reference values
AMR_OTP = "otp"
AMR_HWK = "hwk"  # proof of possession of a hardware-secured key
AMR_USER = "user"  # user presence test
AMR_MFA = "mfa"  # the authenticator verified the user itself (PIN, biometric)

PREAUTH_PREFIX = "preauth:"
ENROLL_PURPOSE = "stepup.enroll"  # adding a factor when one is already enrolled
GENERIC_PURPOSE = "generic"

TOKEN_PREFIX = "vst_"
_WEBAUTHN_CHALLENGE_CONTEXT = b"vettra.stepup.webauthn.v1\x00"
_OIDC_NONCE_CONTEXT = b"vettra.stepup.oidc-nonce.v1\x00"


@dataclass(frozen=True)
class StepUpSettings:
    """Relying-party identity and lifetimes; resolved once by ``bootstrap``."""

    rp_id: str = DEFAULT_RP_ID
    origins: tuple[str, ...] = (DEFAULT_ORIGIN,)
    max_age_s: int = DEFAULT_MAX_AGE_S
    rp_name: str = RP_NAME
    oidc_issuer: str | None = None  # OIDC step-up is on when issuer and audience are set
    oidc_audience: str | None = None  # the SPA's client id
    oidc_jwks_uri: str | None = None  # default: discovered from the issuer

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_audience)

    @classmethod
    def from_sources(
        cls, extra: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> StepUpSettings:
        """``Config.extra`` wins over the environment (``VETTRA_RP_ID``, ``VETTRA_ORIGIN``
        — comma-separated for several — ``VETTRA_STEP_UP_MAX_AGE_S`` and ``VETTRA_OIDC_ISSUER``,
        ``VETTRA_OIDC_AUDIENCE``, ``VETTRA_OIDC_JWKS_URI``), then defaults."""
        extra, env = dict(extra or {}), dict(env or {})
        rp_id = str(extra.get("rp_id") or env.get("VETTRA_RP_ID") or DEFAULT_RP_ID)
        raw_origin = extra.get("origin") or env.get("VETTRA_ORIGIN") or DEFAULT_ORIGIN
        origins = tuple(
            o.strip()
            for o in (
                raw_origin if isinstance(raw_origin, (list, tuple)) else str(raw_origin).split(",")
            )
            if o.strip()
        )
        max_age = int(
            extra.get("step_up_max_age_s")
            or env.get("VETTRA_STEP_UP_MAX_AGE_S")
            or DEFAULT_MAX_AGE_S
        )
        if max_age <= 0:
            raise ValueError(
                f"step-up max_age must be a positive number of seconds, found {max_age}"
            )
        oidc = {
            key: str(extra.get(key) or env.get(f"VETTRA_{key.upper()}") or "") or None
            for key in ("oidc_issuer", "oidc_audience", "oidc_jwks_uri")
        }
        if bool(oidc["oidc_issuer"]) != bool(oidc["oidc_audience"]):
            raise ValueError(
                "OIDC step-up needs both oidc_issuer and oidc_audience, found only "
                + ("oidc_issuer" if oidc["oidc_issuer"] else "oidc_audience")
            )
        return cls(
            rp_id=rp_id,
            origins=origins or (DEFAULT_ORIGIN,),
            max_age_s=max_age,
            oidc_issuer=oidc["oidc_issuer"],
            oidc_audience=oidc["oidc_audience"],
            oidc_jwks_uri=oidc["oidc_jwks_uri"],
        )


@dataclass(frozen=True)
class Binding:
    """What a challenge and its grant are for: one action as approved, or one purpose."""

    action_id: str | None = None
    args_digest: str | None = None
    purpose: str | None = None

    @classmethod
    def for_action(cls, action_id: str, args_digest: str) -> Binding:
        return cls(action_id=action_id, args_digest=args_digest)

    @classmethod
    def for_purpose(cls, purpose: str) -> Binding:
        return cls(purpose=purpose)

    def as_dict(self) -> dict[str, Any]:
        return {
            "action_id": self.action_id,
            "args_digest": self.args_digest,
            "purpose": self.purpose,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Binding:
        return cls(d.get("action_id"), d.get("args_digest"), d.get("purpose"))

    def describe(self) -> str:
        return f"action {self.action_id}" if self.action_id else f"purpose {self.purpose!r}"


def owner_key(tenant: str, user: str) -> str:
    """The document owner for a user's step-up state."""
    return f"{tenant}:{user}"


def webauthn_challenge(challenge_id: str, binding: Binding) -> bytes:
    """The WebAuthn challenge bytes for a step-up challenge.

    Derived (SHA-256 over RFC 8785 JSON, domain-separated) from the random
    ``challenge_id`` and the binding, so the authenticator signs over the action id
    and its ``args_digest``: an assertion for one action cannot approve another.
    """
    material = canonical_json({"challenge_id": challenge_id, **binding.as_dict()})
    return hashlib.sha256(_WEBAUTHN_CHALLENGE_CONTEXT + material).digest()


def oidc_nonce(challenge_id: str, binding: Binding) -> str:
    """The OIDC ``nonce`` for a step-up challenge (OpenID Connect Core §3.1.2.1, §15.5.2).

    Derived exactly as :func:`webauthn_challenge` (another context), base64url: the
    ID token carries it back, so a token issued for one action cannot approve another.
    """
    material = canonical_json({"challenge_id": challenge_id, **binding.as_dict()})
    return (
        urlsafe_b64encode(hashlib.sha256(_OIDC_NONCE_CONTEXT + material).digest())
        .rstrip(b"=")
        .decode()
    )


def user_handle(owner: str) -> bytes:
    """A stable, opaque WebAuthn user handle: never the user's name (WebAuthn §14.6.1)."""
    return hashlib.sha256(b"vettra.stepup.user-handle.v1\x00" + owner.encode()).digest()[
        :USER_HANDLE_BYTES
    ]


def token_id(token: str) -> str:
    """Tokens are stored by digest only: a store dump yields no usable token."""
    return hashlib.sha256(token.encode()).hexdigest()


# -- TOTP (RFC 6238) -----------------------------------------------------------------------------


def totp(secret: str) -> pyotp.TOTP:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD_S, issuer=TOTP_ISSUER)


def new_totp_secret() -> str:
    """160 random bits, base32 (RFC 4226 §4 recommends at least 160)."""
    return pyotp.random_base32(length=TOTP_SECRET_CHARS)


def match_totp(secret: str, code: str, now: datetime) -> int | None:
    """The time step whose code equals ``code`` (within ±:data:`TOTP_DRIFT_STEPS`), or None.

    Every candidate is compared in constant time and all are compared, so the timing
    says nothing about which step (if any) matched.
    """
    generator = totp(secret)
    current = generator.timecode(now)
    given = code.encode()
    matched: int | None = None
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if hmac.compare_digest(generator.generate_otp(step).encode(), given) and matched is None:
            matched = step
    return matched


@dataclass(frozen=True)
class Failures:
    """Recent failed TOTP verifications of one user, and the lockout they caused."""

    times: tuple[datetime, ...] = ()
    locked_until: datetime | None = None

    def locked_for(self, now: datetime) -> int:
        """Seconds of lockout left (0 when not locked)."""
        if self.locked_until is None or now >= self.locked_until:
            return 0
        return max(1, int((self.locked_until - now).total_seconds() + 0.999))

    def add(self, now: datetime) -> Failures:
        """Record one failure; the :data:`MAX_FAILURES`-th within the window locks."""
        window_start = now - timedelta(seconds=FAILURE_WINDOW_S)
        recent = tuple(t for t in self.times if t > window_start) + (now,)
        if len(recent) >= MAX_FAILURES:
            return Failures((), now + timedelta(seconds=LOCKOUT_S))
        return Failures(recent, None)

    @property
    def just_locked(self) -> bool:
        return self.locked_until is not None and not self.times

    def to_doc(self) -> dict[str, Any]:
        return {
            "times": [t.isoformat() for t in self.times],
            "locked_until": self.locked_until.isoformat() if self.locked_until else None,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> Failures:
        if not doc:
            return cls()
        until = doc.get("locked_until")
        return cls(
            tuple(datetime.fromisoformat(t) for t in doc.get("times", [])),
            datetime.fromisoformat(until) if until else None,
        )


# -- WebAuthn ------------------------------------------------------------------------------------


def check_sign_count(stored: int, received: int) -> None:
    """WebAuthn §7.2 step 21: when either counter is non-zero the new one must be greater."""
    if (stored or received) and received <= stored:
        raise StepUpRequired(
            f"authenticator signature counter did not increase: stored {stored}, "
            f"received {received}; the authenticator may be cloned"
        )


# -- grants (RFC 9470) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Grant:
    """A verified step-up, redeemable once, until ``expires_at``, for its binding only."""

    tenant: str
    user: str
    binding: Binding
    method: str
    amr: tuple[str, ...]
    challenge_id: str
    issued_at: datetime
    expires_at: datetime

    def check(
        self, tenant: str, user: str, binding: Binding, now: datetime, max_age_s: int
    ) -> None:
        """Raise :class:`StepUpRequired` unless this grant is for ``user`` and ``binding`` now."""

        def refuse(detail: str) -> None:
            raise StepUpRequired(detail, max_age=max_age_s)

        if (self.tenant, self.user) != (tenant, user):
            refuse("the step-up token was issued to another user")
        if now >= self.expires_at:
            refuse(
                f"the step-up token expired at {self.expires_at.isoformat()}; "
                f"step up again (max_age {max_age_s} s)"
            )
        if binding.action_id is not None:
            if self.binding.action_id != binding.action_id:
                refuse(
                    f"the step-up token is bound to {self.binding.describe()}, "
                    f"not to action {binding.action_id}"
                )
            if self.binding.args_digest != binding.args_digest:
                refuse(
                    f"the step-up token is bound to arguments {self.binding.args_digest}, "
                    f"the action has {binding.args_digest}"
                )
        elif self.binding.action_id is not None or self.binding.purpose != binding.purpose:
            refuse(
                f"the step-up token is bound to {self.binding.describe()}, "
                f"not to purpose {binding.purpose!r}"
            )

    def to_doc(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "user": self.user,
            "binding": self.binding.as_dict(),
            "method": self.method,
            "amr": list(self.amr),
            "challenge_id": self.challenge_id,
            "issued_at": self.issued_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }

    @classmethod
    def from_doc(cls, d: Mapping[str, Any]) -> Grant:
        return cls(
            d["tenant"],
            d["user"],
            Binding.from_dict(d["binding"]),
            d["method"],
            tuple(d["amr"]),
            d["challenge_id"],
            datetime.fromisoformat(d["issued_at"]),
            datetime.fromisoformat(d["expires_at"]),
        )


def amr_for_webauthn(user_present: bool, user_verified: bool) -> tuple[str, ...]:
    amr = [AMR_HWK]
    if user_present:
        amr.append(AMR_USER)
    if user_verified:
        amr.append(AMR_MFA)
    return tuple(amr)
