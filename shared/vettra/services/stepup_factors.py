"""The caller's step-up factors: list them (with when each was last used) and remove one.

Removing a factor weakens the account, so it needs a fresh step-up of its own, bound to
the purpose ``stepup.remove:<factor>`` (:func:`removal_purpose`; each factor in the list
carries it): a stolen bearer token alone can neither add a factor (docs/step-up.md) nor
take one away. Any enrolled factor may answer that step-up, the one being removed
included. The removal and its audit entry share one unit of work with the token's
redemption.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from ..domain import stepup as rules
from ..domain.actions import rfc3339
from ..domain.audit import event_by
from ..domain.errors import NotFound
from ..domain.identity import ADMIN, APPROVER, Principal
from . import stepup
from .deps import Deps

TOTP_FACTOR_ID = "totp"
REMOVE_PREFIX = "stepup.remove:"
REMOVED = "stepup.removed"
_PURPOSE_ID_MAX = 120  # longer credential ids are named by digest in the purpose
MAX_PASSKEYS_LISTED = 100


def removal_purpose(factor_id: str) -> str:
    """The step-up purpose that removing ``factor_id`` needs."""
    if len(factor_id) <= _PURPOSE_ID_MAX:
        return REMOVE_PREFIX + factor_id
    return REMOVE_PREFIX + "sha256-" + hashlib.sha256(factor_id.encode()).hexdigest()[:48]


def _time(value: Any) -> str | None:
    return rfc3339(datetime.fromisoformat(value)) if isinstance(value, str) and value else None


def list_factors(deps: Deps, principal: Principal) -> dict[str, Any]:
    principal.require(APPROVER, ADMIN)
    owner = rules.owner_key(principal.tenant, principal.user)
    with deps.store.unit_of_work() as uow:
        totp = uow.docs.get(stepup.TOTP_FACTORS, owner)
        passkeys = uow.docs.list(stepup.PASSKEYS, owner, limit=MAX_PASSKEYS_LISTED)
    factors: list[dict[str, Any]] = []
    if totp is not None:
        factors.append(
            {
                "factor_id": TOTP_FACTOR_ID,
                "method": rules.TOTP,
                "label": "Authenticator app (TOTP)",
                "created_at": _time(totp.get("confirmed_at")),
                "last_used_at": _time(totp.get("last_used_at")),
                "removal_purpose": removal_purpose(TOTP_FACTOR_ID),
            }
        )
    for passkey in passkeys:
        factors.append(
            {
                "factor_id": passkey["credential_id"],
                "method": rules.WEBAUTHN,
                "label": "Passkey",
                "aaguid": passkey.get("aaguid"),
                "created_at": _time(passkey.get("created_at")),
                "last_used_at": _time(passkey.get("last_used_at")),
                "removal_purpose": removal_purpose(passkey["credential_id"]),
            }
        )
    return {"factors": factors}


def remove_factor(
    deps: Deps, principal: Principal, factor_id: str, step_up_token: str | None
) -> dict[str, Any]:
    """Remove one of the caller's factors; 401 (RFC 9470) without a step-up for it."""
    principal.require(APPROVER, ADMIN)
    owner = rules.owner_key(principal.tenant, principal.user)
    with deps.store.unit_of_work() as uow:
        if factor_id == TOTP_FACTOR_ID:
            collection, doc_id = stepup.TOTP_FACTORS, owner
            found = uow.docs.get(collection, doc_id) is not None
        else:
            collection, doc_id = stepup.PASSKEYS, factor_id
            doc = uow.docs.get(collection, doc_id)
            found = doc is not None and rules.owner_key(doc["tenant"], doc["user"]) == owner
        if not found:
            raise NotFound(f"no step-up factor {factor_id[:60]!r} of yours")
        deps.step_up.require_purpose(principal, removal_purpose(factor_id), step_up_token, uow=uow)
        uow.docs.delete(collection, doc_id)
        totp = factor_id == TOTP_FACTOR_ID
        data = {
            "method": rules.TOTP if totp else rules.WEBAUTHN,
            "factor_id": factor_id if totp else factor_id[:64],
        }
        uow.audit.record(event_by(principal, REMOVED, deps.clock.now(), data))
        uow.commit()
    return {"removed": factor_id, **list_factors(deps, principal)}
