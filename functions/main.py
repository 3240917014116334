"""Cloud Functions entry points (functions-framework ASGI targets). Thin by design:
each hands its request to the shared ASGI app, restricted to its own route group.

Serve one locally with ``functions-framework --asgi --source functions/main.py
--target intercept``. Deploy one function per target (``terraform/`` does); Firebase
Hosting rewrites map the API paths (/api/actions/intercept → intercept,
/api/actions/** → actions, …; ``firebase.json``) to them.

Every HTTP target is built by :func:`_target`, so each is still a plain module-level
function registered with ``functions_framework.aio.http`` under its own name (what
``--target NAME`` and the Cloud Functions runtime look up).
"""

import functions_framework.aio

from vettra.entrypoints.functions import sequence as sequence_chain
from vettra.entrypoints.functions import serve


def _target(name: str, group: str | None = None):
    """The ASGI HTTP target ``name`` serving route group ``group`` (default: ``name``)."""
    route_group = group or name

    async def target(request):
        return serve(request, route_group)

    # functions-framework registers (and the runtime finds) a target by __name__
    target.__name__ = target.__qualname__ = name
    target.__doc__ = f"Cloud Functions target {name!r}: the {route_group!r} routes of the app."
    return functions_framework.aio.http(target)


health = _target("health")
intercept = _target("intercept")
approve = _target("approve")
actions = _target("actions")
audit = _target("audit")
policy = _target("policy")
expire = _target("expire", "tasks")  # Cloud Tasks target for expire timers (POST /api/tasks/expire)
approvals = _target("approvals")
auth = _target("auth")  # dashboard sign-in: POST /api/auth/firebase-token
vault = _target(
    "vault"
)  # releases, receipt keys, the inventory, connecting accounts (/api/receipts/**, /api/inventory/**, /api/vault/**)


@functions_framework.aio.cloud_event
def sequence(cloud_event):
    """Pub/Sub (VETTRA_SEQUENCE_TOPIC) target: drain the audit chain the message names.

    Synchronous: functions-framework runs it in a worker thread, as the Firestore
    client blocks."""
    sequence_chain(cloud_event)
