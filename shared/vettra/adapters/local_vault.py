"""The local vault of the embedded default: provider tokens a user stored themselves.

``vettra vault put --user U --connection C --token-file F`` seals a provider access
token (AES-256-GCM with the home's data key, :meth:`KeyStore.seal_secret`) into the
store; at release the service opens it and hands the record here. The record is the
JSON of :func:`token_record`, sealed whole, so its scope and expiry are as tamper-proof
as the token. Nothing is fetched: a stored token is released as stored, under the
same rules as an Auth0 Token Vault exchange (docs/credentials.md).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..domain.actions import parse_rfc3339, rfc3339
from ..domain.credentials import ACCESS_TOKEN, NotLinked, ProviderToken
from ..ports import TokenVault

MAX_TOKEN_BYTES = 16 * 1024


def token_record(
    access_token: str,
    *,
    token_type: str = "Bearer",
    scope: list[str] | tuple[str, ...] | None = None,
    expires_at: datetime | None = None,
) -> str:
    """The sealed plaintext of one stored provider token (JSON)."""
    if not access_token or len(access_token.encode()) > MAX_TOKEN_BYTES:
        raise ValueError(f"a token must be 1..{MAX_TOKEN_BYTES} bytes")
    if any(c.isspace() for c in access_token):
        raise ValueError("a token holds no whitespace; is the file more than the token?")
    return json.dumps(
        {
            "access_token": access_token,
            "token_type": token_type,
            "scope": list(scope) if scope is not None else None,
            "expires_at": rfc3339(expires_at),
        },
        separators=(",", ":"),
    )


class LocalVault(TokenVault):
    """:class:`TokenVault` over tokens stored with ``vettra vault put``."""

    subject_kind = ACCESS_TOKEN

    def exchange(
        self, subject: str, connection: str, *, login_hint: str | None = None
    ) -> ProviderToken:
        try:
            record: Any = json.loads(subject)
            token = record["access_token"]
            scope = record.get("scope")
            return ProviderToken(
                access_token=str(token),
                token_type=str(record.get("token_type") or "Bearer"),
                expires_at=parse_rfc3339(record.get("expires_at")),
                scope=tuple(scope) if isinstance(scope, list) else None,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise NotLinked(
                connection,
                f"the token stored for {connection} is not readable; store it again with "
                "`vettra vault put`",
            ) from None
