"""Ports: the small interfaces the services depend on (cosmicpython style).

Every port has an embedded adapter (SQLite, an in-process timer and bus, local
keys and identity). Google Cloud adapters exist for the store (Firestore) and its
action changes (a Firestore listener), the scheduler (Cloud Tasks), the event bus
(Pub/Sub), identity (Auth0 tokens, Cloud Tasks' Google OIDC tokens, Firebase custom
tokens) and keys (Secret Manager files). The store and scheduler adapters pass one
contract suite each in tests/contract (the in-memory fake of tests/fakes.py
passes the store's too). Wider ports are unions of small role interfaces
(:class:`AuditLog`, :class:`KeyStore`), so a service can depend on the part it uses.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .domain.actions import Action
from .domain.audit import AuditEntry, AuditEvent
from .domain.identity import Principal
from .domain.policy import Policy, PolicyDecision
from .domain.risk import RiskAssessment


class Clock(abc.ABC):
    @abc.abstractmethod
    def now(self) -> datetime:
        """Timezone-aware UTC now."""


class ActionRecords(abc.ABC):
    """Actions by id: written once, then moved on by compare-and-set."""

    @abc.abstractmethod
    def get(self, action_id: str) -> Action | None: ...

    @abc.abstractmethod
    def add(self, action: Action, *, record_json: str | None = None) -> None:
        """Insert ``action``; ``record_json`` is its :meth:`Action.to_record_json`, if already made."""

    @abc.abstractmethod
    def update(self, action: Action, *, expected_status: str) -> None:
        """Write ``action`` only if the stored status is still ``expected_status``
        (compare-and-set: the loser of a decision race gets :class:`Conflict`)."""


class ActionQueues(abc.ABC):
    """The pending lists (own and quorum) and the deadlines to re-arm."""

    @abc.abstractmethod
    def pending(self, tenant: str, user: str, now: datetime, limit: int) -> list[Action]:
        """Actions still pending at ``now`` that ``user`` decides, oldest first: their own,
        and those naming them in a quorum."""

    @abc.abstractmethod
    def pending_with_deadline(self, limit: int) -> list[Action]:
        """Pending actions that carry ``expires_at`` (to re-arm timers at boot)."""

    @abc.abstractmethod
    def sweep_quorum_rows(self, limit: int) -> int:
        """Delete up to ``limit`` named-approver index rows of actions no longer pending
        (they only feed :meth:`pending`); return how many went."""


class ActionRepository(ActionRecords, ActionQueues, abc.ABC):
    """What a unit of work offers for actions (``uow.actions``)."""


@dataclass(frozen=True)
class IdempotencyRecord:
    """One ``Idempotency-Key`` of one caller (``scope``): the request body it came with
    and the action it created."""

    scope: str
    key: str
    request_digest: str
    action_id: str
    #: When the key was first used: what :meth:`IdempotencyRepository.sweep` ages it by.
    at: datetime | None = None


class IdempotencyRepository(abc.ABC):
    @abc.abstractmethod
    def get(self, scope: str, key: str) -> tuple[str, str] | None:
        """``(request_digest, action_id)`` recorded for this key, if any."""

    @abc.abstractmethod
    def put(self, record: IdempotencyRecord) -> None:
        """Record a new key (the caller has :meth:`get` it first, in the same unit of work)."""

    @abc.abstractmethod
    def sweep(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` keys first used before ``before``; return how many went.
        Keys stored by an older build without a date count as first used when the store
        was upgraded, so they too stay one full window."""


class PolicyRepository(abc.ABC):
    @abc.abstractmethod
    def active(self, tenant: str) -> dict[str, Any] | None:
        """The active signed envelope for ``tenant``."""

    @abc.abstractmethod
    def activate(
        self, tenant: str, envelope: dict[str, Any], version: int, digest: str
    ) -> None: ...


class Documents(abc.ABC):
    """Small documents by collection and id (sessions, step-up enrolments, challenges…).

    Shaped like Firestore: each document is a JSON object with an optional
    ``owner`` for listing. Inside a unit of work reads and writes are
    transactional, so read-check-write sequences are safe.
    """

    @abc.abstractmethod
    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    def put(
        self, collection: str, doc_id: str, doc: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        """Create or replace."""

    @abc.abstractmethod
    def create(
        self, collection: str, doc_id: str, doc: Mapping[str, Any], *, owner: str | None = None
    ) -> None:
        """Create; :class:`Conflict` if the id exists (single-use markers rely on it)."""

    @abc.abstractmethod
    def delete(self, collection: str, doc_id: str) -> None: ...

    @abc.abstractmethod
    def list(self, collection: str, owner: str, limit: int = 100) -> list[dict[str, Any]]:
        """The owner's documents, oldest first."""


class DocumentRetention(abc.ABC):
    """Dropping small documents once they can no longer matter (docs/approvals.md, Retention)."""

    @abc.abstractmethod
    def sweep(self, collection: str, field: str, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` documents of ``collection`` whose ``field`` (an ISO 8601
        UTC time, as ``datetime.isoformat`` writes it) is before ``before``; documents
        without the field stay. Return how many went (a Firestore TTL policy or a
        batched query on the same field does this in the cloud)."""


class DocumentRepository(Documents, DocumentRetention, abc.ABC):
    """What a unit of work offers for documents (``uow.docs``)."""


class AuditRecorder(abc.ABC):
    @abc.abstractmethod
    def record(self, event: AuditEvent) -> None:
        """Record ``event`` in this unit of work; it is linked into its chain on commit."""

    @property
    @abc.abstractmethod
    def linked(self) -> list[AuditEntry]:
        """Entries linked by the last commit (empty where linking is deferred)."""

    @property
    def event_ids(self) -> list[str]:
        """Where linking is deferred: the ids of the events recorded (an answer cites the
        last one until its ``seq`` exists). Empty where a commit links at once."""
        return []


class UnitOfWork(abc.ABC):
    """One transaction: rolls back on exit unless :meth:`commit` was called."""

    actions: ActionRepository
    docs: DocumentRepository
    idempotency: IdempotencyRepository
    policies: PolicyRepository
    audit: AuditRecorder

    def __enter__(self) -> UnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...


@dataclass(frozen=True)
class EntryQuery:
    """Which linked entries of a chain :meth:`AuditEntries.entries` yields: those after
    seq ``after``, only of one action or one user where given, at most ``limit``."""

    after: int = 0
    limit: int | None = None
    action_id: str | None = None
    user: str | None = None


ALL_ENTRIES = EntryQuery()


class AuditEntries(abc.ABC):
    """The linked entries of each chain, in sequence order."""

    @abc.abstractmethod
    def entries(self, chain: str, query: EntryQuery = ALL_ENTRIES) -> Iterator[AuditEntry]:
        """The entries ``query`` selects, in sequence order."""

    @abc.abstractmethod
    def head(self, chain: str) -> tuple[int, str]:
        """``(seq, hash)`` of the last linked entry; ``(0, GENESIS_HASH)`` when empty."""


class AuditTree(abc.ABC):
    """Each chain as an RFC 9162 Merkle tree: its root and the hashes proofs are made of."""

    @abc.abstractmethod
    def tree_state(self, chain: str) -> tuple[int, bytes]:
        """``(size, RFC 9162 root)`` over the committed entries, consistent with each other."""

    @abc.abstractmethod
    def entry_hashes(self, chain: str, upto: int) -> list[bytes]:
        """The raw hashes of entries 1..``upto`` in order (leaves for proofs)."""

    @abc.abstractmethod
    def merkle_nodes(
        self, chain: str, ids: Sequence[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """The stored subtree hashes among ``ids``, ``(level, index) -> hash``, in one batched read.

        Node ``(level, index)`` is the RFC 9162 §2.1.1 MTH of leaves ``[index * 2**level,
        (index + 1) * 2**level)``; level 0 is the leaf hash ``SHA-256(0x00 || entry hash)``.
        The sequencer stores a node in the same transaction as the entry that completes it
        (:meth:`CompactRange.append_completing`), so proofs read O(log n) nodes
        (:mod:`vettra.domain.merkle_nodes`); nodes not yet complete are absent.
        """


class CheckpointLog(abc.ABC):
    """The signed checkpoints (C2SP signed notes) of each chain, one per tree size."""

    @abc.abstractmethod
    def add_checkpoint(self, chain: str, size: int, root: bytes, note: str) -> None: ...

    @abc.abstractmethod
    def checkpoints(self, chain: str) -> list[tuple[int, str]]:
        """``(size, signed note)`` of every checkpoint, oldest first."""

    @abc.abstractmethod
    def last_checkpoint(self, chain: str) -> tuple[int, str] | None:
        """The newest checkpoint, without reading them all (called every tick)."""


class AuditLog(AuditEntries, AuditTree, CheckpointLog, abc.ABC):
    """Read side of the audit chains and their signed checkpoints (what a store exposes)."""


class Store(abc.ABC):
    @abc.abstractmethod
    def unit_of_work(self, *, readonly: bool = False) -> UnitOfWork:
        """A transaction; ``readonly`` ones take no write lock and may not commit changes."""

    @property
    @abc.abstractmethod
    def audit_log(self) -> AuditLog: ...

    @abc.abstractmethod
    def known_chains(self) -> list[str]:
        """Chains that have entries (the checkpointer signs each one's tree)."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Scheduler(abc.ABC):
    """Fires ``handler(payload)`` at or after ``due``; at least once, so handlers are idempotent."""

    @abc.abstractmethod
    def schedule(self, name: str, due: datetime, payload: Mapping[str, Any]) -> None: ...

    @abc.abstractmethod
    def cancel(self, name: str) -> None: ...


class EventBus(abc.ABC):
    @abc.abstractmethod
    def publish(self, topic: str, event: Mapping[str, Any]) -> None: ...

    @abc.abstractmethod
    def subscribe(
        self, topic: str, handler: Callable[[Mapping[str, Any]], None]
    ) -> Callable[[], None]:
        """Returns a function that unsubscribes."""


class ActionChanges(abc.ABC):
    """Actions written by *any* process or instance sharing the store, as they happen.

    The embedded default needs none (one process owns a home). Over a shared store
    (Firestore) a live event stream uses it to see decisions other processes make;
    the Firestore adapter is a snapshot listener, active only while someone watches.
    """

    @abc.abstractmethod
    def watch(self, handler: Callable[[Action], None]) -> Callable[[], None]:
        """Call ``handler`` with every action written from now on (possibly more than
        once); returns a function that stops watching."""


class Identity(abc.ABC):
    @abc.abstractmethod
    def authenticate(self, bearer: str) -> Principal:
        """Raise :class:`Unauthenticated` for anything but a valid token."""


class SignInTokens(abc.ABC):
    """Mints the token a signed-in person's browser opens the realtime store with (a
    Firebase custom token in the cloud, so Firestore listeners run under the rules)."""

    @abc.abstractmethod
    def mint(self, uid: str, claims: Mapping[str, Any]) -> str:
        """A signed token for ``uid`` carrying ``claims``; :class:`Unavailable` if the
        signer cannot be reached."""


class AuditKeys(abc.ABC):
    """Keys that seal audit entries (HMAC) and sign their checkpoints (Ed25519)."""

    @abc.abstractmethod
    def audit_hmac_key(self) -> tuple[str, bytes]:
        """The current ``(key_id, key)`` for sealing new entries."""

    @abc.abstractmethod
    def audit_hmac_keys(self) -> dict[str, bytes]:
        """Every key id that may appear in a chain (for verification after rotation)."""

    @abc.abstractmethod
    def checkpoint_signing_key(self) -> Any:
        """The Ed25519 private key that signs audit checkpoints now."""

    @abc.abstractmethod
    def checkpoint_public_keys(self) -> list[Any]:
        """Every checkpoint public key still to be accepted: current first, then retired ones."""


class PolicyKeys(abc.ABC):
    """Keys of signed policy bundles."""

    @abc.abstractmethod
    def policy_trusted_keys(self) -> dict[str, Any]:
        """Ed25519 public keys trusted to sign policy bundles, by key id."""

    @abc.abstractmethod
    def policy_signing_key(self) -> Any:
        """The Ed25519 private key this deployment signs its shipped default policy with
        (an operator signs later versions with ``vettra policy sign``)."""

    def has_policy_signing_key(self) -> bool:
        """Whether :meth:`policy_signing_key` has a key to give (a home always does; the
        cloud's only where the operator mounted one)."""
        return True


class SecretSealer(abc.ABC):
    """Encryption at rest for the shared secrets the store keeps (TOTP seeds)."""

    @abc.abstractmethod
    def seal_secret(self, plaintext: bytes, *, context: str) -> dict[str, str]:
        """Encrypt a shared secret for storage (AEAD, ``context`` as associated data).

        The result names the data key (``kid``) beside the ciphertext, so secrets sealed
        before a rotation still open. Locally AES-256-GCM with a key in ``keys/``; a
        cloud adapter may seal with KMS or Secret Manager instead.
        """

    @abc.abstractmethod
    def open_secret(self, sealed: dict[str, str], *, context: str) -> bytes:
        """The plaintext of :meth:`seal_secret`; ``ValueError`` if altered, moved to another
        ``context``, or sealed by a key this store does not hold."""


class ReceiptKeys(abc.ABC):
    """The key that signs credential receipts (Ed25519 JWTs an executor verifies offline)."""

    @abc.abstractmethod
    def receipt_signing_key(self) -> Any:
        """The Ed25519 private key that signs receipts now; :class:`NotConfigured` when this
        deployment holds none (no credential is released without a receipt)."""

    @abc.abstractmethod
    def receipt_public_keys(self) -> list[Any]:
        """Every receipt public key still to be accepted: current first, then retired ones."""


class KeyStore(AuditKeys, PolicyKeys, SecretSealer, ReceiptKeys, abc.ABC):
    """Secrets of the running mode: the home directory locally, the mounted Secret
    Manager files in the cloud (:mod:`vettra.adapters.secret_keys`)."""


class TokenVault(abc.ABC):
    """Turns what a user stored for a connection into a provider access token.

    The service reads and opens the stored secret (sealed in the store) and hands it
    here; the vault never stores anything. Auth0 Token Vault exchanges an Auth0 refresh
    token for the connection's federated access token; the local vault returns the
    provider token the user stored with ``vettra vault put``.
    """

    #: The kind of stored secret it takes (``refresh_token`` or ``access_token``).
    subject_kind: str

    @abc.abstractmethod
    def exchange(self, subject: str, connection: str, *, login_hint: str | None = None) -> Any:
        """A :class:`~vettra.domain.credentials.ProviderToken` for ``connection``;
        :class:`~vettra.domain.credentials.NotLinked` when the user has no usable link to
        it, :class:`Unavailable` when the vault did not answer (after its retries)."""


@dataclass(frozen=True)
class LinkedAccount:
    """What the authorization server answered a connect-an-account code exchange with,
    the ID token already verified (signature, ``iss``, ``aud``, ``exp``, ``iat``)."""

    refresh_token: str | None
    sub: str  # the Auth0 user the ID token names
    tenant: str  # its https://vettra.dev/tenant claim (default "default")
    nonce: str | None  # the ID token's nonce, for the service to compare with its state's
    scope: tuple[str, ...] | None  # what the Auth0 tokens were granted, when it says

    def __repr__(self) -> str:  # never the refresh token
        return f"LinkedAccount(sub={self.sub!r}, tenant={self.tenant!r}, scope={self.scope!r})"


class LinkRefused(Exception):
    """The connect flow failed at the authorization server; ``code`` is one of
    ``token-endpoint`` (the code exchange was refused or failed), ``id-token`` (the ID
    token did not verify) or ``unavailable`` (its keys could not be fetched). ``why``
    names the check, never a token or code."""

    def __init__(self, code: str, why: str):
        super().__init__(why)
        self.code = code
        self.why = why


@dataclass(frozen=True, kw_only=True)
class AuthorizeRequest:
    """One ``/authorize`` request of the connect flow: the single-use ``state``, the ID
    token's ``nonce``, the PKCE ``code_verifier`` (only its S256 challenge is sent), and
    the ``connection`` to connect with the ``scopes`` to ask its provider for."""

    state: str
    nonce: str
    code_verifier: str
    connection: str
    scopes: Sequence[str]

    def __repr__(self) -> str:  # never the state, nonce or verifier
        return f"AuthorizeRequest(connection={self.connection!r}, scopes={self.scopes!r})"


class AccountLinker(abc.ABC):
    """The authorization code flow (with PKCE) through which a user connects an account
    whose refresh token Auth0 Token Vault will exchange (docs/credentials.md)."""

    #: the redirect URI registered with the authorization server (the callback route)
    redirect_uri: str

    @abc.abstractmethod
    def authorize_url(self, request: AuthorizeRequest) -> str:
        """Where to send the browser: ``request`` as a URL of the authorization server."""

    @abc.abstractmethod
    def exchange(self, code: str, code_verifier: str) -> LinkedAccount:
        """Redeem ``code`` at the token endpoint (confidential client); :class:`LinkRefused`."""


class Verifier(abc.ABC):
    """Risk scoring and policy evaluation of one action: the decision Vettra records.

    Two adapters give byte-identical answers (tests/unit/test_wasm_differential.py): the
    Python reference (:class:`vettra.services.verifier.ReferenceVerifier`) and the Rust
    module run by wasmtime (:class:`vettra.adapters.wasm_verifier.WasmVerifier`), which
    is also what the approver's browser runs. ``name`` is what ``/health`` reports.
    """

    name: str

    @abc.abstractmethod
    def decide(
        self, policy: Policy, bundle: Any, catalogue: Any, agent: str | None
    ) -> tuple[RiskAssessment, PolicyDecision]:
        """``risk.assess`` with the policy's overrides, then ``policy.evaluate``; raises
        exactly what the reference raises."""
