"""Writes decide.json: whole decisions (risk score, level, factors, choices, reasons and
the policy's decision) by the Python reference, for the Rust/WASM verifier to reproduce
byte for byte. Every bundle goes through ``parse_bundle`` first, as the service does.

    .venv/bin/python tests/vectors/risk/make_vectors.py

tests/unit/test_risk_vectors.py fails when the reference no longer gives these answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vettra.adapters.wasm_verifier import bundle_facts, decide_answer
from vettra.domain.action_bundle import parse_bundle
from vettra.domain.policy import Policy, evaluate
from vettra.domain.policy_envelope import load_default_payload
from vettra.domain.risk import assess

OUT = Path(__file__).resolve().parent / "decide.json"

OVERRIDES_POLICY: dict[str, Any] = {
    "schema": "vettra.policy/v1",
    "policy_id": "overrides",
    "version": 1,
    "description": "risk overrides that raise, lower and try to un-force",
    "thresholds": {"approval": 10, "step_up": 40},
    "timeouts": {"MEDIUM": 600, "HIGH": 300, "max": 450, "on_expiry": "deny"},
    "overrides": [
        {"tool": "gmail.send_*", "set": {"reversibility": "reversible"}, "reason": "drafts first"},
        {"tool": "stripe.*", "set": {"action_type": "write", "sensitivity": "public"}},
        {"tool": "calendar.create_event", "set": {"blast_radius": "system"}, "reason": ""},
        {"tool": "acme.*", "set": {"action_type": "delete", "reversibility": "irreversible"}},
        {"tool": "github.get_[!a-c]*", "set": {"sensitivity": "regulated"}},
    ],
    "rules": [
        {
            "id": "hold-big-calendar",
            "effect": "require_approval",
            "tools": ["calendar.*"],
            "when": {"field": "arguments.attendees", "count_gte": 3},
            "reason": "large meetings",
            "timeout_s": 120,
            "approvers": {"quorum": 1, "of": ["bob", "alice"]},
        },
        {
            "id": "allow-small-reads",
            "effect": "allow",
            "tools": ["*.get_*", "*.list_*"],
            "reason": "reads are routine",
        },
        {
            "id": "deny-roles",
            "effect": "deny",
            "tools": ["*"],
            "when": {"field": "arguments", "text_in": ["owner", "admin"], "keys": ["role*"]},
            "reason": "no owner or admin roles",
        },
        {
            "id": "deny-confusable",
            "effect": "deny",
            "tools": ["*"],
            "when": {"field": "arguments", "confusable_with": "sudo"},
            "reason": "sudo in disguise",
        },
    ],
}

CYR_A = "\u0430"
BODIES: list[tuple[str, dict[str, Any]]] = [
    ("a plain read of the profile", {"tool": "user.get_profile", "arguments": {}}),
    ("mail to one recipient", {"tool": "gmail.send_message", "arguments": {"to": "a@x.com"}}),
    (
        "mail to many recipients across to/cc",
        {"tool": "gmail.send_message", "arguments": {"to": "a@x, b@y; c@z", "cc": ["d@w"]}},
    ),
    (
        "mail to 50 recipients",
        {"tool": "gmail.send_message", "arguments": {"to": [f"u{i}@x.com" for i in range(50)]}},
    ),
    (
        "alias gcal resolves to calendar",
        {"tool": "gcal.create_event", "arguments": {"attendees": ["a", "b", "c"]}},
    ),
    (
        "calendar event with a quorum rule",
        {"tool": "calendar.create_event", "arguments": {"attendees": ["a@x", "b@y", "c@z"]}},
    ),
    (
        "calendar event, count 0",
        {"tool": "calendar.create_event", "arguments": {"attendees": None}},
    ),
    (
        "drive share with anyone",
        {"tool": "drive.share_file", "arguments": {"type": "anyone", "role": "reader"}},
    ),
    (
        "drive share writer",
        {"tool": "drive.share_file", "arguments": {"role": " WRITER ", "emails": "a@x,b@y,c@z"}},
    ),
    (
        "drive update file",
        {"tool": "drive.update_file", "arguments": {"mime_type": "x", "role": "owner"}},
    ),
    ("github push to main", {"tool": "github.push_files", "arguments": {"branch": "main"}}),
    (
        "github push force",
        {"tool": "github.push_files", "arguments": {"force": True, "branch": "dev"}},
    ),
    (
        "github update repo visibility",
        {"tool": "github.update_repo", "arguments": {"private": False}},
    ),
    ("github get file (override by class)", {"tool": "github.get_file", "arguments": {}}),
    ("github get archive (class excludes a)", {"tool": "github.get_archive", "arguments": {}}),
    (
        "slack post with a keyword",
        {"tool": "slack.post_message", "arguments": {"text": "the PASSWORD is x"}},
    ),
    (
        "slack invite many",
        {"tool": "slack.invite_users", "arguments": {"users": "u1,u2,u3,u4,u5,u6"}},
    ),
    (
        "stripe charge shows arguments",
        {"tool": "stripe.create_charge", "arguments": {"amount": 50000, "currency": "usd"}},
    ),
    (
        "stripe charge with a float and a long value",
        {
            "tool": "stripe.create_charge",
            "arguments": {
                "amount": 12.5,
                "customer": "c" * 120,
                "destination": {"b": 1e-7, "a": [1.0, 2e21]},
            },
        },
    ),
    (
        "stripe refund with unicode",
        {"tool": "stripe.create_refund", "arguments": {"charge": 'ch_é\u2028"q"', "amount": 1e20}},
    ),
    (
        "iam grant role owner",
        {"tool": "iam.grant_role", "arguments": {"role": "roles/owner", "member": "user:x"}},
    ),
    (
        "iam grant with role in JSON text",
        {"tool": "iam.grant_role", "arguments": {"policy": '{"role": "Owner"}'}},
    ),
    ("unknown plain read", {"tool": "acmecorp.get_widget", "arguments": {"id": 3}}),
    (
        "unknown read asking for a secret",
        {"tool": "acmecorp.get_widget", "arguments": {"path": "secret/prod/db"}},
    ),
    ("unknown read of keys in the name", {"tool": "vault.list_keys", "arguments": {}}),
    ("unknown compound read", {"tool": "acmecorp.get_and_delete", "arguments": {}}),
    ("unknown read with a later write verb", {"tool": "acmecorp.fetch_update_x", "arguments": {}}),
    ("unknown delete", {"tool": "acmecorp.purge_cache", "arguments": {}}),
    ("unknown financial", {"tool": "acmecorp.refund_order", "arguments": {"order": 1}}),
    ("unknown auth verb", {"tool": "acmecorp.invite_member", "arguments": {}}),
    ("unknown auth word", {"tool": "acmecorp.list_admin_keys", "arguments": {}}),
    ("unknown no verb", {"tool": "acmecorp.widget", "arguments": {}}),
    ("override on an unknown service", {"tool": "acme.get_x", "arguments": {}}),
    (
        "disguised: mixed scripts",
        {"tool": "acmecorp.get_widget", "arguments": {"name": CYR_A + "dmin"}},
    ),
    (
        "disguised: invisible character",
        {"tool": "acmecorp.get_widget", "arguments": {"name": "ad\u200bmin"}},
    ),
    (
        "disguised: all Cyrillic look-alike",
        {"tool": "acmecorp.get_widget", "arguments": {"q": "\u0455\u0443\u0455"}},
    ),
    ("not disguised: French", {"tool": "acmecorp.get_widget", "arguments": {"q": "café crème"}}),
    (
        "not disguised: Russian prose",
        {"tool": "acmecorp.get_widget", "arguments": {"q": "привет мир"}},
    ),
    ("disguised key", {"tool": "acmecorp.get_widget", "arguments": {CYR_A + "b": 1}}),
    (
        "confusable sudo (deny rule)",
        {"tool": "acmecorp.run_x", "arguments": {"cmd": "\u0455udo rm"}},
    ),
    ("role key with Cyrillic o", {"tool": "acmecorp.set_x", "arguments": {"r\u043ele": "OWNER"}}),
    (
        "fullwidth admin role",
        {"tool": "acmecorp.set_x", "arguments": {"role": "\uff41\uff44\uff4d\uff49\uff4e"}},
    ),
    (
        "Greek final sigma in a keyword",
        {"tool": "slack.post_message", "arguments": {"text": "ΟΔΟΣ password"}},
    ),
    (
        "mcp server claim",
        {
            "framework": "mcp",
            "tool_call": {"name": "delete_repo", "arguments": {"repo": "x"}, "server": "github"},
        },
    ),
    (
        "resource on prod",
        {"tool": "github.create_issue", "arguments": {}, "resource": "repo:acme/prod-api"},
    ),
    ("context fields", {"tool": "deploy.run", "arguments": {}, "context": {"env": "prod"}}),
    (
        "share publicly (default policy)",
        {"tool": "drive.share_file", "arguments": {"type": "anyone"}},
    ),
    (
        "outside email (default policy)",
        {"tool": "gmail.send_message", "arguments": {"to": "Eve <eve@evil.example>"}},
    ),
    ("account deletion (default policy)", {"tool": "acme.delete_account", "arguments": {}}),
    (
        "JSON text nested in a string",
        {"tool": "acmecorp.set_x", "arguments": {"v": '["{\\"role\\": \\"admin\\"}"]'}},
    ),
    (
        "deep arguments",
        {
            "tool": "acmecorp.set_x",
            "arguments": {"a": {"b": {"c": {"role": ["x", {"y": "admin"}]}}}},
        },
    ),
    (
        "numbers and booleans",
        {"tool": "acmecorp.set_x", "arguments": {"n": -0.0, "t": True, "f": False, "z": 0}},
    ),
    (
        "empty strings and lists",
        {"tool": "slack.post_message", "arguments": {"text": "", "blocks": []}},
    ),
]
AGENTS = ["agent:bot", None]


def decide(policy: Policy, body: dict[str, Any], agent: str | None) -> dict[str, Any]:
    bundle = parse_bundle(body)
    risk = assess(bundle, overrides=policy.overrides)
    decision = evaluate(policy, bundle, risk, agent=agent)
    return {"bundle": bundle_facts(bundle), "agent": agent, **decide_answer(risk, decision)}


def main() -> None:
    policies = {"default": load_default_payload(), "overrides": OVERRIDES_POLICY}
    cases = []
    for name, payload in policies.items():
        policy = Policy.from_payload(payload)
        for i, (desc, body) in enumerate(BODIES):
            agent = AGENTS[i % len(AGENTS)]
            cases.append({"desc": f"{name}: {desc}", "policy": name, **decide(policy, body, agent)})
    doc = {
        "format": "vettra.risk-vectors/v1",
        "kind": "decide",
        "desc": "Whole decisions by the Python reference (risk.assess then policy.evaluate) "
        "over the shipped catalogue; 'policy' names one of 'policies'.",
        "policies": policies,
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT} ({len(cases)} cases)")


if __name__ == "__main__":
    main()
