"""The OpenAPI 3.1 document, built from the route table and the schemas that the
server validates with, so it cannot drift from what the server does."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ... import __version__
from . import schemas

_REQUESTS = {"interceptAction": "INTERCEPT_REQUEST", "decideAction": "APPROVE_REQUEST",
             "activatePolicy": "POLICY_ENVELOPE"}
_RESPONSES = {"health": "HEALTH", "interceptAction": "ACTION", "decideAction": "ACTION",
              "listPendingActions": "ACTION_LIST", "getAction": "ACTION",
              "listAuditEntries": "AUDIT_ENTRIES", "verifyAudit": "AUDIT_VERIFY",
              "getActionAudit": "AUDIT_ENTRIES", "getPolicy": "POLICY_VIEW",
              "activatePolicy": "POLICY_VIEW", "getOpenApi": None}
_QUERY = {
    "getAction": [("wait", "integer", "Seconds (0-60) to wait for the status to leave pending")],
    "listPendingActions": [("limit", "integer", "At most this many (1-500)")],
    "listAuditEntries": [("after", "integer", "Only entries with seq greater than this"),
                         ("limit", "integer", "Page size (1-1000)"),
                         ("action_id", "string", "Only this action's entries")],
}
_ERRORS = {"400": "Malformed request or query", "401": "Missing or invalid bearer token, or step-up needed",
           "403": "The token's role may not use this endpoint", "404": "No such resource for this caller",
           "409": "Conflicts with the current state", "413": "Body over 256 KiB",
           "415": "Content-Type is not application/json", "422": "Body failed validation"}


def _component(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(route: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": route.summary,
                          "tags": [route.group]}
    params = [{"name": n, "in": "path", "required": True, "schema": {"type": "string"}}
              for n in re.findall(r"\{(\w+)\}", route.template)]
    params += [{"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
               for n, t, d in _QUERY.get(route.operation_id, [])]
    if route.operation_id == "interceptAction":
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "schema": {"type": "string", "maxLength": 255}})
    if params:
        op["parameters"] = params
    if route.operation_id in _REQUESTS:
        op["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": _component(_REQUESTS[route.operation_id])}}}
    response_schema = _RESPONSES.get(route.operation_id)
    ok: dict[str, Any] = {"description": "OK"}
    if response_schema:
        ok["content"] = {"application/json": {"schema": _component(response_schema)}}
    else:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {"200": ok}
    if route.operation_id == "interceptAction":
        responses["201"] = {"description": "Created", "content": ok["content"]}
    problem = {"application/problem+json": {"schema": _component("PROBLEM")}}
    for code, text in _ERRORS.items():
        if route.roles is None and code != "400":
            continue
        responses[code] = {"description": text, "content": problem}
    op["responses"] = responses
    if route.roles is None:
        op["security"] = []
    else:
        op["x-roles"] = list(route.roles)
    return op


@lru_cache(maxsize=1)
def _build(routes_key: tuple[Any, ...]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in routes_key:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    names = sorted(set(_REQUESTS.values()) | {v for v in _RESPONSES.values() if v} | {"PROBLEM"})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Vettra API", "version": __version__,
                 "description": "Authorization layer for AI agents: intercept, score, approve, audit."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
            "schemas": {name: getattr(schemas, name) for name in names},
        },
    }


def document(routes: list[Any]) -> dict[str, Any]:
    return _build(tuple(routes))
