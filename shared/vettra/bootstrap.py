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
DEFAULT_HOME = Path("~/.vettra").expanduser()
DB_FILE = "vettra.db"
#: Timers live in their own file: its writes never queue behind the store's
#: write lock (SQLite's busy handler sleeps in millisecond steps).
TIMERS_FILE = "timers.db"


@dataclass
class Config:
    mode: str = LOCAL
    home: Path = DEFAULT_HOME
    log_level: str = "INFO"
    project: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Config:
        env = dict(os.environ if env is None else env)
        return cls(
            mode=env.get("VETTRA_MODE", LOCAL),
            home=Path(env.get("VETTRA_HOME", str(DEFAULT_HOME))).expanduser(),
            log_level=env.get("VETTRA_LOG_LEVEL", "INFO"),
            project=env.get("GOOGLE_CLOUD_PROJECT", ""),
        )


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

    def start(self) -> None:
        """Start background parts (timer, checkpointer) and re-arm deadlines from the store."""
        from .services.actions import rearm_timers

        if self.timer is not None:
            self.timer.start()
        if self.checkpointer is not None:
            self.checkpointer.start()
        if self.sweeper is not None:
            self.sweeper.start()
        rearm_timers(self.deps)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.stop()
        if self.checkpointer is not None:
            self.checkpointer.stop()
        if self.sweeper is not None:
            self.sweeper.stop()
        self.deps.store.close()
        if self.home_lock is not None:
            self.home_lock.close()  # releases the flock


def bootstrap(config: Config | None = None, *, clock: Any = None) -> Runtime:
    config = config or Config.from_env()
    if config.mode != LOCAL:
        raise ValueError(f"mode {config.mode!r} is not available in this build; use {LOCAL!r}")
    return _local(config, clock)


def _local(config: Config, clock: Any) -> Runtime:
    from .adapters.clock import SystemClock
    from .adapters.local_identity import LocalIdentity
    from .adapters.local_keys import LocalKeyStore
    from .adapters.local_timer import LocalTimer
    from .adapters.memory_bus import InProcessEventBus
    from .adapters.sqlite_store import SqliteStore
    from .domain.catalogue import Catalogue
    from .domain.identity import DEFAULT_TENANT
    from .domain.stepup import StepUpSettings
    from .entrypoints.http.app import HttpApp
    from .entrypoints.http.routes import ROUTES
    from .services import actions
    from .services.checkpoints import DEFAULT_EVERY_ENTRIES, DEFAULT_INTERVAL_S, Checkpointer
    from .services.deps import Deps
    from .services.policies import PolicyService
    from .services.rate_limit import RateLimitSettings, TokenBucketLimiter
    from .services.retention import SWEEP_INTERVAL_S, Sweeper
    from .services.stepup import StepUpService

    prepare_home(config.home)
    home_lock = _lock_home(config.home)
    clock = clock or SystemClock()
    keys = LocalKeyStore(config.home)
    store = SqliteStore(config.home / DB_FILE, keys)
    timer = LocalTimer(config.home / TIMERS_FILE, clock)
    policies = PolicyService(store, keys, clock)
    from .adapters.wasm_verifier import choose as choose_verifier

    verifier = choose_verifier(Catalogue.default())  # WASM if it loads and passes its self-test
    deps = Deps(
        store=store,
        scheduler=timer,
        bus=InProcessEventBus(),
        clock=clock,
        keys=keys,
        catalogue=Catalogue.default(),
        policies=policies,
        step_up=StepUpService(
            store,
            clock,
            StepUpSettings.from_sources(config.extra, os.environ),
            fetch_json=fetch_json,
            sealer=keys,
        ),
        settings={
            "store": "sqlite",
            "scheduler": "local-timer",
            "event_bus": "in-process",
            "identity": "local-jwt",
            "verifier": verifier.name,
            "home": str(config.home),
        },
        verifier=verifier,
        proof_limiter=TokenBucketLimiter(
            clock, RateLimitSettings.from_sources(config.extra, os.environ), what="proof requests"
        ),
    )

    def on_timer(payload: Any) -> None:
        if payload.get("kind") == actions.EXPIRE_KIND:
            actions.expire(deps, str(payload["action_id"]))

    timer.set_handler(on_timer)
    policies.ensure_default(DEFAULT_TENANT)
    identity = LocalIdentity(keys.identity_signing_key(), clock)
    app = HttpApp(deps, ROUTES, identity, project=config.project)
    checkpointer = Checkpointer(
        deps,
        store.known_chains,
        interval_s=float(config.extra.get("checkpoint_interval_s", DEFAULT_INTERVAL_S)),
        every_entries=int(config.extra.get("checkpoint_every", DEFAULT_EVERY_ENTRIES)),
    )
    sweeper = Sweeper(
        deps, interval_s=float(config.extra.get("sweep_interval_s", SWEEP_INTERVAL_S))
    )
    return Runtime(
        config=config,
        deps=deps,
        identity=identity,
        app=app,
        timer=timer,
        checkpointer=checkpointer,
        home_lock=home_lock,
        sweeper=sweeper,
    )


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


def home_store(home: Path) -> tuple[Any, Any]:
    """``(keys, store)`` of ``home`` for read-side CLI commands (export, policy show);
    the caller closes the store."""
    from .adapters.sqlite_store import SqliteStore

    keys = home_keys(home)
    return keys, SqliteStore(home / DB_FILE, keys)
