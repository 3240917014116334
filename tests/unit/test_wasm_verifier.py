"""The Python bridge to the WASM verifier: chosen at boot, refused when altered, falls
back to the reference for what the module will not answer, and reports itself."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import unicodedata
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.wasm_support import load_wasm_verifier, reference_answer
from vettra.adapters import wasm_verifier
from vettra.adapters.wasm_verifier import ModuleRefused, WasmVerifier, choose, shipped_module
from vettra.bootstrap import Config, bootstrap
from vettra.domain.action_bundle import parse_bundle
from vettra.domain.canonical import sha256_digest
from vettra.domain.catalogue import Catalogue
from vettra.domain.policy import Policy
from vettra.domain.policy_envelope import load_default_payload
from vettra.services.verifier import ReferenceVerifier

DEFAULT = Policy.from_payload(load_default_payload())
CATALOGUE = Catalogue.default()
#: (module (import "env" "f" (func))): valid WebAssembly that needs a host function.
IMPORTING_MODULE = bytes.fromhex(
    "0061736d010000000104016000000209010365 6e760166 0000".replace(" ", "")
)


@pytest.fixture(scope="module")
def verifier() -> WasmVerifier:
    return load_wasm_verifier()


def _altered_reason_string(code: bytes) -> bytes:
    """The module with one reason it writes changed (still valid, still loads)."""
    needle = b"Forced HIGH: "
    assert code.count(needle) == 1
    return code.replace(needle, b"Forced HIGh: ")


def test_the_shipped_module_is_chosen(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "vettra.verifier")
    chosen = choose(CATALOGUE)
    assert chosen.name == "wasm" and isinstance(chosen, WasmVerifier)
    assert "WASM module in use" in caplog.text


def test_an_altered_module_is_refused_by_its_digest(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, digest = shipped_module()
    altered = _altered_reason_string(code)
    monkeypatch.setattr(wasm_verifier, "shipped_module", lambda: (altered, digest))
    with caplog.at_level(logging.WARNING, "vettra.verifier"):
        chosen = choose(CATALOGUE)
    assert chosen.name == "python" and isinstance(chosen, ReferenceVerifier)
    [record] = [r for r in caplog.records if r.name == "vettra.verifier"]
    assert record.levelno == logging.WARNING
    assert "the WASM module is not used" in record.getMessage()
    assert f"sha256 {hashlib.sha256(altered).hexdigest()[:16]}" in record.getMessage()
    assert "altered" in record.getMessage() and "using the Python reference" in record.getMessage()


def test_an_altered_module_without_a_pinned_digest_fails_its_self_test() -> None:
    code, _ = shipped_module()
    with pytest.raises(ModuleRefused, match=r"self-test failed: decision on drive\.share_file"):
        wasm_verifier.load(CATALOGUE, code=_altered_reason_string(code), expected_sha256=None)


def test_not_a_module_and_an_importing_module_are_refused() -> None:
    with pytest.raises(ModuleRefused, match="not a loadable WebAssembly module"):
        wasm_verifier.load(CATALOGUE, code=b"\x00asm\x01\x00\x00\x00garbage")
    with pytest.raises(ModuleRefused, match="imports env.f; it must import nothing"):
        wasm_verifier.load(CATALOGUE, code=IMPORTING_MODULE)


def test_a_module_built_for_other_unicode_data_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _ = shipped_module()
    monkeypatch.setattr(unicodedata, "unidata_version", "15.0.0")
    other = code + b""  # same bytes: the cache is keyed by digest, so clear it
    wasm_verifier._instantiate.cache_clear()
    try:
        with pytest.raises(
            ModuleRefused, match=r"generated from unidata 14\.0\.0, this interpreter has 15\.0\.0"
        ):
            wasm_verifier._instantiate(other, None)
    finally:
        wasm_verifier._instantiate.cache_clear()


def test_the_operator_can_keep_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VETTRA_VERIFIER", "python")
    assert choose(CATALOGUE).name == "python"


def test_health_says_which_verifier(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import Server

    for env, want in ((None, "wasm"), ("python", "python")):
        if env:
            monkeypatch.setenv("VETTRA_VERIFIER", env)
        runtime = bootstrap(Config(home=tmp_path / want))
        runtime.start()
        server = Server(runtime)
        try:
            health = httpx.get(server.url + "/health").json()
        finally:
            server.stop()
            runtime.close()
        assert health["verifier"] == want
        assert runtime.deps.verifier.name == want


def test_a_decision_through_the_service_is_the_reference_s(verifier: WasmVerifier) -> None:
    bundle = parse_bundle({"tool": "gmail.send_message", "arguments": {"to": "a@x.com, b@y.com"}})
    risk, decision = verifier.decide(DEFAULT, bundle, CATALOGUE, "agent:x")
    want = reference_answer(DEFAULT, bundle, CATALOGUE, "agent:x")
    assert {**risk.as_dict(), "choices": risk.choices, "forced_high": risk.forced_high} == want[
        "risk"
    ]
    assert dataclasses.asdict(decision) == want["decision"]
    assert risk.level == "HIGH" and decision.outcome == "require_step_up"


def test_json_text_nested_near_the_recursion_limit_goes_to_the_reference(
    verifier: WasmVerifier,
) -> None:
    deep = "[" * 400 + '"caf\u00e9"' + "]" * 400  # non-ASCII: the disguise check reads it
    bundle = parse_bundle({"tool": "acme.set_role", "arguments": {"role": deep}})
    assert verifier.ask(DEFAULT, bundle, None)["error"] == "unsupported"
    before = verifier.fallbacks
    risk, decision = verifier.decide(DEFAULT, bundle, CATALOGUE, None)
    assert verifier.fallbacks == before + 1
    want = reference_answer(DEFAULT, bundle, CATALOGUE, None)
    assert (
        dataclasses.asdict(decision) == want["decision"]
        and list(risk.reasons) == want["risk"]["reasons"]
    )


def test_what_the_reference_raises_on_is_raised(verifier: WasmVerifier) -> None:
    # A policy built around validation: its override is malformed, so assess raises.
    override = {"tool": "*", "set": {"colour": "red"}}
    payload = {**DEFAULT.payload, "overrides": [override]}
    broken = dataclasses.replace(
        DEFAULT, overrides=(override,), payload=payload, digest=sha256_digest(payload)
    )
    bundle = parse_bundle({"tool": "user.get_profile", "arguments": {}})
    assert verifier.ask(broken, bundle, None)["error"] == "raises"
    with pytest.raises(ValueError, match="risk override 0: set: unknown factor 'colour'"):
        verifier.decide(broken, bundle, CATALOGUE, None)


def test_a_policy_the_module_digests_differently_is_never_decided_by_it(
    verifier: WasmVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    lying = dataclasses.replace(DEFAULT, digest="sha256:" + "1" * 64)
    bundle = parse_bundle({"tool": "user.get_profile", "arguments": {}})
    with caplog.at_level(logging.ERROR, "vettra.verifier"):
        risk, decision = verifier.decide(lying, bundle, CATALOGUE, None)
    assert f"digests policy default v{DEFAULT.version} as sha256:" in caplog.text
    assert decision.outcome == "allow" and risk.score == 5  # the reference's answer
    assert verifier.ask(lying, bundle, None)["error"] == "digest-mismatch"


def test_a_trap_replaces_the_instance_and_falls_back(
    verifier: WasmVerifier, caplog: pytest.LogCaptureFixture
) -> None:
    import wasmtime

    module = verifier.module
    generation = module.generation
    real = module._call

    def trap(n: int) -> int:
        raise wasmtime.WasmtimeError("wasm trap: unreachable")

    module._call = trap  # the fresh instance brings its own caller (not restored: stale)
    bundle = parse_bundle({"tool": "user.get_profile", "arguments": {}})
    with caplog.at_level(logging.WARNING, "vettra.verifier"):
        risk, _ = verifier.decide(DEFAULT, bundle, CATALOGUE, None)
    assert risk.score == 5 and "fault for user.get_profile" in caplog.text
    assert module.generation == generation + 1  # a fresh instance (its own _call again)
    assert module._call is not real and module._call is not trap
    again, _ = verifier.decide(DEFAULT, bundle, CATALOGUE, None)  # reconfigured, reloaded
    assert again == risk and verifier.ask(DEFAULT, bundle, None)["ok"]


def test_another_catalogue_is_decided_by_the_reference(verifier: WasmVerifier) -> None:
    data = json.loads(
        Path(wasm_verifier.__file__).parents[1].joinpath("data", "catalogue.json").read_text()
    )
    other = Catalogue.from_dict(data)
    bundle = parse_bundle({"tool": "user.get_profile", "arguments": {}})
    before = verifier.fallbacks
    risk, _ = verifier.decide(DEFAULT, bundle, other, None)
    assert risk.score == 5 and verifier.fallbacks == before  # not a fallback: not the module's


def test_concurrent_decisions_agree(verifier: WasmVerifier) -> None:
    bodies = [
        {"tool": "gmail.send_message", "arguments": {"to": [f"u{i}@x.com" for i in range(n)]}}
        for n in range(1, 9)
    ]
    bundles = [parse_bundle(b) for b in bodies]
    want = [reference_answer(DEFAULT, b, CATALOGUE, None)["risk"]["reasons"] for b in bundles]
    errors: list[Any] = []

    def work() -> None:
        for _ in range(25):
            for bundle, reasons in zip(bundles, want, strict=True):
                risk, _ = verifier.decide(DEFAULT, bundle, CATALOGUE, None)
                if list(risk.reasons) != reasons:
                    errors.append((bundle.tool, risk.reasons))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_large_requests_grow_the_buffer(verifier: WasmVerifier) -> None:
    text = "x" * 200_000
    answer = verifier.module.request({"op": "canonical", "text": json.dumps([text])})
    assert answer["canonical"] == json.dumps([text], separators=(",", ":"))
    assert verifier.module.request({"op": "info"})["ok"]


def test_mcp_tool_annotations_are_decided_as_the_reference_decides(verifier: WasmVerifier) -> None:
    """The module does not read MCP annotations: a hinted call goes to the reference, so a
    destructiveHint raises risk whichever verifier is in use, and a plain call stays WASM's."""
    call = {"name": "modify_labels", "arguments": {"id": "m1"}, "server": "gmail"}
    plain = parse_bundle({"framework": "mcp", "tool_call": call})
    hinted = parse_bundle(
        {"framework": "mcp", "tool_call": {**call, "annotations": {"destructiveHint": True}}}
    )
    reference = ReferenceVerifier()
    want_risk, want_decision = reference.decide(DEFAULT, hinted, CATALOGUE, "bot")
    plain_risk, _ = reference.decide(DEFAULT, plain, CATALOGUE, "bot")
    assert want_risk.score > plain_risk.score  # the hint matters here
    before = verifier.fallbacks
    risk, decision = verifier.decide(DEFAULT, hinted, CATALOGUE, "bot")
    assert (risk, decision) == (want_risk, want_decision)
    assert verifier.decide(DEFAULT, plain, CATALOGUE, "bot")[0] == plain_risk
    assert verifier.fallbacks == before  # neither was a module failure


def test_a_deferred_verifier_compiles_nothing_until_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cloud Functions instances defer the choice: building one loads no module; the first
    decision (or /health's name) chooses, once, and decides as the chosen verifier does."""
    calls: list[Any] = []
    real_choose = wasm_verifier.choose

    def counting_choose(catalogue: Any = None) -> Any:
        calls.append(catalogue)
        return real_choose(catalogue)

    monkeypatch.setattr(wasm_verifier, "choose", counting_choose)
    deferred = wasm_verifier.DeferredVerifier(CATALOGUE)
    assert calls == []
    bundle = parse_bundle({"tool": "gmail.send_message", "arguments": {"to": "a@b.example"}})
    assert deferred.decide(DEFAULT, bundle, CATALOGUE, "bot") == ReferenceVerifier().decide(
        DEFAULT, bundle, CATALOGUE, "bot"
    )
    assert deferred.name in ("wasm", "python")
    assert len(calls) == 1
