"""Route handlers: parse → service → response. Thin on purpose."""

from __future__ import annotations

import asyncio
from typing import Any

from ... import __version__
from ...domain.action_bundle import parse_bundle
from ...domain.errors import BadQuery
from ...domain.identity import ADMIN, AGENT, ANY_ROLE, DECIDERS, Principal
from ...services import actions, audit, checkpoints
from ...services.action_events import action_topic
from ...services.policies import require_signed
from . import schemas
from .app import Context, Route, answers
from .types import Request, Response

MAX_WAIT_S = 60
MAX_IDEMPOTENCY_KEY = 255
MAX_SEQ = 2**62
#: Settings /health also names when the runtime set them (the Firestore backend does).
HEALTH_EXTRAS = ("backend", "project", "sequencer", "scheduler_note", "event_bus_note")


def _int(low: int, high: int) -> dict[str, Any]:
    """The published (and enforced) schema of an integer query parameter."""
    return schemas.integer(minimum=low, maximum=high)


def _tree_position(name: str, description: str, *, required: bool = True) -> tuple[Any, ...]:
    """A proof endpoint's query parameter: an entry's seq or a tree size, 1 to MAX_SEQ."""
    return (name, _int(1, MAX_SEQ), description, required)


def health(deps: Any, request: Request, principal: Principal | None) -> Response:
    s = deps.settings
    return Response.json(
        {
            "status": "ok",
            "version": __version__,
            "store": s.get("store"),
            "scheduler": s.get("scheduler"),
            "event_bus": s.get("event_bus"),
            "identity": s.get("identity"),
            "verifier": deps.verifier.name,
            # what the cloud-shaped backend runs instead, and why (absent on the embedded one)
            **{name: s[name] for name in HEALTH_EXTRAS if s.get(name) is not None},
        }
    )


def intercept(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    key = request.header("idempotency-key")
    if key is not None and not schemas.IDEMPOTENCY_KEY_RE.fullmatch(key):
        raise BadQuery(
            f"Idempotency-Key must be 1..{MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        )
    result = actions.intercept(deps, principal, request.json(), key)
    view = result.action.view(deps.clock.now())
    headers = {"Location": f"/api/actions/{result.action.id}"}
    if not result.created:
        headers["Idempotent-Replayed"] = "true"
    return Response.json(view, status=201 if result.created else 200, headers=headers)


def approve(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = schemas.validate("APPROVE_REQUEST", request.json())
    view = actions.decide(
        deps,
        principal,
        body["action_id"],
        body["decision"],
        reason=body.get("reason"),
        step_up_token=body.get("step_up_token"),
    )
    return Response.json(view)


def pending(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    limit = request.query_int(
        "limit", default=actions.MAX_PENDING_LIST, low=1, high=actions.MAX_PENDING_LIST
    )
    return Response.json(
        {"actions": actions.list_pending(deps, principal, limit or actions.MAX_PENDING_LIST)}
    )


async def get_action(
    deps: Any, request: Request, principal: Principal | None, ctx: Context
) -> Response:
    assert principal is not None
    action_id = request.path_params["action_id"]
    wait = request.query_int("wait", default=0, low=0, high=MAX_WAIT_S) or 0
    view = await ctx.blocking(actions.get_action, deps, principal, action_id)
    if wait and view["status"] == "pending":
        view = await _wait_for_change(deps, principal, action_id, wait, ctx)
    return Response.json(view)


async def _wait_for_change(
    deps: Any, principal: Principal, action_id: str, seconds: int, ctx: Context
) -> dict[str, Any]:
    """Long-poll on the event bus: the loop waits for the action's own event (the bus
    wakes it from the publisher's thread); no thread is held, no busy loop.

    Over a shared store (``settings["wait_poll_s"]``, set by the Firestore backend)
    another process or instance may decide the action, and this process's bus never
    hears of it: the wait then also re-reads the action every ``wait_poll_s``
    seconds, so such a decision is seen within that bound."""
    changed = asyncio.Event()
    wake = ctx.waker(changed)
    unsubscribe = deps.bus.subscribe(action_topic(action_id), lambda _event: wake())
    try:
        # re-read after subscribing: no lost wake-up
        view = await ctx.blocking(actions.get_action, deps, principal, action_id)
        if view["status"] != "pending":
            return view
        budget = float(seconds)
        if view.get("expires_at"):
            from ...domain.actions import parse_rfc3339

            until_expiry = (parse_rfc3339(view["expires_at"]) - deps.clock.now()).total_seconds()
            budget = max(0.0, min(budget, until_expiry + 0.05))
        poll_s = float(deps.settings.get("wait_poll_s") or 0) or budget
        end = asyncio.get_running_loop().time() + budget
        while True:
            left = end - asyncio.get_running_loop().time()
            await ctx.wait(changed, min(poll_s, left))
            changed.clear()  # before the read: a wake-up after it still counts next round
            view = await ctx.blocking(actions.get_action, deps, principal, action_id)
            # an event that left it pending (a relayed vote) waits on
            if view["status"] != "pending" or left <= poll_s or ctx.stopping.is_set():
                return view
    finally:
        unsubscribe()


def audit_entries(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    after = request.query_int("after", default=0, low=0, high=2**62) or 0
    limit = request.query_int("limit", default=audit.DEFAULT_PAGE, low=1, high=audit.MAX_PAGE)
    action_id = request.query_value("action_id")
    if action_id is not None and not schemas._validator("ID").is_valid(action_id):
        raise BadQuery("query parameter 'action_id' is not an id")
    return Response.json(
        audit.list_entries(
            deps, principal, after=after, limit=limit or audit.DEFAULT_PAGE, action_id=action_id
        )
    )


audit_verify = answers(audit.verify)
audit_action = answers(audit.action_entries, "action_id")
audit_checkpoint = answers(checkpoints.latest)
audit_public_key = answers(checkpoints.public_keys)


def audit_inclusion(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    seq = request.query_int("seq", default=None, low=1, high=2**62)
    if seq is None:
        raise BadQuery("query parameter 'seq' is required")
    tree_size = request.query_int("tree_size", default=None, low=1, high=2**62)
    return Response.json(checkpoints.inclusion(deps, principal, seq, tree_size))


def audit_consistency(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    old = request.query_int("from", default=None, low=1, high=2**62)
    new = request.query_int("to", default=None, low=1, high=2**62)
    if old is None or new is None:
        raise BadQuery("query parameters 'from' and 'to' are required")
    return Response.json(checkpoints.consistency(deps, principal, old, new))


def _policy_view(policy: Any) -> Response:
    return Response.json(
        {
            "policy_id": policy.policy_id,
            "version": policy.version,
            "digest": policy.digest,
            "payload": policy.payload,
        }
    )


def policy_get(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    return _policy_view(deps.policies.active(principal.tenant))


def policy_put(deps: Any, request: Request, principal: Principal | None) -> Response:
    assert principal is not None
    body = request.json()
    body = schemas.validate(
        "POLICY_ENVELOPE", body
    )  # an unsigned one was told to sign it (explain)
    return _policy_view(deps.policies.activate(principal, body))


def openapi(deps: Any, request: Request, principal: Principal | None) -> Response:
    from .openapi import document

    return Response.json(document(ROUTES))


ROUTES: list[Route] = [
    Route(
        "GET",
        "/health",
        health,
        None,
        "Liveness and which adapters are in use",
        "health",
        "health",
        response="HEALTH",
    ),
    Route(
        "POST",
        "/api/actions/intercept",
        intercept,
        (AGENT,),
        "Submit an agent's tool call for a decision",
        "interceptAction",
        "intercept",
        request="INTERCEPT_REQUEST",
        response="ACTION",
        created=True,
        explain=parse_bundle,
    ),
    Route(
        "POST",
        "/api/actions/approve",
        approve,
        DECIDERS,
        "Approve or deny a pending action (owner only)",
        "decideAction",
        "approve",
        request="APPROVE_REQUEST",
        response="ACTION",
    ),
    Route(
        "GET",
        "/api/actions/pending",
        pending,
        DECIDERS,
        "The caller's pending actions, oldest first",
        "listPendingActions",
        "actions",
        response="ACTION_LIST",
        query=(
            (
                "limit",
                _int(1, actions.MAX_PENDING_LIST),
                f"At most this many (1-{actions.MAX_PENDING_LIST})",
            ),
        ),
    ),
    Route(
        "GET",
        "/api/actions/{action_id}",
        get_action,
        ANY_ROLE,
        "One action; ?wait=N long-polls until it leaves pending",
        "getAction",
        "actions",
        response="ACTION",
        query=(
            (
                "wait",
                _int(0, MAX_WAIT_S),
                f"Seconds (0-{MAX_WAIT_S}) to wait for the status to leave pending",
            ),
        ),
    ),
    Route(
        "GET",
        "/api/audit/entries",
        audit_entries,
        DECIDERS,
        "Audit entries in sequence order",
        "listAuditEntries",
        "audit",
        response="AUDIT_ENTRIES",
        query=(
            ("after", _int(0, MAX_SEQ), "Only entries with seq greater than this"),
            ("limit", _int(1, audit.MAX_PAGE), f"Page size (1-{audit.MAX_PAGE})"),
            ("action_id", schemas.ID, "Only this action's entries"),
        ),
    ),
    Route(
        "GET",
        "/api/audit/verify",
        audit_verify,
        DECIDERS,
        "Verify the tenant's audit chain",
        "verifyAudit",
        "audit",
        response="AUDIT_VERIFY",
    ),
    Route(
        "GET",
        "/api/audit/action/{action_id}",
        audit_action,
        ANY_ROLE,
        "The audit entries of one action",
        "getActionAudit",
        "audit",
        response="AUDIT_ENTRIES",
    ),
    Route(
        "GET",
        "/api/audit/checkpoint",
        audit_checkpoint,
        ANY_ROLE,
        "The latest signed checkpoint (C2SP tlog-checkpoint signed note)",
        "getAuditCheckpoint",
        "audit",
        response="AUDIT_CHECKPOINT",
    ),
    Route(
        "GET",
        "/api/audit/public-key",
        audit_public_key,
        ANY_ROLE,
        "The checkpoint verifier key (signed-note form)",
        "getAuditPublicKey",
        "audit",
        response="AUDIT_PUBLIC_KEY",
    ),
    Route(
        "GET",
        "/api/audit/proof/inclusion",
        audit_inclusion,
        ANY_ROLE,
        "RFC 9162 inclusion proof of entry seq in a tree of tree_size",
        "getInclusionProof",
        "audit",
        response="INCLUSION_PROOF",
        query=(
            _tree_position("seq", "The entry (1-based)"),
            _tree_position(
                "tree_size",
                "Tree size, e.g. a checkpoint's; default the current size",
                required=False,
            ),
        ),
    ),
    Route(
        "GET",
        "/api/audit/proof/consistency",
        audit_consistency,
        ANY_ROLE,
        "RFC 9162 consistency proof between two tree sizes",
        "getConsistencyProof",
        "audit",
        response="CONSISTENCY_PROOF",
        query=(
            _tree_position("from", "The older tree size"),
            _tree_position("to", "The newer tree size"),
        ),
    ),
    Route(
        "GET",
        "/api/policy",
        policy_get,
        (ADMIN,),
        "The active signed policy",
        "getPolicy",
        "policy",
        response="POLICY_VIEW",
    ),
    Route(
        "POST",
        "/api/policy",
        policy_put,
        (ADMIN,),
        "Activate a signed policy bundle (newer version, trusted key)",
        "activatePolicy",
        "policy",
        request="POLICY_ENVELOPE",
        response="POLICY_VIEW",
        explain=require_signed,
    ),  # an unsigned body fails the schema: say "sign it first"
    Route(
        "GET",
        "/api/openapi.json",
        openapi,
        ANY_ROLE,
        "This API's OpenAPI 3.1 document",
        "getOpenApi",
        "health",
    ),
]

from .routes_tasks import TASK_ROUTES  # noqa: E402

ROUTES += TASK_ROUTES

from .routes_stepup import STEPUP_ROUTES  # noqa: E402

ROUTES += STEPUP_ROUTES

from .routes_sessions import SESSION_ROUTES  # noqa: E402

ROUTES += SESSION_ROUTES

from .routes_events import EVENT_ROUTES  # noqa: E402

ROUTES += EVENT_ROUTES

from .routes_auth import AUTH_ROUTES  # noqa: E402

ROUTES += AUTH_ROUTES

from .routes_vault import VAULT_ROUTES  # noqa: E402

ROUTES += VAULT_ROUTES

from .routes_dashboard_sessions import DASHBOARD_SESSION_ROUTES  # noqa: E402

ROUTES += DASHBOARD_SESSION_ROUTES

from .routes_simulation import SIMULATION_ROUTES  # noqa: E402

ROUTES += SIMULATION_ROUTES
