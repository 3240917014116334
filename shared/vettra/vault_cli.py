"""``vettra vault put|link|list|remove``: what users store for credential releases.

The commands write the sealed secret straight into the home's store (a running
``vettra dev`` on the same home sees it on the next release); they print what was
stored, never the secret. Exit codes: 0 done, 1 nothing stored to remove, 2 bad usage
(unreadable file, bad name).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
MAX_FILE_BYTES = 64 * 1024
HomeOf = Callable[[str | None], Path]


def _read_secret_file(path: str) -> str:
    """A file holding one token (trailing newline allowed); '-' reads stdin."""
    data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1) if path == "-" else Path(path).read_bytes()
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path}: over {MAX_FILE_BYTES} bytes; expected one token")
    try:
        return data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text") from None


def _store(args: argparse.Namespace, home_of: HomeOf) -> tuple[Any, Any]:
    from .bootstrap import home_store, prepare_home

    home = home_of(args.home)
    prepare_home(home)
    return home_store(home)


def _save(
    args: argparse.Namespace, home_of: HomeOf, command: str, kind: str, secret: str, **kw: Any
) -> dict[str, Any] | None:
    """Seal ``secret`` into the home's store; None (and the reason on stderr) if refused."""
    from .services import vault

    keys, store = _store(args, home_of)
    try:
        return vault.store_secret(
            store,
            keys,
            datetime.now(UTC),
            tenant=args.tenant,
            user=args.user,
            connection=args.connection,
            kind=kind,
            secret=secret,
            **kw,
        )
    except ValueError as exc:
        print(f"vettra vault {command}: {exc}", file=sys.stderr)
        return None
    finally:
        store.close()


def _token_from_file(args: argparse.Namespace) -> dict[str, Any]:
    """``--token-file``: the token alone, or OAuth's token response JSON (``access_token``,
    ``token_type``, ``scope``, ``expires_in``/``expires_at``); flags override the file."""
    from .domain.actions import parse_rfc3339

    text = _read_secret_file(args.token_file)
    record: dict[str, Any] = {"access_token": text}
    if text.startswith("{"):
        try:
            doc = json.loads(text)
        except ValueError:
            raise ValueError(f"{args.token_file}: starts like JSON but is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
            raise ValueError(f"{args.token_file}: a JSON token file needs an access_token string")
        record = {"access_token": doc["access_token"], "token_type": doc.get("token_type")}
        if isinstance(doc.get("scope"), str):
            record["scope"] = doc["scope"].split()
        if isinstance(doc.get("expires_in"), int) and doc["expires_in"] > 0:
            record["expires_at"] = datetime.now(UTC) + timedelta(seconds=doc["expires_in"])
        elif isinstance(doc.get("expires_at"), str):
            record["expires_at"] = parse_rfc3339(doc["expires_at"])
    if args.scope:
        record["scope"] = [s for value in args.scope for s in value.split()]
    if args.expires_in is not None:
        if args.expires_in <= 0:
            raise ValueError("--expires-in must be a positive number of seconds")
        record["expires_at"] = datetime.now(UTC) + timedelta(seconds=args.expires_in)
    if args.token_type:
        record["token_type"] = args.token_type
    return record


def store_access_token(
    home: Path, *, tenant: str, user: str, connection: str, record: dict[str, Any]
) -> dict[str, Any]:
    """What ``vault put`` does once it has the token: seal ``record`` (``access_token``,
    ``token_type``, ``scope``, ``expires_at``) into the home's store for the local vault,
    and return its view (never the secret). ``ValueError`` says what was refused."""
    from .adapters.local_vault import token_record
    from .bootstrap import home_store, prepare_home
    from .domain.credentials import ACCESS_TOKEN
    from .services import vault

    secret = token_record(
        record["access_token"],
        token_type=record.get("token_type") or "Bearer",
        scope=record.get("scope"),
        expires_at=record.get("expires_at"),
    )
    prepare_home(home)
    keys, store = home_store(home)
    try:
        return vault.store_secret(
            store,
            keys,
            datetime.now(UTC),
            tenant=tenant,
            user=user,
            connection=connection,
            kind=ACCESS_TOKEN,
            secret=secret,
            scope=record.get("scope"),
            expires_at=record.get("expires_at"),
        )
    finally:
        store.close()


def put(args: argparse.Namespace, home_of: HomeOf) -> int:
    try:
        shown = store_access_token(
            home_of(args.home),
            tenant=args.tenant,
            user=args.user,
            connection=args.connection,
            record=_token_from_file(args),
        )
    except (OSError, ValueError) as exc:
        print(f"vettra vault put: {exc}", file=sys.stderr)
        return EXIT_USAGE
    scope = " ".join(shown["scope"]) if shown["scope"] else "unknown (pass --scope)"
    print(
        f"stored {args.user}'s {args.connection} token in the local vault (sealed with the "
        f"home's data key); scope: {scope}; expires: {shown['expires_at'] or 'not said'}"
    )
    return EXIT_OK


def link(args: argparse.Namespace, home_of: HomeOf) -> int:
    from .adapters.auth0_token_vault import TokenVaultSettings
    from .domain.credentials import REFRESH_TOKEN

    try:
        token = _read_secret_file(args.refresh_token_file)
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"{args.refresh_token_file}: expected one refresh token")
        saved = _save(args, home_of, "link", REFRESH_TOKEN, token, login_hint=args.login_hint)
    except (OSError, ValueError) as exc:
        print(f"vettra vault link: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if saved is None:
        return EXIT_USAGE
    print(
        f"linked {args.user}'s Auth0 refresh token for {args.connection} (sealed with the "
        "home's data key); releases exchange it through Auth0 Token Vault"
    )
    try:
        configured = TokenVaultSettings.from_env(os.environ) is not None
    except ValueError:
        configured = False
    if not configured:
        print(
            "note: VETTRA_AUTH0_ISSUER, VETTRA_AUTH0_CLIENT_ID and VETTRA_AUTH0_CLIENT_SECRET "
            "are not all set here; `vettra dev` needs them to exchange it",
            file=sys.stderr,
        )
    return EXIT_OK


def list_(args: argparse.Namespace, home_of: HomeOf) -> int:
    from .services import vault

    keys, store = _store(args, home_of)
    try:
        links = vault.list_links(store, args.tenant, args.user)
    finally:
        store.close()
    if not links:
        print(f"{args.user} has stored nothing")
    for item in links:
        extra = f" scope={' '.join(item['scope'])}" if item.get("scope") else ""
        print(f"{item['connection']}\t{item['kind']}\tstored {item['stored_at']}{extra}")
    return EXIT_OK


def remove(args: argparse.Namespace, home_of: HomeOf) -> int:
    from .services import vault

    keys, store = _store(args, home_of)
    try:
        gone = vault.remove(store, args.tenant, args.user, args.connection)
    except ValueError as exc:
        print(f"vettra vault remove: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()
    if not gone:
        print(f"{args.user} has nothing stored for {args.connection}", file=sys.stderr)
        return EXIT_INVALID
    print(f"removed {args.user}'s {args.connection} credential")
    return EXIT_OK


def add_parsers(sub: Any, default_tenant: str, home_of: HomeOf) -> None:
    """``vettra vault …`` (and ``vettra receipt …``, :mod:`vettra.receipt_cli`)."""
    vault = sub.add_parser("vault", help="store users' credentials for credential releases")
    vsub = vault.add_subparsers(dest="vault_cmd", required=True)

    def names(p: argparse.ArgumentParser, *, connection: bool = True) -> None:
        p.add_argument("--home")
        p.add_argument("--tenant", default=default_tenant)
        p.add_argument("--user", required=True, help="the user the credential belongs to")
        if connection:
            p.add_argument(
                "--connection", required=True, help="Auth0 connection, e.g. google-oauth2"
            )

    vp = vsub.add_parser("put", help="store a provider access token in the local vault")
    names(vp)
    vp.add_argument(
        "--token-file",
        required=True,
        help="the token alone, or an OAuth token response (JSON); '-' reads stdin",
    )
    vp.add_argument("--scope", action="append", help="scopes the token carries (space-separated)")
    vp.add_argument("--expires-in", type=int, help="seconds until the token expires")
    vp.add_argument("--token-type", help="default Bearer")
    vp.set_defaults(func=lambda a: put(a, home_of))

    vl = vsub.add_parser("link", help="store a user's Auth0 refresh token for Token Vault")
    names(vl)
    vl.add_argument("--refresh-token-file", required=True, help="'-' reads stdin")
    vl.add_argument("--login-hint", help="which of the user's accounts on the connection")
    vl.set_defaults(func=lambda a: link(a, home_of))

    vls = vsub.add_parser("list", help="what a user stored (never the secrets)")
    names(vls, connection=False)
    vls.set_defaults(func=lambda a: list_(a, home_of))

    vr = vsub.add_parser("remove", help="forget a user's stored credential for a connection")
    names(vr)
    vr.set_defaults(func=lambda a: remove(a, home_of))
