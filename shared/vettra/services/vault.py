"""What users store for their connections: sealed, one document per (user, connection).

``vettra vault link`` stores an Auth0 refresh token (exchanged by Auth0 Token Vault at
release), ``vettra vault put`` a provider access token (the local vault). Either is
sealed with the key store's data key (:meth:`SecretSealer.seal_secret`, AES-256-GCM
locally), its associated data naming tenant, user, connection and kind
(:func:`~vettra.domain.credentials.secret_context`), so the store alone never yields
one and a sealed value copied to another document does not open. Views of a stored
link (``vettra vault list``) carry the kind and dates, never the secret.

These functions take the store and the sealer rather than :class:`Deps`: the CLI calls
them on a home without a running server. They write no audit entry (the running
server sequences the audit chain; the first release of a link is audited).
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from ..domain.actions import rfc3339
from ..domain.canonical import canonical_json
from ..domain.credentials import SECRET_KINDS, secret_context
from ..ports import SecretSealer, Store

COLLECTION = "vault_credentials"
CONNECTION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
NAME_PATTERN = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
MAX_SECRET_BYTES = 16 * 1024
MAX_LIST = 200


def owner(tenant: str, user: str) -> str:
    return f"{tenant}:{user}"


def doc_id(tenant: str, user: str, connection: str) -> str:
    """One document per user and connection: a later link or put replaces the earlier."""
    return "vc_" + hashlib.sha256(canonical_json([tenant, user, connection])).hexdigest()[:32]


def check_names(tenant: str, user: str, connection: str) -> None:
    """``ValueError`` saying what is wrong with a tenant, user or connection name."""
    for what, value in (("tenant", tenant), ("user", user)):
        if not NAME_PATTERN.match(value):
            raise ValueError(f"{what} must be 1..128 printable characters, found {value!r:.40}")
    if not CONNECTION_PATTERN.match(connection):
        raise ValueError(
            "connection must be an Auth0 connection name (letters, digits, '.', '_', '-'; "
            f"at most 64), found {connection!r:.70}"
        )


def store_secret(
    store: Store,
    sealer: SecretSealer,
    now: datetime,
    *,
    tenant: str,
    user: str,
    connection: str,
    **secret: Any,
) -> dict[str, Any]:
    """Seal a secret and store it for (tenant, user, connection); return its view.
    ``secret`` is :func:`sealed_document`'s ``kind``, ``secret`` and optional
    ``login_hint``, ``scope`` and ``expires_at``."""
    key, doc = sealed_document(
        sealer, now, tenant=tenant, user=user, connection=connection, **secret
    )
    with store.unit_of_work() as uow:
        uow.docs.put(COLLECTION, key, doc, owner=owner(tenant, user))
        uow.commit()
    return view(doc)


def sealed_document(
    sealer: SecretSealer,
    now: datetime,
    *,
    tenant: str,
    user: str,
    connection: str,
    kind: str,
    secret: str,
    login_hint: str | None = None,
    scope: list[str] | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(document id, document)`` of ``secret`` sealed for (tenant, user, connection), for
    a caller that puts it in a unit of work of its own (with its audit entry)."""
    check_names(tenant, user, connection)
    if kind not in SECRET_KINDS:
        raise ValueError(f"kind must be one of {', '.join(SECRET_KINDS)}, found {kind!r}")
    if not secret or len(secret.encode()) > MAX_SECRET_BYTES:
        raise ValueError(f"the secret must be 1..{MAX_SECRET_BYTES} bytes")
    if login_hint is not None and not NAME_PATTERN.match(login_hint):
        raise ValueError("login_hint must be 1..128 printable characters")
    sealed = sealer.seal_secret(
        secret.encode(), context=secret_context(tenant, user, connection, kind)
    )
    doc = {
        "tenant": tenant,
        "user": user,
        "connection": connection,
        "kind": kind,
        "sealed": sealed,
        "login_hint": login_hint,
        "scope": scope,  # what the user said the stored token carries (shown, not trusted)
        "expires_at": rfc3339(expires_at),
        "stored_at": rfc3339(now),
    }
    return doc_id(tenant, user, connection), doc


def stored(uow: Any, tenant: str, user: str, connection: str) -> dict[str, Any] | None:
    """The stored document of (tenant, user, connection), sealed, or None."""
    doc = uow.docs.get(COLLECTION, doc_id(tenant, user, connection))
    if doc is None or (doc.get("tenant"), doc.get("user"), doc.get("connection")) != (
        tenant,
        user,
        connection,
    ):
        return None
    return dict(doc)


def open_secret(sealer: SecretSealer, doc: dict[str, Any]) -> str:
    """The plaintext of a stored document; ``ValueError`` if it does not open here."""
    plain = sealer.open_secret(
        doc["sealed"],
        context=secret_context(doc["tenant"], doc["user"], doc["connection"], doc["kind"]),
    )
    return plain.decode("utf-8")


def view(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored link without its secret."""
    return {
        "connection": doc["connection"],
        "user": doc["user"],
        "kind": doc["kind"],
        "login_hint": doc.get("login_hint"),
        "scope": doc.get("scope"),
        "expires_at": doc.get("expires_at"),
        "stored_at": doc.get("stored_at"),
    }


def list_links(store: Store, tenant: str, user: str) -> list[dict[str, Any]]:
    with store.unit_of_work(readonly=True) as uow:
        docs = uow.docs.list(COLLECTION, owner(tenant, user), MAX_LIST)
    return [view(d) for d in docs]


def remove(store: Store, tenant: str, user: str, connection: str) -> bool:
    """Forget the stored secret of (tenant, user, connection); False if there was none."""
    check_names(tenant, user, connection)
    with store.unit_of_work() as uow:
        if stored(uow, tenant, user, connection) is None:
            return False
        uow.docs.delete(COLLECTION, doc_id(tenant, user, connection))
        uow.commit()
    return True
