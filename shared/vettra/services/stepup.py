"""Step-up gate for HIGH approvals (RFC 9470).

Approving an action that needs step-up requires a step-up token bound to that
action. This build has no step-up method yet (TOTP and WebAuthn arrive with the
approvals work), so :meth:`StepUpGate.require` refuses every approval of such an
action with the RFC 9470 challenge. Denying never needs step-up.
"""

from __future__ import annotations

from ..domain.actions import Action
from ..domain.errors import StepUpRequired
from ..domain.identity import Principal

STEP_UP_MAX_AGE_S = 300


class StepUpGate:
    max_age_s = STEP_UP_MAX_AGE_S

    def require(self, principal: Principal, action: Action, token: str | None) -> None:
        detail = ("approving this HIGH-risk action needs a fresh step-up bound to it; "
                  "no step-up method is available on this server yet")
        if token:
            detail = "the step-up token is not valid for this action"
        raise StepUpRequired(detail, max_age=self.max_age_s)
