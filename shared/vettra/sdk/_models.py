"""The API's answers as small frozen values (docs/api.md "Actions", "Credential release")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..domain.statuses import RUNNABLE


@dataclass(frozen=True)
class Risk:
    """``risk`` of an action: the score, its level and the reasons behind it."""

    score: int
    level: str
    factors: dict[str, int] = field(default_factory=dict)
    reasons: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any) -> Risk:
        data = data if isinstance(data, dict) else {}
        return cls(
            score=int(data.get("score", 0)),
            level=str(data.get("level", "")),
            factors=dict(data.get("factors") or {}),
            reasons=tuple(str(r) for r in data.get("reasons") or ()),
        )


@dataclass(frozen=True)
class Action:
    """One intercepted tool call as the server sees it. ``raw`` keeps every field sent."""

    action_id: str
    status: str
    tool: str | None
    args_digest: str | None
    risk: Risk
    step_up_required: bool
    expires_at: str | None
    reason: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action:
        return cls(
            action_id=str(data["action_id"]),
            status=str(data["status"]),
            tool=data.get("tool"),
            args_digest=data.get("args_digest"),
            risk=Risk.from_json(data.get("risk")),
            step_up_required=bool(data.get("step_up_required", False)),
            expires_at=data.get("expires_at"),
            reason=data.get("reason"),
            raw=data,
        )

    @property
    def runnable(self) -> bool:
        return self.status in RUNNABLE


@dataclass(frozen=True)
class Credential:
    """A released credential (docs/api.md "Credential release"); single-use, short-lived.

    ``repr`` hides the token so a log line or a traceback never shows it.
    """

    access_token: str = field(repr=False)
    token_type: str
    expires_at: str | None
    scope: str | None
    connection: str | None
    #: the signed receipt (a compact JWT) a downstream executor checks offline
    receipt: Any = field(default=None, repr=False)
    action_id: str | None = None
    receipt_expires_at: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Credential:
        return cls(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type") or "Bearer"),
            expires_at=data.get("expires_at"),
            scope=data.get("scope"),
            connection=data.get("connection"),
            receipt=data.get("receipt"),
            action_id=data.get("action_id"),
            receipt_expires_at=data.get("receipt_expires_at"),
        )

    @property
    def authorization(self) -> str:
        """The ``Authorization`` header value for the service the credential is for."""
        return f"{self.token_type} {self.access_token}"


@dataclass(frozen=True)
class Authorization:
    """The go-ahead for one call: the decided action and, if asked for, its credential."""

    action: Action
    arguments: dict[str, Any] = field(repr=False)
    credential: Credential | None = None
