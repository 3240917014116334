"""What the services need, wired once by :func:`vettra.bootstrap.bootstrap`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..ports import Clock, EventBus, KeyStore, Scheduler, Store, Verifier
from .verifier import ReferenceVerifier


@dataclass
class Deps:
    store: Store
    scheduler: Scheduler
    bus: EventBus
    clock: Clock
    keys: KeyStore
    catalogue: Any
    policies: Any  # services.policies.PolicyService
    step_up: Any  # services.stepup.StepUpVerifier
    settings: dict[str, Any] = field(default_factory=dict)
    proof_limiter: Any = None  # services.rate_limit.TokenBucketLimiter for the proof endpoints
    event_hub: Any = None  # services.event_streams.EventHub fanning the bus out to streams
    sign_in: Any = None  # services.sign_in.SignInService; None: sign-in not configured (404)
    #: {stored secret kind: ports.TokenVault} for credential releases (services.credentials)
    vaults: dict[str, Any] = field(default_factory=dict)
    credentials: Any = None  # domain.credentials.CredentialSettings; None: the defaults
    #: ports.AccountLinker: the dashboard's connect-an-account flow (services.vault_link);
    #: None: not configured (404)
    vault_link: Any = None
    dashboard_sessions: Any = (
        None  # services.dashboard_sessions.DashboardSessions (local sign-in links)
    )
    verifier: Verifier = field(default_factory=ReferenceVerifier)  # risk + policy decisions
