"""Who is calling: the authenticated principal and the three roles of docs/api.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import Forbidden

AGENT = "agent"
APPROVER = "approver"
ADMIN = "admin"
#: The scheduler calling timer targets (POST /api/tasks/expire). A role of its own so
#: that no person or agent token can fire expiries, and the local identity can mint
#: the scheduler's token (it issues only ROLES); no other endpoint admits it.
SYSTEM = "system"
ROLES = (AGENT, APPROVER, ADMIN, SYSTEM)
#: Every caller of the API proper: agents and people (not the scheduler's SYSTEM).
ANY_ROLE = (AGENT, APPROVER, ADMIN)
#: The people: they decide actions, read the audit log and enrol step-up methods.
DECIDERS = (APPROVER, ADMIN)
DEFAULT_TENANT = "default"


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    ``sub`` names the caller; ``user`` is the person whose actions it may see: an
    approver or admin is its own user, an agent acts for the user its token names.
    """

    sub: str
    role: str
    user: str
    tenant: str = DEFAULT_TENANT
    auth_time: int | None = None
    amr: tuple[str, ...] = field(default_factory=tuple)

    @property
    def actor(self) -> str:
        """How audit entries name this caller: ``role:sub``."""
        return f"{self.role}:{self.sub}"

    def require(self, *roles: str) -> None:
        if self.role not in roles:
            raise Forbidden(
                f"this endpoint is for {' or '.join(roles)}; the token's role is {self.role}"
            )
