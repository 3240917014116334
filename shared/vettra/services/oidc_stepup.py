"""An OIDC ID token proving recent MFA, as a step-up factor: the issuer's keys and the checks.

- OpenID Connect Core 1.0 §3.1.3.7 (ID token validation: ``iss``, ``aud``, ``azp``,
  ``exp``, ``iat``, ``nonce``, ``auth_time`` against ``max_age``), §2 (``acr``, ``amr``),
  §10.1 (signing keys by ``kid``, rotation); OpenID Connect Discovery 1.0 §4 (the
  issuer's ``/.well-known/openid-configuration`` names its ``jwks_uri``).
- RFC 9470 §4 (``max_age``, ``acr_values``), RFC 8176 (``amr`` values), and the PAPE
  multi-factor policy URI as the ``acr`` Auth0 answers for ``acr_values``.

Signatures via joserfc, RS256 and ES256 only (``none`` and HMAC algorithms are refused
before any key is looked up, so a public key can never serve as an HMAC secret). The
JWK Set is fetched through one injected function (``fetch``: in production
:func:`vettra.adapters.oidc_http.fetch_json`, httpx), cached for :data:`JWKS_TTL_S` and
fetched again once when a token names an unknown ``kid``. Transport failures are
:class:`Unavailable` (503, raised by the fetch); every refusal of the token is
:class:`StepUpRequired`, which the step-up service counts and audits. The token text
never appears in an error message.
"""

from __future__ import annotations

import hashlib
import json
import threading
from base64 import urlsafe_b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from ..domain.errors import StepUpRequired, Unavailable
from ..domain.stepup import StepUpSettings

#: JWS algorithm → the JWK key type (and curve) it needs (RFC 7518 §3.1)
ALLOWED_ALGS: Mapping[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
}
#: the acr Auth0 (and other PAPE-aware issuers) puts in a token after multi-factor login
MFA_ACR = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
#: RFC 8176 amr values that show a second factor was used
MFA_AMR = frozenset({"mfa", "otp", "hwk", "swk"})

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_TTL_S = 600  # keys are re-fetched after this, and once on an unknown kid
LEEWAY_S = 60  # clock skew tolerated for iat and auth_time in the future

#: GET a URL as JSON, raising :class:`Unavailable` when the issuer cannot be reached
Fetch = Callable[[str], Any]


_MAX_SHOWN = 80  # claim values in messages (and so in audit) are cut to this


def _refuse(detail: str) -> NoReturn:
    raise StepUpRequired(f"the ID token was refused: {detail}")


def _shown(value: Any) -> str:
    """A claim's value for a message: its repr, cut short (claims come from the caller)."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


@dataclass(frozen=True)
class _SigningKey:
    kid: str | None
    kty: str
    crv: str | None
    alg: str | None
    key: Any

    def fits(self, kid: str | None, alg: str) -> bool:
        kty, crv = ALLOWED_ALGS[alg]
        return (
            (kid is None or self.kid == kid)
            and (self.kty, self.crv) == (kty, crv)
            and self.alg in (None, alg)
        )


def _signing_keys(jwks: Any, source: str) -> list[_SigningKey]:
    """The RS256/ES256 signature keys of a JWK Set (RFC 7517 §5); others are skipped."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise Unavailable(f"{source} is not a JWK Set: expected an object with a 'keys' array")
    keys = []
    for jwk in jwks["keys"]:
        if (
            not isinstance(jwk, dict)
            or jwk.get("use", "sig") != "sig"
            or jwk.get("kty") not in ("RSA", "EC")
        ):
            continue
        try:
            imported = (RSAKey if jwk["kty"] == "RSA" else ECKey).import_key(
                {k: v for k, v in jwk.items() if k not in ("d", "p", "q", "dp", "dq", "qi")}
            )
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        keys.append(
            _SigningKey(jwk.get("kid"), jwk["kty"], jwk.get("crv"), jwk.get("alg"), imported)
        )
    return keys


class IssuerKeys:
    """The issuer's signing keys: discovered, cached :data:`JWKS_TTL_S`, refreshed on a new kid.

    Thread-safe; a fetch holds the lock, so concurrent verifications wait for one fetch.
    """

    def __init__(
        self,
        issuer: str,
        clock: Any,
        fetch: Fetch,
        *,
        jwks_uri: str | None = None,
        ttl_s: int = JWKS_TTL_S,
    ):
        self.issuer = issuer
        self._jwks_uri = jwks_uri
        self._clock = clock
        self._fetch = fetch
        self._ttl = timedelta(seconds=ttl_s)
        self._keys: list[_SigningKey] = []
        self._fetched_at: datetime | None = None
        self._lock = threading.Lock()
        self.fetches = 0  # how many times the JWK Set was fetched (for operators and tests)

    def key_for(self, kid: str | None, alg: str) -> Any:
        """The key the token's header names; one refresh when the cache does not have it."""
        with self._lock:
            fresh = False
            if self._fetched_at is None or self._clock.now() - self._fetched_at >= self._ttl:
                self._refresh()
                fresh = True
            found = self._find(kid, alg)
            if found is None and not fresh:  # OIDC Core §10.1.1: the issuer rotated its keys
                self._refresh()
                found = self._find(kid, alg)
        if found is None:
            _refuse(f"the issuer's JWK Set has no {alg} key with kid {_shown(kid)}")
        return found.key

    def _find(self, kid: str | None, alg: str) -> _SigningKey | None:
        candidates = [k for k in self._keys if k.fits(kid, alg)]
        if kid is None and len(candidates) != 1:  # §10.1: kid is required when there are several
            return None
        return candidates[0] if candidates else None

    def _refresh(self) -> None:
        uri = self._jwks_uri or self._discover()
        self._keys = _signing_keys(self._fetch(uri), uri)
        self._fetched_at = self._clock.now()
        self.fetches += 1

    def _discover(self) -> str:
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        config = self._fetch(url)
        if not isinstance(config, dict) or config.get("issuer") != self.issuer:
            # OIDC Discovery §4.3: the document must name exactly the issuer we asked
            found = config.get("issuer") if isinstance(config, dict) else None
            raise Unavailable(f"{url} names issuer {found!r}, expected {self.issuer!r}")
        if not isinstance(config.get("jwks_uri"), str):
            raise Unavailable(f"{url} has no jwks_uri")
        self._jwks_uri = config["jwks_uri"]
        return self._jwks_uri


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


def _header(id_token: str) -> dict[str, Any]:
    parts = id_token.split(".")
    if len(parts) != 3:
        _refuse(f"expected a compact JWS (3 parts), found {len(parts)} parts")
    try:
        header = json.loads(urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        _refuse("its header is not base64url JSON")
    if not isinstance(header, dict):
        _refuse("its header is not a JSON object")
    return header


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
        header = _header(id_token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in ALLOWED_ALGS:  # a JSON list is unhashable
            _refuse(f"alg must be one of {', '.join(ALLOWED_ALGS)}, found {_shown(alg)}")
        key = self.keys.key_for(header.get("kid"), alg)
        try:
            claims = jwt.decode(id_token, key, algorithms=[alg]).claims
        except (JoseError, ValueError) as exc:
            _refuse(f"its signature or encoding does not verify ({type(exc).__name__})")
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
