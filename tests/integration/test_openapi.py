"""The OpenAPI 3.1 document against the route table and against real answers.

The document is fetched from a running server; every operation is then exercised
for real and each answer is validated against the schema the document gives for
that status (2xx: the operation's JSON schema; errors: PROBLEM), resolving
``$ref`` inside the fetched document itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from vettra.domain.policy_envelope import sign_bundle
from vettra.entrypoints.http.routes import ROUTES

from ..vault_support import store_token
from .approvals import decide, totp_code
from .scenarios import DELETE_REPO, EXPECTED, GRANT_ADMIN, READ_PROFILE, SEND_EMAIL

DOC_URI = "urn:vettra:openapi"
JSON, PROBLEM = "application/json", "application/problem+json"
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
def doc(agent) -> dict[str, Any]:
    r = agent.get("/api/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == JSON
    return r.json()


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _validator(doc: dict, *location: str) -> Draft202012Validator:
    """A validator for the schema at ``location`` in ``doc``, its refs resolved in ``doc``."""
    registry = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(doc))
    return Draft202012Validator(
        {"$ref": DOC_URI + _pointer(*location)},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def _operations(doc: dict) -> dict[tuple[str, str], dict]:
    return {
        (method.upper(), path): op
        for path, item in doc["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def test_document_is_valid_openapi_3_1(doc) -> None:
    assert doc["openapi"].startswith("3.1")
    validate_openapi(doc)
    ids = [op["operationId"] for op in _operations(doc).values()]
    assert len(ids) == len(set(ids)), ids


def test_document_lists_exactly_the_routes(doc) -> None:
    assert set(_operations(doc)) == {(r.method, r.template) for r in ROUTES}
    for route in ROUTES:
        op = _operations(doc)[(route.method, route.template)]
        assert op["operationId"] == route.operation_id
        # only /health and sign-in are public, and the document says so
        assert (op.get("security") == []) == (route.roles is None), route.template


# -- every operation, for real -----------------------------------------------------------------


class Ctx:
    def __init__(self, server, agent, alice, bob, admin):
        self.server, self.agent, self.alice, self.bob, self.admin = server, agent, alice, bob, admin
        self.anon = httpx.Client(base_url=server.url, timeout=30)

    def intercept(self, bundle: dict, **kw: Any) -> dict:
        r = self.agent.post("/api/actions/intercept", json=bundle, **kw)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def get_as(self, path: str, *callers: str) -> list[httpx.Response]:
        """``GET path`` by each of ``callers`` (``"agent"``, ``"anon"``, ...) in turn."""
        return [getattr(self, caller).get(path) for caller in callers]


def _health(c: Ctx) -> list[httpx.Response]:
    return [c.anon.get("/health")]


def _intercept(c: Ctx) -> list[httpx.Response]:
    out = [c.agent.post("/api/actions/intercept", json=b) for b, *_ in EXPECTED]
    key = {"Idempotency-Key": "openapi-1"}
    out += [c.agent.post("/api/actions/intercept", json=SEND_EMAIL, headers=key) for _ in range(2)]
    assert out[-1].status_code == 200
    out += [
        c.agent.post("/api/actions/intercept", json=GRANT_ADMIN, headers=key),  # 409
        c.anon.post("/api/actions/intercept", json=SEND_EMAIL),  # 401
        c.alice.post("/api/actions/intercept", json=SEND_EMAIL),  # 403
        c.agent.post("/api/actions/intercept", content=b"{", headers={"Content-Type": JSON}),
        c.agent.post(
            "/api/actions/intercept", content=b"{}", headers={"Content-Type": "text/plain"}
        ),
        c.agent.post(
            "/api/actions/intercept",
            content=b'{"a":"' + b"x" * 300_000 + b'"}',
            headers={"Content-Type": JSON},
        ),
        c.agent.post("/api/actions/intercept", json={"tool": 5, "arguments": []}),
    ]
    return out


def _decide(c: Ctx) -> list[httpx.Response]:
    a, b, high = c.intercept(SEND_EMAIL), c.intercept(SEND_EMAIL), c.intercept(DELETE_REPO)
    return [
        c.alice.post(
            "/api/actions/approve", json={"action_id": a["action_id"], "decision": "approve"}
        ),
        c.alice.post(
            "/api/actions/approve",
            json={"action_id": b["action_id"], "decision": "deny", "reason": "not now"},
        ),
        c.alice.post(
            "/api/actions/approve", json={"action_id": high["action_id"], "decision": "approve"}
        ),
        c.bob.post(
            "/api/actions/approve", json={"action_id": high["action_id"], "decision": "deny"}
        ),
        c.agent.post(
            "/api/actions/approve", json={"action_id": high["action_id"], "decision": "deny"}
        ),
        c.alice.post(
            "/api/actions/approve", json={"action_id": high["action_id"], "decision": "maybe"}
        ),
    ]


def _pending(c: Ctx) -> list[httpx.Response]:
    c.intercept(SEND_EMAIL), c.intercept(DELETE_REPO)
    return [
        c.alice.get("/api/actions/pending"),
        c.bob.get("/api/actions/pending"),
        c.alice.get("/api/actions/pending", params={"limit": 1}),
        c.alice.get("/api/actions/pending", params={"limit": 0}),
        c.agent.get("/api/actions/pending"),
        c.anon.get("/api/actions/pending"),
    ]


def _get_action(c: Ctx) -> list[httpx.Response]:
    ids = [c.intercept(b)["action_id"] for b, *_ in EXPECTED]
    approved = c.intercept(SEND_EMAIL)["action_id"]
    c.alice.post("/api/actions/approve", json={"action_id": approved, "decision": "approve"})
    short = c.intercept({**SEND_EMAIL, "timeout_s": 1})["action_id"]
    out = [c.agent.get(f"/api/actions/{i}") for i in ids] + [
        c.alice.get(f"/api/actions/{approved}")
    ]
    out.append(c.agent.get(f"/api/actions/{short}", params={"wait": 3}))
    assert out[-1].json()["status"] == "expired"
    out += [
        c.bob.get(f"/api/actions/{ids[0]}"),
        c.agent.get(f"/api/actions/{ids[0]}", params={"wait": "x"}),
        c.anon.get(f"/api/actions/{ids[0]}"),
    ]
    return out


def _audit_entries(c: Ctx) -> list[httpx.Response]:
    aid = c.intercept(SEND_EMAIL)["action_id"]
    c.alice.post("/api/actions/approve", json={"action_id": aid, "decision": "deny"})
    return [
        c.admin.get("/api/audit/entries"),
        c.admin.get("/api/audit/entries", params={"limit": 1}),
        c.alice.get("/api/audit/entries", params={"action_id": aid}),
        c.bob.get("/api/audit/entries", params={"action_id": aid}),
        c.admin.get("/api/audit/entries", params={"after": "x"}),
        c.agent.get("/api/audit/entries"),
    ]


def _audit_verify(c: Ctx) -> list[httpx.Response]:
    c.intercept(SEND_EMAIL)
    return c.get_as("/api/audit/verify", "admin", "alice", "agent", "anon")


def _audit_action(c: Ctx) -> list[httpx.Response]:
    aid = c.intercept(SEND_EMAIL)["action_id"]
    return [
        c.agent.get(f"/api/audit/action/{aid}"),
        c.alice.get(f"/api/audit/action/{aid}"),
        c.admin.get(f"/api/audit/action/{aid}"),
        c.bob.get(f"/api/audit/action/{aid}"),
        c.admin.get("/api/audit/action/act_missing"),
    ]


def _policy_get(c: Ctx) -> list[httpx.Response]:
    return c.get_as("/api/policy", "admin", "alice", "agent")


def _policy_put(c: Ctx) -> list[httpx.Response]:
    current = c.admin.get("/api/policy").json()
    payload = {**current["payload"], "version": current["version"] + 1}
    envelope = sign_bundle(payload, c.server.runtime.deps.keys.policy_signing_key())
    out = [c.admin.post("/api/policy", json=envelope)]
    assert out[0].status_code == 200, out[0].text
    tampered = {**envelope, "payload": {**payload, "version": payload["version"] + 1}}
    out += [
        c.admin.post("/api/policy", json=envelope),  # not newer
        c.admin.post("/api/policy", json=tampered),  # signature does not match
        c.admin.post("/api/policy", json={"payload": {}}),
        c.alice.post("/api/policy", json=envelope),
    ]
    return out


def _checkpoint(c: Ctx) -> list[httpx.Response]:
    c.intercept(SEND_EMAIL)
    return c.get_as("/api/audit/checkpoint", "agent", "admin", "anon")


def _public_key(c: Ctx) -> list[httpx.Response]:
    return [c.alice.get("/api/audit/public-key"), c.anon.get("/api/audit/public-key")]


def _inclusion(c: Ctx) -> list[httpx.Response]:
    c.intercept(SEND_EMAIL), c.intercept(READ_PROFILE), c.intercept(GRANT_ADMIN)
    size = c.admin.get("/api/audit/verify").json()["length"]
    return [
        c.admin.get("/api/audit/proof/inclusion", params={"seq": 1}),
        c.admin.get("/api/audit/proof/inclusion", params={"seq": 2, "tree_size": size}),
        c.admin.get("/api/audit/proof/inclusion", params={"seq": size + 5}),
        c.admin.get("/api/audit/proof/inclusion", params={"seq": "x"}),
        c.anon.get("/api/audit/proof/inclusion", params={"seq": 1}),
    ]


def _consistency(c: Ctx) -> list[httpx.Response]:
    c.intercept(SEND_EMAIL), c.intercept(READ_PROFILE), c.intercept(GRANT_ADMIN)
    size = c.admin.get("/api/audit/verify").json()["length"]
    return [
        c.admin.get("/api/audit/proof/consistency", params={"from": 1, "to": size}),
        c.admin.get("/api/audit/proof/consistency", params={"from": 2, "to": size}),
        c.admin.get("/api/audit/proof/consistency", params={"from": size, "to": 1}),
        c.admin.get("/api/audit/proof/consistency", params={"from": "a", "to": size}),
        c.anon.get("/api/audit/proof/consistency", params={"from": 1, "to": size}),
    ]


def _expire_task(c: Ctx) -> list[httpx.Response]:
    with c.server.client("system", "scheduler", "system") as system:
        pending = c.intercept(SEND_EMAIL)["action_id"]
        return [
            system.post(
                "/api/tasks/expire", json={"kind": "expire", "action_id": pending}
            ),  # early
            system.post("/api/tasks/expire", json={"kind": "expire", "action_id": "act_missing"}),
            system.post("/api/tasks/expire", json={"kind": "other", "action_id": pending}),
            c.admin.post("/api/tasks/expire", json={"kind": "expire", "action_id": pending}),
            c.anon.post("/api/tasks/expire", json={"kind": "expire", "action_id": pending}),
        ]


def _enrolled(c: Ctx) -> tuple[list[httpx.Response], str]:
    start = c.alice.post("/api/approvals/stepup/enroll", json={"method": "totp"})
    body = start.json()
    finish = c.alice.post(
        "/api/approvals/stepup/enroll",
        json={
            "method": "totp",
            "enrollment_id": body["enrollment_id"],
            "code": totp_code(body["secret"]),
        },
    )
    return [start, finish], body["secret"]


def _stepup_enroll(c: Ctx) -> list[httpx.Response]:
    out, _ = _enrolled(c)
    return out + [
        c.agent.post("/api/approvals/stepup/enroll", json={"method": "totp"}),
        c.bob.post("/api/approvals/stepup/enroll", json={"method": "sms"}),
    ]


def _stepup_trigger(c: Ctx) -> list[httpx.Response]:
    high = c.intercept(DELETE_REPO)["action_id"]
    before = [
        c.bob.post("/api/approvals/stepup/trigger", json={"action_id": high})
    ]  # nothing enrolled / not his
    _enrolled(c)
    return before + [
        c.alice.post("/api/approvals/stepup/trigger", json={"action_id": high}),
        c.alice.post("/api/approvals/stepup/trigger", json={}),
        c.alice.post("/api/approvals/stepup/trigger", json={"action_id": high, "purpose": "x"}),
        c.agent.post("/api/approvals/stepup/trigger", json={}),
    ]


def _stepup_verify(c: Ctx) -> list[httpx.Response]:
    high = c.intercept(DELETE_REPO)["action_id"]
    _, secret = _enrolled(c)
    challenge = c.alice.post("/api/approvals/stepup/trigger", json={"action_id": high}).json()[
        "challenge_id"
    ]
    # the next time step's code: the enrolment already spent this step's
    ok = c.alice.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": challenge, "code": totp_code(secret, 1)},
    )
    out = [
        ok,
        c.alice.post(
            "/api/approvals/stepup/verify", json={"challenge_id": "ch_missing", "code": "000000"}
        ),
        c.alice.post("/api/approvals/stepup/verify", json={"challenge_id": challenge}),
        c.agent.post(
            "/api/approvals/stepup/verify", json={"challenge_id": challenge, "code": "000000"}
        ),
    ]
    if ok.status_code == 200:  # and the token lets the owner approve the HIGH action
        approved = c.alice.post(
            "/api/actions/approve",
            json={
                "action_id": high,
                "decision": "approve",
                "step_up_token": ok.json()["step_up_token"],
            },
        )
        assert approved.status_code == 200 and approved.json()["status"] == "approved", (
            approved.text
        )
    return out


def _session(c: Ctx) -> str:
    return c.agent.post("/api/approvals/sessions", json={"label": "openapi"}).json()["session_id"]


def _session_create(c: Ctx) -> list[httpx.Response]:
    return [
        c.agent.post("/api/approvals/sessions", json={}),
        c.alice.post("/api/approvals/sessions", json={"agent": "agent-1", "ttl_s": 600}),
        c.agent.post("/api/approvals/sessions", json={"ttl_s": 1}),
        c.anon.post("/api/approvals/sessions", json={}),
    ]


def _session_list(c: Ctx) -> list[httpx.Response]:
    _session(c)
    return c.get_as("/api/approvals/sessions", "alice", "agent", "anon")


def _session_get(c: Ctx) -> list[httpx.Response]:
    sid = _session(c)
    return [
        c.alice.get(f"/api/approvals/sessions/{sid}"),
        c.bob.get(f"/api/approvals/sessions/{sid}"),
    ]


def _session_revoke(c: Ctx) -> list[httpx.Response]:
    sid = _session(c)
    return [
        c.alice.delete(f"/api/approvals/sessions/{sid}"),
        c.agent.delete(f"/api/approvals/sessions/{sid}"),
        c.bob.delete(f"/api/approvals/sessions/{sid}"),
    ]


def _session_preauth(c: Ctx) -> list[httpx.Response]:
    sid = _session(c)
    _, secret = _enrolled(c)
    challenge = c.alice.post(
        "/api/approvals/stepup/trigger", json={"purpose": f"preauth:{sid}"}
    ).json()["challenge_id"]
    token = c.alice.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": challenge, "code": totp_code(secret, 1)},
    ).json()["step_up_token"]
    body = {"session_id": sid, "max_level": "MEDIUM", "duration_s": 600}
    return [
        c.alice.post("/api/approvals/sessions/pre-authorize", json=body),  # 401
        c.alice.post(
            "/api/approvals/sessions/pre-authorize", json={**body, "max_level": "HIGH"}
        ),  # 422
        c.alice.post(
            "/api/approvals/sessions/pre-authorize", json={**body, "step_up_token": token}
        ),
        c.agent.post("/api/approvals/sessions/pre-authorize", json=body),
    ]  # 403


def _events(c: Ctx) -> list[httpx.Response]:
    """GET /api/events answers an endless text/event-stream: the stream's answer is
    checked by its first block (a string, as documented) rather than as JSON."""
    errors = [
        c.agent.get("/api/events"),
        c.anon.get("/api/events"),
        c.alice.get("/api/events", params={"types": "action.unknown"}),
    ]
    with c.alice.stream("GET", "/api/events") as stream:
        first_line = next(stream.iter_lines())
    assert stream.headers["content-type"] == "text/event-stream"
    return errors + [_Streamed(stream, first_line)]


class _Streamed:
    """The head of a streamed answer: status, headers, and the first line it sent."""

    def __init__(self, response: httpx.Response, first_line: str):
        self.status_code, self.headers, self.request = (
            response.status_code,
            response.headers,
            response.request,
        )
        self.text = first_line


def _signin_link(c: Ctx) -> list[httpx.Response]:
    return [
        c.admin.post("/api/dashboard/links", json={"sub": "alice"}),
        c.admin.post("/api/dashboard/links", json={"sub": "ops", "role": "admin"}),
        c.admin.post("/api/dashboard/links", json={"sub": "alice", "role": "agent"}),  # 422
        c.alice.post("/api/dashboard/links", json={"sub": "alice"}),  # 403
        c.anon.post("/api/dashboard/links", json={"sub": "alice"}),  # 401
    ]


def _sign_in_with(c: Ctx) -> httpx.Response:
    code = c.admin.post("/api/dashboard/links", json={"sub": "alice"}).json()["code"]
    return c.anon.post("/api/dashboard/signin", json={"code": code})


def _signin(c: Ctx) -> list[httpx.Response]:
    ok = _sign_in_with(c)
    return [
        ok,
        c.anon.post("/api/dashboard/signin", json={"code": "vsl_" + "A" * 43}),  # 401
        c.anon.post("/api/dashboard/signin", json={"code": "x"}),  # 422
        c.anon.post("/api/dashboard/signin", content=b"{", headers={"Content-Type": JSON}),  # 400
        c.anon.post("/api/dashboard/signin", content=b"{}", headers={"Content-Type": "text/plain"}),
    ]


def _session_of(c: Ctx) -> httpx.Client:
    token = _sign_in_with(c).json()["access_token"]
    return httpx.Client(
        base_url=c.server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _whoami(c: Ctx) -> list[httpx.Response]:
    with _session_of(c) as dashboard:
        return [dashboard.get("/api/dashboard/session"), c.alice.get("/api/dashboard/session"),
                c.agent.get("/api/dashboard/session"), c.anon.get("/api/dashboard/session")]  # fmt: skip


def _sign_out(c: Ctx) -> list[httpx.Response]:
    with _session_of(c) as dashboard:
        return [
            dashboard.delete("/api/dashboard/session"),
            dashboard.delete("/api/dashboard/session"),  # 401: already signed out
            c.alice.delete("/api/dashboard/session"),  # 409: a minted token
            c.agent.delete("/api/dashboard/session"),  # 403
        ]


def _factors(c: Ctx) -> list[httpx.Response]:
    _enrolled(c)
    return [
        c.alice.get("/api/approvals/stepup/factors"),
        c.agent.get("/api/approvals/stepup/factors"),
    ]


def _factor_remove(c: Ctx) -> list[httpx.Response]:
    _, secret = _enrolled(c)
    challenge = c.alice.post(
        "/api/approvals/stepup/trigger", json={"purpose": "stepup.remove:totp"}
    ).json()
    token = c.alice.post(
        "/api/approvals/stepup/verify",
        json={"challenge_id": challenge["challenge_id"], "code": totp_code(secret, 1)},
    ).json()["step_up_token"]
    return [
        c.alice.post("/api/approvals/stepup/factors/remove", json={"factor_id": "totp"}),  # 401
        c.alice.post(
            "/api/approvals/stepup/factors/remove",
            json={"factor_id": "totp", "step_up_token": token},
        ),
        c.bob.post("/api/approvals/stepup/factors/remove", json={"factor_id": "totp"}),  # 404
        c.alice.post("/api/approvals/stepup/factors/remove", json={"factor_id": "a/b"}),  # 422
        c.agent.post("/api/approvals/stepup/factors/remove", json={"factor_id": "totp"}),  # 403
    ]


def _simulations(c: Ctx) -> list[httpx.Response]:
    return [c.alice.get("/api/simulations"), c.agent.get("/api/simulations")]


def _simulate(c: Ctx) -> list[httpx.Response]:
    return [
        c.alice.post("/api/simulations", json={"scenario": "send-email"}),
        c.admin.post("/api/simulations", json={"scenario": "grant-admin"}),
        c.alice.post("/api/simulations", json={"scenario": "nope"}),  # 422
        c.agent.post("/api/simulations", json={"scenario": "send-email"}),  # 403
    ]


def _firebase_token(c: Ctx) -> list[httpx.Response]:
    from ..idp import FakeIdP
    from .test_auth_http import PATH, ServiceAccount, id_token, wire_sign_in

    out = [c.anon.post(PATH, json={"id_token": "a.b.c"})]  # 404 not-configured: no Auth0
    with FakeIdP() as auth0:
        minter = wire_sign_in(c.server.runtime, auth0, ServiceAccount())
        try:
            return out + [
                c.anon.post(PATH, json={"id_token": id_token(auth0)}),
                c.anon.post(PATH, json={"id_token": id_token(auth0, aud="someone-else")}),  # 401
                c.anon.post(PATH, json={"id_token": 5}),  # 422
                c.anon.post(PATH, content=b"{}", headers={"Content-Type": "text/plain"}),  # 415
            ]
        finally:
            minter.close()


_GMAIL_READ = "https://www.googleapis.com/auth/gmail.readonly"
_LIST_MAIL = {"tool": "gmail.list_messages", "arguments": {"q": "is:unread"}}


def _granted(c: Ctx) -> dict:
    r = c.alice.post(
        "/api/inventory/permissions",
        json={"agent": "agent-1", "connection": "google-oauth2", "scopes": [_GMAIL_READ]},
    )
    assert r.status_code == 201, r.text
    return r.json()


def _release(c: Ctx) -> list[httpx.Response]:
    from vettra.adapters.local_vault import token_record

    deps = c.server.runtime.deps
    store_token(deps, "google-oauth2", token_record("ya29.openapi-test", scope=[_GMAIL_READ]))
    _granted(c)
    allowed, pending = c.intercept(_LIST_MAIL), c.intercept(SEND_EMAIL)
    path = f"/api/actions/{allowed['action_id']}/credential"
    body = {"args_digest": allowed["args_digest"]}
    out = [c.agent.post(path, json=body)]
    assert out[0].status_code == 200, out[0].text
    return out + [
        c.agent.post(path, json=body),  # 409 already released
        c.agent.post(
            f"/api/actions/{pending['action_id']}/credential",
            json={"args_digest": pending["args_digest"]},
        ),  # 409 pending
        c.agent.post("/api/actions/act_missing/credential", json=body),  # 404
        c.agent.post(path, json={"args_digest": "x"}),  # 422
        c.alice.post(path, json=body),  # 403
        c.anon.post(path, json=body),  # 401
    ]


def _receipt_key(c: Ctx) -> list[httpx.Response]:
    return [c.agent.get("/api/receipts/public-key"), c.anon.get("/api/receipts/public-key")]


def _receipt_jwks(c: Ctx) -> list[httpx.Response]:
    return [c.alice.get("/api/receipts/jwks.json"), c.anon.get("/api/receipts/jwks.json")]


def _permissions_list(c: Ctx) -> list[httpx.Response]:
    _granted(c)
    return [
        c.alice.get("/api/inventory/permissions"),
        c.agent.get("/api/inventory/permissions"),
        c.bob.get("/api/inventory/permissions"),
        c.anon.get("/api/inventory/permissions"),
    ]


def _permissions_grant(c: Ctx) -> list[httpx.Response]:
    return [
        c.alice.post(
            "/api/inventory/permissions",
            json={"agent": "agent-1", "connection": "github", "scopes": ["repo", "x:unknown"]},
        ),
        c.alice.post(
            "/api/inventory/permissions", json={"agent": "a", "connection": "gh", "scopes": []}
        ),  # 422
        c.agent.post(
            "/api/inventory/permissions",
            json={"agent": "agent-1", "connection": "github", "scopes": ["repo"]},
        ),  # 403
    ]


def _permissions_revoke(c: Ctx) -> list[httpx.Response]:
    pid = _granted(c)["permission_id"]
    return [
        c.alice.delete(f"/api/inventory/permissions/{pid}"),
        c.alice.delete(f"/api/inventory/permissions/{pid}"),  # again: the same view
        c.bob.delete(f"/api/inventory/permissions/{pid}"),  # 404
        c.agent.delete(f"/api/inventory/permissions/{pid}"),  # 403
    ]


def _scope_translate(c: Ctx) -> list[httpx.Response]:
    path = "/api/inventory/scope-translate"
    return [
        c.agent.get(path, params={"scope": f"repo {_GMAIL_READ} Mail.Send no.such.scope"}),
        c.alice.get(path, params={"scope": "openid", "provider": "microsoft"}),
        c.alice.get(path),  # 400: scope is required
        c.alice.get(path, params={"scope": "repo", "provider": "aol"}),  # 400
        c.anon.get(path, params={"scope": "repo"}),  # 401
    ]


def _vault_connections(c: Ctx) -> list[httpx.Response]:
    return [
        c.alice.get("/api/vault/connections"),
        c.agent.get("/api/vault/connections"),  # 403
        c.anon.get("/api/vault/connections"),  # 401
    ]


def _linked(c: Ctx, endpoint: Any) -> Any:
    """The server's connect flow wired to ``endpoint`` (the openapi server has no Auth0)."""
    from vettra.adapters.auth0_connect import CALLBACK_PATH, Auth0AccountLinker, LinkSettings
    from vettra.adapters.auth0_identity import https_jwks

    clock = c.server.runtime.deps.clock
    settings = LinkSettings(
        issuer=endpoint.issuer,
        client_id=endpoint.client_id,
        client_secret=endpoint.client_secret,
        redirect_uri=c.server.url + CALLBACK_PATH,
    )
    endpoint.callbacks.append(settings.redirect_uri)
    keys = https_jwks(endpoint.issuer + ".well-known/jwks.json", clock)
    c.server.runtime.deps.vault_link = Auth0AccountLinker(settings, clock, keys)
    return settings


def _vault_authorize(c: Ctx) -> list[httpx.Response]:
    from ..token_endpoint import TokenEndpoint

    path = "/api/vault/connections/google-oauth2/authorize"
    out = [c.alice.post(path, json={"scopes": [_GMAIL_READ]})]  # 404 not-configured
    endpoint = TokenEndpoint()
    try:
        _linked(c, endpoint)
        return out + [
            c.alice.post(path, json={"scopes": [_GMAIL_READ]}),
            c.alice.post(path, json={"scopes": []}),  # 422
            c.alice.post("/api/vault/connections/nope/authorize", json={}),  # 404
            c.agent.post(path, json={}),  # 403
            c.anon.post(path, json={}),  # 401
        ]
    finally:
        c.server.runtime.deps.vault_link = None
        endpoint.stop()


def _vault_callback(c: Ctx) -> list[httpx.Response]:
    from ..token_endpoint import TokenEndpoint

    endpoint = TokenEndpoint()
    try:
        _linked(c, endpoint)
        r = c.alice.post(
            "/api/vault/connections/google-oauth2/authorize", json={"scopes": [_GMAIL_READ]}
        )
        back = c.anon.get(r.json()["authorize_url"])  # the browser at "Auth0"
        return [
            c.anon.get(back.headers["location"]),  # 303 connected
            c.anon.get(back.headers["location"]),  # 303 invalid-state (replayed)
            c.anon.get("/api/vault/callback"),  # 303 invalid-state
        ]
    finally:
        c.server.runtime.deps.vault_link = None
        endpoint.stop()


def _openapi(c: Ctx) -> list[httpx.Response]:
    return [c.alice.get("/api/openapi.json"), c.anon.get("/api/openapi.json")]


DRIVERS: dict[str, Callable[[Ctx], list[httpx.Response]]] = {
    "health": _health,
    "interceptAction": _intercept,
    "decideAction": _decide,
    "listPendingActions": _pending,
    "getAction": _get_action,
    "listAuditEntries": _audit_entries,
    "verifyAudit": _audit_verify,
    "getActionAudit": _audit_action,
    "getPolicy": _policy_get,
    "activatePolicy": _policy_put,
    "getOpenApi": _openapi,
    "getAuditCheckpoint": _checkpoint,
    "getAuditPublicKey": _public_key,
    "getInclusionProof": _inclusion,
    "getConsistencyProof": _consistency,
    "expireAction": _expire_task,
    "enrollStepUp": _stepup_enroll,
    "triggerStepUp": _stepup_trigger,
    "verifyStepUp": _stepup_verify,
    "createSession": _session_create,
    "listSessions": _session_list,
    "getSession": _session_get,
    "revokeSession": _session_revoke,
    "preAuthorizeSession": _session_preauth,
    "streamEvents": _events,
    "createSignInLink": _signin_link,
    "signIn": _signin,
    "getSignInSession": _whoami,
    "signOut": _sign_out,
    "listStepUpFactors": _factors,
    "removeStepUpFactor": _factor_remove,
    "listSimulations": _simulations,
    "runSimulation": _simulate,
    "exchangeFirebaseToken": _firebase_token,
    "releaseCredential": _release,
    "getReceiptPublicKey": _receipt_key,
    "getReceiptJwks": _receipt_jwks,
    "listPermissions": _permissions_list,
    "grantPermission": _permissions_grant,
    "revokePermission": _permissions_revoke,
    "translateScopes": _scope_translate,
    "listVaultConnections": _vault_connections,
    "authorizeVaultConnection": _vault_authorize,
    "vaultCallback": _vault_callback,
}


def test_every_route_has_a_driver() -> None:
    assert set(DRIVERS) == {r.operation_id for r in ROUTES}


def _check_answers(doc: dict, route: Any, answers: list[httpx.Response]) -> set[int]:
    path_item = doc["paths"][route.template]
    op = path_item[route.method.lower()]
    statuses = set()
    for r in answers:
        where = f"{route.method} {r.request.url} -> {r.status_code}"
        code = str(r.status_code)
        assert code in op["responses"], (
            f"{where}: status not documented ({sorted(op['responses'])})"
        )
        if r.status_code == 303:  # a browser redirect: no body, the Location documented
            assert r.headers["location"] and "Location" in op["responses"][code]["headers"]
            statuses.add(r.status_code)
            continue
        content = op["responses"][code]["content"]
        ctype = r.headers["content-type"].split(";")[0]
        assert ctype in content, f"{where}: {ctype} not among {list(content)}"
        if r.status_code >= 400:
            assert ctype == PROBLEM, where
        validator = _validator(
            doc,
            "paths",
            route.template,
            route.method.lower(),
            "responses",
            code,
            "content",
            ctype,
            "schema",
        )
        body = r.text if ctype == "text/event-stream" else r.json()
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(body)
        ]
        assert not errors, f"{where}: {errors[:5]}"
        statuses.add(r.status_code)
    return statuses


_KNOWN_BUGS: dict = {}


@pytest.mark.parametrize(
    "route",
    [pytest.param(r, marks=_KNOWN_BUGS.get(r.operation_id, ())) for r in ROUTES],
    ids=[r.operation_id for r in ROUTES],
)
def test_operation_answers_match_the_document(doc, route, server, agent, alice, bob, admin) -> None:
    ctx = Ctx(server, agent, alice, bob, admin)
    try:
        answers = DRIVERS[route.operation_id](ctx)
    finally:
        ctx.anon.close()
    statuses = _check_answers(doc, route, answers)
    assert any(200 <= s < 300 or (route.redirect and s == 303) for s in statuses), statuses
    if route.roles is not None:
        assert any(s >= 400 for s in statuses), statuses


def test_problem_schema_is_the_one_the_server_uses(doc) -> None:
    """Every documented error of every operation points at the same PROBLEM schema."""
    for (method, path), op in _operations(doc).items():
        for code, response in op["responses"].items():
            if int(code) >= 400:
                assert response["content"][PROBLEM]["schema"] == {
                    "$ref": "#/components/schemas/PROBLEM"
                }, (method, path, code)


def test_decision_conflict_matches_problem_schema(doc, agent, alice) -> None:
    aid = agent.post("/api/actions/intercept", json=SEND_EMAIL).json()["action_id"]
    assert decide(alice, aid, "approve").status_code == 200
    again = decide(alice, aid, "deny")
    assert again.status_code == 409
    route = next(r for r in ROUTES if r.operation_id == "decideAction")
    _check_answers(doc, route, [again])


# -- routing and the published parameter schemas (issue 8) -------------------------------


@pytest.mark.parametrize(
    "method, path, allow",
    [
        ("GET", "/api/actions/approve", "POST"),
        ("GET", "/api/actions/intercept", "POST"),
        ("GET", "/api/approvals/sessions/pre-authorize", "POST"),
        ("POST", "/api/actions/act_123", "GET"),
        ("PUT", "/api/approvals/sessions/ses_abc", "DELETE, GET"),
        ("DELETE", "/api/approvals/sessions", "GET, POST"),
    ],
)
def test_literal_paths_never_match_a_parameter_and_allow_lists_that_route(
    admin, method, path, allow
) -> None:
    r = admin.request(method, path)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == allow
    assert r.headers["content-type"] == PROBLEM


def test_no_two_templates_overlap_on_a_literal_path(doc) -> None:
    """A literal template (no parameters) is never also matched by a parameter template."""
    import re

    from vettra.entrypoints.http.app import HttpApp

    app = HttpApp(None, ROUTES, None)
    literal = {r.template for r in ROUTES if "{" not in r.template}
    for path in literal:
        for route in ROUTES:
            if "{" in route.template and route.pattern.match(path):
                assert app.group_of(path) == next(r.group for r in ROUTES if r.template == path)
                candidates = {r.template for r in app._candidates(path)[0]}
                assert candidates == {path}, (path, route.template)
    assert all(re.fullmatch(r"[a-z0-9/{}_.-]+", p) for p in doc["paths"])


def _param(doc: dict, method: str, path: str, name: str) -> dict:
    op = doc["paths"][path][method]
    return next(p for p in op["parameters"] if p["name"] == name)


@pytest.mark.parametrize(
    "method, path, name, bounds, required",
    [
        ("get", "/api/actions/{action_id}", "wait", (0, 60), False),
        ("get", "/api/actions/pending", "limit", (1, None), False),
        ("get", "/api/audit/entries", "limit", (1, None), False),
        ("get", "/api/audit/entries", "after", (0, None), False),
        ("get", "/api/audit/proof/inclusion", "seq", (1, None), True),
        ("get", "/api/audit/proof/inclusion", "tree_size", (1, None), False),
        ("get", "/api/audit/proof/consistency", "from", (1, None), True),
        ("get", "/api/audit/proof/consistency", "to", (1, None), True),
    ],
)
def test_query_bounds_are_published_and_enforced(
    doc, agent, alice, method, path, name, bounds, required
) -> None:
    param = _param(doc, method, path, name)
    assert param["required"] is required
    low, high = bounds
    assert param["schema"]["type"] == "integer" and param["schema"]["minimum"] == low
    if high is not None:
        assert param["schema"]["maximum"] == high
    url = path.replace("{action_id}", "act_none")
    client = alice if "audit" in path or "pending" in path else agent
    assert client.get(url, params={name: str(low - 1)}).status_code == 400
    if high is not None:
        assert client.get(url, params={name: str(high + 1)}).status_code == 400


def test_path_ids_publish_the_router_pattern(doc) -> None:
    id_ref = {"$ref": "#/components/schemas/ID"}
    for path, item in doc["paths"].items():
        for op in item.values():
            for p in op.get("parameters", []):
                if p["in"] == "path":
                    assert p["schema"] == id_ref, (path, p)


def test_intercept_schema_validates_what_the_server_accepts(doc, agent) -> None:
    validator = _validator(doc, "components", "schemas", "INTERCEPT_REQUEST")
    assert not validator.is_valid({})  # it accepted anything before
    assert agent.post("/api/actions/intercept", json={}).status_code == 422
    good = {"tool": "user.get_profile", "arguments": {"fields": ["name"]}}
    assert validator.is_valid(good)
    assert agent.post("/api/actions/intercept", json=good).status_code == 201
    for bad in (
        {"tool": "A.B", "arguments": {}},
        {"tool": "a.b", "arguments": {}, "extra": 1},
        {"tool": "a.b", "arguments": []},
        {"framework": "plain", "tool_call": {}},
        {"tool": "a.b", "arguments": {}, "timeout_s": 0},
    ):
        assert not validator.is_valid(bad)
        assert agent.post("/api/actions/intercept", json=bad).status_code == 422, bad
    # Values deep inside arguments are the parser's (a recursive schema would cost a $ref
    # lookup per value): said in the schema's description, refused by the server.
    assert (
        "NUL"
        in doc["components"]["schemas"]["INTERCEPT_REQUEST"]["else"]["anyOf"][0]["properties"][
            "arguments"
        ]["description"]
    )
    for deep in (
        {"tool": "a.b", "arguments": {"x": ["\u0000"]}},
        {"tool": "a.b", "arguments": {"n": [2**60]}},
    ):
        assert agent.post("/api/actions/intercept", json=deep).status_code in (400, 422), deep


def test_a_body_of_many_tiny_values_costs_no_more_than_its_parse(agent) -> None:
    """256 KiB of [1,1,1,...] is refused quickly (the schema does no per-value $ref work)."""
    import time as _time

    body = b'{"tool": "a.b", "arguments": {"x": [' + b"1," * 100_000 + b"1]}}"
    started = _time.perf_counter()
    r = agent.post(
        "/api/actions/intercept", content=body, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422, r.text  # over the 64 KiB canonical arguments limit
    assert _time.perf_counter() - started < 2.0
