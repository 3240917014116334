"""An OIDC ID token proving recent MFA, as a step-up factor: the issuer's keys and the checks.

- OpenID Connect Core 1.0 §3.1.3.7 (ID token validation: ``iss``, ``aud``, ``azp``,
  ``exp``, ``iat``, ``nonce``, ``auth_time`` against ``max_age``), §2 (``acr``, ``amr``),
  §10.1 (signing keys by ``kid``, rotation); OpenID Connect Discovery 1.0 §4 (the
  issuer's ``/.well-known/openid-configuration`` names its ``jwks_uri``).
- RFC 9470 §4 (``max_age``, ``acr_values``), RFC 8176 (``amr`` values), and the PAPE
  multi-factor policy URI as the ``acr`` Auth0 answers for ``acr_values``.

Signatures and the issuer's keys via :mod:`.jwks` (joserfc; RS256 and ES256 only, ``none``
and HMAC algorithms refused before any key is looked up; the JWK Set cached, fetched again
on an unknown ``kid`` at most once per :data:`~.jwks.MISS_REFETCH_S`). The issuer's
``jwks_uri`` comes from its discovery document unless configured. Transport failures are
:class:`Unavailable` (503, raised by the fetch); every refusal of the token is
:class:`StepUpRequired`, which the step-up service counts and audits. The token text
never appears in an error message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from ..domain.errors import StepUpRequired, Unavailable
from ..domain.stepup import StepUpSettings
from .jwks import JWKS_TTL_S, Fetch, JwksCache, TokenRefused, verify_signature
from .jwks import shown as _shown

#: the acr Auth0 (and other PAPE-aware issuers) puts in a token after multi-factor login
MFA_ACR = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
#: RFC 8176 amr values that show a second factor was used
MFA_AMR = frozenset({"mfa", "otp", "hwk", "swk"})

DISCOVERY_PATH = "/.well-known/openid-configuration"
LEEWAY_S = 60  # clock skew tolerated for iat and auth_time in the future
__all__ = ["JWKS_TTL_S", "IdTokenProof", "IdTokenVerifier", "IssuerKeys", "MFA_ACR"]


def _refuse(detail: str) -> NoReturn:
    raise StepUpRequired(f"the ID token was refused: {detail}")


class IssuerKeys(JwksCache):
    """The issuer's signing keys (:class:`~.jwks.JwksCache`), at the ``jwks_uri`` its
    discovery document names unless one is configured."""

    def __init__(
        self,
        issuer: str,
        clock: Any,
        fetch: Fetch,
        *,
        jwks_uri: str | None = None,
        ttl_s: int = JWKS_TTL_S,
    ):
        super().__init__(jwks_uri, clock, fetch, ttl_s=ttl_s)
        self.issuer = issuer

    def jwks_url(self) -> str:
        if self._url is None:
            self._url = self._discover()
        return self._url

    def _discover(self) -> str:
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        config = self._fetch(url)
        if not isinstance(config, dict) or config.get("issuer") != self.issuer:
            # OIDC Discovery §4.3: the document must name exactly the issuer we asked
            found = config.get("issuer") if isinstance(config, dict) else None
            raise Unavailable(f"{url} names issuer {found!r}, expected {self.issuer!r}")
        if not isinstance(config.get("jwks_uri"), str):
            raise Unavailable(f"{url} has no jwks_uri")
        return str(config["jwks_uri"])


@dataclass(frozen=True)
class IdTokenProof:
    """What a valid ID token shows: who, how (``amr``/``acr``), when, and for which nonce."""

    sub: str
    amr: tuple[str, ...]
    acr: str | None
    auth_time: int
    nonce: str
    replay_id: str  # the key of its single-use marker: from jti, else the token's hash

    def check_challenge(self, nonce: str, issued_at: datetime) -> None:
        """The token answers this challenge: its nonce, and a login after the challenge."""
        if self.nonce != nonce:
            _refuse("its nonce is not this challenge's (was it issued for another action?)")
        if self.auth_time < issued_at.timestamp() - LEEWAY_S:
            _refuse(
                f"the user authenticated at {self.auth_time}, before this challenge was issued "
                f"({int(issued_at.timestamp())}); log in again with prompt=login"
            )


def _number(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _refuse(f"claim {name!r} must be a number (seconds since the epoch), found {_shown(value)}")
    return int(value)


class IdTokenVerifier:
    """OpenID Connect Core §3.1.3.7 for one configured issuer and audience (client id)."""

    def __init__(
        self, settings: StepUpSettings, clock: Any, fetch: Fetch, *, keys: IssuerKeys | None = None
    ):
        if not settings.oidc_enabled:
            raise ValueError("OIDC step-up needs oidc_issuer and oidc_audience")
        self.issuer = str(settings.oidc_issuer)
        self.audience = str(settings.oidc_audience)
        self.max_age_s = settings.max_age_s
        self._clock = clock
        self.keys = keys or IssuerKeys(self.issuer, clock, fetch, jwks_uri=settings.oidc_jwks_uri)

    def validate(self, id_token: str, *, sub: str) -> IdTokenProof:
        """Everything but the challenge binding (see :meth:`IdTokenProof.check_challenge`).

        Raises :class:`StepUpRequired` saying what was expected and found, or
        :class:`Unavailable` when the issuer's keys cannot be fetched.
        """
        try:
            claims = verify_signature(id_token, self.keys)
        except TokenRefused as refused:
            _refuse(refused.detail)
        return self._check_claims(claims, id_token, sub, self._clock.now().timestamp())

    def _check_claims(
        self, claims: Mapping[str, Any], id_token: str, sub: str, now: float
    ) -> IdTokenProof:
        if claims.get("iss") != self.issuer:
            _refuse(f"iss must be {self.issuer!r}, found {_shown(claims.get('iss'))}")
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if self.audience not in audiences:
            _refuse(f"aud must contain {self.audience!r}, found {_shown(aud)}")
        azp = claims.get("azp")
        if (len(audiences) > 1 or azp is not None) and azp != self.audience:
            _refuse(f"azp must be {self.audience!r}, found {_shown(azp)}")
        if now >= (exp := _number(claims, "exp")):
            _refuse(f"it expired at {exp} (now {int(now)})")
        if (iat := _number(claims, "iat")) > now + LEEWAY_S:
            _refuse(f"it was issued in the future: iat {iat}, now {int(now)}")
        if not isinstance(claims.get("nonce"), str):
            _refuse("it has no nonce: pass the challenge's oidc.nonce to /authorize")
        if claims.get("sub") != sub:
            _refuse(f"sub must be the approver's {sub!r}, found {_shown(claims.get('sub'))}")
        if "auth_time" not in claims:
            _refuse("it has no auth_time: send max_age to /authorize")
        auth_time = _number(claims, "auth_time")
        if auth_time > now + LEEWAY_S:
            _refuse(f"auth_time {auth_time} is in the future (now {int(now)})")
        if now - auth_time > self.max_age_s:
            _refuse(
                f"the user authenticated {int(now - auth_time)} s ago, more than max_age {self.max_age_s} s"
            )
        raw_amr = claims.get("amr")
        amr = tuple(v for v in raw_amr if isinstance(v, str)) if isinstance(raw_amr, list) else ()
        acr = claims.get("acr") if isinstance(claims.get("acr"), str) else None
        if not MFA_AMR.intersection(amr) and acr != MFA_ACR:
            _refuse(
                f"it shows no multi-factor login: amr {_shown(list(amr))}, acr {_shown(acr)}; "
                f"expected amr with one of {sorted(MFA_AMR)} or acr {MFA_ACR!r}"
            )
        jti = claims.get("jti")
        replay = (
            f"jti\x00{self.issuer}\x00{jti}"
            if isinstance(jti, str) and jti
            else f"token\x00{id_token}"
        )
        return IdTokenProof(
            sub=sub,
            amr=amr or ("mfa",),
            acr=acr,
            auth_time=auth_time,
            nonce=claims["nonce"],
            replay_id=hashlib.sha256(replay.encode()).hexdigest(),
        )
