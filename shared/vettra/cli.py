"""The ``vettra`` command line (docs/api.md §CLI).

vettra dev     [--home DIR] [--host H] [--port P] [--backend local|firestore [--project ID]]
               [limits: --max-connections N ...]
vettra token   --home DIR --role agent|approver|admin --sub ID [--user UID] [--ttl S]
vettra link    --home DIR --sub USER [--role approver|admin] [--url BASE]
vettra policy  sign FILE [--home DIR | --key PEM] [-o OUT]
vettra policy  verify FILE [--home DIR | --pubkey PEM ...]
vettra policy  pubkey [--home DIR]
vettra policy  show [--home DIR] [--tenant T] [--envelope]
vettra audit   export [--home DIR] [--backend firestore --project ID] [-o FILE]
vettra audit   verify FILE --pubkey KEY [--checkpoint NOTE] [--require-covered] [--home DIR]
vettra audit   pubkey [--all] [--home DIR]
vettra keys    rotate audit-hmac|checkpoint|data [--home DIR]
vettra keys    export-cloud-secrets (--fresh | --home DIR | --from DIR [--rotate WHICH]) --out DIR
vettra vault   put|link|list|remove --user U [--connection C] ...   (vault_cli.py)
vettra receipt pubkey [--home DIR] | verify RECEIPT --pubkey KEY [--args FILE]   (receipt_cli.py)
vettra mcp-proxy [--url URL] [--server NAME] ... -- <upstream MCP server command>  (agent_cli)
vettra demo    [--url URL] [--home DIR]   (agent_cli)

``pip install vettra`` installs the SDK alone: ``mcp-proxy`` (with ``vettra[mcp]``) and
``demo`` (with tokens in the environment) run with it. A command that needs an extra
that is not installed says so in one line, naming it (``pip install 'vettra[server]'``),
and exits 2.
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


def _home(value: str | None) -> Path:
    from .bootstrap import DEFAULT_HOME

    return Path(value or os.environ.get("VETTRA_HOME") or DEFAULT_HOME).expanduser()


def cmd_dev(args: argparse.Namespace) -> int:
    """Serve the ASGI app with uvicorn in this process (one worker: the store, timers and
    event bus live here). SIGINT/SIGTERM: streams end, requests in flight finish, then the
    runtime closes; exit 0."""
    from . import logs
    from .bootstrap import BackendUnavailable, Config, HomeInUse, bootstrap
    from .entrypoints.dashboard import StaticSite, WithDashboard, web_root
    from .entrypoints.server import Limits, asgi_app, build

    logs.configure(args.log_level)
    try:
        # each limit flag stores under its Limits field's name (Limits.ENV lists them)
        limits = Limits.from_env(**{name: getattr(args, name) for name in Limits.ENV})
    except ValueError as exc:
        print(f"vettra dev: {exc}", file=sys.stderr)
        return EXIT_USAGE
    config = Config.from_env()
    config.home, config.log_level = _home(args.home), args.log_level
    config.backend = args.backend or config.backend
    config.project = args.project or config.project
    try:
        sock = _listen(args.host, args.port)
    except OSError as exc:
        print(
            f"vettra dev: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}; "
            "stop what holds it or pick another port with --port",
            file=sys.stderr,
        )
        return EXIT_FAIL
    bound_host, bound_port = sock.getsockname()[:2]
    config.public_url = f"http://{bound_host}:{bound_port}"
    dashboard_url = _dashboard_base(args.host, bound_port)
    if not (os.environ.get("VETTRA_ORIGIN") or os.environ.get("VETTRA_RP_ID")):
        # passkeys: the browser's origin is the dashboard's (WebAuthn's RP id "localhost")
        config.extra.setdefault("origin", dashboard_url)
    try:
        runtime = bootstrap(config)
    except (HomeInUse, BackendUnavailable) as exc:
        sock.close()
        print(f"vettra dev: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except ValueError as exc:  # an unknown backend named in VETTRA_BACKEND
        sock.close()
        print(f"vettra dev: {exc}", file=sys.stderr)
        return EXIT_USAGE
    runtime.deps.settings["events_max_streams"] = limits.max_streams_per_user
    asgi = asgi_app(runtime.app, limits)
    site = StaticSite.load(web_root())
    front = WithDashboard(asgi, site)
    server, _ = build(asgi, args.host, args.port, limits, log_level="warning", front=front)
    url = f"http://{bound_host}:{bound_port}"
    home = config.home
    vettra = _this_command()
    approver = _first_approver(home, args.approver)

    # Until uvicorn installs its own handlers (and after: it re-raises a caught signal
    # once stopped), a signal lands here: stop, never the default handler's abrupt exit,
    # so the runtime still closes (timers, store, home lock).
    def stop(*_: Any) -> None:
        server.should_exit = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    runtime.start()
    try:
        sessions = runtime.deps.dashboard_sessions  # None on cloud keys: no sign-in links
        link = sessions.create_link(approver) if sessions is not None else None

        def ready() -> None:
            _write_running(home, url, dashboard_url)
            where = f"home: {home}"
            if config.backend != "local":
                where += f"; {config.backend} project {config.project}"
            print(f"Vettra is running at {url}  ({where})", flush=True)
            if site.root is None:
                print("The dashboard's files were not found (set VETTRA_WEB_DIR).", flush=True)
            elif link is not None:
                print(
                    f"Dashboard: sign in as {approver} with this one-time link "
                    f"(valid {sessions.link_ttl_s // 60} min, one use):",
                    flush=True,
                )
                print(f"  {dashboard_url}{link['path']}", flush=True)
                print(
                    f"  another: {vettra} link --home {shlex.quote(str(home))} --sub {approver}",
                    flush=True,
                )
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
        _clear_running(home)
        asgi.close()
        runtime.close()
    return EXIT_OK if server.started or server.should_exit else EXIT_FAIL


RUNNING_FILE = "dev-server.json"
APPROVER_FILE = "first-approver"
DEFAULT_APPROVER = "alice"  # the user the banner's example agent token acts for


def _dashboard_base(host: str, port: int) -> str:
    """The dashboard's URL: ``localhost`` for a loopback or wildcard bind, because WebAuthn
    refuses an IP address as its relying party (passkeys work at ``localhost`` only)."""
    if host in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "::", ""):
        return f"http://localhost:{port}"
    return f"http://{host}:{port}"


def _first_approver(home: Path, given: str | None) -> str:
    """The user ``vettra dev`` prints a sign-in link for: ``--approver``, else the one the
    home recorded at its first start (``first-approver``), else alice, recorded now."""
    from .adapters.local_files import private_file

    path = home / APPROVER_FILE
    if given:
        if not path.exists():
            private_file(path).write_text(given + "\n")
        return given
    if path.exists():
        recorded = path.read_text().strip()
        if recorded:
            return recorded
    private_file(path).write_text(DEFAULT_APPROVER + "\n")
    return DEFAULT_APPROVER


def _write_running(home: Path, url: str, dashboard_url: str) -> None:
    """Where this server answers, for ``vettra link --home`` (removed at exit)."""
    from .adapters.local_files import private_file

    private_file(home / RUNNING_FILE).write_text(
        json.dumps({"url": url, "dashboard_url": dashboard_url, "pid": os.getpid()}) + "\n"
    )


def _clear_running(home: Path) -> None:
    path = home / RUNNING_FILE
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _running(home: Path) -> dict[str, Any] | None:
    """The running server's URLs; None when there is none (a killed server's file is
    stale: its pid is gone)."""
    try:
        info = json.loads((home / RUNNING_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return None
    try:
        pid = int(info.get("pid", 0))
        if pid <= 0:
            return None
        os.kill(pid, 0)  # signal 0: only asks whether it exists
    except (OSError, ValueError, TypeError):
        return None
    return info


def cmd_link(args: argparse.Namespace) -> int:
    """Ask the running server for a one-time sign-in link (POST /api/dashboard/links, with an
    admin token of one minute minted from the home's key) and print the URL."""
    import httpx

    from .bootstrap import home_identity

    home = _home(args.home)
    running = _running(home)
    if args.url:
        api = dashboard = args.url.rstrip("/")
    elif running is not None:
        api, dashboard = running["url"], str(running.get("dashboard_url") or running["url"])
    else:
        print(
            f"vettra link: no running vettra dev found for {home}; start one "
            f"(vettra dev --home {shlex.quote(str(home))}) or pass --url",
            file=sys.stderr,
        )
        return EXIT_FAIL
    token = home_identity(home).issue(
        role="admin", sub="vettra-link", tenant=args.tenant, ttl_s=LINK_ADMIN_TTL_S
    )
    try:
        answer = httpx.post(
            api + "/api/dashboard/links",
            json={"sub": args.sub, "role": args.role},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
    except httpx.HTTPError as exc:
        print(f"vettra link: no server answers at {api}: {exc}", file=sys.stderr)
        return EXIT_FAIL
    if answer.status_code != 201:
        try:
            detail = answer.json().get("detail", answer.text)
        except ValueError:
            detail = answer.text[:300]
        print(f"vettra link: {api} answered {answer.status_code}: {detail}", file=sys.stderr)
        return EXIT_USAGE if answer.status_code in (400, 422) else EXIT_FAIL
    link = answer.json()
    print(dashboard + link["path"])
    print(f"(one use; expires {link['expires_at']})", file=sys.stderr)
    return EXIT_OK


LINK_ADMIN_TTL_S = 60


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


def cmd_export_cloud_secrets(args: argparse.Namespace) -> int:
    """Write the Secret Manager files the cloud key store reads (docs/identity.md)."""
    from .adapters import secret_keys

    if args.rotate and not args.source:
        print("--rotate works on existing secrets: pass --from DIR", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.fresh:
            files = secret_keys.fresh_secret_files()
        elif args.source:
            files = secret_keys.read_secret_files(args.source)
            if args.rotate:
                files = secret_keys.rotated_secret_files(files, args.rotate)
        else:
            from .bootstrap import home_keys

            home = _home(args.home)
            if not (home / "keys").is_dir():
                print(f"{home} has no keys/ (is it a Vettra home?)", file=sys.stderr)
                return EXIT_FAIL
            files = secret_keys.secret_files_from_home(home_keys(home))
        written = secret_keys.write_secret_files(args.out, files)
    except (secret_keys.SecretFileError, FileExistsError, OSError) as exc:
        print(f"vettra keys export-cloud-secrets: {exc}", file=sys.stderr)
        return EXIT_FAIL
    out = Path(args.out)
    changed = [secret_keys.ROTATABLE[args.rotate]] if args.rotate else [p.name for p in written]
    verb = "versions add" if args.rotate or args.source else "create"
    print(f"wrote {len(written)} secret files to {out} (mode 0600). Upload them, e.g.:")
    for name in changed:
        print(f"  gcloud secrets {verb} {name} --data-file={shlex.quote(str(out / name))}")
    print(f"then delete {out}: it holds private keys.")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from .domain.identity import DEFAULT_TENANT, ROLES

    parser = argparse.ArgumentParser(
        prog="vettra", description="Authorization layer for AI agents."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser(
        "dev", help="run every endpoint locally (the embedded default, or --backend firestore)"
    )
    dev.add_argument("--home", help="state directory (default ~/.vettra or $VETTRA_HOME)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=8080)
    dev.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    dev.add_argument(
        "--approver",
        help="print the start-up sign-in link for this user "
        "(default: the home's first approver, else alice)",
    )
    dev.add_argument(
        "--backend",
        choices=["local", "firestore"],
        help="local: the embedded store in the home (default, or $VETTRA_BACKEND); "
        "firestore: Firestore (the emulator when FIRESTORE_EMULATOR_HOST is set), keys "
        "still from the home",
    )
    dev.add_argument("--project", help="Google Cloud project id (firestore; or $VETTRA_PROJECT)")
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
        dest="keep_alive_s",
        metavar="KEEP_ALIVE_TIMEOUT",
        type=float,
        help="seconds an idle connection stays open (VETTRA_KEEP_ALIVE_TIMEOUT, default 5)",
    )
    limits.add_argument(
        "--head-timeout",
        dest="head_timeout_s",
        metavar="HEAD_TIMEOUT",
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

    link = sub.add_parser(
        "link", help="print a one-time dashboard sign-in URL from the running `vettra dev`"
    )
    link.add_argument("--home")
    link.add_argument("--sub", required=True, help="the user who signs in")
    link.add_argument("--role", default="approver", choices=["approver", "admin"])
    link.add_argument(
        "--url", help="the server's base URL (default: the vettra dev running on --home)"
    )
    link.add_argument("--tenant", default=DEFAULT_TENANT)
    link.set_defaults(func=cmd_link)

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

    from .agent_cli import add_parsers as add_agent_parsers

    add_agent_parsers(sub)

    keys = sub.add_parser(
        "keys", help="rotate the home's keys; export the cloud deployment's secrets"
    )
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
    rot.set_defaults(func=cmd_keys)
    exp = ksub.add_parser(
        "export-cloud-secrets",
        help="write the Secret Manager files of a cloud deployment (fresh, from a home, or "
        "rotated from the current ones)",
    )
    source = exp.add_mutually_exclusive_group(required=True)
    source.add_argument("--fresh", action="store_true", help="new keys")
    source.add_argument("--home", help="the keys of this home (its audit chain stays verifiable)")
    source.add_argument(
        "--from", dest="source", help="a directory of the current secret files (to rotate one)"
    )
    exp.add_argument(
        "--rotate",
        choices=["audit-hmac", "checkpoint", "data", "receipt"],
        help="with --from: add a new current key; earlier ones stay for verification",
    )
    exp.add_argument("--out", required=True, help="an empty directory to write the files to")
    exp.set_defaults(func=cmd_export_cloud_secrets)

    from .vault_cli import add_parsers as add_vault_parsers

    add_vault_parsers(sub, DEFAULT_TENANT, _home)
    from .receipt_cli import add_parsers as add_receipt_parsers

    add_receipt_parsers(sub, _home)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from .extras import install_hint, missing_extra

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ImportError as exc:
        missing = missing_extra(exc)
        if missing is None:
            raise
        print(f"vettra {args.command} {install_hint(*missing)}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
