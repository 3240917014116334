"""The permission inventory: which agent may get which connection's credential, per user.

A grant is the user's standing permission for one agent and one Auth0 connection,
with the provider scopes it may be released with. No credential leaves without one
(:func:`vettra.domain.credentials.refusal`), so revoking a grant stops every release
that has not happened yet, including for actions already approved. One document per
(user, agent, connection): granting again replaces the scopes; revoking keeps the
document with ``revoked_at`` (and the audit chain keeps the history). ``last_used_at``
moves in the transaction of each release.

Every view carries each scope in plain language with its risk hint
(:mod:`vettra.domain.scopes`), unknown scopes saying so.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from ..domain import audit
from ..domain.actions import rfc3339
from ..domain.canonical import canonical_json
from ..domain.errors import Conflict, NotFound
from ..domain.identity import ADMIN, AGENT, APPROVER, Principal
from ..domain.scopes import ScopeBook
from .deps import Deps

COLLECTION = "vault_permissions"
GRANTED = "permission.granted"
REVOKED = "permission.revoked"
MAX_LIST = 200
ID_PREFIX = "perm_"


def owner(tenant: str, user: str) -> str:
    return f"{tenant}:{user}"


def permission_id(tenant: str, user: str, agent: str, connection: str) -> str:
    digest = hashlib.sha256(canonical_json([tenant, user, agent, connection])).hexdigest()
    return ID_PREFIX + digest[:32]


def find(uow: Any, tenant: str, user: str, agent: str, connection: str) -> dict[str, Any] | None:
    """The grant of (tenant, user, agent, connection), revoked or not; None if never made."""
    doc = uow.docs.get(COLLECTION, permission_id(tenant, user, agent, connection))
    if doc is None or (doc["tenant"], doc["user"], doc["agent"], doc["connection"]) != (
        tenant,
        user,
        agent,
        connection,
    ):
        return None
    return dict(doc)


def touch(uow: Any, doc: dict[str, Any], now: datetime) -> None:
    """Record a release under this grant (inside the release's unit of work)."""
    used = {**doc, "last_used_at": rfc3339(now), "uses": int(doc.get("uses") or 0) + 1}
    uow.docs.put(COLLECTION, doc["permission_id"], used, owner=owner(doc["tenant"], doc["user"]))


def view(doc: dict[str, Any], book: ScopeBook | None = None) -> dict[str, Any]:
    book = book or ScopeBook.default()
    provider = book.provider_of(doc["connection"])
    return {
        "permission_id": doc["permission_id"],
        "user": doc["user"],
        "agent": doc["agent"],
        "connection": doc["connection"],
        "scopes": list(doc["scopes"]),
        "scopes_explained": [book.translate(s, provider) for s in doc["scopes"]],
        "granted_at": doc["granted_at"],
        "granted_by": doc["granted_by"],
        "revoked_at": doc.get("revoked_at"),
        "last_used_at": doc.get("last_used_at"),
        "uses": int(doc.get("uses") or 0),
        "active": doc.get("revoked_at") is None,
    }


def _audit(uow: Any, kind: str, principal: Principal, doc: dict[str, Any], now: datetime) -> None:
    data = {
        "permission_id": doc["permission_id"],
        "agent": doc["agent"],
        "connection": doc["connection"],
        "scopes": list(doc["scopes"]),
    }
    uow.audit.record(
        audit.event_by(principal, kind, now, data, chain=doc["tenant"], user=doc["user"])
    )


def grant(deps: Deps, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """The user lets ``body["agent"]`` have ``body["connection"]`` with ``body["scopes"]``."""
    principal.require(APPROVER, ADMIN)
    now = deps.clock.now()
    tenant, user = principal.tenant, principal.user
    agent, connection = body["agent"], body["connection"]
    pid = permission_id(tenant, user, agent, connection)
    with deps.store.unit_of_work() as uow:
        earlier = find(uow, tenant, user, agent, connection) or {}
        if (
            not earlier
            and len(uow.docs.list(COLLECTION, owner(tenant, user), MAX_LIST)) >= MAX_LIST
        ):
            raise Conflict(
                f"{user} holds {MAX_LIST} permission documents already (the list's limit); "
                "grant again over an existing (agent, connection) instead"
            )
        doc = {
            "permission_id": pid,
            "tenant": tenant,
            "user": user,
            "agent": agent,
            "connection": connection,
            "scopes": list(dict.fromkeys(body["scopes"])),
            "granted_at": rfc3339(now),
            "granted_by": principal.actor,
            "revoked_at": None,
            "last_used_at": earlier.get("last_used_at"),
            "uses": int(earlier.get("uses") or 0),
        }
        uow.docs.put(COLLECTION, pid, doc, owner=owner(tenant, user))
        _audit(uow, GRANTED, principal, doc, now)
        uow.commit()
    return view(doc)


def revoke(deps: Deps, principal: Principal, pid: str) -> dict[str, Any]:
    """End a grant now: releases not yet made are refused from this commit on."""
    principal.require(APPROVER, ADMIN)
    now = deps.clock.now()
    with deps.store.unit_of_work() as uow:
        doc = uow.docs.get(COLLECTION, pid)
        if doc is None or (doc["tenant"], doc["user"]) != (principal.tenant, principal.user):
            raise NotFound(f"no permission {pid}")
        if doc.get("revoked_at") is None:
            doc = {**doc, "revoked_at": rfc3339(now)}
            uow.docs.put(COLLECTION, pid, doc, owner=owner(doc["tenant"], doc["user"]))
            _audit(uow, REVOKED, principal, doc, now)
            uow.commit()
    return view(doc)


def list_permissions(deps: Deps, principal: Principal) -> dict[str, Any]:
    """The user's grants, oldest first; an agent sees only those naming it."""
    principal.require(AGENT, APPROVER, ADMIN)
    with deps.store.unit_of_work(readonly=True) as uow:
        docs = uow.docs.list(COLLECTION, owner(principal.tenant, principal.user), MAX_LIST)
    if principal.role == AGENT:
        docs = [d for d in docs if d["agent"] == principal.sub]
    book = ScopeBook.default()
    return {"permissions": [view(d, book) for d in docs]}
