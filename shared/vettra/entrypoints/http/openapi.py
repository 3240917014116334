"""The OpenAPI 3.1 document, built from the route table and the schemas that the
server validates with, so it cannot drift from what the server does."""

from __future__ import annotations

import re
from typing import Any

from ... import __version__
from . import schemas

_ERRORS = {
    "400": "Malformed request or query",
    "401": "Missing or invalid bearer token, or step-up needed",
    "403": "The token's role may not use this endpoint",
    "404": "No such resource for this caller",
    "409": "Conflicts with the current state",
    "413": "Body over 256 KiB",
    "415": "Content-Type is not application/json",
    "422": "Body failed validation",
}
_EXTRA_ERRORS = {
    "429": "Too many requests or open streams; see Retry-After",
    "503": "A service it depends on did not answer; retry later",
}


def _component(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(route: Any) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": [route.group],
    }
    # Exactly what HttpApp enforces: the router's id pattern, the query schemas, the key.
    params = [
        {"name": n, "in": "path", "required": True, "schema": _component("ID")}
        for n in re.findall(r"\{(\w+)\}", route.template)
    ]
    params += [
        {"name": n, "in": "query", "required": required, "schema": schema, "description": d}
        for n, schema, d, required in route.params
    ]
    if route.operation_id == "interceptAction":
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": schemas.IDEMPOTENCY_KEY,
            }
        )
    if params:
        op["parameters"] = params
    if route.request:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _component(route.request)}},
        }
    ok: dict[str, Any] = {"description": "OK"}
    if route.response:
        ok["content"] = {route.media_type: {"schema": _component(route.response)}}
    else:
        ok["content"] = {"application/json": {"schema": {"type": "object"}}}
    responses: dict[str, Any] = {"200": ok}
    if route.redirect:
        responses = {
            "303": {
                "description": "See Other: where to send the browser",
                "headers": {"Location": {"schema": {"type": "string"}, "required": True}},
            }
        }
    if route.created:
        responses["201"] = {"description": "Created", "content": ok["content"]}
    problem = {"application/problem+json": {"schema": _component("PROBLEM")}}
    for code, text in _ERRORS.items():
        if route.roles is None and code != "400":
            continue
        responses[code] = {"description": text, "content": problem}
    for status in route.errors:  # a public route lists the common ones it answers here too
        text = _EXTRA_ERRORS.get(str(status)) or _ERRORS[str(status)]
        responses[str(status)] = {"description": text, "content": problem}
    op["responses"] = responses
    if route.roles is None:
        op["security"] = []
    else:
        op["x-roles"] = list(route.roles)
    return op


_CACHE: dict[tuple[int, ...], dict[str, Any]] = {}


def _build(routes_key: tuple[Any, ...]) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for route in routes_key:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    names = sorted(schemas.REGISTRY)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Vettra API",
            "version": __version__,
            "description": "Authorization layer for AI agents: intercept, score, approve, audit.",
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
            "schemas": {name: schemas.REGISTRY[name] for name in names},
        },
    }


def document(routes: list[Any]) -> dict[str, Any]:
    key = tuple(id(r) for r in routes)  # routes hold schema dicts: not hashable
    if key not in _CACHE:
        _CACHE.clear()
        _CACHE[key] = _build(tuple(routes))
    return _CACHE[key]
