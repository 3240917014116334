"""Secrets sealed into a test's store as ``vettra vault put`` / ``vault link`` store them.

One helper for every test that needs a provider token (or an Auth0 refresh token) on
file before it asks for a credential: the deps' own store, keys and clock.
"""

from __future__ import annotations

from typing import Any

from vettra.domain.credentials import ACCESS_TOKEN
from vettra.domain.identity import DEFAULT_TENANT
from vettra.services import vault
from vettra.services.deps import Deps


def store_token(
    deps: Deps,
    connection: str,
    secret: str,
    *,
    user: str = "alice",
    tenant: str = DEFAULT_TENANT,
    kind: str = ACCESS_TOKEN,
) -> dict[str, Any]:
    """Seal ``secret`` (a provider token record, or a refresh token with ``kind``) for
    (tenant, user, connection) now; returns the stored secret's view."""
    return vault.store_secret(
        deps.store,
        deps.keys,
        deps.clock.now(),
        tenant=tenant,
        user=user,
        connection=connection,
        kind=kind,
        secret=secret,
    )
