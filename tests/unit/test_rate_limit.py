"""The per-principal token bucket behind the proof endpoints' rate limit."""

from __future__ import annotations

import pytest

from vettra.adapters.clock import FakeClock
from vettra.domain.errors import TooManyRequests
from vettra.services import rate_limit
from vettra.services.rate_limit import RateLimitSettings, TokenBucketLimiter


def test_a_burst_then_the_refill_rate_per_key() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(clock, RateLimitSettings(rate_per_s=2, burst=3))
    for _ in range(3):
        limiter.take("a")
    with pytest.raises(TooManyRequests) as exc:
        limiter.take("a")
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "1"
    limiter.take("b")  # another principal has its own bucket
    clock.advance(0.5)  # one token back at 2/s
    limiter.take("a")
    with pytest.raises(TooManyRequests):
        limiter.take("a")


def test_retry_after_rounds_up_to_whole_seconds() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(clock, RateLimitSettings(rate_per_s=0.25, burst=1))
    limiter.take("a")
    with pytest.raises(TooManyRequests) as exc:
        limiter.take("a")
    assert exc.value.headers["Retry-After"] == "4"


def test_idle_buckets_are_pruned(monkeypatch) -> None:
    monkeypatch.setattr(rate_limit, "MAX_TRACKED", 4)
    clock = FakeClock()
    limiter = TokenBucketLimiter(clock, RateLimitSettings(rate_per_s=1, burst=2))
    for key in "abcd":
        limiter.take(key)
    clock.advance(5)
    limiter.take("e")
    assert limiter.tracked() == 1


@pytest.mark.parametrize(
    "extra", [{"proof_rate_per_s": -1}, {"proof_burst": -2}, {"proof_rate_per_s": "inf"}]
)
def test_bad_settings_are_refused(extra) -> None:
    with pytest.raises(ValueError, match="proof rate limit"):
        RateLimitSettings.from_sources(extra, {})


def test_settings_come_from_config_then_environment() -> None:
    assert RateLimitSettings.from_sources({}, {"VETTRA_PROOF_BURST": "7"}).burst == 7
    assert (
        RateLimitSettings.from_sources({"proof_burst": 9}, {"VETTRA_PROOF_BURST": "7"}).burst == 9
    )
    assert RateLimitSettings.from_sources({}, {}) == RateLimitSettings()
