"""The ``vettra`` command line (docs/api.md §CLI).

vettra dev     [--home DIR] [--host H] [--port P] [limits: --max-connections N ...]
vettra token   --home DIR --role agent|approver|admin --sub ID [--user UID] [--ttl S]
vettra policy  sign FILE [--home DIR | --key PEM] [-o OUT]
vettra policy  verify FILE [--home DIR | --pubkey PEM ...]
vettra policy  pubkey [--home DIR]
vettra policy  show [--home DIR] [--tenant T] [--envelope]
vettra audit   export [--home DIR] [-o FILE]
vettra audit   verify FILE --pubkey KEY [--checkpoint NOTE] [--require-covered] [--home DIR]
vettra audit   pubkey [--all] [--home DIR]
vettra keys    rotate audit-hmac|checkpoint|data [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
_ED25519_ONLY = "(policy bundles are signed with Ed25519)"
SWITCH_INTERVAL_S = 0.0005


def _home(value: str | None) -> Path:
    from .bootstrap import DEFAULT_HOME

    return Path(value or os.environ.get("VETTRA_HOME") or DEFAULT_HOME).expanduser()


def cmd_dev(args: argparse.Namespace) -> int:
    """Serve the ASGI app with uvicorn in this process (one worker: the store, timers and
    event bus live here). SIGINT/SIGTERM: streams end, requests in flight finish, then the
    runtime closes; exit 0."""
    from . import logs
    from .bootstrap import Config, HomeInUse, bootstrap
    from .entrypoints.asgi import AsgiApp
    from .entrypoints.server import Limits, build

    logs.configure(args.log_level)
    try:
        limits = Limits.from_env(
            max_connections=args.max_connections,
            keep_alive_s=args.keep_alive_timeout,
            head_timeout_s=args.head_timeout,
            max_header_bytes=args.max_header_bytes,
            max_body_bytes=args.max_body_bytes,
            threads=args.threads,
            max_streams_per_user=args.max_streams_per_user,
        )
    except ValueError as exc:
        print(f"vettra dev: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = Config(home=_home(args.home), log_level=args.log_level)
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        print(
            f"vettra dev: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
            "stop what holds it or pick another port with --port",
            file=sys.stderr,
        )
        return EXIT_FAIL
    try:
        runtime = bootstrap(config)
    except HomeInUse as exc:
        sock.close()
        print(f"vettra dev: {exc}", file=sys.stderr)
        return EXIT_FAIL
    runtime.deps.settings["events_max_streams"] = limits.max_streams_per_user
    asgi = AsgiApp(
        runtime.app,
        max_body_bytes=limits.max_body_bytes,
        threads=limits.threads,
        max_header_bytes=limits.max_header_bytes,
    )
    server, _ = build(asgi, args.host, args.port, limits, log_level="warning")
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    home = config.home
    vettra = _this_command()

    # Until uvicorn installs its own handlers (and after: it re-raises a caught signal
    # once stopped), a signal lands here: stop, never the default handler's abrupt exit,
    # so the runtime still closes (timers, store, home lock).
    def stop(*_: Any) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runtime.start()
    try:

        def ready() -> None:
            print(f"Vettra is running at {url}  (home: {home})", flush=True)
            print("Get tokens in another shell:", flush=True)
            print(
                f"  {vettra} token --home {shlex.quote(str(home))} --role agent --sub my-agent --user alice",
                flush=True,
            )
            print(
                f"  {vettra} token --home {shlex.quote(str(home))} --role approver --sub alice",
                flush=True,
            )
            print(f"Try: curl {url}/health", flush=True)

        _run_until_stopped(server, ready, sock)
    finally:
        asgi.close()
        runtime.close()
    return EXIT_OK if server.started or server.should_exit else EXIT_FAIL


def _listen(host: str, port: int) -> Any:
    """Bind the listening socket before anything else, so a busy port is one clear line."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (without it every
    # answer waits ~40 ms for a delayed ACK)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(socket.SOMAXCONN)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _this_command() -> str:
    """How to run this very ``vettra`` again from another shell: the bare name when it is
    the one on PATH, else its full path (``make dev`` runs ``.venv/bin/vettra``)."""
    import shutil

    me = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] else None
    on_path = shutil.which("vettra")
    if me is not None and on_path and Path(on_path).resolve() == me:
        return "vettra"
    if me is not None and me.name == "vettra" and me.exists():
        return shlex.quote(str(me))
    return f"{shlex.quote(sys.executable)} -m vettra.cli"


def _run_until_stopped(server: Any, ready: Any, sock: Any) -> None:
    import asyncio

    async def main() -> None:
        async def announce() -> None:
            while not server.started and not server.should_exit:
                await asyncio.sleep(0.02)
            if server.started:
                ready()

        watcher = asyncio.ensure_future(announce())
        await server.serve(sockets=[sock])
        watcher.cancel()

    from .entrypoints.server import loop_factory

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        runner.run(main())


def cmd_token(args: argparse.Namespace) -> int:
    from .bootstrap import home_identity

    identity = home_identity(_home(args.home))
    try:
        token = identity.issue(
            role=args.role, sub=args.sub, user=args.user, tenant=args.tenant, ttl_s=args.ttl
        )
    except ValueError as exc:
        print(f"vettra token: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(token)
    return EXIT_OK


def _read_json(path: str) -> Any:
    from .domain.canonical import loads_strict

    data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    return loads_strict(data)


def cmd_policy(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from .adapters.local_keys import public_pem
    from .bootstrap import home_keys
    from .domain.errors import VettraError
    from .domain.policy_envelope import key_id, sign_bundle, verify_bundle

    try:
        if args.policy_cmd == "pubkey":
            key = home_keys(_home(args.home)).policy_signing_key().public_key()
            print(f"# key id {key_id(key)}")
            print(public_pem(key), end="")
            return EXIT_OK
        if args.policy_cmd == "show":
            return _policy_show(args)
        doc = _read_json(args.file)
        if args.policy_cmd == "sign":
            if args.key:
                loaded = serialization.load_pem_private_key(
                    Path(args.key).read_bytes(), password=None
                )
                if not isinstance(loaded, Ed25519PrivateKey):
                    raise ValueError(f"{args.key} is not an Ed25519 private key {_ED25519_ONLY}")
                private = loaded
            else:
                private = home_keys(_home(args.home)).policy_signing_key()
            payload = doc.get("payload", doc) if isinstance(doc, dict) else doc
            out = json.dumps(sign_bundle(payload, private), indent=2, ensure_ascii=False) + "\n"
            if args.output:
                Path(args.output).write_text(out)
            else:
                sys.stdout.write(out)
            return EXIT_OK
        if args.pubkey:
            keys: dict[str, Ed25519PublicKey] = {}
            for pem in args.pubkey:
                public = serialization.load_pem_public_key(Path(pem).read_bytes())
                if not isinstance(public, Ed25519PublicKey):
                    raise ValueError(f"{pem} is not an Ed25519 public key {_ED25519_ONLY}")
                keys[key_id(public)] = public
        else:
            keys = home_keys(_home(args.home)).policy_trusted_keys()
        policy = verify_bundle(doc, keys)
        print(f"valid: policy {policy.policy_id} version {policy.version} digest {policy.digest}")
        return EXIT_OK
    except VettraError as exc:
        print(f"invalid: {exc.detail}", file=sys.stderr)
        for err in exc.errors:
            print(f"  {err.field}: {err.message}", file=sys.stderr)
        return EXIT_FAIL
    except (OSError, ValueError) as exc:
        print(f"vettra policy: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _policy_show(args: argparse.Namespace) -> int:
    """Print the active payload (to edit, bump ``version`` and sign), verified first."""
    from .bootstrap import DB_FILE, home_store
    from .domain.policy_envelope import verify_bundle

    home = _home(args.home)
    if not (home / DB_FILE).exists():
        print(
            f"vettra policy: {home} has no store yet; run `vettra dev --home {home}` once",
            file=sys.stderr,
        )
        return EXIT_FAIL
    keys, store = home_store(home)
    try:
        with store.unit_of_work(readonly=True) as uow:
            envelope = uow.policies.active(args.tenant)
    finally:
        store.close()
    if envelope is None:
        print(f"vettra policy: tenant {args.tenant!r} has no active policy", file=sys.stderr)
        return EXIT_FAIL
    verify_bundle(envelope, keys.policy_trusted_keys())  # what is shown is what is in force
    sys.stdout.write(
        json.dumps(envelope if args.envelope else envelope["payload"], indent=2, ensure_ascii=False)
        + "\n"
    )
    return EXIT_OK


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit_cli import export, pubkey, verify

    return {"export": export, "verify": verify, "pubkey": pubkey}[args.audit_cmd](args, _home)


def cmd_keys(args: argparse.Namespace) -> int:
    """Rotate a key of the home; older keys stay valid for verification."""
    from .bootstrap import home_keys

    keys = home_keys(_home(args.home))
    if args.which == "audit-hmac":
        key_id = keys.rotate_audit_hmac_key()
        print(
            f"new audit HMAC key {key_id}; earlier key ids still verify. Restart `vettra dev` to seal with it."
        )
    elif args.which == "data":
        key_id = keys.rotate_data_key()
        print(
            f"new data key {key_id}; secrets sealed with earlier keys still open. "
            "Restart `vettra dev` to seal with it."
        )
    else:
        keys.rotate_checkpoint_key()
        print(
            "new checkpoint signing key; the previous public key stays published under 'previous'."
        )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from .domain.identity import DEFAULT_TENANT, ROLES

    parser = argparse.ArgumentParser(
        prog="vettra", description="Authorization layer for AI agents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="run every endpoint locally on the embedded default")
    dev.add_argument("--home", help="state directory (default ~/.vettra or $VETTRA_HOME)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    limits = dev.add_argument_group(
        "limits (each also read from the VETTRA_* variable named; README)"
    )
    limits.add_argument(
        "--max-connections",
        type=int,
        help="open connections; beyond, 503 + Retry-After (VETTRA_MAX_CONNECTIONS, default 4096)",
    )
    limits.add_argument(
        "--keep-alive-timeout",
        type=float,
        help="seconds an idle connection stays open (VETTRA_KEEP_ALIVE_TIMEOUT, default 5)",
    )
    limits.add_argument(
        "--head-timeout",
        type=float,
        help="seconds a request head may take to arrive; "
        "then 408 (VETTRA_HEAD_TIMEOUT, default 10)",
    )
    limits.add_argument(
        "--max-header-bytes",
        type=int,
        help="request line + headers; beyond, 431 (VETTRA_MAX_HEADER_BYTES, default 16384)",
    )
    limits.add_argument(
        "--max-body-bytes",
        type=int,
        help="request body; beyond, 413 (VETTRA_MAX_BODY_BYTES, default 262144)",
    )
    limits.add_argument(
        "--threads", type=int, help="worker threads for blocking calls (VETTRA_THREADS, default 16)"
    )
    limits.add_argument(
        "--max-streams-per-user",
        type=int,
        help="open /api/events streams per user; "
        "beyond, 429 (VETTRA_MAX_STREAMS_PER_USER, default 10)",
    )
    dev.set_defaults(func=cmd_dev)

    tok = sub.add_parser(
        "token", help="print a bearer token accepted by `vettra dev` with the same home"
    )
    tok.add_argument("--home")
    tok.add_argument("--role", required=True, choices=ROLES)
    tok.add_argument("--sub", required=True, help="who the token names")
    tok.add_argument("--user", help="for agents: the user it acts for")
    tok.add_argument("--tenant", default=DEFAULT_TENANT)
    tok.add_argument("--ttl", type=int, default=12 * 3600, help="seconds (default 12 h)")
    tok.set_defaults(func=cmd_token)

    pol = sub.add_parser("policy", help="sign and verify policy bundles")
    psub = pol.add_subparsers(dest="policy_cmd", required=True)
    sign = psub.add_parser("sign", help="sign a policy payload (or re-sign an envelope's payload)")
    sign.add_argument("file")
    sign.add_argument("--home")
    sign.add_argument("--key", help="Ed25519 private key (PEM) instead of the home's key")
    sign.add_argument("-o", "--output")
    ver = psub.add_parser("verify", help="verify a signed policy bundle")
    ver.add_argument("file")
    ver.add_argument("--home")
    ver.add_argument(
        "--pubkey", action="append", help="trusted Ed25519 public key (PEM); repeatable"
    )
    pk = psub.add_parser("pubkey", help="print the home's policy public key and key id")
    pk.add_argument("--home")
    show = psub.add_parser(
        "show", help="print the active policy payload (edit it, bump version, sign)"
    )
    show.add_argument("--home")
    show.add_argument("--tenant", default=DEFAULT_TENANT)
    show.add_argument(
        "--envelope", action="store_true", help="the signed envelope, not just its payload"
    )
    pol.set_defaults(func=cmd_policy)

    from .audit_cli import add_parser as add_audit_parser

    aud = add_audit_parser(sub, DEFAULT_TENANT)
    aud.set_defaults(func=cmd_audit)

    keys = sub.add_parser("keys", help="rotate the home's audit keys")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)
    rot = ksub.add_parser(
        "rotate", help="start using a new key; old ones stay trusted for verification"
    )
    rot.add_argument(
        "which",
        choices=["audit-hmac", "checkpoint", "data"],
        help="data: the key sealing stored secrets (TOTP)",
    )
    rot.add_argument("--home")
    keys.set_defaults(func=cmd_keys)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
