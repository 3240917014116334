"""Dashboard sign-in for the local server: a one-time link, then a revocable session.

(The cloud's sign-in, an Auth0 ID token for a Firebase custom token, is
:mod:`vettra.services.sign_in`.)

``vettra link`` (or ``vettra dev`` at start) asks for a **sign-in link** for one user:
a random code (256 bits) that the server keeps only as its SHA-256 digest, valid for
:data:`LINK_TTL_S` and for one use. The printed URL carries it in the fragment
(``/#signin=<code>``), which browsers never send to a server nor put in a Referer; the
page removes it from the address bar and history at once (``history.replaceState``)
and trades it here for a **dashboard session token**: random, stored by digest too,
valid :data:`SESSION_TTL_S`, and revoked on sign-out. Redeeming deletes the link in
the same unit of work that creates the session, so a code works once even when two
tabs race. Every step is an audit entry; no code or token is ever logged or audited
(only the first characters of its digest).

:class:`DashboardSessionIdentity` puts the sessions in front of the bearer tokens ``vettra
token`` mints: a token with the session prefix is looked up by digest (so a revoked
one fails at once), anything else goes to the wrapped identity. In the cloud,
dashboards sign in with Auth0 instead (docs/api.md); these routes have no Cloud
Functions target.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import KW_ONLY, dataclass
from datetime import datetime, timedelta
from typing import Any

from ..domain.actions import rfc3339
from ..domain.audit import AuditEvent, event_by
from ..domain.errors import Conflict, Unauthenticated
from ..domain.identity import ADMIN, APPROVER, DEFAULT_TENANT, Principal
from ..ports import Clock, Identity, Store

LINKS = "signin_links"
SESSIONS = "signin_sessions"
LINK_PREFIX = "vsl_"
SESSION_PREFIX = "vds_"
LINK_TTL_S = 10 * 60
SESSION_TTL_S = 12 * 3600
SIGNIN_ROLES = (APPROVER, ADMIN)
_SECRET_BYTES = 32  # 43 base64url characters

LINK_CREATED = "signin.link_created"
SIGNED_IN = "signin.signed_in"
SIGNED_OUT = "signin.signed_out"

#: What the server answers for a code that is unknown, used or expired: one answer for
#: all three, so the answer tells a guesser nothing.
BAD_LINK = "this sign-in link is not valid (unknown, already used or expired); ask for a new one with `vettra link`"


def digest(secret: str) -> str:
    """Codes and tokens are stored by SHA-256 only: a store dump yields none."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _owner(tenant: str, user: str) -> str:
    return f"{tenant}:{user}"


def _issue(
    uow: Any,
    collection: str,
    key: str,
    doc: dict[str, Any],
    now: datetime,
    expires_at: datetime,
    *,
    event: str,
    actor: str,
    data: dict[str, Any],
) -> None:
    """Keep ``doc`` (a link or a session of ``doc["sub"]``) under ``key`` until
    ``expires_at``, and audit its issue as ``event``."""
    tenant, sub = doc["tenant"], doc["sub"]
    kept = {**doc, "created_at": now.isoformat(), "expires_at": expires_at.isoformat()}
    uow.docs.create(collection, key, kept, owner=_owner(tenant, sub))
    uow.audit.record(
        AuditEvent(
            type=event,
            chain=tenant,
            actor=actor,
            at=rfc3339(now),
            user=sub,
            data={**data, "expires_at": rfc3339(expires_at)},
        )
    )


@dataclass(eq=False)  # an identity, like any service object
class DashboardSessions:
    """What ``deps.dashboard_sessions`` is; the ``/api/auth`` routes and ``vettra dev`` call it."""

    store: Store
    clock: Clock
    _: KW_ONLY
    link_ttl_s: int = LINK_TTL_S
    session_ttl_s: int = SESSION_TTL_S

    def create_link(
        self,
        sub: str,
        role: str = APPROVER,
        *,
        tenant: str = DEFAULT_TENANT,
        created_by: str = "system:vettra-dev",
    ) -> dict[str, Any]:
        """A one-time code for ``sub`` (``role`` approver or admin); only its digest is kept."""
        if role not in SIGNIN_ROLES:
            raise ValueError(f"a sign-in link is for an approver or an admin, not {role!r}")
        now = self.clock.now()
        code = LINK_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        key = digest(code)
        expires_at = now + timedelta(seconds=self.link_ttl_s)
        with self.store.unit_of_work() as uow:
            _issue(
                uow,
                LINKS,
                key,
                {"tenant": tenant, "sub": sub, "role": role, "created_by": created_by},
                now,
                expires_at,
                event=LINK_CREATED,
                actor=created_by,
                data={"role": role, "link": key[:12]},
            )
            uow.commit()
        return {
            "code": code,
            "path": f"/#signin={code}",
            "sub": sub,
            "role": role,
            "tenant": tenant,
            "expires_at": rfc3339(expires_at),
        }

    def redeem(self, code: str) -> dict[str, Any]:
        """Trade a link's code for a session token, once; 401 for any code that is not live."""
        now = self.clock.now()
        key = digest(code)
        token = SESSION_PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
        expires_at = now + timedelta(seconds=self.session_ttl_s)
        with self.store.unit_of_work() as uow:
            link = uow.docs.get(LINKS, key)
            if link is None or now >= datetime.fromisoformat(link["expires_at"]):
                raise Unauthenticated(BAD_LINK)
            uow.docs.delete(LINKS, key)
            tenant, sub, role = link["tenant"], link["sub"], link["role"]
            session_key = digest(token)
            _issue(
                uow,
                SESSIONS,
                session_key,
                {"tenant": tenant, "sub": sub, "role": role},
                now,
                expires_at,
                event=SIGNED_IN,
                actor=f"{role}:{sub}",
                data={"link": key[:12], "session": session_key[:12]},
            )
            uow.commit()
        return {
            "access_token": token,
            "token_type": "Bearer",
            "expires_at": rfc3339(expires_at),
            "expires_in": self.session_ttl_s,
            "sub": sub,
            "role": role,
            "tenant": tenant,
        }

    def session(self, token: str) -> dict[str, Any] | None:
        """The live session a token names, or None (unknown, revoked or expired)."""
        if not token.startswith(SESSION_PREFIX):
            return None
        with self.store.unit_of_work() as uow:
            doc = uow.docs.get(SESSIONS, digest(token))
        if doc is None or self.clock.now() >= datetime.fromisoformat(doc["expires_at"]):
            return None
        return doc

    def sign_out(self, principal: Principal, token: str) -> dict[str, Any]:
        """Revoke the session ``token`` names: every later request with it is 401."""
        if not token.startswith(SESSION_PREFIX):
            raise Conflict(
                "this bearer token is not a dashboard session (it was minted by "
                "`vettra token`); it cannot be revoked and lapses at its own expiry"
            )
        now = self.clock.now()
        key = digest(token)
        with self.store.unit_of_work() as uow:
            if uow.docs.get(SESSIONS, key) is None:
                raise Unauthenticated("the session has already ended")
            uow.docs.delete(SESSIONS, key)
            uow.audit.record(event_by(principal, SIGNED_OUT, now, {"session": key[:12]}))
            uow.commit()
        return {"signed_out": True, "at": rfc3339(now)}


class DashboardSessionIdentity(Identity):
    """Dashboard session tokens first (by digest in the store), then ``inner``'s tokens."""

    def __init__(self, sessions: DashboardSessions, inner: Identity):
        self._sessions = sessions
        self._inner = inner

    def authenticate(self, bearer: str) -> Principal:
        if not bearer.startswith(SESSION_PREFIX):
            return self._inner.authenticate(bearer)
        doc = self._sessions.session(bearer)
        if doc is None:
            raise Unauthenticated("the dashboard session is unknown, expired or signed out")
        return Principal(sub=doc["sub"], role=doc["role"], user=doc["sub"], tenant=doc["tenant"])
