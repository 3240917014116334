"""Cloud Functions entry points (functions-framework ASGI targets). Thin by design:
each hands its request to the shared ASGI app, restricted to its own routes.

Serve one locally with ``functions-framework --asgi --source functions/main.py
--target intercept``. Deploy one function per target; Firebase Hosting rewrites
map the API paths (/api/actions/intercept → intercept, /api/actions/** → actions,
…) to them.
"""

import functions_framework.aio

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


@functions_framework.aio.http
async def auth(request):
    """Dashboard sign-in: POST /api/auth/firebase-token (Auth0 ID token -> Firebase token)."""
    return serve(request, "auth")


@functions_framework.aio.http
async def vault(request):
    """Receipt keys and the permission inventory (/api/receipts/**, /api/inventory/**)."""
    return serve(request, "vault")
