"""Domain errors.

One root, :class:`VettraError`, with flat subclasses. Each class knows the HTTP
status and the RFC 9457 problem ``type`` it maps to, so entry points translate
errors with a lookup rather than an if-chain. Messages say what was expected and
what was found; they never carry secrets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PROBLEM_BASE = "https://vettra.dev/problems/"


@dataclass(frozen=True)
class FieldError:
    """One offending field: a JSON-pointer-like dotted path and what was wrong."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class VettraError(Exception):
    """Root of every error Vettra raises on purpose."""

    status = 500
    slug = "internal"
    title = "Internal error"

    def __init__(
        self,
        detail: str = "",
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = list(errors or [])
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug

    def problem(self) -> dict[str, Any]:
        """The RFC 9457 problem document for this error."""
        body: dict[str, Any] = {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.errors:
            body["errors"] = [e.as_dict() for e in self.errors]
        for key, value in self.extra.items():
            body.setdefault(key, value)  # never overwrite the RFC 9457 members
        return body


class MalformedRequest(VettraError):
    """The body is not JSON we can read (syntax, encoding, NaN, lone surrogates, depth)."""

    status = 400
    slug = "malformed-request"
    title = "Malformed request"


class BadQuery(VettraError):
    """A query parameter is missing or out of range."""

    status = 400
    slug = "bad-query"
    title = "Invalid query parameter"


class Unauthenticated(VettraError):
    """No bearer token, or one we do not accept (expired, foreign, wrong audience)."""

    status = 401
    slug = "unauthenticated"
    title = "Authentication required"

    def __init__(self, detail: str = "", **kw: Any):
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        super().__init__(detail, **kw)


class StepUpRequired(VettraError):
    """RFC 9470 §3: the approver must authenticate again (step-up) for this action."""

    status = 401
    slug = "step-up-required"
    title = "Step-up authentication required"

    def __init__(self, detail: str = "", *, max_age: int | None = None, **kw: Any):
        challenge = 'Bearer error="insufficient_user_authentication"'
        challenge += ', error_description="A fresh step-up bound to this action is required"'
        if max_age is not None:
            challenge += f", max_age={int(max_age)}"
        kw.setdefault("headers", {"WWW-Authenticate": challenge})
        super().__init__(detail, **kw)


class Forbidden(VettraError):
    """Authenticated, but this role may not use this endpoint."""

    status = 403
    slug = "forbidden"
    title = "Forbidden"


class NotFound(VettraError):
    """No such resource visible to the caller (foreign ids answer this too)."""

    status = 404
    slug = "not-found"
    title = "Not found"


class NotConfigured(NotFound):
    """A feature this deployment was not set up for (sign-in without Auth0): 404 with its
    own problem type, since nothing a retry or another body can change is a 5xx."""

    slug = "not-configured"
    title = "Not configured on this deployment"


class MethodNotAllowed(VettraError):
    status = 405
    slug = "method-not-allowed"
    title = "Method not allowed"


class Conflict(VettraError):
    """The request conflicts with the resource's state (decided, idempotency key reuse)."""

    status = 409
    slug = "conflict"
    title = "Conflict"


class Contention(Conflict):
    """The store aborted a transaction because others competed for the same documents
    (Firestore does; SQLite serialises writers). Nothing of it was written: running the
    whole unit of work again is safe, and :mod:`vettra.services.contention` does."""


class PayloadTooLarge(VettraError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class UnsupportedMediaType(VettraError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class ValidationFailed(VettraError):
    """Well-formed JSON that breaks the schema; ``errors`` names each field."""

    status = 422
    slug = "validation-failed"
    title = "Validation failed"


class PolicyRejected(VettraError):
    """A policy bundle failed verification; the active policy stays in force."""

    status = 422
    slug = "policy-rejected"
    title = "Policy bundle rejected"


class VerificationError(VettraError):
    """A signature, hash or chain did not verify: says what was expected and what was found."""

    status = 422
    slug = "verification-failed"
    title = "Verification failed"


class Unavailable(VettraError):
    """A backing service did not answer; safe to retry."""

    status = 503
    slug = "unavailable"
    title = "Service unavailable"


class TooManyRequests(VettraError):
    """Rate limited (RFC 6585 §4): ``Retry-After`` says how many seconds to wait."""

    status = 429
    slug = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str = "", *, retry_after: int, **kw: Any):
        kw.setdefault("headers", {"Retry-After": str(int(retry_after))})
        kw.setdefault("extra", {"retry_after": int(retry_after)})
        super().__init__(detail, **kw)
