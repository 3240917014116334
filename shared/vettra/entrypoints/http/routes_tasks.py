"""Routes called by the scheduler, not by people: ``POST /api/tasks/expire``.

Cloud Tasks (or the local timer's equivalent) delivers an expire timer here at
least once. The answer is always 200 with what happened — ``expired``,
``not-pending``, ``missing`` or ``early`` — because every one of those is a
final outcome for *this* delivery: a non-2xx status would only make Cloud Tasks
retry a task whose work is done (see "Retrying failed tasks" in
https://cloud.google.com/tasks/docs/configuring-queues#retry). Only failures
that a retry can fix (the store or the scheduler unavailable) answer 5xx.

Only principals with the ``system`` role may call it: in production the task
carries an OIDC token for the scheduler's service account, which the cloud
identity adapter maps to that role; locally the token is minted with
``identity.issue(role="system", sub="scheduler", user="system")``.
"""

from __future__ import annotations

import logging
from typing import Any

from ...domain.errors import MalformedRequest
from ...domain.identity import SYSTEM, Principal
from ...services import actions
from . import schemas
from .app import Route
from .schemas import obj, string
from .types import Request, Response

log = logging.getLogger("vettra.tasks")

TASKS_GROUP = "tasks"
EXPIRE_PATH = "/api/tasks/expire"
#: Cloud Tasks request headers (https://cloud.google.com/tasks/docs/creating-http-target-tasks#handler);
#: read for logging only — never trusted for decisions.
TASK_NAME_HEADER = "x-cloudtasks-taskname"
RETRY_COUNT_HEADER = "x-cloudtasks-taskretrycount"
EXPIRE_RESULTS = ("expired", "not-pending", "missing", "early")
MAX_COUNT_DIGITS = 9

EXPIRE_TASK = schemas.register(
    "EXPIRE_TASK",
    obj(
        {"kind": string(const=actions.EXPIRE_KIND), "action_id": schemas.ID},
        closed=True,
        description="The payload of an expire timer, as scheduled by the actions service.",
    ),
)

EXPIRE_RESULT = schemas.register(
    "EXPIRE_RESULT",
    obj({"result": string(enum=list(EXPIRE_RESULTS))}),
)


def _retry_count(request: Request) -> int | None:
    """``X-CloudTasks-TaskRetryCount`` as an int; absent is None, anything but ASCII
    digits (``str.isdigit`` also accepts '²' and '١', which ``int`` refuses) is 400."""
    raw = (request.header(RETRY_COUNT_HEADER) or "").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= MAX_COUNT_DIGITS):
        raise MalformedRequest(f"X-CloudTasks-TaskRetryCount is not a number: {raw[:20]!r}")
    return int(raw)


def expire_task(deps: Any, request: Request, principal: Principal | None) -> Response:
    """Run the idempotent expire service for the delivered timer."""
    assert principal is not None
    retry_count = _retry_count(request)  # before any work: a malformed delivery changes nothing
    body = schemas.validate("EXPIRE_TASK", request.json())
    result = actions.expire(deps, body["action_id"])
    log.info(
        "expire timer delivered",
        extra={
            "action_id": body["action_id"],
            "result": result,
            "task": (request.header(TASK_NAME_HEADER) or "")[:500],
            "retry_count": retry_count,
            "trace": request.trace_id,
        },
    )
    return Response.json({"result": result})


TASK_ROUTES: list[Route] = [
    Route(
        "POST",
        EXPIRE_PATH,
        expire_task,
        (SYSTEM,),
        "Timer target: expire a pending action past its deadline (scheduler only; idempotent)",
        "expireAction",
        TASKS_GROUP,
        request="EXPIRE_TASK",
        response="EXPIRE_RESULT",
    ),
]
