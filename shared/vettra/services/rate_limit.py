"""Per-principal token buckets on the injected clock (the proof endpoints' rate limit).

Each principal (tenant, role, sub) has a bucket of ``burst`` tokens refilled at
``rate_per_s``; a request takes one token or is refused with :class:`TooManyRequests`
(RFC 6585 §4, 429 with ``Retry-After`` in whole seconds). Buckets live in memory and are
pruned once full again, so idle principals cost nothing; a restart forgets them, which
errs on the side of serving.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..domain.errors import TooManyRequests
from ..domain.identity import Principal
from ..ports import Clock

DEFAULT_PROOF_RATE_PER_S = 20.0
DEFAULT_PROOF_BURST = 40
#: Past this many tracked principals, full (idle) buckets are dropped before adding one.
MAX_TRACKED = 10_000


def principal_key(principal: Principal) -> str:
    return f"{principal.tenant}\x00{principal.role}\x00{principal.sub}"


@dataclass(frozen=True)
class RateLimitSettings:
    rate_per_s: float = DEFAULT_PROOF_RATE_PER_S
    burst: int = DEFAULT_PROOF_BURST

    @classmethod
    def from_sources(
        cls, extra: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
    ) -> RateLimitSettings:
        """``Config.extra`` (``proof_rate_per_s``, ``proof_burst``) wins over the environment
        (``VETTRA_PROOF_RATE_PER_S``, ``VETTRA_PROOF_BURST``), then the defaults."""
        extra, env = dict(extra or {}), dict(env or {})
        rate = float(
            extra.get("proof_rate_per_s")
            or env.get("VETTRA_PROOF_RATE_PER_S")
            or DEFAULT_PROOF_RATE_PER_S
        )
        burst = int(
            extra.get("proof_burst") or env.get("VETTRA_PROOF_BURST") or DEFAULT_PROOF_BURST
        )
        if not (rate > 0 and rate != float("inf")) or burst < 1:
            raise ValueError(
                f"proof rate limit needs a finite rate > 0 and a burst >= 1, "
                f"found rate {rate}, burst {burst}"
            )
        return cls(rate_per_s=rate, burst=burst)


class TokenBucketLimiter:
    """``take(key)`` spends one token of ``key``'s bucket or raises :class:`TooManyRequests`."""

    def __init__(
        self,
        clock: Clock,
        settings: RateLimitSettings = RateLimitSettings(),
        *,
        what: str = "requests",
    ):
        self._clock, self.settings, self._what = clock, settings, what
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at seconds)
        self._lock = threading.Lock()

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _level(self, tokens: float, at: float, now: float) -> float:
        return min(
            float(self.settings.burst), tokens + max(0.0, now - at) * self.settings.rate_per_s
        )

    def take(self, key: str) -> None:
        now = self._now()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.settings.burst), now))
            tokens = self._level(tokens, at, now)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.settings.rate_per_s
                raise TooManyRequests(
                    f"too many {self._what}: at most {self.settings.rate_per_s:g}/s with bursts of "
                    f"{self.settings.burst} per caller",
                    retry_after=max(1, int(wait + 0.999)),
                )
            if key not in self._buckets and len(self._buckets) >= MAX_TRACKED:
                self._prune(now)
            self._buckets[key] = (tokens - 1.0, now)

    def _prune(self, now: float) -> None:
        full = float(self.settings.burst)
        for key in [k for k, (t, at) in self._buckets.items() if self._level(t, at, now) >= full]:
            del self._buckets[key]

    def tracked(self) -> int:
        return len(self._buckets)
