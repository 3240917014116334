"""A tiny, ordinary MCP server (PyPI ``mcp``'s MCPServer) for the proxy tests: it knows
nothing of Vettra. Every call it receives is appended to ``$UPSTREAM_CALLS`` (one JSON
line), so a test can tell which calls reached it."""

from __future__ import annotations

import json
import os

from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations

CREDENTIAL_META_KEY = "dev.vettra/credential"

app = MCPServer("mailbox", instructions="A test mailbox.")


def _record(tool: str, ctx: Context | None, **arguments: object) -> bool:
    meta = dict(ctx.request_context.meta or {}) if ctx is not None else {}
    credential = meta.get(CREDENTIAL_META_KEY) or {}
    with open(os.environ["UPSTREAM_CALLS"], "a") as log:
        log.write(
            json.dumps({"tool": tool, "arguments": arguments, "credential": credential}) + "\n"
        )
    return bool(credential.get("access_token"))


@app.tool(annotations=ToolAnnotations(title="Profile", read_only_hint=True))
def get_profile(ctx: Context) -> str:
    """Read the mailbox owner's profile."""
    _record("get_profile", ctx)
    return "Alice <alice@example.com>"


@app.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
def send_message(to: str, subject: str, body: str, ctx: Context) -> str:
    """Send an e-mail."""
    with_credential = _record("send_message", ctx, to=to, subject=subject, body=body)
    return f"sent {subject} to {to}" + (" with a credential" if with_credential else "")


@app.tool(annotations=ToolAnnotations(destructive_hint=True))
def modify_labels(message_id: str, remove: list[str], ctx: Context) -> str:
    """Change a message's labels."""
    _record("modify_labels", ctx, message_id=message_id, remove=remove)
    return f"relabelled {message_id}"


if __name__ == "__main__":
    app.run()
