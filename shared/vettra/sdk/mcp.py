"""MCP: ``vettra mcp-proxy -- <upstream server command>``, every ``tools/call`` gated.

The proxy is an MCP server on stdio (what an MCP host such as Claude Desktop launches)
and an MCP client of the upstream server it starts (PyPI ``mcp``: the low-level
``Server`` and ``Client``, no protocol code here). ``tools/list`` is the upstream's answer
passed through unchanged (names, schemas, annotations, pages). Each ``tools/call`` is
first sent to Vettra as MCP's raw ``tools/call`` params (``framework: "mcp"``), with the
service the upstream fronts (``--server``) and the tool's annotations from ``tools/list``,
which the server's risk scoring reads (``destructiveHint`` raises it); the call reaches the
upstream only on a go-ahead. A denied, expired or undecided call, or an unreachable
Vettra, is a tool error (``isError``) whose text says why, so the model can tell the user.

With ``pass_credential`` the released credential is handed to the upstream in the call's
``_meta`` under :data:`CREDENTIAL_META_KEY` (the upstream is what calls the service; the
MCP host never sees the token), with the action id and the signed receipt the upstream
may check before it runs the call.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from ..extras import install_hint

try:
    import mcp_types as types
    from mcp import Client as McpClient
    from mcp import StdioServerParameters
    from mcp.server.context import ServerRequestContext
    from mcp.server.lowlevel import Server
    from mcp.server.stdio import stdio_server
except ImportError as exc:  # pragma: no cover - the message is the point
    raise ImportError(f"vettra.sdk.mcp (vettra mcp-proxy) {install_hint('mcp')}") from exc

from .. import __version__
from ._client import AsyncClient
from ._errors import ActionBlocked, VettraSDKError

__all__ = [
    "CREDENTIAL_META_KEY",
    "ProxyOptions",
    "StdioServerParameters",
    "VettraMcpProxy",
    "serve",
]

FRAMEWORK = "mcp"
PROXY_NAME = "vettra-mcp-proxy"
#: Where the released credential travels to the upstream (``_meta`` key; MCP reserves
#: unprefixed and ``modelcontextprotocol``-prefixed names, so this one is namespaced).
CREDENTIAL_META_KEY = "dev.vettra/credential"


@dataclass(frozen=True)
class ProxyOptions:
    server: str | None = None  # the service the upstream fronts ("github"): a claim
    session_id: str | None = None
    decision_timeout_s: float | None = None
    pass_credential: bool = False


def _tool_error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


class VettraMcpProxy:
    """The two handlers of the proxy's MCP server, over a connected upstream client."""

    def __init__(self, vettra: AsyncClient, upstream: McpClient, options: ProxyOptions):
        self.vettra = vettra
        self.upstream = upstream
        self.options = options
        self._annotations: dict[str, dict[str, Any] | None] = {}

    def _remember(self, tools: Sequence[types.Tool]) -> None:
        for tool in tools:
            hints = tool.annotations
            self._annotations[tool.name] = (
                hints.model_dump(mode="json", by_alias=True, exclude_none=True) if hints else None
            )

    async def _annotations_of(self, name: str) -> dict[str, Any] | None:
        """The tool's annotations as ``tools/list`` gave them (listed again if unseen)."""
        if name not in self._annotations:
            cursor: str | None = None
            while True:
                page = await self.upstream.list_tools(cursor=cursor, cache_mode="refresh")
                self._remember(page.tools)
                cursor = page.next_cursor
                if cursor is None or name in self._annotations:
                    break
        return self._annotations.get(name)

    async def list_tools(
        self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        cursor = params.cursor if params is not None else None
        result = await self.upstream.list_tools(cursor=cursor, cache_mode="refresh")
        self._remember(result.tools)
        return result

    async def call_tool(
        self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        arguments = dict(params.arguments or {})
        tool_call: dict[str, Any] = {"name": params.name, "arguments": arguments}
        if self.options.server is not None:
            tool_call["server"] = self.options.server
        annotations = await self._annotations_of(params.name)
        if annotations is not None:
            tool_call["annotations"] = annotations
        try:
            authorization = await self.vettra.authorize_raw(
                FRAMEWORK,
                tool_call,
                arguments,
                session_id=self.options.session_id,
                want_credential=self.options.pass_credential,
                decision_timeout_s=self.options.decision_timeout_s,
                idempotency_key="mcp-" + uuid.uuid4().hex,
            )
        except ActionBlocked as err:
            return _tool_error(str(err))
        except VettraSDKError as err:  # unreachable, refused: the tool is not called
            return _tool_error(
                f"Vettra could not authorize {params.name}; it was not called: {err}"
            )
        meta: types.RequestParamsMeta | None = None
        if authorization.credential is not None:
            credential = authorization.credential
            # an open TypedDict (extra_items=Any, PEP 728): mypy does not model that yet
            meta = cast(
                types.RequestParamsMeta,
                {
                    CREDENTIAL_META_KEY: {
                        "access_token": credential.access_token,
                        "token_type": credential.token_type,
                        "expires_at": credential.expires_at,
                        "scope": credential.scope,
                        "connection": credential.connection,
                        # for the upstream to check offline (docs/credentials.md "Receipts")
                        "action_id": credential.action_id,
                        "receipt": credential.receipt,
                    }
                },
            )
        return await self.upstream.call_tool(params.name, arguments, meta=meta)


async def serve(
    vettra: AsyncClient, upstream: StdioServerParameters, options: ProxyOptions
) -> None:
    """Run the proxy on this process's stdin/stdout until the MCP host disconnects."""
    async with McpClient(upstream, cache=None) as client:
        proxy = VettraMcpProxy(vettra, client, options)
        server: Server[Any] = Server(
            PROXY_NAME,
            version=__version__,
            instructions=client.instructions,
            on_list_tools=proxy.list_tools,
            on_call_tool=proxy.call_tool,
        )
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
