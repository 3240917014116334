"""Connecting an account from the dashboard: the cloud path for Auth0 refresh tokens.

``vettra vault link`` stores a refresh token a developer already holds; in the cloud the
user connects the account themselves (docs/credentials.md, *Connecting an account*):

1. :func:`start` (``POST /api/vault/connections/{connection}/authorize``, the signed-in
   person) creates a **state**: 32 random bytes (base64url), single-use, alive
   :data:`STATE_TTL_S`, bound to the caller (tenant, user, actor), the connection, the
   scopes, an OIDC ``nonce`` and a PKCE ``code_verifier`` (S256). The store keeps only
   the state's SHA-256 (the document id) and the verifier sealed with the data key, so
   a reader of the store can neither answer the callback nor redeem a code. It answers
   the Auth0 ``/authorize`` URL to send the browser to.
2. :func:`finish` (``GET /api/vault/callback``, the redirect URI: the browser arrives
   from Auth0 with ``code`` and ``state`` and no bearer token, so the state is what
   authenticates it) deletes the state in one transaction (a second use finds nothing),
   refuses an expired one, redeems the code with the verifier through the
   :class:`~vettra.ports.AccountLinker` (confidential client), checks the verified ID
   token's ``nonce`` and that its ``sub`` and tenant are the state's user, and stores the
   refresh token sealed (:func:`vettra.services.vault.sealed_document`, as ``vault
   link`` does) with a ``vault.linked`` audit entry in the same commit. It answers where
   to send the browser: the dashboard's connections view with ``connected=`` or
   ``connect_error=`` (a code from :data:`OUTCOMES`), nothing secret in it.

Every failure after the state was found is audited as ``vault.link_refused`` (code and
why, never a code or token) and changes nothing else. A state that is unknown, reused
or malformed is not audited (it names no one) and is logged at WARNING without values.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from ..domain import audit
from ..domain.actions import parse_rfc3339, rfc3339
from ..domain.credentials import REFRESH_TOKEN
from ..domain.errors import Conflict, NotConfigured, NotFound, ValidationFailed
from ..domain.identity import ADMIN, APPROVER, Principal
from ..ports import AuthorizeRequest, LinkRefused
from . import inventory, vault
from .contention import retried
from .deps import Deps

log = logging.getLogger("vettra.vault")

STATES = "vault_link_states"
LINKED = "vault.linked"
LINK_REFUSED = "vault.link_refused"
STATE_TTL_S = 600
MAX_PENDING = 10  # unexpired states a user may hold at once
STATE_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")  # 32 bytes, base64url without padding
MAX_CODE_LENGTH = 2048
DASHBOARD_VIEW = "/#/connections"
CALLBACK_PATH = "/api/vault/callback"  # the redirect URI's path (adapters/auth0_connect.py)
#: connect_error codes the callback may answer (docs/credentials.md)
OUTCOMES = (
    "invalid-state",  # unknown, already used, or malformed: nothing to bind the answer to
    "expired-state",
    "access-denied",  # the user (or the provider) declined at Auth0
    "authorization-failed",  # Auth0 answered another error to the redirect
    "token-endpoint",  # the code exchange was refused or failed
    "id-token",  # the ID token did not verify, or its nonce is not the state's
    "wrong-user",  # the ID token names another Auth0 user (or tenant) than who started
    "no-refresh-token",  # Auth0 issued no refresh token (offline_access not allowed)
    "unavailable",  # Auth0's keys could not be fetched
    "not-configured",
)


def _state_id(state: str) -> str:
    return "vls_" + hashlib.sha256(state.encode()).hexdigest()[:40]


def _verifier_context(tenant: str, user: str, connection: str, state_id: str) -> str:
    return f"vault-link/{len(tenant)}:{tenant}/{len(user)}:{user}/{connection}/{state_id}"


def _linker(deps: Deps) -> Any:
    linker = getattr(deps, "vault_link", None)
    if linker is None:
        raise NotConfigured(
            "connecting accounts is not configured on this deployment: it needs "
            "VETTRA_AUTH0_ISSUER, VETTRA_AUTH0_CLIENT_ID, the client secret and "
            "VETTRA_VAULT_REDIRECT_URI (docs/credentials.md)"
        )
    return linker


def connections(deps: Deps, principal: Principal) -> dict[str, Any]:
    """The catalogue's connections, each with the user's stored link (never the secret)
    and the scopes the user's active grants name for it."""
    principal.require(APPROVER, ADMIN)
    tenant, user = principal.tenant, principal.user
    links = {v["connection"]: v for v in vault.list_links(deps.store, tenant, user)}
    granted = _granted_scopes(deps, tenant, user)
    out = []
    for name, entry in deps.catalogue.connections().items():
        out.append(
            {
                "connection": name,
                "services": list(entry["services"]),
                "scopes": list(entry["scopes"]),
                "granted_scopes": granted.get(name, []),
                "link": links.pop(name, None),
            }
        )
    for name, link in sorted(links.items()):  # stored with `vault link` for another name
        out.append(
            {
                "connection": name,
                "services": [],
                "scopes": [],
                "granted_scopes": granted.get(name, []),
                "link": link,
            }
        )
    return {"connections": out, "connect": getattr(deps, "vault_link", None) is not None}


def _granted_scopes(deps: Deps, tenant: str, user: str) -> dict[str, list[str]]:
    with deps.store.unit_of_work(readonly=True) as uow:
        docs = uow.docs.list(
            inventory.COLLECTION, inventory.owner(tenant, user), inventory.MAX_LIST
        )
    out: dict[str, list[str]] = {}
    for doc in docs:
        if doc.get("revoked_at") is None:
            scopes = out.setdefault(doc["connection"], [])
            scopes.extend(s for s in doc["scopes"] if s not in scopes)
    return out


def start(
    deps: Deps, principal: Principal, connection: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A single-use state for ``connection`` and the ``/authorize`` URL that carries it."""
    principal.require(APPROVER, ADMIN)
    if not vault.CONNECTION_PATTERN.match(connection):
        raise NotFound(f"no connection {connection[:64]!r}")
    catalogue = deps.catalogue.connections()
    if connection not in catalogue:
        raise NotFound(
            f"the catalogue names no connection {connection!r} (its connections: "
            f"{', '.join(catalogue) or 'none'})"
        )
    linker = _linker(deps)
    tenant, user = principal.tenant, principal.user
    scopes = list(dict.fromkeys(body.get("scopes") or []))
    if not scopes:
        scopes = _granted_scopes(deps, tenant, user).get(connection, [])
    if not scopes:
        raise ValidationFailed(
            f"name the scopes to connect {connection} with (body 'scopes'), or grant an agent "
            f"{connection} first: the connection asks the provider for those scopes"
        )
    now = deps.clock.now()
    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    verifier = secrets.token_urlsafe(64)  # RFC 7636 §4.1: 43..128 unreserved characters
    sid = _state_id(state)
    expires = now + timedelta(seconds=STATE_TTL_S)
    doc = {
        "tenant": tenant,
        "user": user,
        "actor": principal.actor,
        "connection": connection,
        "scopes": scopes,
        "nonce": nonce,
        "verifier": deps.keys.seal_secret(
            verifier.encode(), context=_verifier_context(tenant, user, connection, sid)
        ),
        "created_at": rfc3339(now),
        "expires_at": rfc3339(expires),
    }
    url = linker.authorize_url(
        AuthorizeRequest(
            state=state, nonce=nonce, code_verifier=verifier, connection=connection, scopes=scopes
        )
    )
    owner = vault.owner(tenant, user)
    with deps.store.unit_of_work() as uow:
        live = 0
        for held in uow.docs.list(STATES, owner, 100):
            if parse_rfc3339(held["expires_at"]) <= now:
                uow.docs.delete(STATES, held["state_id"])
            else:
                live += 1
        if live >= MAX_PENDING:
            raise Conflict(
                f"{MAX_PENDING} connections are being made already; finish one, or wait "
                f"{STATE_TTL_S // 60} minutes for them to expire"
            )
        uow.docs.create(STATES, sid, {**doc, "state_id": sid}, owner=owner)
        uow.commit()
    return {
        "authorize_url": url,
        "expires_at": rfc3339(expires),
        "connection": connection,
        "scopes": scopes,
        "redirect_uri": linker.redirect_uri,
    }


def _location(**params: str) -> str:
    return f"{DASHBOARD_VIEW}?{urlencode(params)}"


def _consume(deps: Deps, state: str) -> dict[str, Any] | None:
    """The state's document, deleted in the same commit: only one caller ever gets it.
    A store that refuses a contended transaction (Firestore) is asked again
    (:func:`~vettra.services.contention.retried`): by then the winner's delete has
    committed and the state is gone."""
    sid = _state_id(state)

    def take() -> dict[str, Any] | None:
        with deps.store.unit_of_work() as uow:
            doc = uow.docs.get(STATES, sid)
            if doc is None:
                return None
            uow.docs.delete(STATES, sid)
            uow.commit()
        return dict(doc)

    return retried(
        take, what="consume a connect state", retry_if=lambda exc: isinstance(exc, Conflict)
    )


def _record(deps: Deps, kind: str, doc: dict[str, Any], data: dict[str, Any], uow: Any) -> None:
    uow.audit.record(
        audit.AuditEvent(
            type=kind,
            chain=doc["tenant"],
            actor=doc["actor"],
            at=rfc3339(deps.clock.now()),
            user=doc["user"],
            data={"connection": doc["connection"], **data},
        )
    )


def _refused(deps: Deps, doc: dict[str, Any], code: str, why: str) -> str:
    with deps.store.unit_of_work() as uow:
        _record(deps, LINK_REFUSED, doc, {"refusal": code, "why": why[:300]}, uow)
        uow.commit()
    log.warning("connecting %s refused: %s", doc["connection"], code)
    return _location(connect_error=code, connection=doc["connection"])


def finish(
    deps: Deps,
    *,
    state: str | None,
    code: str | None,
    error: str | None,
) -> str:
    """Handle the redirect from Auth0; the dashboard location to send the browser to."""
    if not state or not STATE_PATTERN.match(state):
        log.warning("vault callback without a well-formed state")
        return _location(connect_error="invalid-state")
    doc = _consume(deps, state)
    if doc is None:
        log.warning("vault callback with an unknown or used state")
        return _location(connect_error="invalid-state")
    now = deps.clock.now()
    if parse_rfc3339(doc["expires_at"]) <= now:
        return _refused(deps, doc, "expired-state", f"the state expired at {doc['expires_at']}")
    if error is not None:
        shown = error if re.match(r"^[a-z_]{1,40}$", error) else "other"
        outcome = "access-denied" if error == "access_denied" else "authorization-failed"
        return _refused(deps, doc, outcome, f"Auth0 redirected with error {shown}")
    if not code or len(code) > MAX_CODE_LENGTH:
        return _refused(deps, doc, "token-endpoint", "the redirect carried no usable code")
    linker = getattr(deps, "vault_link", None)
    if linker is None:
        return _refused(deps, doc, "not-configured", "connecting accounts is not configured")
    sid = doc["state_id"]
    context = _verifier_context(doc["tenant"], doc["user"], doc["connection"], sid)
    try:
        verifier = deps.keys.open_secret(doc["verifier"], context=context).decode()
    except ValueError:  # sealed by a data key this deployment no longer holds
        return _refused(deps, doc, "invalid-state", "the state's verifier does not open here")
    try:
        account = linker.exchange(code, verifier)
    except LinkRefused as refused:
        return _refused(deps, doc, refused.code, refused.why)
    if account.nonce is None or not secrets.compare_digest(account.nonce, doc["nonce"]):
        return _refused(deps, doc, "id-token", "the ID token's nonce is not this state's")
    if (account.tenant, account.sub) != (doc["tenant"], doc["user"]):
        return _refused(
            deps,
            doc,
            "wrong-user",
            f"the ID token names Auth0 user {account.sub[:128]!r} (tenant "
            f"{account.tenant[:64]!r}), not the user who started: log in to Auth0 as "
            "that user, or link the accounts in Auth0",
        )
    if account.refresh_token is None:
        return _refused(
            deps,
            doc,
            "no-refresh-token",
            "Auth0 issued no refresh token: allow offline access on the API and the "
            "Refresh Token grant on the client",
        )
    key, stored = vault.sealed_document(
        deps.keys,
        now,
        tenant=doc["tenant"],
        user=doc["user"],
        connection=doc["connection"],
        kind=REFRESH_TOKEN,
        secret=account.refresh_token,
        scope=list(doc["scopes"]),
    )
    with deps.store.unit_of_work() as uow:
        uow.docs.put(vault.COLLECTION, key, stored, owner=vault.owner(doc["tenant"], doc["user"]))
        _record(
            deps,
            LINKED,
            doc,
            {"kind": REFRESH_TOKEN, "scopes": list(doc["scopes"]), "via": "authorization_code"},
            uow,
        )
        uow.commit()
    return _location(connected=doc["connection"])
