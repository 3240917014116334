"""Cloud Functions entry points (functions-framework targets). Thin by design:
each hands its request to the shared app, restricted to its own routes.

Deploy one function per target; Firebase Hosting rewrites map the API paths
(/api/actions/intercept → intercept, /api/actions/** → actions, …) to them.
"""

import functions_framework

from vettra.entrypoints.functions import handle


@functions_framework.http
def health(request):
    return handle(request, "health")


@functions_framework.http
def intercept(request):
    return handle(request, "intercept")


@functions_framework.http
def approve(request):
    return handle(request, "approve")


@functions_framework.http
def actions(request):
    return handle(request, "actions")


@functions_framework.http
def audit(request):
    return handle(request, "audit")


@functions_framework.http
def policy(request):
    return handle(request, "policy")


@functions_framework.http
def expire(request):
    """Cloud Tasks target for expire timers (POST /api/tasks/expire)."""
    return handle(request, "tasks")


@functions_framework.http
def approvals(request):
    return handle(request, "approvals")
