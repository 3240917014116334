"""The active signed policy per tenant: load, verify, cache, activate.

A bundle becomes active only after its signature verifies against a trusted key
and its version is newer than the active one; otherwise the previous policy
stays in force. Every instance re-reads the active pointer after
:data:`CACHE_TTL_S`, so a change reaches all cloud instances within seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from ..domain import audit
from ..domain.actions import rfc3339
from ..domain.errors import Conflict, FieldError, PolicyRejected
from ..domain.identity import ADMIN, Principal
from ..domain.policy import Policy
from ..domain.policy_envelope import load_default_payload, sign_bundle, verify_bundle
from ..ports import Clock, KeyStore, Store

CACHE_TTL_S = 5.0


SIGN_HINT = (
    "sign it first: `vettra policy sign FILE --home DIR -o signed.json`, then POST "
    "the signed envelope ({payload, signatures})"
)


def require_signed(body: Any) -> None:
    """An unsigned payload (or an envelope without signatures) is refused with what to do."""
    if isinstance(body, dict) and not body.get("signatures"):
        raise PolicyRejected(
            f"the policy is not signed; {SIGN_HINT}",
            errors=[FieldError("signatures", "missing: the bundle is unsigned")],
        )


class PolicyService:
    def __init__(self, store: Store, keys: KeyStore, clock: Clock):
        self._store = store
        self._keys = keys
        self._clock = clock
        self._cache: dict[str, tuple[Policy, float]] = {}
        self._lock = threading.Lock()

    def active(self, tenant: str) -> Policy:
        hit = self._cache.get(tenant)
        if hit is not None and time.monotonic() - hit[1] < CACHE_TTL_S:
            return hit[0]
        with self._store.unit_of_work(readonly=True) as uow:
            envelope = uow.policies.active(tenant)
        if envelope is None:
            raise PolicyRejected(f"tenant {tenant!r} has no active policy; deny by default")
        if hit is not None and envelope.get("payload", {}).get("version") == hit[0].version:
            policy = hit[0]
        else:
            # Re-verify what the store hands back: a row edited at rest must not take effect.
            policy = verify_bundle(envelope, self._keys.policy_trusted_keys())
        with self._lock:
            self._cache[tenant] = (policy, time.monotonic())
        return policy

    def activate(self, principal: Principal, envelope: Any) -> Policy:
        principal.require(ADMIN)
        return self._activate(principal.tenant, principal.actor, envelope)

    def _activate(self, tenant: str, actor: str, envelope: Any) -> Policy:
        require_signed(envelope)
        trusted = self._keys.policy_trusted_keys()
        verify_bundle(envelope, trusted)  # signature and schema before touching the store
        with self._store.unit_of_work() as uow:
            current = uow.policies.active(tenant)
            active = verify_bundle(current, trusted) if current is not None else None
            # newer, or the active version with the same digest (docs/policy.md, rollback)
            policy = verify_bundle(envelope, trusted, active=active)
            if active is not None and policy.version == active.version:
                return active  # re-posting what is in force: nothing to write, nothing to audit
            uow.policies.activate(tenant, envelope, policy.version, policy.digest)
            uow.audit.record(
                audit.AuditEvent(
                    type=audit.POLICY_ACTIVATED,
                    chain=tenant,
                    actor=actor,
                    at=rfc3339(self._clock.now()),
                    data={
                        "policy_id": policy.policy_id,
                        "version": policy.version,
                        "digest": policy.digest,
                        "key_ids": sorted(
                            s.get("keyid", "") for s in envelope.get("signatures", [])
                        ),
                    },
                )
            )
            uow.commit()
        with self._lock:
            self._cache[tenant] = (policy, time.monotonic())
        return policy

    def ensure_default(self, tenant: str) -> Policy:
        """First boot of a home: sign the shipped default with this home's key and activate it."""
        with self._store.unit_of_work(readonly=True) as uow:
            present = uow.policies.active(tenant) is not None
        if present:
            return self.active(tenant)
        envelope = sign_bundle(load_default_payload(), self._keys.policy_signing_key())
        try:
            return self._activate(tenant, "system:bootstrap", envelope)
        except Conflict:
            # another process sharing the store activated it first (two function
            # instances booting at once): theirs is in force
            return self.active(tenant)
