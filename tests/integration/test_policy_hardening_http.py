"""Policy activation guards (issue 7 item 11, issue 9 paper cuts), over HTTP and the service."""

from __future__ import annotations

import subprocess

import pytest

from vettra.domain.errors import PolicyRejected
from vettra.domain.identity import ADMIN, Principal
from vettra.domain.policy_envelope import sign_bundle

PROBLEM = "application/problem+json"


def _signed(server, payload: dict) -> dict:
    return sign_bundle(payload, server.runtime.deps.keys.policy_signing_key())


def _active(admin) -> dict:
    r = admin.get("/api/policy")
    assert r.status_code == 200, r.text
    return r.json()


def _policy_entries(admin) -> list[dict]:
    entries = admin.get("/api/audit/entries", params={"limit": 1000}).json()["entries"]
    return [e for e in entries if e["type"] == "policy.activated"]


def _rows(server) -> int:
    with server.runtime.deps.store.unit_of_work(readonly=True) as uow:
        return uow._conn.execute("SELECT COUNT(*) FROM policies").fetchone()[0]


def test_a_downgrade_through_the_service_is_refused_and_changes_nothing(server, admin) -> None:
    current = _active(admin)
    policies = server.runtime.deps.policies
    root = Principal(sub="root-admin", role=ADMIN, user="root-admin")
    v = current["version"]
    policies.activate(root, _signed(server, {**current["payload"], "version": v + 10}))
    before = (_active(admin), _policy_entries(admin), _rows(server))
    with pytest.raises(PolicyRejected, match="downgrade"):
        policies.activate(root, _signed(server, {**current["payload"], "version": v + 5}))
    policies._cache.clear()  # what the store holds, not the cache
    assert (_active(admin), _policy_entries(admin), _rows(server)) == before
    assert before[0]["version"] == v + 10


def test_a_downgrade_over_http_is_refused(server, admin) -> None:
    current = _active(admin)
    v = current["version"]
    assert (
        admin.post(
            "/api/policy", json=_signed(server, {**current["payload"], "version": v + 10})
        ).status_code
        == 200
    )
    before = (_active(admin), _policy_entries(admin))
    r = admin.post("/api/policy", json=_signed(server, {**current["payload"], "version": v + 5}))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert "downgrade" in r.json()["detail"]
    assert (_active(admin), _policy_entries(admin)) == before


@pytest.mark.parametrize(
    "who", [("agent", "agent-1", "alice"), ("approver", "alice", None)], ids=["agent", "approver"]
)
def test_get_policy_is_for_admins_only(server, who) -> None:
    with server.client(*who) as client:
        r = client.get("/api/policy")
        assert r.status_code == 403 and r.headers["content-type"] == PROBLEM
        assert "payload" not in r.json()


def test_reposting_the_active_version_is_idempotent(server, admin) -> None:
    current = _active(admin)
    envelope = _signed(server, {**current["payload"], "version": current["version"] + 1})
    first = admin.post("/api/policy", json=envelope)
    assert first.status_code == 200, first.text
    before = (_policy_entries(admin), _rows(server))
    again = admin.post("/api/policy", json=envelope)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert (_policy_entries(admin), _rows(server)) == before


def test_reposting_the_active_version_with_another_payload_is_refused_not_500(
    server, admin
) -> None:
    current = _active(admin)
    v = current["version"] + 1
    assert (
        admin.post(
            "/api/policy", json=_signed(server, {**current["payload"], "version": v})
        ).status_code
        == 200
    )
    before = (_active(admin), _policy_entries(admin), _rows(server))
    other = _signed(server, {**current["payload"], "version": v, "description": "another payload"})
    r = admin.post("/api/policy", json=other)
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM
    assert "bump the version" in r.text
    assert (_active(admin), _policy_entries(admin), _rows(server)) == before


def test_reposting_the_bootstrap_default_is_idempotent(server, admin) -> None:
    """The version activated at first boot, re-signed by the same key: same digest, 200."""
    current = _active(admin)
    r = admin.post("/api/policy", json=_signed(server, current["payload"]))
    assert r.status_code == 200, r.text
    assert r.json()["digest"] == current["digest"]


@pytest.mark.parametrize("body", ["payload", "payload-only"])
def test_an_unsigned_payload_is_told_to_sign_it_first(server, admin, body) -> None:
    current = _active(admin)
    payload = {**current["payload"], "version": current["version"] + 1}
    r = admin.post("/api/policy", json=payload if body == "payload" else {"payload": payload})
    assert r.status_code in (400, 422) and r.headers["content-type"] == PROBLEM
    assert "vettra policy sign" in r.json()["detail"]
    assert _active(admin)["version"] == current["version"]


def _vettra(*args: str) -> subprocess.CompletedProcess[str]:
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("vettra")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60)


def test_policy_show_prints_the_active_payload_to_edit_bump_and_sign(
    server, admin, home, tmp_path
) -> None:
    import json

    shown = _vettra("policy", "show", "--home", str(home))
    assert shown.returncode == 0, shown.stderr
    payload = json.loads(shown.stdout)
    assert payload == _active(admin)["payload"]
    payload["version"] += 1
    (tmp_path / "p.json").write_text(json.dumps(payload))
    signed = _vettra(
        "policy",
        "sign",
        str(tmp_path / "p.json"),
        "--home",
        str(home),
        "-o",
        str(tmp_path / "s.json"),
    )
    assert signed.returncode == 0, signed.stderr
    r = admin.post("/api/policy", json=json.loads((tmp_path / "s.json").read_text()))
    assert r.status_code == 200 and r.json()["version"] == payload["version"]
    envelope = _vettra("policy", "show", "--home", str(home), "--envelope")
    assert json.loads(envelope.stdout)["payload"]["version"] == payload["version"]


def test_policy_show_on_an_empty_home_says_so(tmp_path) -> None:
    r = _vettra("policy", "show", "--home", str(tmp_path / "nothing"))
    assert r.returncode == 1 and "vettra dev" in r.stderr and "Traceback" not in r.stderr
