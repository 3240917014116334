"""``vettra receipt pubkey|verify``: the key of action receipts, and checking one offline.

``receipt verify`` needs nothing but the receipt, the public key (PEM, as ``receipt
pubkey`` prints it, or a JWK Set as ``GET /api/receipts/jwks.json`` serves it) and, to
bind the run to the approval, the arguments file, whose RFC 8785 digest must equal the
receipt's ``args_digest``. Exit codes: 0 valid, 1 invalid (why on stderr), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
HomeOf = Callable[[str | None], Path]


def pubkey(args: argparse.Namespace, home_of: HomeOf) -> int:
    from .adapters.local_keys import public_pem
    from .bootstrap import home_keys
    from .domain import receipts
    from .domain.policy_envelope import key_id

    key = home_keys(home_of(args.home)).receipt_signing_key().public_key()
    if args.jwk:
        print(json.dumps({"keys": [receipts.jwk(key)]}, indent=2))
    else:
        print(f"# receipt key id {key_id(key)}")
        print(public_pem(key), end="")
    return EXIT_OK


def _public_keys(paths: list[str]) -> list[Any]:
    """PEM public keys, or JWK Sets (``GET /api/receipts/jwks.json``), from files."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from joserfc.jwk import OKPKey

    keys: list[Any] = []
    for path in paths:
        before = len(keys)
        data = Path(path).read_bytes()
        if data.lstrip().startswith(b"{"):
            doc = json.loads(data)
            for item in doc.get("keys", [doc]) if isinstance(doc, dict) else []:
                if isinstance(item, dict) and item.get("kty") == "OKP":
                    native = OKPKey.import_key({k: v for k, v in item.items() if k != "d"})
                    keys.append(native.get_op_key("verify"))
        else:
            for block in data.split(b"-----END PUBLIC KEY-----"):
                start = block.find(b"-----BEGIN PUBLIC KEY-----")
                if start < 0:
                    continue
                pem = block[start:] + b"-----END PUBLIC KEY-----\n"
                loaded = serialization.load_pem_public_key(pem)
                if not isinstance(loaded, Ed25519PublicKey):
                    raise ValueError(f"{path}: not an Ed25519 public key")
                keys.append(loaded)
        if len(keys) == before:
            raise ValueError(f"{path}: no Ed25519 public key (PEM or JWK Set) in it")
    return keys


def verify(args: argparse.Namespace, home_of: HomeOf) -> int:
    from .domain import receipts
    from .domain.canonical import loads_strict
    from .domain.errors import VerificationError, VettraError

    try:
        text = args.receipt
        if text == "-":
            text = sys.stdin.read()
        elif os.path.isfile(text):
            text = Path(text).read_text()
        keys = _public_keys(args.pubkey)
        arguments = loads_strict(Path(args.args).read_bytes()) if args.args else None
    except (OSError, ValueError, VettraError) as exc:
        print(f"vettra receipt verify: {getattr(exc, 'detail', exc)}", file=sys.stderr)
        return EXIT_USAGE
    try:
        claims = receipts.verify(
            text.strip(),
            keys,
            now=datetime.now(UTC),
            audience=args.audience,
            arguments=arguments,
            check_expiry=not args.allow_expired,
        )
    except VerificationError as exc:
        print(f"invalid: {exc.detail}", file=sys.stderr)
        return EXIT_INVALID
    bound = "the arguments match args_digest" if arguments is not None else "arguments not checked"
    print(
        f"valid: action {claims['action_id']} ({claims.get('tool')}) {claims.get('decision')} "
        f"for {claims.get('user')}, agent {claims['sub']}, aud {claims['aud']}; {bound}; "
        f"jti {claims['jti']}, expires {datetime.fromtimestamp(claims['exp'], UTC).isoformat()}"
    )
    return EXIT_OK


def add_parsers(sub: Any, home_of: HomeOf) -> None:
    rec = sub.add_parser("receipt", help="the key of action receipts, and verifying one offline")
    rsub = rec.add_subparsers(dest="receipt_cmd", required=True)
    rp = rsub.add_parser("pubkey", help="print the receipt public key (PEM)")
    rp.add_argument("--home")
    rp.add_argument("--jwk", action="store_true", help="as a JWK Set instead of PEM")
    rp.set_defaults(func=lambda a: pubkey(a, home_of))
    rv = rsub.add_parser(
        "verify",
        help="verify a receipt with only the public key",
        description="Exit 0 valid, 1 invalid (why on stderr), 2 bad usage.",
    )
    rv.add_argument("receipt", help="the compact receipt, a file holding it, or '-'")
    rv.add_argument(
        "--pubkey",
        action="append",
        required=True,
        metavar="KEY",
        help="a file with the receipt public key (PEM or JWK Set); repeatable",
    )
    rv.add_argument(
        "--args", help="a JSON file of the arguments about to run: must match args_digest"
    )
    rv.add_argument("--audience", help="the aud this executor answers to")
    rv.add_argument(
        "--allow-expired", action="store_true", help="check an old receipt (an audit, not a run)"
    )
    rv.set_defaults(func=lambda a: verify(a, home_of))
