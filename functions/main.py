"""Cloud Functions entry points (functions-framework ASGI targets). Thin by design:
each hands its request to the shared ASGI app, restricted to its own routes.

Serve one locally with ``functions-framework --asgi --source functions/main.py
--target intercept``. Deploy one function per target; Firebase Hosting rewrites
map the API paths (/api/actions/intercept → intercept, /api/actions/** → actions,
…) to them.
"""

import functions_framework.aio

from vettra.entrypoints.functions import sequence as sequence_chain
from vettra.entrypoints.functions import serve


@functions_framework.aio.http
async def health(request):
    return serve(request, "health")


@functions_framework.aio.http
async def intercept(request):
    return serve(request, "intercept")


@functions_framework.aio.http
async def approve(request):
    return serve(request, "approve")


@functions_framework.aio.http
async def actions(request):
    return serve(request, "actions")


@functions_framework.aio.http
async def audit(request):
    return serve(request, "audit")


@functions_framework.aio.http
async def policy(request):
    return serve(request, "policy")


@functions_framework.aio.http
async def expire(request):
    """Cloud Tasks target for expire timers (POST /api/tasks/expire)."""
    return serve(request, "tasks")


@functions_framework.aio.http
async def approvals(request):
    return serve(request, "approvals")


@functions_framework.aio.cloud_event
def sequence(cloud_event):
    """Pub/Sub (VETTRA_SEQUENCE_TOPIC) target: drain the chain the message names.

    Synchronous: functions-framework runs it in a worker thread, as the Firestore
    client blocks."""
    sequence_chain(cloud_event)
