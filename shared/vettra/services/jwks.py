"""Verifying JWTs signed by someone else's published keys: one JWK Set cache for all issuers.

Used by the OIDC step-up (:mod:`.oidc_stepup`), the Auth0 identity and the Cloud Tasks
OIDC check (:mod:`vettra.adapters.auth0_identity`, :mod:`vettra.adapters.google_oidc`).

- RFC 7517 §5 (JWK Sets), RFC 7515 §4.1 (``alg``, ``kid``), RFC 8725 §3.1–3.2 (an allow
  list of algorithms, each tied to its key type): only RS256 and ES256 (P-256). ``none``
  and every HMAC algorithm are refused before any key is looked up, so a public key can
  never serve as an HMAC secret, and a key is used only with the ``kty``/``crv`` its
  ``alg`` needs.
- The JWK Set is fetched through one injected function (``fetch``: httpx in production,
  :func:`vettra.adapters.oidc_http.fetch_json`), kept :data:`JWKS_TTL_S`, and fetched again
  when a token names an unknown ``kid`` (OIDC Core §10.1.1, key rotation) — but at most
  once per :data:`MISS_REFETCH_S`, so a flood of made-up kids cannot hammer the issuer.
- A failed fetch is not retried for :data:`FAILURE_BACKOFF_S`; meanwhile (and up to
  :data:`STALE_S` past the TTL) the keys already held keep verifying. With no usable keys
  the caller gets :class:`Unavailable` (503, retry later), never a 500.

Refusals are :class:`TokenRefused`, carrying a ``reason`` that repeats nothing of the token
(safe to answer and log) and a ``detail`` that may quote header values (the step-up
service shows it to the approver who sent the token).
"""

from __future__ import annotations

import json
import logging
import threading
from base64 import urlsafe_b64decode
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import InvalidClaimError, JoseError
from joserfc.jwk import ECKey, RSAKey
from joserfc.jwt import JWTClaimsRegistry

from ..domain.errors import Unavailable
from ..ports import Clock

log = logging.getLogger("vettra.jwks")

#: JWS algorithm → the JWK key type (and curve) it needs (RFC 7518 §3.1)
ALLOWED_ALGS: Mapping[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "ES256": ("EC", "P-256"),
}
JWKS_TTL_S = 600  # keys are fetched again after this
MISS_REFETCH_S = 30  # at most one fetch per this many seconds for tokens naming unknown kids
FAILURE_BACKOFF_S = 5  # a failed fetch is not tried again sooner
STALE_S = 3600  # past the TTL, held keys keep verifying this long while fetches fail
MAX_TOKEN_LENGTH = 8192  # longer bearer/ID tokens are refused unparsed
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_MAX_SHOWN = 80

#: GET a URL as JSON, raising :class:`Unavailable` when it cannot be reached
Fetch = Callable[[str], Any]


class TokenRefused(Exception):
    """A token that does not verify. ``reason`` quotes nothing from the token."""

    def __init__(self, reason: str, detail: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


def shown(value: Any) -> str:
    """A value from a token for a message meant for its sender: its repr, cut short."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "…"


@dataclass(frozen=True)
class SigningKey:
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


def signing_keys(jwks: Any, source: str) -> list[SigningKey]:
    """The RS256/ES256 signature keys of a JWK Set (RFC 7517 §5); others are skipped.

    Private members are dropped before import: a JWK Set that (wrongly) publishes a
    private key still only verifies.
    """
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
                {k: v for k, v in jwk.items() if k not in _PRIVATE_MEMBERS}
            )
        except (JoseError, ValueError, TypeError, KeyError):
            continue
        kid, alg, crv = jwk.get("kid"), jwk.get("alg"), jwk.get("crv")
        keys.append(
            SigningKey(
                kid if isinstance(kid, str) else None,
                jwk["kty"],
                crv if isinstance(crv, str) else None,
                alg if isinstance(alg, str) else None,
                imported,
            )
        )
    return keys


class JwksCache:
    """One issuer's signing keys, fetched from ``url`` and cached (module docstring).

    Thread-safe: a fetch holds the lock, so concurrent verifications wait for one fetch
    instead of each making their own. ``fetches`` counts successful fetches (for operators
    and tests).
    """

    def __init__(
        self,
        url: str | None,
        clock: Clock,
        fetch: Fetch,
        *,
        ttl_s: float = JWKS_TTL_S,
        miss_refetch_s: float = MISS_REFETCH_S,
        failure_backoff_s: float = FAILURE_BACKOFF_S,
        stale_s: float = STALE_S,
    ):
        self._url = url
        self._clock = clock
        self._fetch = fetch
        self.ttl_s = ttl_s
        self.miss_refetch_s = miss_refetch_s
        self.failure_backoff_s = failure_backoff_s
        self.stale_s = stale_s
        self._keys: list[SigningKey] = []
        self._fetched_at: float | None = None
        self._missed_at: float | None = None
        self._failed_at: float | None = None
        self._failure: Unavailable | None = None
        self._lock = threading.Lock()
        self.fetches = 0

    def jwks_url(self) -> str:
        """Where the JWK Set is fetched from (a subclass may discover it)."""
        if self._url is None:
            raise ValueError("JwksCache needs a url, or a subclass that finds one")
        return self._url

    def key_for(self, kid: str | None, alg: str) -> Any | None:
        """The key a token's header names, or None when the issuer has no such key.

        Raises :class:`Unavailable` when no keys can be had at all.
        """
        now = self._clock.now().timestamp()
        with self._lock:
            fetched = False
            if self._fetched_at is None or now - self._fetched_at >= self.ttl_s:
                self._refresh(now)
                fetched = True
            found = self._find(kid, alg)
            if found is None and not fetched and self._may_refetch_for_miss(now):
                self._missed_at = now
                self._refresh(now)
                found = self._find(kid, alg)
        return found.key if found is not None else None

    def _may_refetch_for_miss(self, now: float) -> bool:
        return self._missed_at is None or now - self._missed_at >= self.miss_refetch_s

    def _find(self, kid: str | None, alg: str) -> SigningKey | None:
        candidates = [k for k in self._keys if k.fits(kid, alg)]
        if kid is None and len(candidates) != 1:  # OIDC §10.1: kid is required among several
            return None
        return candidates[0] if candidates else None

    def _usable_stale(self, now: float) -> bool:
        return (
            bool(self._keys)
            and self._fetched_at is not None
            and now - self._fetched_at < self.ttl_s + self.stale_s
        )

    def _refresh(self, now: float) -> None:
        """Fetch the set; on failure keep held keys while they may serve, else Unavailable."""
        if self._failed_at is not None and now - self._failed_at < self.failure_backoff_s:
            if self._usable_stale(now):
                return
            assert self._failure is not None
            raise Unavailable(
                f"{self._failure.detail} (not tried again for {self.failure_backoff_s:g} s)"
            )
        try:
            url = self.jwks_url()
            keys = signing_keys(self._fetch(url), url)
        except Unavailable as exc:
            self._failed_at, self._failure = now, exc
            if self._usable_stale(now):
                log.warning(
                    "JWK Set fetch failed; verifying with the keys fetched before",
                    extra={"error": exc.detail, "age_s": round(now - (self._fetched_at or now))},
                )
                return
            raise
        self._keys, self._fetched_at, self._failed_at, self._failure = keys, now, None, None
        self.fetches += 1


def jws_header(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, or :class:`TokenRefused`."""
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenRefused(
            "not a compact JWS", f"expected a compact JWS (3 parts), found {len(parts)} parts"
        )
    try:
        header = json.loads(urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except ValueError:
        raise TokenRefused("its header is not base64url JSON") from None
    if not isinstance(header, dict):
        raise TokenRefused("its header is not a JSON object")
    return header


def verify_signature(token: str, keys: JwksCache) -> dict[str, Any]:
    """The claims of ``token`` once its signature verifies with one of the issuer's keys.

    Checks nothing in the claims (see :class:`WholeSecondClaims`); raises
    :class:`TokenRefused`, or :class:`Unavailable` when the keys cannot be fetched.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenRefused(f"token missing or longer than {MAX_TOKEN_LENGTH} characters")
    header = jws_header(token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGS:  # a JSON list is unhashable
        raise TokenRefused(
            f"alg must be one of {', '.join(ALLOWED_ALGS)}",
            f"alg must be one of {', '.join(ALLOWED_ALGS)}, found {shown(alg)}",
        )
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenRefused("kid must be a string", f"kid must be a string, found {shown(kid)}")
    key = keys.key_for(kid, alg)
    if key is None:
        raise TokenRefused(
            f"the issuer's JWK Set has no {alg} key with this kid",
            f"the issuer's JWK Set has no {alg} key with kid {shown(kid)}",
        )
    try:
        claims = jwt.decode(token, key, algorithms=[alg]).claims
    except (JoseError, ValueError, TypeError) as exc:
        raise TokenRefused(
            f"its signature or encoding does not verify ({type(exc).__name__})"
        ) from None
    if not isinstance(claims, dict):
        raise TokenRefused("its payload is not a JSON object")
    return claims


class WholeSecondClaims(JWTClaimsRegistry):
    """RFC 7519 §4.1 checks (joserfc), with NumericDates held to whole seconds.

    joserfc accepts any finite number; the issuers we trust write integers, so ``exp``,
    ``nbf`` and ``iat`` must be integers (never booleans) in ``0..now + max_ahead_s``: a
    float, a string, a negative or an absurdly far ``exp`` is refused, never compared.
    """

    def __init__(self, *, now: int, leeway: int, max_ahead_s: int, **options: Any):
        super().__init__(now=now, leeway=leeway, **options)
        self.max_ahead_s = max_ahead_s

    def _bounded(self, name: str, value: object) -> None:
        if type(value) is not int or not 0 <= value <= self.now + self.max_ahead_s:
            raise InvalidClaimError(name)

    def validate_exp(self, value: object) -> None:
        self._bounded("exp", value)
        super().validate_exp(value)

    def validate_nbf(self, value: object) -> None:
        self._bounded("nbf", value)
        super().validate_nbf(value)

    def validate_iat(self, value: object) -> None:
        self._bounded("iat", value)
        super().validate_iat(value)


CLAIM_WORDS = {
    "exp": "expiry",
    "nbf": "not-before",
    "iat": "issued-at",
    "iss": "issuer",
    "aud": "audience",
    "sub": "subject",
}


def claim_of(exc: JoseError) -> str:
    """The claim a joserfc claims error is about (``exp``, ``aud``, …)."""
    return str(getattr(exc, "claim", exc.error))


def check_claims(registry: JWTClaimsRegistry, claims: Mapping[str, Any]) -> None:
    """``registry.validate`` with refusals as :class:`TokenRefused` naming the claim."""
    if not _encodable(claims):
        # a lone surrogate would pass every check and fail later, writing a log line or
        # an audit entry (a 500): refuse it at the door
        raise TokenRefused("a claim is not valid Unicode")
    try:
        registry.validate(dict(claims))
    except JoseError as exc:
        name = claim_of(exc)
        raise TokenRefused(f"bad {CLAIM_WORDS.get(name, name)} ({exc.description})") from None


def _encodable(claims: Any) -> bool:
    try:
        json.dumps(claims, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (UnicodeEncodeError, ValueError, TypeError):
        return False
    return True
