"""A scripted model behind a real local HTTP server, for running README examples verbatim.

It answers the two model APIs the examples use, at the paths their official clients
call when pointed at it (``ANTHROPIC_BASE_URL``, ``OPENAI_BASE_URL``):

- Anthropic Messages, ``POST /v1/messages``;
- OpenAI Responses, ``POST /v1/responses`` (what the Agents SDK calls).

The "model" always does the same: asked once, it calls ``gmail_send_message`` with
:data:`CALL`; once the conversation holds that tool's result, it answers with text quoting
it. No network, no key checks; every request body is kept.
"""

from __future__ import annotations

import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOOL = "gmail_send_message"
CALL = {"to": "bob@example.com", "subject": "Q3 numbers", "body": "See attached."}
DONE = "Done: "


def _anthropic(body: dict[str, Any]) -> dict[str, Any]:
    results = [
        block
        for turn in body.get("messages", [])
        if isinstance(turn.get("content"), list)
        for block in turn["content"]
        if block.get("type") == "tool_result"
    ]
    if results:
        content = [{"type": "text", "text": DONE + str(results[-1].get("content"))}]
        stop = "end_turn"
    else:
        call_id = "toolu_" + uuid.uuid4().hex[:16]
        content = [{"type": "tool_use", "id": call_id, "name": TOOL, "input": CALL}]
        stop = "tool_use"
    return {
        "id": "msg_" + uuid.uuid4().hex[:12], "type": "message", "role": "assistant",
        "model": body.get("model", "scripted"), "content": content, "stop_reason": stop,
        "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1},
    }  # fmt: skip


def _openai(body: dict[str, Any]) -> dict[str, Any]:
    items = body.get("input") if isinstance(body.get("input"), list) else []
    outputs = [i for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"]
    if outputs:
        output: list[dict[str, Any]] = [{
            "id": "msg_" + uuid.uuid4().hex[:8], "type": "message", "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": DONE + str(outputs[-1]["output"]),
                         "annotations": []}],
        }]  # fmt: skip
    else:
        call_id = "call_" + uuid.uuid4().hex[:12]
        output = [{
            "id": "fc_" + call_id, "type": "function_call", "call_id": call_id, "name": TOOL,
            "arguments": json.dumps(CALL), "status": "completed",
        }]  # fmt: skip
    return {
        "id": "resp_" + uuid.uuid4().hex[:12], "object": "response", "created_at": 0,
        "model": body.get("model", "scripted"), "status": "completed", "output": output,
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
        "usage": {"input_tokens": 1, "output_tokens": 1, "total_tokens": 2,
                  "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens_details": {"reasoning_tokens": 0}},
    }  # fmt: skip


ROUTES = {"/v1/messages": _anthropic, "/v1/responses": _openai}


class ScriptedModels:
    """The server; ``with ScriptedModels() as models: models.url``."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        models = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                route = ROUTES.get(self.path.split("?")[0])
                models.requests.append((self.path, body))
                status, answer = (200, route(body)) if route else (404, {"error": self.path})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ScriptedModels:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def env(self) -> dict[str, str]:
        """What points the official clients here (and keeps the Agents SDK offline)."""
        return {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "scripted",
            "OPENAI_BASE_URL": self.url + "/v1",
            "OPENAI_API_KEY": "scripted",
            "OPENAI_AGENTS_DISABLE_TRACING": "1",
        }
