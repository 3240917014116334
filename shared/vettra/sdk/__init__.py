"""Vettra's agent-side SDK: ask Vettra before a tool runs, and run it only on a go-ahead.

``import vettra.sdk`` loads httpx, tenacity and Vettra's two pure naming and digest
modules, nothing of the server (``tests/unit/test_sdk_import_closure.py``). Framework
integrations are submodules that import their framework when imported:
``vettra.sdk.langchain``, ``vettra.sdk.openai_agents``, ``vettra.sdk.anthropic`` and
``vettra.sdk.mcp`` (the ``vettra mcp-proxy`` command).
"""

from .. import __version__
from ._client import DEFAULT_DECISION_TIMEOUT_S, DEFAULT_TIMEOUT_S, USER_AGENT, AsyncClient, Client
from ._errors import (
    ActionBlocked,
    ActionDenied,
    ActionExpired,
    ApiError,
    ApprovalPending,
    AuthenticationFailed,
    Conflict,
    CredentialConflict,
    CredentialNotFound,
    CredentialNotPermitted,
    CredentialRefused,
    CredentialUnavailable,
    DigestMismatch,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    StepUpPending,
    VettraSDKError,
    VettraUnavailable,
)
from ._models import Action, Authorization, Credential, Risk
from ._protect import protect, tool_name_for

__all__ = [
    "DEFAULT_DECISION_TIMEOUT_S",
    "DEFAULT_TIMEOUT_S",
    "USER_AGENT",
    "Action",
    "ActionBlocked",
    "ActionDenied",
    "ActionExpired",
    "ApiError",
    "ApprovalPending",
    "AsyncClient",
    "AuthenticationFailed",
    "Authorization",
    "Client",
    "Conflict",
    "Credential",
    "CredentialConflict",
    "CredentialNotFound",
    "CredentialNotPermitted",
    "CredentialRefused",
    "CredentialUnavailable",
    "DigestMismatch",
    "InvalidRequest",
    "NotFound",
    "PermissionDenied",
    "Risk",
    "StepUpPending",
    "VettraSDKError",
    "VettraUnavailable",
    "__version__",
    "protect",
    "tool_name_for",
]
