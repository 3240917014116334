"""Which failures are retried, and how long to wait between attempts (tenacity).

A request is resent only when resending cannot do a thing twice: intercepts carry an
``Idempotency-Key`` (the server answers a resend with the same action), reads change
nothing, and a call marked ``resend_safe=False`` (credential release, decisions) is resent
only when it certainly never reached the server (the connection was never made) or the
server said it did not take it (429, 503).
"""

from __future__ import annotations

import httpx
import tenacity

from ._flow import Request

#: Statuses that mean "not now, try again": rate limited, or a gateway/overload answer.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Of those, the ones after which the request was certainly not acted on.
NOT_TAKEN_STATUSES = frozenset({429, 503})
#: Failures in which no byte of the request reached the server.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout)
BACKOFF_INITIAL_S = 0.2
BACKOFF_MAX_S = 5.0
#: A server's Retry-After is honoured up to this long; beyond, the SDK gives up sooner.
MAX_RETRY_AFTER_S = 30.0


class RetryableStatus(Exception):
    """A 429/5xx answer, raised inside the retry loop so tenacity sees it as a failure."""

    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code} from {response.request.url.path}")
        self.response = response

    @property
    def retry_after_s(self) -> float | None:
        value = self.response.headers.get("Retry-After", "")
        return float(value) if value.isdigit() else None


def should_retry(request: Request, exc: BaseException) -> bool:
    if isinstance(exc, RetryableStatus):
        status = exc.response.status_code
        return request.resend_safe or status in NOT_TAKEN_STATUSES
    if isinstance(exc, httpx.TransportError):
        return request.resend_safe or isinstance(exc, NOT_SENT_ERRORS)
    return False


_backoff = tenacity.wait_exponential_jitter(multiplier=BACKOFF_INITIAL_S, max=BACKOFF_MAX_S)


def wait_before_retry(state: tenacity.RetryCallState) -> float:
    """Exponential backoff with jitter, or the server's ``Retry-After`` when it gave one."""
    exc = state.outcome.exception() if state.outcome is not None else None
    if isinstance(exc, RetryableStatus) and exc.retry_after_s is not None:
        return min(exc.retry_after_s, MAX_RETRY_AFTER_S)
    return float(_backoff(state))


def policy(request: Request, retries: int, budget_s: float) -> dict[str, object]:
    """Keyword arguments for ``tenacity.Retrying``/``AsyncRetrying`` for one request."""
    return {
        "stop": tenacity.stop_after_attempt(retries + 1) | tenacity.stop_after_delay(budget_s),
        "wait": wait_before_retry,
        "retry": tenacity.retry_if_exception(lambda exc: should_retry(request, exc)),
        "reraise": True,
    }
