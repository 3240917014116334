"""The agent-side commands of the ``vettra`` CLI: ``mcp-proxy`` and ``demo``.

vettra mcp-proxy [--url URL] [--token-file F] [--server NAME] [--session ses_…]
                 [--decision-timeout S] [--pass-credential] -- <upstream command> [args…]
vettra demo      [--url URL] [--home DIR] [--user UID] [--decision-timeout S]

The agent's bearer token comes from ``$VETTRA_TOKEN`` or ``--token-file``, never from the
command line (which every local user can read in the process list). Variables named
``VETTRA_*`` are not passed on to the upstream server. ``vettra demo`` mints its own
tokens from the home of the ``vettra dev`` it talks to (``--home``, ``$VETTRA_HOME`` or
the default), unless ``$VETTRA_TOKEN`` (and ``$VETTRA_APPROVER_TOKEN``) are set; with
that home it also sets up the approved e-mail's credential (a made-up token in the
local vault unless one is stored, and the user's grant to the demo agent), saying so.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
DEFAULT_URL = "http://127.0.0.1:8080"
TOKEN_ENV = "VETTRA_TOKEN"
URL_ENV = "VETTRA_URL"
_OWN_ENV_PREFIX = "VETTRA_"


def _token(args: argparse.Namespace, command: str) -> str | None:
    if args.token_file:
        try:
            return Path(args.token_file).read_text().strip() or None
        except OSError as exc:
            print(f"vettra {command}: cannot read --token-file: {exc.strerror}", file=sys.stderr)
            return None
    return os.environ.get(TOKEN_ENV) or None


def cmd_mcp_proxy(args: argparse.Namespace) -> int:
    upstream = list(args.upstream)
    if upstream and upstream[0] == "--":
        upstream = upstream[1:]
    if not upstream:
        print("vettra mcp-proxy: give the upstream server's command after --", file=sys.stderr)
        return EXIT_USAGE
    token = _token(args, "mcp-proxy")
    if token is None:
        print(
            f"vettra mcp-proxy: no agent token: set ${TOKEN_ENV} or pass --token-file",
            file=sys.stderr,
        )
        return EXIT_USAGE
    import anyio  # httpx's own dependency

    from .sdk import AsyncClient
    from .sdk.mcp import ProxyOptions, StdioServerParameters, serve  # vettra[mcp]

    env = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_ENV_PREFIX)}
    params = StdioServerParameters(command=upstream[0], args=upstream[1:], env=env)
    options = ProxyOptions(
        server=args.server,
        session_id=args.session,
        decision_timeout_s=args.decision_timeout,
        pass_credential=args.pass_credential,
    )

    async def main() -> None:
        async with AsyncClient(args.url, token, decision_timeout_s=args.decision_timeout) as vettra:
            await serve(vettra, params, options)

    try:
        anyio.run(main)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_OK


APPROVER_TOKEN_ENV = "VETTRA_APPROVER_TOKEN"
DEMO_AGENT = "vettra-demo"
DEMO_TOKEN_TTL_S = 900


@dataclass(frozen=True)
class DemoTokens:
    agent: str
    approver: str | None
    home: Path | None  # the server's home, when the demo minted the tokens from it


def _demo_tokens(args: argparse.Namespace) -> DemoTokens | str:
    """The agent's and the approver's tokens, or why there are none."""
    if not args.home and os.environ.get(TOKEN_ENV):
        return DemoTokens(os.environ[TOKEN_ENV], os.environ.get(APPROVER_TOKEN_ENV) or None, None)
    from .bootstrap import DEFAULT_HOME, home_identity
    from .domain.identity import DEFAULT_TENANT

    home = Path(args.home or os.environ.get("VETTRA_HOME") or DEFAULT_HOME).expanduser()
    if not (home / "keys").is_dir():
        return (
            f"no Vettra home at {home}: start `vettra dev --home {home}` first, pass the "
            f"--home it uses, or set ${TOKEN_ENV}"
        )
    identity = home_identity(home)
    agent = identity.issue(
        role="agent", sub=DEMO_AGENT, user=args.user, tenant=DEFAULT_TENANT, ttl_s=DEMO_TOKEN_TTL_S
    )
    approver = identity.issue(
        role="approver", sub=args.user, user=None, tenant=DEFAULT_TENANT, ttl_s=DEMO_TOKEN_TTL_S
    )
    return DemoTokens(agent, approver, home)


def _prepare_credential(args: argparse.Namespace, tokens: DemoTokens) -> list[str] | str:
    """With the home and the user's token: the e-mail row's credential set up (what was
    done, to print), or why it could not be (the row may then come out "not run")."""
    import httpx

    from .demo import prepare_credential
    from .domain.identity import DEFAULT_TENANT

    assert tokens.home is not None and tokens.approver is not None
    headers = {"Authorization": f"Bearer {tokens.approver}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=30) as api:
        try:
            return prepare_credential(tokens.home, DEFAULT_TENANT, args.user, DEMO_AGENT, api)
        except (ValueError, OSError, httpx.HTTPError) as exc:
            return f"could not set up the e-mail's credential: {exc}"


def cmd_demo(args: argparse.Namespace) -> int:
    import httpx

    from .demo import DemoUser, print_table, run_scenarios
    from .extras import install_hint, missing_extra
    from .sdk import Client

    try:
        tokens = _demo_tokens(args)
    except ImportError as exc:  # the SDK alone: tokens come from the environment
        missing = missing_extra(exc)
        if missing is None:
            raise
        tokens = (
            f"minting the demo's tokens from a home {install_hint(*missing)}; "
            f"or set ${TOKEN_ENV} (and ${APPROVER_TOKEN_ENV}) to tokens of the server"
        )
    if isinstance(tokens, str):
        print(f"vettra demo: {tokens}", file=sys.stderr)
        return EXIT_USAGE
    try:
        httpx.get(args.url.rstrip("/") + "/health", timeout=5).raise_for_status()
    except httpx.HTTPError as exc:
        print(
            f"vettra demo: no Vettra answering at {args.url} ({exc}); start `vettra dev`",
            file=sys.stderr,
        )
        return EXIT_FAIL
    print(f"Vettra demo against {args.url} (agent {DEMO_AGENT!r} acting for {args.user!r})")
    notes: list[str] = []
    ready = False
    if tokens.home is not None and tokens.approver is not None:
        prepared = _prepare_credential(args, tokens)
        if isinstance(prepared, str):
            notes.append(prepared)
        else:
            ready = True
            for line in prepared:
                print(f"setup: {line}")
    with Client(args.url, tokens.agent, decision_timeout_s=args.decision_timeout) as agent:
        approver = Client(args.url, tokens.approver) if tokens.approver else None
        try:
            user = DemoUser(approver) if approver else None
            rows = run_scenarios(agent, user, credential_ready=ready)
        finally:
            if user is not None:
                user.finish()
            if approver is not None:
                approver.close()
    print()
    print_table(rows, sys.stdout)
    print()
    if user is None:
        print(f"No approver token (${APPROVER_TOKEN_ENV}): rows 2 and 6 wait in the dashboard.")
    for note in notes + (user.errors if user else []):
        print(f"note: {note}")
    if any(r.outcome == "no-credential" for r in rows):
        print(
            f"note: the e-mail was approved but released no credential: {args.user} stores "
            f"one (`vettra vault put`) and grants {DEMO_AGENT!r} (POST "
            "/api/inventory/permissions), or run the demo with --home, which does both"
        )
    held = [r for r in rows if r.outcome in ("queued", "step-up")]
    if held:
        print(f"{len(held)} action(s) wait for {args.user} in the dashboard ({args.url}).")
    failed = [r for r in rows if not r.ok]
    for row in failed:
        print(f"row {row.number} came out {row.outcome!r}, expected {sorted(row.expected)}")
    return EXIT_FAIL if failed else EXIT_OK


def _url_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=os.environ.get(URL_ENV, DEFAULT_URL), help=f"Vettra (${URL_ENV})"
    )


def add_parsers(sub: Any) -> None:
    """Register the agent-side subcommands on the ``vettra`` parser's subparsers."""
    proxy = sub.add_parser(
        "mcp-proxy",
        help="serve an MCP server's tools over stdio, every tools/call authorized by Vettra",
        description="Start the upstream MCP server given after --, expose its tools unchanged "
        "and send each tools/call to Vettra first.",
    )
    _url_option(proxy)
    proxy.add_argument("--token-file", help=f"the agent's bearer token (default ${TOKEN_ENV})")
    proxy.add_argument(
        "--server", help="the service the upstream fronts, e.g. github (names its tools)"
    )
    proxy.add_argument("--session", help="an approval session id (ses_…) to attach calls to")
    proxy.add_argument(
        "--decision-timeout",
        type=float,
        default=300.0,
        help="seconds a call waits for a person before it is a tool error (default 300)",
    )
    proxy.add_argument(
        "--pass-credential",
        action="store_true",
        help="hand the released credential to the upstream in _meta['dev.vettra/credential']",
    )
    proxy.add_argument("upstream", nargs=argparse.REMAINDER, help="-- command [args…]")
    proxy.set_defaults(func=cmd_mcp_proxy)

    demo = sub.add_parser(
        "demo",
        help="run the write-up's five scenarios and a prompt injection against a server",
        description="A scripted agent calls six tools through the SDK; prints what Vettra "
        "did with each. Exit 0 when every row is as expected.",
    )
    _url_option(demo)
    demo.add_argument(
        "--home",
        help="the home of that `vettra dev` (mints the demo's tokens, stores a demo "
        "credential unless the user has one, and grants it to the demo agent)",
    )
    demo.add_argument("--user", default="alice", help="the user the demo agent acts for")
    demo.add_argument(
        "--decision-timeout",
        type=float,
        default=30.0,
        help="seconds a call waits for the demo user (default 30)",
    )
    demo.set_defaults(func=cmd_demo)
