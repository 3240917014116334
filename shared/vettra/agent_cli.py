"""The agent-side commands of the ``vettra`` CLI: ``mcp-proxy`` (and ``demo``).

vettra mcp-proxy [--url URL] [--token-file F] [--server NAME] [--session ses_…]
                 [--decision-timeout S] [--pass-credential] -- <upstream command> [args…]

The agent's bearer token comes from ``$VETTRA_TOKEN`` or ``--token-file``, never from the
command line (which every local user can read in the process list). Variables named
``VETTRA_*`` are not passed on to the upstream server.
"""

from __future__ import annotations

import argparse
import os
import sys
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
    try:
        import anyio

        from .sdk import AsyncClient
        from .sdk.mcp import ProxyOptions, StdioServerParameters, serve
    except ImportError as exc:
        print(f"vettra mcp-proxy: {exc}", file=sys.stderr)
        return EXIT_USAGE
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


def add_parsers(sub: Any) -> None:
    """Register the agent-side subcommands on the ``vettra`` parser's subparsers."""
    proxy = sub.add_parser(
        "mcp-proxy",
        help="serve an MCP server's tools over stdio, every tools/call authorized by Vettra",
        description="Start the upstream MCP server given after --, expose its tools unchanged "
        "and send each tools/call to Vettra first.",
    )
    proxy.add_argument(
        "--url", default=os.environ.get(URL_ENV, DEFAULT_URL), help=f"Vettra (${URL_ENV})"
    )
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
