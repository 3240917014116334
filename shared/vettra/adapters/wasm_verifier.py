"""The WASM verifier: the Rust module of ``wasm-verifier/`` run by wasmtime.

One engine, one compiled module and one instance per process (:func:`load` caches
them). A request is JSON written into one reusable buffer in the module's linear
memory and answered by **one** wasm call, ``vv_call(len)``, whose result packs the
answer's pointer and length; memory is re-read after every call, since the module may
have grown it. The fast path calls wasmtime's C API through the ``wasmtime`` package's
own ctypes bindings with preallocated arguments (the public ``Func.__call__`` rebuilds
the function type on every call, ~25 µs); when those internals are missing it uses the
public API.

The module is used only after it proves itself at boot (:func:`load`):

1. its bytes hash to the digest recorded beside it (``verifier.wasm.sha256``, which the
   reproducible-build test keeps in step with ``wasm-verifier/build.sh``);
2. it compiles and instantiates with no imports;
3. it was generated from this interpreter's Unicode data and this
   ``confusable-homoglyphs`` release (text folding must agree character for character);
4. a self-test compares it with the Python reference on canonical JSON, Merkle proofs,
   an HMAC-sealed audit chain, a freshly signed policy envelope (and a tampered one) and
   a set of whole decisions.

Any failure is one warning naming the reason, and the Python reference is used instead
(:func:`choose`). A request the module will not answer itself (it says ``raises``:
the reference raises on that input; or ``unsupported``) goes to the reference too, so
the answer is always the reference's.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import json
import logging
import os
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from ..domain.catalogue import Catalogue
from ..domain.policy import Policy, PolicyDecision
from ..domain.risk import RiskAssessment
from ..ports import Verifier
from ..services.verifier import ReferenceVerifier

log = logging.getLogger("vettra.verifier")

WASM = "wasm"
MODULE_RESOURCE = "verifier.wasm"
DIGEST_RESOURCE = "verifier.wasm.sha256"
#: Set to a path to run another build of the module (its digest is then not pinned).
MODULE_ENV = "VETTRA_VERIFIER_WASM"
#: ``VETTRA_VERIFIER=python`` keeps the Python reference (an operator's switch).
CHOICE_ENV = "VETTRA_VERIFIER"
_INITIAL_BUFFER = 64 * 1024
_BUNDLE_FIELDS = (
    "tool",
    "service",
    "operation",
    "arguments",
    "framework",
    "session_id",
    "resource",
    "context",
)


class ModuleRefused(Exception):
    """The module is not used: the message says why (one line, for the boot log)."""


class ModuleFault(Exception):
    """A call trapped or could not be made; the instance was replaced with a fresh one."""


def shipped_module() -> tuple[bytes, str | None]:
    """The module this package ships and its recorded SHA-256 (or the override's bytes)."""
    override = os.environ.get(MODULE_ENV)
    if override:
        try:
            return Path(override).read_bytes(), None
        except OSError as exc:
            raise ModuleRefused(f"{MODULE_ENV}={override}: {exc.strerror}") from None
    data = resources.files("vettra").joinpath("data")
    try:
        code = data.joinpath(MODULE_RESOURCE).read_bytes()
    except OSError:
        raise ModuleRefused(f"the package has no data/{MODULE_RESOURCE}") from None
    try:
        digest = data.joinpath(DIGEST_RESOURCE).read_text("ascii").split()[0]
    except (OSError, IndexError):
        raise ModuleRefused(f"the package has no data/{DIGEST_RESOURCE}") from None
    return code, digest


class WasmModule:
    """One instance of the module and its request buffer; calls are serialised."""

    def __init__(self, code: bytes):
        try:
            import wasmtime
        except ImportError:
            raise ModuleRefused("the wasmtime package is not installed") from None
        self._wasmtime = wasmtime
        try:
            self._engine = wasmtime.Engine()
            self._module = wasmtime.Module(self._engine, code)
        except wasmtime.WasmtimeError as exc:
            raise ModuleRefused(f"not a loadable WebAssembly module: {_first_line(exc)}") from None
        if self._module.imports:
            names = ", ".join(f"{i.module}.{i.name}" for i in self._module.imports)
            raise ModuleRefused(f"the module imports {names}; it must import nothing")
        self._lock = threading.Lock()
        self.generation = 0
        self._instantiate()
        atexit.register(self.close)

    def close(self) -> None:
        """Free the instance, module and engine now (not in interpreter teardown, when
        wasmtime's bindings may already be gone)."""
        for name in ("_store", "_module", "_engine"):
            obj = self.__dict__.pop(name, None)
            if obj is not None:
                obj.close()

    def _instantiate(self) -> None:
        wasmtime = self._wasmtime
        self._store = wasmtime.Store(self._engine)
        try:
            instance = wasmtime.Instance(self._store, self._module, [])
            exports = instance.exports(self._store)
            self._memory = exports["memory"]
            reserve, call = exports["vv_reserve"], exports["vv_call"]
        except (wasmtime.WasmtimeError, KeyError) as exc:
            raise ModuleRefused(
                f"the module does not export the verifier interface: {exc}"
            ) from None
        self._reserve, self._call_public = reserve, call
        self._call = self._fast_caller(call) or self._public_caller(call)
        self._ptr = int(reserve(self._store, _INITIAL_BUFFER))
        self._capacity = _INITIAL_BUFFER
        self.generation += 1

    def _public_caller(self, func: Any) -> Callable[[int], int]:
        store = self._store
        return lambda n: int(func(store, n))

    def _fast_caller(self, func: Any) -> Callable[[int], int] | None:
        """``vv_call(n)`` through wasmtime's C API with preallocated values (see the module
        docstring); None when this wasmtime release lays its bindings out differently."""
        try:
            from wasmtime import _ffi as ffi
            from wasmtime._func import enter_wasm

            params = (ffi.wasmtime_val_t * 1)()
            results = (ffi.wasmtime_val_t * 1)()
            store, raw, kind = self._store, ctypes.byref(func._func), ffi.WASMTIME_I32
            call_c, error_of = ffi.wasmtime_func_call, self._wasmtime.WasmtimeError._from_ptr
        except (ImportError, AttributeError):
            return None

        def call(n: int) -> int:
            params[0].kind = kind
            params[0].of.i32 = n
            with enter_wasm(store) as trap:
                error = call_c(store._context(), raw, params, 1, results, 1, trap)
                if error:
                    raise error_of(error)
            return int(results[0].of.i64) & 0xFFFF_FFFF_FFFF_FFFF

        try:
            if call(0) != self._public_caller(func)(0):  # both answer the empty request
                return None
        except Exception:  # noqa: BLE001 - any surprise in the internals: use the public API
            return None
        return call

    def _base(self) -> int:
        return ctypes.addressof(self._memory.data_ptr(self._store).contents)

    def request(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """One JSON request, one wasm call, the JSON answer (``ModuleFault`` on a trap)."""
        data = json.dumps(
            payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode("utf-8")
        with self._lock:
            try:
                if len(data) > self._capacity:
                    self._capacity = max(len(data), 2 * self._capacity)
                    self._ptr = int(self._reserve(self._store, self._capacity))
                ctypes.memmove(self._base() + self._ptr, data, len(data))
                packed = self._call(len(data))
                ptr, size = packed >> 32, packed & 0xFFFF_FFFF
                answer = ctypes.string_at(self._base() + ptr, size)  # memory may have moved
                self._ptr, self._capacity = ptr, max(self._capacity, size)
            except self._wasmtime.WasmtimeError as exc:
                self._instantiate()  # a trap leaves the instance's state undefined
                raise ModuleFault(_first_line(exc)) from None
        result: dict[str, Any] = json.loads(answer)
        return result


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def bundle_facts(bundle: Any) -> dict[str, Any]:
    """What the module reads of an action bundle (policy.ActionFacts, plus ``server``)."""
    facts = {name: getattr(bundle, name) for name in _BUNDLE_FIELDS}
    facts["server"] = getattr(bundle, "server", None)
    return facts


def risk_from(answer: Mapping[str, Any]) -> RiskAssessment:
    return RiskAssessment(
        score=answer["score"],
        level=answer["level"],
        category=answer["category"],
        factors=dict(answer["factors"]),
        choices=dict(answer["choices"]),
        reasons=tuple(answer["reasons"]),
        forced_high=answer["forced_high"],
    )


def decision_from(answer: Mapping[str, Any]) -> PolicyDecision:
    """The module's decision object has exactly :class:`PolicyDecision`'s fields, by name."""
    return PolicyDecision(**{f.name: answer[f.name] for f in fields(PolicyDecision)})


class WasmVerifier(Verifier):
    """Decisions by the module; anything it will not answer itself goes to the reference."""

    name = WASM

    def __init__(self, module: WasmModule, catalogue: Catalogue, catalogue_data: Any):
        self.module = module
        self._catalogue = catalogue
        self._catalogue_data = catalogue_data
        self._reference = ReferenceVerifier()
        self._generation = -1
        self._loaded: set[str] = set()
        self._refused: set[str] = set()
        self.fallbacks = 0

    def _ensure_configured(self) -> None:
        if self._generation != self.module.generation:
            answer = self.module.request({"op": "configure", "catalogue": self._catalogue_data})
            if not answer.get("ok"):
                raise ModuleFault(f"the module refused the catalogue: {answer.get('detail')}")
            self._generation, self._loaded = self.module.generation, set()

    def _load_policy(self, policy: Policy) -> dict[str, Any] | None:
        """Give the module the policy once; None when loaded, else the refusal."""
        if policy.digest in self._loaded:
            return None
        answer = self.module.request({"op": "load_policy", "policy": policy.payload})
        if not answer.get("ok"):
            return answer
        if answer["digest"] != policy.digest:
            # The module hashes the payload itself: a different digest means it read
            # another policy than the reference did. Never decide with it.
            if policy.digest not in self._refused:
                log.error(
                    "verifier: the module digests policy %s v%s as %s, the reference as %s; "
                    "deciding it with the Python reference",
                    policy.policy_id,
                    policy.version,
                    answer["digest"],
                    policy.digest,
                )
                self._refused.add(policy.digest)
            return {"ok": False, "error": "digest-mismatch", "detail": answer["digest"]}
        self._loaded.add(policy.digest)
        return None

    def ask(self, policy: Policy, bundle: Any, agent: str | None) -> dict[str, Any]:
        """The module's raw answer to ``decide`` (the differential tests read it)."""
        self._ensure_configured()
        if policy.digest in self._refused:
            return {"ok": False, "error": "digest-mismatch", "detail": policy.digest}
        for _ in range(2):
            refusal = self._load_policy(policy)
            if refusal is not None:
                return refusal
            request = {
                "op": "decide",
                "policy_digest": policy.digest,
                "bundle": bundle_facts(bundle),
                "agent": agent,
            }
            answer = self.module.request(request)
            if answer.get("error") != "unknown-policy":
                return answer
            self._loaded.discard(policy.digest)  # evicted from the module's small cache
        return answer

    def decide(
        self, policy: Policy, bundle: Any, catalogue: Any, agent: str | None
    ) -> tuple[RiskAssessment, PolicyDecision]:
        if catalogue is not self._catalogue or getattr(bundle, "annotations", None):
            # The module does not read MCP tool annotations yet (risk.MCP_HINT_RAISES, which
            # only raise risk): such calls are decided by the reference, never scored lower.
            return self._reference.decide(policy, bundle, catalogue, agent)
        try:
            answer = self.ask(policy, bundle, agent)
        except (ModuleFault, ValueError, UnicodeError) as exc:
            answer = {"ok": False, "error": "fault", "detail": _first_line(exc)}
        if answer.get("ok"):
            return risk_from(answer["risk"]), decision_from(answer["decision"])
        self.fallbacks += 1
        level = logging.WARNING if answer.get("error") == "fault" else logging.DEBUG
        log.log(
            level,
            "verifier: %s for %s; decided by the Python reference",
            answer.get("error"),
            bundle.tool,
        )
        return self._reference.decide(policy, bundle, catalogue, agent)


@dataclass(frozen=True)
class Loaded:
    module: WasmModule
    sha256: str


@lru_cache(maxsize=4)
def _instantiate(code: bytes, expected: str | None) -> Loaded:
    actual = hashlib.sha256(code).hexdigest()
    if expected is not None and actual != expected:
        raise ModuleRefused(
            f"{MODULE_RESOURCE} has sha256 {actual[:16]}…, the build recorded {expected[:16]}…: "
            "the module was altered or is not this release's"
        )
    module = WasmModule(code)
    info = module.request({"op": "info"})
    want = {
        "unidata": unicodedata.unidata_version,
        "confusables": metadata.version("confusable-homoglyphs"),
    }
    for key, value in want.items():
        if info.get(key) != value:
            raise ModuleRefused(
                f"the module was generated from {key} {info.get(key)}, this interpreter has "
                f"{value}: rebuild it (wasm-verifier/gen/tables.py, then build.sh)"
            )
    return Loaded(module, actual)


_VERIFIERS: dict[tuple[str, str | None], WasmVerifier] = {}
_VERIFIERS_LOCK = threading.Lock()


def load(
    catalogue: Catalogue | None = None,
    *,
    code: bytes | None = None,
    expected_sha256: str | None = None,
) -> WasmVerifier:
    """The module, checked (see the module docstring), as a verifier; :class:`ModuleRefused`.

    One verifier per module and process: a second call returns the first one's.
    """
    catalogue = catalogue if catalogue is not None else Catalogue.default()
    if catalogue is not Catalogue.default():
        raise ModuleRefused("the module is given the shipped catalogue only")
    if code is None:
        code, expected_sha256 = shipped_module()
    key = (hashlib.sha256(code).hexdigest(), expected_sha256)
    with _VERIFIERS_LOCK:
        if key in _VERIFIERS:
            return _VERIFIERS[key]
        loaded = _instantiate(code, expected_sha256)
        text = resources.files("vettra").joinpath("data/catalogue.json").read_text("utf-8")
        verifier = WasmVerifier(loaded.module, catalogue, json.loads(text))
        from .wasm_selftest import self_test

        try:
            failure = self_test(verifier)
        except ModuleFault as exc:
            failure = f"the module trapped: {exc}"
        if failure is not None:
            raise ModuleRefused(f"self-test failed: {failure}")
        _VERIFIERS[key] = verifier
        return verifier


def choose(catalogue: Catalogue | None = None) -> Verifier:
    """The verifier this process uses: the WASM module if it loads and passes its
    self-test, else the Python reference (with one warning saying why)."""
    if os.environ.get(CHOICE_ENV, "").lower() == "python":
        log.info("verifier: the Python reference (%s=python)", CHOICE_ENV)
        return ReferenceVerifier()
    try:
        verifier = load(catalogue)
    except ModuleRefused as exc:
        log.warning("verifier: the WASM module is not used (%s); using the Python reference", exc)
        return ReferenceVerifier()
    log.info("verifier: WASM module in use")
    return verifier


class DeferredVerifier(Verifier):
    """:func:`choose` on first use rather than at boot.

    Compiling and self-testing the module costs 0.3-1 s; a Cloud Functions instance that
    never decides (approve, actions, audit, auth, ...) should not pay it in its cold
    start. The first decision, or the first ``/health`` that names the verifier, chooses.
    """

    def __init__(self, catalogue: Catalogue | None = None):
        self._catalogue = catalogue
        self._chosen: Verifier | None = None
        self._lock = threading.Lock()

    def chosen(self) -> Verifier:
        if self._chosen is None:
            with self._lock:
                if self._chosen is None:
                    self._chosen = choose(self._catalogue)
        return self._chosen

    @property
    def name(self) -> str:  # type: ignore[override]  # the port's attribute, read on demand
        return self.chosen().name

    def decide(
        self, policy: Policy, bundle: Any, catalogue: Any, agent: str | None
    ) -> tuple[RiskAssessment, PolicyDecision]:
        return self.chosen().decide(policy, bundle, catalogue, agent)


__all__ = [
    "WASM",
    "DeferredVerifier",
    "ModuleFault",
    "ModuleRefused",
    "WasmModule",
    "WasmVerifier",
    "bundle_facts",
    "choose",
    "load",
]
