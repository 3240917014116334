"""Wire adapters into services from configuration: the one place that chooses.

Nothing connects at import time. ``bootstrap(Config(...))`` builds a
:class:`Runtime`; the local server and the functions entry points call it once,
lazily, on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOCAL = "local"
FIRESTORE = "firestore"
BACKENDS = (LOCAL, FIRESTORE)
DEFAULT_HOME = Path("~/.vettra").expanduser()
DB_FILE = "vettra.db"
#: Timers live in their own file: its writes never queue behind the store's
#: write lock (SQLite's busy handler sleeps in millisecond steps).
TIMERS_FILE = "timers.db"
#: The Firestore backend's local timers (no Cloud Tasks queue configured): apart from the
#: embedded store's, whose actions they do not know.
FIRESTORE_TIMERS_FILE = "timers-firestore.db"
#: Where bootstrap runs: ``vettra dev`` (one long-lived process: background threads) or
#: a Cloud Functions instance (no threads but the sequencer's, and only without Pub/Sub).
SERVER, FUNCTIONS = "server", "functions"
#: A long-poll over a shared store re-reads the action this often (another process may
#: decide it, and this process's bus never hears of it).
WAIT_POLL_S = 0.5
#: Lifetime of the system token a Cloud Tasks task carries where OIDC is unavailable
#: (the emulator): it must outlive the longest deadline still pending.
TASK_TOKEN_TTL_S = 7 * 24 * 3600
DEFAULT_TASKS_LOCATION = "us-central1"
IN_PROCESS, EXTERNAL = "in-process", "external"
SEQUENCER_CHOICES = ("", IN_PROCESS, EXTERNAL)
EMULATOR_QUEUE = "vettra-expire"


@dataclass
class CloudSettings:
    """The Google Cloud names the firestore backend uses (docs/firestore.md, Running it).

    Read from the environment Terraform sets on each function (and a developer sets
    for ``vettra dev --backend firestore``); nothing here connects.
    """

    events_topic: str = "vettra-events"
    sequence_topic: str = "vettra-sequence"
    tasks_queue: str = ""  # projects/P/locations/L/queues/Q
    tasks_url: str = ""  # the expire endpoint Cloud Tasks calls
    tasks_invoker: str = ""  # service account whose OIDC token Cloud Tasks sends
    tasks_emulator_host: str = ""
    pubsub_emulator_host: str = ""
    firestore_emulator_host: str = ""
    events_topic_set: bool = False  # VETTRA_EVENTS_TOPIC given explicitly
    #: VETTRA_SEQUENCER: "" (choose: in-process, or the Pub/Sub trigger in a function),
    #: "in-process", or "external" (something else drains the outbox: the ``sequence``
    #: target fed by its own trigger, a scheduled job, a test).
    sequencer: str = ""

    @classmethod
    def from_env(cls, env: dict[str, str]) -> CloudSettings:
        return cls(
            events_topic=env.get("VETTRA_EVENTS_TOPIC") or cls.events_topic,
            sequence_topic=env.get("VETTRA_SEQUENCE_TOPIC") or cls.sequence_topic,
            tasks_queue=env.get("VETTRA_TASKS_QUEUE", ""),
            tasks_url=env.get("VETTRA_TASKS_URL", ""),
            tasks_invoker=env.get("VETTRA_TASKS_INVOKER", ""),
            tasks_emulator_host=env.get("CLOUD_TASKS_EMULATOR_HOST", ""),
            pubsub_emulator_host=env.get("PUBSUB_EMULATOR_HOST", ""),
            firestore_emulator_host=env.get("FIRESTORE_EMULATOR_HOST", ""),
            events_topic_set=bool(env.get("VETTRA_EVENTS_TOPIC")),
            sequencer=env.get("VETTRA_SEQUENCER", ""),
        )

    @property
    def tasks(self) -> bool:
        """Expiry timers go to Cloud Tasks (a queue is named, or its emulator is running)."""
        return bool(self.tasks_queue or self.tasks_emulator_host)

    @property
    def pubsub(self) -> bool:
        """Events (and the sequencer's trigger) would go over Pub/Sub."""
        return bool(self.pubsub_emulator_host or self.events_topic_set)


@dataclass
class Config:
    backend: str = LOCAL
    home: Path = DEFAULT_HOME
    log_level: str = "INFO"
    project: str = ""
    #: Mounted Secret Manager files (the cloud key store); None: the home's keys.
    secrets_dir: Path | None = None
    cloud: CloudSettings = field(default_factory=CloudSettings)
    #: ``SERVER`` (vettra dev) or ``FUNCTIONS`` (a Cloud Functions instance).
    host: str = SERVER
    #: This server's own base URL (``vettra dev`` sets it once bound): the default target
    #: Cloud Tasks calls back in development.
    public_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def mode(self) -> str:
        """The backend's earlier name (``VETTRA_MODE``)."""
        return self.backend

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        secrets_dir = env.get("VETTRA_SECRETS_DIR")
        return cls(
            backend=env.get("VETTRA_BACKEND") or env.get("VETTRA_MODE") or LOCAL,
            home=Path(env.get("VETTRA_HOME", str(DEFAULT_HOME))).expanduser(),
            log_level=env.get("VETTRA_LOG_LEVEL", "INFO"),
            project=env.get("VETTRA_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT", ""),
            secrets_dir=Path(secrets_dir) if secrets_dir else None,
            cloud=CloudSettings.from_env(env),
        )


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot start here (missing library, project, credentials or
    emulator): one line saying what to do; ``vettra dev`` prints it and exits 1."""


@dataclass
class Runtime:
    config: Config
    deps: Any
    identity: Any
    app: Any
    timer: Any = None
    checkpointer: Any = None
    home_lock: Any = None
    sweeper: Any = None
    #: The in-process Firestore sequencers (vettra.adapters.sequencer_runner), if any.
    sequencer: Any = None
    #: Re-arm every pending deadline at start: the local timer forgets them on exit;
    #: Cloud Tasks keeps its tasks (re-arming per function instance would repeat them).
    rearm: bool = True

    def start(self) -> None:
        """Start background parts (timer, checkpointer) and re-arm deadlines from the store."""
        from .services.actions import rearm_timers

        for part in (self.timer, self.sequencer, self.checkpointer, self.sweeper):
            if part is not None:
                part.start()
        if self.rearm:
            rearm_timers(self.deps)

    def close(self) -> None:
        # the parts that commit first, then the sequencer (it finishes the round in progress)
        for part in (self.timer, self.checkpointer, self.sweeper, self.sequencer):
            if part is not None:
                part.stop()
        close_bus = getattr(self.deps.bus, "close", None)
        if close_bus is not None:
            close_bus()  # the Pub/Sub bus sends what it still holds
        self.deps.store.close()
        if self.home_lock is not None:
            self.home_lock.close()  # releases the flock


def bootstrap(config: Config | None = None, *, clock: Any = None) -> Runtime:
    config = config or Config.from_env()
    if config.backend == LOCAL:
        return _local(config, clock)
    if config.backend == FIRESTORE:
        return _firestore(config, clock)
    raise ValueError(
        f"backend {config.backend!r} is not available; use one of {', '.join(BACKENDS)}"
    )


@dataclass
class _Parts:
    """The adapters a backend chose; :func:`_assemble` wires the services around them."""

    store: Any
    keys: Any
    scheduler: Any
    bus: Any
    identity_key: Any  # the Ed25519 key local tokens are signed with (None: another identity)
    settings: dict[str, Any]
    timer: Any = None  # the local timer, where expiries fire in this process (not Cloud Tasks)


def _runtime(
    config: Config, clock: Any, parts: _Parts, background: dict[str, Any] | None, **extra: Any
) -> Runtime:
    """The :class:`Runtime` over the chosen adapters: services wired, the local timer
    handled, and (``background`` not None: a long-lived process) the checkpointer and
    retention sweeper with ``background`` as the checkpointer's options."""
    deps, identity, app = _assemble(config, clock, parts)
    if parts.timer is not None:
        parts.timer.set_handler(_expire_handler(deps))
    checkpointer = sweeper = None
    if background is not None:
        checkpointer, sweeper = _background(config, deps, parts.store.known_chains, **background)
    return Runtime(
        config=config,
        deps=deps,
        identity=identity,
        app=app,
        timer=parts.timer,
        checkpointer=checkpointer,
        sweeper=sweeper,
        **extra,
    )


def _assemble(config: Config, clock: Any, parts: _Parts) -> tuple[Any, Any, Any]:
    """``(deps, identity, app)`` over the chosen adapters: the same services on every backend."""
    from .adapters.wasm_verifier import DeferredVerifier, choose
    from .domain.catalogue import Catalogue
    from .domain.identity import DEFAULT_TENANT
    from .domain.stepup import StepUpSettings
    from .entrypoints.http.app import HttpApp
    from .entrypoints.http.routes import ROUTES
    from .services.deps import Deps
    from .services.policies import PolicyService
    from .services.rate_limit import RateLimitSettings, TokenBucketLimiter
    from .services.stepup import StepUpService

    policies = PolicyService(parts.store, parts.keys, clock)
    catalogue = Catalogue.default()
    # WASM if it loads and passes its self-test; a functions instance chooses on first use
    # (most targets never decide, and compiling the module would be most of a cold start)
    verifier = DeferredVerifier(catalogue) if config.host == FUNCTIONS else choose(catalogue)
    deps = Deps(
        store=parts.store,
        scheduler=parts.scheduler,
        bus=parts.bus,
        clock=clock,
        keys=parts.keys,
        catalogue=catalogue,
        policies=policies,
        verifier=verifier,
        step_up=StepUpService(
            parts.store,
            clock,
            StepUpSettings.from_sources(config.extra, os.environ),
            fetch_json=fetch_json,
            sealer=parts.keys,
        ),
        settings=parts.settings,
        proof_limiter=TokenBucketLimiter(
            clock, RateLimitSettings.from_sources(config.extra, os.environ), what="proof requests"
        ),
    )
    deps.vaults, deps.credentials = credential_vaults(config, clock)
    deps.vault_link = account_linker(config, clock, deps.vaults)
    if config.secrets_dir is None or parts.keys.has_policy_signing_key():
        # A home signs the shipped default at first boot. In the cloud each function mounts
        # only its own secrets and may not read Firestore at all (auth): only where the
        # operator mounted the policy key (ship_default_policy) is the default signed;
        # elsewhere the first policy is signed offline and POSTed (deny by default until then).
        policies.ensure_default(DEFAULT_TENANT)
    identity = _identity(config, parts.identity_key, clock, deps)
    caller = identity
    if parts.identity_key is not None:  # the home's keys: the dashboard's sign-in links too
        from .services.dashboard_sessions import DashboardSessionIdentity, DashboardSessions

        deps.dashboard_sessions = DashboardSessions(parts.store, clock)
        # dashboard session tokens (vettra link) first, then the tokens of `identity`
        caller = DashboardSessionIdentity(deps.dashboard_sessions, identity)
    app = HttpApp(deps, ROUTES, caller, project=config.project)
    return deps, identity, app


def _identity(config: Config, identity_key: Any, clock: Any, deps: Any) -> Any:
    """Who may call (docs/identity.md, "How bootstrap wires it").

    Local development tokens (the home's identity key: ``vettra token``) in ``vettra dev``
    and wherever no cloud issuer is configured; Auth0 access tokens when
    ``VETTRA_AUTH0_ISSUER`` and ``VETTRA_AUTH0_AUDIENCE`` are set (and the dashboard's
    sign-in exchange when ``VETTRA_AUTH0_CLIENT_ID`` is); Google-signed OIDC tokens of
    the Cloud Tasks invoker when ``VETTRA_TASKS_INVOKER`` is. Several are chosen by the
    token's issuer. The cloud adapters are imported only when configured.
    """
    from .adapters.local_identity import ISSUER as LOCAL_ISSUER
    from .adapters.local_identity import LocalIdentity

    verifiers: dict[str, Any] = {}
    env = os.environ
    if env.get("VETTRA_AUTH0_ISSUER", "").strip():
        from .adapters.auth0_identity import (
            Auth0AccessTokens,
            Auth0IdTokens,
            Auth0Settings,
            https_jwks,
        )
        from .adapters.firebase_tokens import FirebaseCustomTokens
        from .services.sign_in import SignInService

        try:
            auth0 = Auth0Settings.from_env(env)
        except ValueError as exc:
            raise BackendUnavailable(str(exc)) from None
        assert auth0 is not None  # the issuer is set
        auth0_keys = https_jwks(auth0.keys_url, clock)  # one cache for access and ID tokens
        if auth0.audience:
            verifiers[auth0.issuer] = Auth0AccessTokens(auth0, clock, auth0_keys)
        if auth0.client_id:
            deps.sign_in = SignInService(
                Auth0IdTokens(auth0, clock, auth0_keys),
                FirebaseCustomTokens(project=config.project or None),
                clock,
            )
    if config.cloud.tasks_invoker:
        from .adapters.auth0_identity import https_jwks
        from .adapters.google_oidc import GOOGLE_CERTS_URL, GoogleOidcIdentity

        try:
            tasks = GoogleOidcIdentity(
                audience=config.cloud.tasks_url,
                invoker_email=config.cloud.tasks_invoker,
                clock=clock,
                keys=https_jwks(GOOGLE_CERTS_URL, clock),
            )
        except ValueError as exc:
            raise BackendUnavailable(str(exc)) from None
        verifiers.update({issuer: tasks for issuer in tasks.issuers()})
    local = LocalIdentity(identity_key, clock) if identity_key is not None else None
    if local is not None and (config.host == SERVER or not verifiers):
        if not verifiers:
            return local  # the embedded default: nothing but development tokens
        verifiers[LOCAL_ISSUER] = local
    if not verifiers:
        raise BackendUnavailable(
            "no identity is configured for these keys: set VETTRA_AUTH0_ISSUER and "
            "VETTRA_AUTH0_AUDIENCE (Auth0 tokens) or use the home's keys "
            "(unset VETTRA_SECRETS_DIR)"
        )
    from .adapters.auth0_identity import IssuerIdentity

    return IssuerIdentity(verifiers)


def _expire_handler(deps: Any) -> Any:
    from .services import actions

    def on_timer(payload: Any) -> None:
        if payload.get("kind") == actions.EXPIRE_KIND:
            actions.expire(deps, str(payload["action_id"]))

    return on_timer


def _background(config: Config, deps: Any, chains: Any, **checkpointer: Any) -> tuple[Any, Any]:
    """The checkpointer and the retention sweeper of a long-lived process."""
    from .services.checkpoints import (
        DEFAULT_EVERY_ENTRIES,
        DEFAULT_INTERVAL_S,
        Cadence,
        Checkpointer,
    )
    from .services.retention import SWEEP_INTERVAL_S, Sweeper

    cadence = Cadence(
        interval_s=float(config.extra.get("checkpoint_interval_s", DEFAULT_INTERVAL_S)),
        every_entries=int(config.extra.get("checkpoint_every", DEFAULT_EVERY_ENTRIES)),
        **checkpointer,
    )
    signer = Checkpointer(deps, chains, cadence)
    sweeper = Sweeper(
        deps, interval_s=float(config.extra.get("sweep_interval_s", SWEEP_INTERVAL_S))
    )
    return signer, sweeper


def _local(config: Config, clock: Any) -> Runtime:
    from .adapters.clock import SystemClock
    from .adapters.local_keys import LocalKeyStore
    from .adapters.local_timer import LocalTimer
    from .adapters.memory_bus import InProcessEventBus
    from .adapters.sqlite_store import SqliteStore

    prepare_home(config.home)
    home_lock = _lock_home(config.home)
    clock = clock or SystemClock()
    keys = LocalKeyStore(config.home)
    store = SqliteStore(config.home / DB_FILE, keys)
    timer = LocalTimer(config.home / TIMERS_FILE, clock)
    parts = _Parts(
        store=store,
        keys=keys,
        scheduler=timer,
        bus=InProcessEventBus(),
        identity_key=keys.identity_signing_key(),
        settings={
            "store": "sqlite",
            "scheduler": "local-timer",
            "event_bus": "in-process",
            "identity": "local-jwt",
            "home": str(config.home),
        },
        timer=timer,
    )
    return _runtime(config, clock, parts, background={}, home_lock=home_lock)


# -- the firestore backend -----------------------------------------------------------------
def _firestore(config: Config, clock: Any) -> Runtime:
    """Firestore store, Cloud Tasks (or the local timer), the sequencer, and the keys.

    In ``vettra dev`` (``SERVER``) the sequencer, checkpointer and retention sweeper run
    in this process, as on the embedded default. In a function instance only the
    sequencer may (when no Pub/Sub trigger carries the work to the ``sequence``
    target); the rest belongs to scheduled jobs.
    """
    from .adapters.clock import SystemClock

    _require_firestore(config)
    from .adapters.firestore_changes import FirestoreActionChanges
    from .adapters.firestore_sequencer import INTERVAL_S
    from .adapters.firestore_store import FirestoreStore
    from .adapters.sequencer_runner import Pacing, SequencerRunner
    from .domain.errors import Unavailable
    from .services.relay_bus import RelayingBus

    clock = clock or SystemClock()
    keys, identity_key, keys_name = _cloud_keys(config)
    store = FirestoreStore(config.project, keys)
    try:
        store.probe()
    except Unavailable as exc:
        store.close()
        where = config.cloud.firestore_emulator_host or f"project {config.project}"
        raise BackendUnavailable(f"cannot reach Firestore ({where}): {exc.detail}") from None

    settings: dict[str, Any] = {
        "backend": FIRESTORE,
        "store": "firestore",
        "project": config.project,
        "identity": "local-jwt",
        "keys": keys_name,
        # a long-poll re-reads the store: another process may decide the action
        "wait_poll_s": float(config.extra.get("wait_poll_s", WAIT_POLL_S)),
    }
    bus, settings["event_bus"], settings["event_bus_note"] = _event_bus(config)
    cloud_bus = bus
    if config.host == SERVER:
        # a live stream also sees what other processes decide (a listener, while it is
        # open); relayed changes go to local subscribers only, never out to Pub/Sub again
        bus = RelayingBus(bus, FirestoreActionChanges(store), local=getattr(bus, "local", None))
        settings["event_bus"] += "+firestore-listener"

    runner = None
    choice = config.cloud.sequencer
    trigger = (
        _sequence_trigger(config, cloud_bus) if config.host == FUNCTIONS and not choice else None
    )
    if choice == EXTERNAL:
        settings["sequencer"] = EXTERNAL  # commits only write the outbox
    elif trigger is None:
        runner = SequencerRunner(
            store, Pacing(pace_s=float(config.extra.get("sequencer_pace_s", INTERVAL_S)))
        )
        store.on_commit = runner.poke
        settings["sequencer"] = IN_PROCESS
    else:
        store.on_commit = trigger
        settings["sequencer"] = f"pubsub:{config.cloud.sequence_topic}"

    scheduler, timer = _cloud_scheduler(config, clock, identity_key, settings)
    parts = _Parts(store, keys, scheduler, bus, identity_key, settings, timer)
    # in a server, the sequencer signs a checkpoint with each batch; this one is the backstop
    background = {"poll_s": 1.0} if config.host == SERVER else None
    return _runtime(config, clock, parts, background, sequencer=runner, rearm=timer is not None)


def _require_firestore(config: Config) -> None:
    """One line for each thing that stops the firestore backend before it connects."""
    if config.cloud.sequencer not in SEQUENCER_CHOICES:
        raise BackendUnavailable(
            f"VETTRA_SEQUENCER must be one of {', '.join(SEQUENCER_CHOICES[1:])}, "
            f"found {config.cloud.sequencer!r}"
        )
    if not config.project:
        raise BackendUnavailable(
            "the firestore backend needs a project id: pass --project ID "
            "(or set VETTRA_PROJECT / GOOGLE_CLOUD_PROJECT)"
        )
    try:
        import google.cloud.firestore  # noqa: F401
    except ImportError:
        raise BackendUnavailable(
            "the firestore backend needs google-cloud-firestore: pip install 'vettra[cloud]'"
        ) from None
    if config.cloud.firestore_emulator_host:
        return
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        google.auth.default()
    except DefaultCredentialsError:
        raise BackendUnavailable(
            "no Google Cloud credentials and no emulator: set FIRESTORE_EMULATOR_HOST=host:port "
            "(gcloud emulators firestore start) or run `gcloud auth application-default login`"
        ) from None


def _cloud_keys(config: Config) -> tuple[Any, Any, str]:
    """``(key store, identity signing key or None, name)``.

    Cloud Functions mount Secret Manager files (``VETTRA_SECRETS_DIR``); ``vettra dev
    --backend firestore`` (and functions run locally) use the home's keys, so
    ``vettra token --home DIR`` mints tokens the server accepts. Keys only: the home
    holds no store and takes no lock (every instance reads the same keys).
    """
    if config.secrets_dir is not None:
        from .adapters.secret_keys import SecretFileError, SecretFilesKeyStore

        try:
            # read and checked once, here: never generated in the cloud (docs/identity.md)
            return SecretFilesKeyStore(config.secrets_dir), None, "secret-files"
        except SecretFileError as exc:
            raise BackendUnavailable(str(exc)) from None
    from .adapters.local_keys import LocalKeyStore

    prepare_home(config.home)
    keys = LocalKeyStore(config.home)
    return keys, keys.identity_signing_key(), "home"


def _event_bus(config: Config) -> tuple[Any, str, str | None]:
    """``(bus, name, note)``: decision events for notifications and the sequencer trigger.

    With ``PUBSUB_EMULATOR_HOST`` or ``VETTRA_EVENTS_TOPIC`` set, the Pub/Sub bus
    (adapters/pubsub_bus.py, docs/pubsub.md): local subscribers (long-polls, streams)
    hear this process's events at once, and decision events and sequencer triggers
    also go to their topics. Otherwise the in-process bus.
    """
    if config.cloud.pubsub:
        from .adapters.pubsub_bus import PubSubEventBus

        try:
            bus = PubSubEventBus(
                config.project,
                events_topic=config.cloud.events_topic,
                sequence_topic=config.cloud.sequence_topic,
            )
        except ValueError as exc:  # a malformed topic id
            raise BackendUnavailable(str(exc)) from None
        return bus, "pubsub", None
    from .adapters.memory_bus import InProcessEventBus

    return InProcessEventBus(), "in-process", None


def _sequence_trigger(config: Config, bus: Any) -> Any:
    """The store's ``on_commit`` in a function instance with Pub/Sub: publish
    ``{"chain": …}`` to the sequence topic (ordering key = chain), which triggers the
    ``sequence`` target; None (no Pub/Sub bus) runs the sequencer in the instance."""
    trigger = getattr(bus, "trigger_sequence", None)
    if trigger is None:
        return None

    def on_commit(chains: set[str]) -> None:
        for chain in sorted(chains):
            trigger(chain)

    return on_commit


def _cloud_scheduler(
    config: Config, clock: Any, identity_key: Any, settings: dict[str, Any]
) -> tuple[Any, Any]:
    """``(scheduler, local timer or None)``: Cloud Tasks when a queue (or its emulator) is
    configured, else the local timer in the home, and /health says which and why."""
    from .adapters.local_timer import LocalTimer

    cloud = config.cloud
    if not cloud.tasks:
        if config.secrets_dir is not None:
            # keys from mounted secrets: the home holds nothing else, so it may not exist yet
            prepare_home(config.home)
        timer = LocalTimer(config.home / FIRESTORE_TIMERS_FILE, clock)
        settings["scheduler"] = "local-timer"
        settings["scheduler_note"] = (
            "no VETTRA_TASKS_QUEUE or CLOUD_TASKS_EMULATOR_HOST: expiry timers run in this "
            "process (restart-safe: deadlines are re-armed from Firestore at start)"
        )
        return timer, timer
    from .adapters.cloud_tasks import CloudTasksScheduler
    from .entrypoints.http.routes_tasks import EXPIRE_PATH

    project, location, queue = _queue_parts(config)
    target = cloud.tasks_url or (config.public_url.rstrip("/") + EXPIRE_PATH)
    if not target.startswith(("http://", "https://")) or target == EXPIRE_PATH:
        raise BackendUnavailable(
            "Cloud Tasks needs the expire endpoint's URL: set VETTRA_TASKS_URL"
        )
    options: dict[str, Any] = {}
    if cloud.tasks_invoker:
        options["oidc_service_account_email"] = cloud.tasks_invoker
    elif identity_key is not None:
        options["token_provider"] = _system_token_provider(identity_key, clock)
    else:
        raise BackendUnavailable(
            "Cloud Tasks needs VETTRA_TASKS_INVOKER (the service account whose OIDC token "
            "the expire function accepts)"
        )
    if cloud.tasks_emulator_host:
        options["client_factory"] = _emulator_tasks_client(cloud.tasks_emulator_host)
    scheduler = CloudTasksScheduler(
        project=project, location=location, queue=queue, target_url=target, **options
    )
    if cloud.tasks_emulator_host and not cloud.tasks_queue:
        _ensure_emulator_queue(scheduler)
    settings["scheduler"] = "cloud-tasks" + ("-emulator" if cloud.tasks_emulator_host else "")
    return scheduler, None


def _queue_parts(config: Config) -> tuple[str, str, str]:
    import re

    queue = config.cloud.tasks_queue
    if not queue:
        return config.project, DEFAULT_TASKS_LOCATION, EMULATOR_QUEUE
    found = re.fullmatch(r"projects/([^/]+)/locations/([^/]+)/queues/([^/]+)", queue)
    if not found:
        raise BackendUnavailable(
            f"VETTRA_TASKS_QUEUE must be projects/P/locations/L/queues/Q, found {queue!r}"
        )
    return found.group(1), found.group(2), found.group(3)


def _system_token_provider(identity_key: Any, clock: Any) -> Any:
    """Where Cloud Tasks cannot attach an OIDC token (its emulator): a bearer token of
    the ``system`` role, which only the expire endpoint accepts (routes_tasks)."""
    from .adapters.local_identity import LocalIdentity

    issuer = LocalIdentity(identity_key, clock)
    return lambda: issuer.issue(
        role="system", sub="cloud-tasks", user="system", ttl_s=TASK_TOKEN_TTL_S
    )


def _emulator_tasks_client(address: str) -> Any:
    def make() -> Any:
        import grpc
        from google.cloud.tasks_v2 import CloudTasksClient
        from google.cloud.tasks_v2.services.cloud_tasks.transports import CloudTasksGrpcTransport

        channel = grpc.insecure_channel(address)
        return CloudTasksClient(transport=CloudTasksGrpcTransport(channel=channel))

    return make


def _ensure_emulator_queue(scheduler: Any) -> None:
    """On the emulator only: create the default queue if it is not there (a real queue
    is Terraform's)."""
    from google.api_core import exceptions as api_exceptions

    parent = scheduler.queue_path.rsplit("/queues/", 1)[0]
    try:
        scheduler.client.create_queue(
            parent=parent, queue={"name": scheduler.queue_path}, timeout=10
        )
    except api_exceptions.AlreadyExists:
        pass
    except api_exceptions.GoogleAPIError as exc:
        raise BackendUnavailable(
            f"cannot create the queue on the Cloud Tasks emulator: {type(exc).__name__}"
        ) from None


def credential_vaults(config: Config, clock: Any) -> tuple[dict[str, Any], Any]:
    """The token vaults of credential releases and their settings (docs/credentials.md):
    the local vault always; Auth0 Token Vault when ``VETTRA_AUTH0_ISSUER``,
    ``VETTRA_AUTH0_CLIENT_ID`` and the client secret are set (``VETTRA_AUTH0_CLIENT_SECRET``,
    or the mounted ``auth0-client-secret`` file in the cloud)."""
    from .adapters.auth0_token_vault import Auth0TokenVault, TokenVaultSettings
    from .adapters.local_vault import LocalVault
    from .domain.credentials import CredentialSettings

    vaults: dict[str, Any] = {LocalVault.subject_kind: LocalVault()}
    env = dict(os.environ)
    try:
        if not env.get("VETTRA_AUTH0_CLIENT_SECRET") and config.secrets_dir is not None:
            from .adapters.secret_keys import AUTH0_CLIENT_SECRET, read_text_secret

            env["VETTRA_AUTH0_CLIENT_SECRET"] = (
                read_text_secret(config.secrets_dir, AUTH0_CLIENT_SECRET) or ""
            )
        auth0 = TokenVaultSettings.from_env(env)
    except ValueError as exc:  # SecretFileError too
        raise BackendUnavailable(str(exc)) from None
    if auth0 is not None:
        vaults[Auth0TokenVault.subject_kind] = Auth0TokenVault(auth0, clock)
    return vaults, CredentialSettings.from_sources(config.extra, env)


def account_linker(config: Config, clock: Any, vaults: dict[str, Any]) -> Any:
    """The dashboard's connect-an-account flow (docs/credentials.md), over the Token
    Vault exchange's own confidential client, when Auth0 Token Vault is configured and
    the redirect URI is known: ``VETTRA_VAULT_REDIRECT_URI``, else (``vettra dev``) the
    dashboard's origin (the callback sends the tab back to it, where its session is),
    else this server's own URL. None otherwise (the routes answer 404 ``not-configured``)."""
    from .adapters.auth0_token_vault import Auth0TokenVault
    from .domain.credentials import REFRESH_TOKEN

    vault = vaults.get(REFRESH_TOKEN)
    if not isinstance(vault, Auth0TokenVault):
        return None
    from .adapters.auth0_connect import CALLBACK_PATH, Auth0AccountLinker, LinkSettings
    from .adapters.auth0_identity import Auth0Settings, https_jwks

    env = os.environ
    redirect = env.get("VETTRA_VAULT_REDIRECT_URI", "").strip()
    base = str(config.extra.get("origin") or config.public_url)
    if not redirect and base:
        redirect = base.rstrip("/") + CALLBACK_PATH
    if not redirect:
        return None
    try:
        auth0 = Auth0Settings.from_env(env)
        assert auth0 is not None  # Token Vault is configured, so the issuer is
        settings = LinkSettings.from_vault(vault.settings, auth0, redirect)
    except ValueError as exc:
        raise BackendUnavailable(str(exc)) from None
    return Auth0AccountLinker(settings, clock, https_jwks(auth0.keys_url, clock))


def fetch_json(url: str) -> Any:
    """The OIDC step-up's HTTP seam; httpx is imported only when an ID token arrives."""
    from .adapters.oidc_http import fetch_json as fetch

    return fetch(url)


LOCK_FILE = "vettra.lock"


class HomeInUse(RuntimeError):
    """Another running Vettra owns this home: one process is the audit sequencer."""


class UnsafeHome(HomeInUse):
    """The home is not this user's alone: refused like a home in use (one line, exit 1)."""


#: Write access for group or others: anyone with it could swap the database or keys.
_SHARED_WRITE = 0o022


def prepare_home(home: Path) -> None:
    """Create the home 0700, or check an existing one and make it 0700.

    A home owned by another user, or one that group or others may write, is refused:
    its owner, or anyone who can write it, could replace the store, the keys or the lock.
    """
    from .adapters.local_files import private_dir

    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        st = home.stat()
    except OSError as exc:
        raise UnsafeHome(f"cannot use {home} as the home: {exc.strerror}") from None
    if not home.is_dir():
        raise UnsafeHome(f"{home} is not a directory; pass another --home")
    if st.st_uid != os.geteuid():
        raise UnsafeHome(
            f"{home} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()}); "
            "use a home of your own (--home)"
        )
    if st.st_mode & _SHARED_WRITE:
        raise UnsafeHome(
            f"{home} is writable by group or others (mode {st.st_mode & 0o777:o}); "
            f"run `chmod 700 {home}` or pass another --home"
        )
    private_dir(home)


def _lock_home(home: Path) -> Any:
    """Hold an exclusive lock on the home for the runtime's life.

    The embedded store's sequencer keeps each chain's head in memory, so two
    processes writing one home would fork the audit chain; the second one is
    refused at start instead.
    """
    import fcntl

    from .adapters.local_files import private_file

    handle = open(private_file(home / LOCK_FILE), "a+")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise HomeInUse(
            f"{home} is in use by another running Vettra (vettra dev); "
            "stop it or pass another --home"
        ) from None
    return handle


# -- the CLI's own adapters (the commands that work on a home without a running server) ---
def home_keys(home: Path) -> Any:
    """The key store of ``home`` (files under ``keys/``), for the CLI's key and token commands."""
    from .adapters.local_keys import LocalKeyStore

    return LocalKeyStore(home)


def home_identity(home: Path) -> Any:
    """The token issuer a ``vettra dev`` on ``home`` accepts (its identity key)."""
    from .adapters.clock import SystemClock
    from .adapters.local_identity import LocalIdentity

    return LocalIdentity(home_keys(home).identity_signing_key(), SystemClock())


def home_store(home: Path, *, backend: str = LOCAL, project: str = "") -> tuple[Any, Any]:
    """``(keys, store)`` of ``home`` for read-side CLI commands (export, policy show);
    the caller closes the store. With ``backend="firestore"`` the store is the project's
    Firestore (the emulator when FIRESTORE_EMULATOR_HOST is set), read with the home's
    keys; :class:`BackendUnavailable` when it cannot be reached."""
    keys = home_keys(home)
    if backend == FIRESTORE:
        from .domain.errors import Unavailable

        config = Config.from_env()
        config.backend, config.home = FIRESTORE, home
        config.project = project or config.project
        _require_firestore(config)
        from .adapters.firestore_store import FirestoreStore

        store = FirestoreStore(config.project, keys)
        try:
            store.probe()
        except Unavailable as exc:
            store.close()
            raise BackendUnavailable(f"cannot reach Firestore: {exc.detail}") from None
        return keys, store
    from .adapters.sqlite_store import SqliteStore

    return keys, SqliteStore(home / DB_FILE, keys)
