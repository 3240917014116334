"""Policy schema and the reference evaluator: shared vectors, tables and properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.canonical import canonical_json
from vettra.domain.errors import PolicyRejected
from vettra.domain.policy import (
    ALLOW,
    DENY,
    REQUIRE_APPROVAL,
    REQUIRE_STEP_UP,
    SEVERITY,
    Policy,
    PolicyDecision,
    evaluate,
    validate_payload,
)
from vettra.domain.policy_conditions import count_items, email_domains
from vettra.domain.policy_envelope import load_default_payload

from .policy_inputs import Bundle, Risk, check_evaluate_vector
from .vectors import ROOT, vector_cases, vector_files

VECTORS = ROOT / "policy"
VECTOR_FORMAT = "vettra.policy-vectors/v1"


def level_of(score: int) -> str:
    return "LOW" if score < 20 else "MEDIUM" if score < 55 else "HIGH"


def _cases(kind: str) -> list[Any]:
    return vector_cases(vector_files("policy"), kind, format=VECTOR_FORMAT)


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize("doc, case", _cases("evaluate"))
def test_evaluate_vector(doc: dict, case: dict) -> None:
    check_evaluate_vector(doc, case)


@pytest.mark.parametrize("doc, case", _cases("validate"))
def test_validate_vector(doc: dict, case: dict) -> None:
    fields = sorted({e.field for e in validate_payload(case["policy"])})
    assert fields == case["want_err"]
    if case["want_err"]:
        with pytest.raises(PolicyRejected):
            Policy.from_payload(case["policy"])
    else:
        assert Policy.from_payload(case["policy"]).version == case["policy"]["version"]


def test_vectors_exist_for_every_kind() -> None:
    kinds = {json.loads(p.read_text("utf-8"))["kind"] for p in VECTORS.glob("*.json")}
    assert kinds == {"evaluate", "validate", "envelope"}


def test_default_policy_vector_matches_the_shipped_file() -> None:
    doc = json.loads((VECTORS / "default-policy.json").read_text("utf-8"))
    assert canonical_json(doc["policy"]) == canonical_json(load_default_payload())


# --------------------------------------------------------------------------- tables

DEFAULT = Policy.from_payload(load_default_payload())

PRODUCT_EXAMPLES = [
    ("read profile", Bundle("github.get_user"), Risk(0, "LOW", "read"), ALLOW),
    (
        "send email",
        Bundle("gmail.send_message", {"to": "a@b.com", "subject": "s", "body": "b"}),
        Risk(35, "MEDIUM", "write"),
        REQUIRE_APPROVAL,
    ),
    (
        "delete repo",
        Bundle("github.delete_repo", {"owner": "o", "repo": "r"}),
        Risk(70, "HIGH", "delete"),
        REQUIRE_STEP_UP,
    ),
    (
        "charge $500",
        Bundle("stripe.create_charge", {"amount": 50000, "currency": "usd"}),
        Risk(75, "HIGH", "financial", True),
        REQUIRE_STEP_UP,
    ),
    (
        "grant admin",
        Bundle("iam.grant_role", {"member": "user:mallory@evil.example", "role": "admin"}),
        Risk(85, "HIGH", "auth", True),
        DENY,
    ),
]


@pytest.mark.parametrize(
    "name, bundle, risk, outcome", PRODUCT_EXAMPLES, ids=[e[0] for e in PRODUCT_EXAMPLES]
)
def test_default_policy_product_examples(
    name: str, bundle: Bundle, risk: Risk, outcome: str
) -> None:
    decision = evaluate(DEFAULT, bundle, risk)
    assert decision.outcome == outcome
    assert decision.on_expiry == "deny"
    assert (decision.timeout_s is not None) == (outcome in (REQUIRE_APPROVAL, REQUIRE_STEP_UP))


def test_denial_reason_is_a_sentence_for_the_agent() -> None:
    decision = evaluate(DEFAULT, PRODUCT_EXAMPLES[-1][1], PRODUCT_EXAMPLES[-1][2])
    assert decision == PolicyDecision(
        outcome=DENY,
        rule_id="deny-privilege-escalation",
        timeout_s=None,
        on_expiry="deny",
        reason="granting admin/owner roles to anyone is not allowed for agents",
    )


def test_baseline_reason_names_score_and_threshold() -> None:
    decision = evaluate(DEFAULT, Bundle("slack.post_message"), Risk(60, "HIGH", "write"))
    assert decision.rule_id is None
    assert "60" in decision.reason and "55" in decision.reason


@pytest.mark.parametrize(
    "text, domains",
    [
        ("a@x.com", ["x.com"]),
        ("A <a@X.COM>, b@y.org.", ["x.com", "y.org"]),
        ('"Doe, J" <j@z.io>; k@w.io', ["z.io", "w.io"]),
        (["a@x.com", 3, "b@y.com"], ["x.com", "y.com"]),
        ("no address here", []),
        (42, []),
    ],
)
def test_email_domains(text: Any, domains: list[str]) -> None:
    assert email_domains(text) == domains


@pytest.mark.parametrize(
    "value, count", [("a,b", 2), (" a , , b ,", 2), ("", 0), ([1, 2, 3], 3), ({}, None), (3, None)]
)
def test_count_items(value: Any, count: int | None) -> None:
    assert count_items(value) == count


def test_policy_exposes_its_parts_and_digest() -> None:
    assert DEFAULT.version == 2 and DEFAULT.policy_id == "default"
    assert (DEFAULT.thresholds.approval, DEFAULT.thresholds.step_up) == (20, 55)
    assert (DEFAULT.timeouts.medium, DEFAULT.timeouts.max) == (900, 3600)
    assert DEFAULT.digest.startswith("sha256:") and len(DEFAULT.digest) == 7 + 64
    assert DEFAULT.rules[0].id == "deny-privilege-escalation"


def test_from_payload_copies_its_input() -> None:
    payload = load_default_payload()
    policy = Policy.from_payload(payload)
    payload["rules"][0]["effect"] = "allow"
    assert policy.rules[0].effect == DENY
    assert Policy.from_payload(policy.payload).digest == policy.digest


def test_from_payload_lists_every_problem() -> None:
    payload = load_default_payload()
    payload["thresholds"]["approval"] = 40
    payload["rules"][2]["when"] = {"all": [{"field": "risk.score", "gt": 1, "lt": 5}]}
    with pytest.raises(PolicyRejected) as caught:
        Policy.from_payload(payload)
    fields = {e.field for e in caught.value.errors}
    assert fields == {"thresholds.approval", "rules[2].when.all[0].op"}


OVERRIDE_OK = {"tool": "gmail.send_*", "set": {"blast_radius": "multiple"}, "reason": "lists"}


def test_overrides_are_validated() -> None:
    payload = dict(load_default_payload(), overrides=[OVERRIDE_OK, {"tool": "x", "bogus": 1}])
    fields = {e.field for e in validate_payload(payload)}
    assert "overrides[1]" in fields


def test_override_validation_defers_to_the_risk_engine() -> None:
    risk = pytest.importorskip(
        "vettra.domain.risk", reason="risk.py (validate_override) is not written yet"
    )
    bad = {"tool": "x.*", "set": {"no_such_factor": "x"}}
    assert risk.validate_override(bad)
    payload = dict(load_default_payload(), overrides=[bad])
    assert [e.field for e in validate_payload(payload)] == ["overrides[0]"]


# --------------------------------------------------------------------------- properties

TOOLS = [
    "gmail.send_message",
    "github.delete_repo",
    "iam.grant_role",
    "crm.get_contact",
    "stripe.create_charge",
    "deploy.run",
]
GLOBS = ["*", "gmail.*", "*.delete_*", "iam.grant_role", "*.get_*", "deploy.?un", "nomatch.*"]
CONDITIONS = st.sampled_from(
    [
        None,
        {"field": "risk.score", "gte": 30},
        {"field": "arguments.amount", "gt": 100},
        {"field": "arguments.to", "domain_not_in": ["example.com"]},
        {"not": {"field": "context.ticket", "exists": True}},
        {
            "any": [
                {"field": "resource", "glob": "repo:*"},
                {"field": "risk.category", "eq": "auth"},
            ]
        },
    ]
)
EFFECTS = st.sampled_from(sorted(SEVERITY))


@st.composite
def rules(draw: st.DrawFn) -> list[dict]:
    out = []
    for i in range(draw(st.integers(0, 6))):
        effect = draw(EFFECTS)
        rule = {
            "id": f"r{i}",
            "effect": effect,
            "reason": f"rule {i}",
            "tools": draw(st.lists(st.sampled_from(GLOBS), min_size=1, max_size=3)),
        }
        when = draw(CONDITIONS)
        if when is not None:
            rule["when"] = when
        if effect in (REQUIRE_APPROVAL, REQUIRE_STEP_UP) and draw(st.booleans()):
            rule["timeout_s"] = draw(st.integers(1, 5000))
        out.append(rule)
    return out


@st.composite
def policies(draw: st.DrawFn, extra_rules: list[dict] | None = None) -> Policy:
    approval = draw(st.integers(0, 20))
    step_up = draw(st.integers(approval, 55))
    rule_list = draw(rules())
    for rule in extra_rules or []:
        rule_list.insert(draw(st.integers(0, len(rule_list))), rule)
    top = draw(st.integers(60, 4000))
    return Policy.from_payload(
        {
            "schema": "vettra.policy/v1",
            "policy_id": "prop",
            "version": draw(st.integers(1, 9)),
            "thresholds": {"approval": approval, "step_up": step_up},
            "timeouts": {
                "MEDIUM": draw(st.integers(1, top)),
                "HIGH": draw(st.integers(1, top)),
                "max": top,
                "on_expiry": "deny",
            },
            "rules": rule_list,
        }
    )


@st.composite
def actions(draw: st.DrawFn, forced: bool | None = None) -> tuple[Bundle, Risk]:
    score = draw(st.integers(0, 100))
    forced_high = draw(st.booleans()) if forced is None else forced
    level = "HIGH" if forced_high else level_of(score)
    category = draw(st.sampled_from(["read", "write", "delete", "financial", "auth"]))
    arguments = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "amount": st.one_of(st.integers(0, 10**6), st.text(max_size=3), st.booleans()),
                "to": st.one_of(st.emails(), st.lists(st.emails(), max_size=3), st.integers()),
            },
        )
    )
    context = draw(st.fixed_dictionaries({}, optional={"ticket": st.text(max_size=5)}))
    bundle = Bundle(
        draw(st.sampled_from(TOOLS)),
        arguments,
        context=context,
        resource=draw(st.sampled_from([None, "repo:acme/api", "doc:1"])),
    )
    return bundle, Risk(score, level, category, forced_high)


@settings(max_examples=300)
@given(policies(), actions(forced=True))
def test_forced_high_is_never_allowed_or_merely_approved(
    policy: Policy, action: tuple[Bundle, Risk]
) -> None:
    assert evaluate(policy, *action).outcome in (REQUIRE_STEP_UP, DENY)


DENY_ALL = {"id": "deny-all", "effect": "deny", "tools": ["*"], "reason": "no"}


@settings(max_examples=300)
@given(policies(extra_rules=[DENY_ALL]), actions())
def test_a_matching_deny_is_never_lifted(policy: Policy, action: tuple[Bundle, Risk]) -> None:
    decision = evaluate(policy, *action)
    assert decision.outcome == DENY and decision.timeout_s is None
    ids = [r.id for r in policy.rules]
    assert policy.rules[ids.index(decision.rule_id)].effect == DENY
    assert ids.index(decision.rule_id) <= ids.index("deny-all")  # first matching deny is named


@settings(max_examples=300)
@given(policies(), actions())
def test_policy_only_tightens_except_allow_waiving_approval(
    policy: Policy, action: tuple[Bundle, Risk]
) -> None:
    bundle, risk = action
    decision = evaluate(policy, bundle, risk)
    base = (
        REQUIRE_STEP_UP
        if risk.forced_high or risk.score >= policy.thresholds.step_up
        else REQUIRE_APPROVAL
        if risk.score >= policy.thresholds.approval
        else ALLOW
    )
    if SEVERITY[decision.outcome] < SEVERITY[base]:
        assert (base, decision.outcome) == (REQUIRE_APPROVAL, ALLOW)
        assert policy.rules[[r.id for r in policy.rules].index(decision.rule_id)].effect == ALLOW
    if decision.timeout_s is not None:
        assert 1 <= decision.timeout_s <= policy.timeouts.max


@settings(max_examples=200)
@given(policies(), actions())
def test_evaluation_is_deterministic(policy: Policy, action: tuple[Bundle, Risk]) -> None:
    reparsed = Policy.from_payload(json.loads(canonical_json(policy.payload)))
    assert evaluate(policy, *action) == evaluate(policy, *action) == evaluate(reparsed, *action)
    assert reparsed.digest == policy.digest


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300)
@given(
    JSON_VALUES,
    st.sampled_from(
        [
            "eq",
            "ne",
            "gt",
            "in",
            "contains",
            "glob",
            "count_gte",
            "domain_not_in",
            "exists",
            "text_glob",
            "text_in",
            "confusable_with",
        ]
    ),
    st.booleans(),
)
def test_validation_and_evaluation_never_raise_on_odd_input(
    value: Any, op: str, keyed: bool
) -> None:
    when = {"field": "arguments.v", op: value, **({"keys": ["*"]} if keyed else {})}
    payload = {
        "schema": "vettra.policy/v1",
        "policy_id": "odd",
        "version": 1,
        "thresholds": {"approval": 20, "step_up": 55},
        "timeouts": {"MEDIUM": 9, "HIGH": 9, "max": 9, "on_expiry": "deny"},
        "rules": [{"id": "r", "effect": "deny", "tools": ["*"], "reason": "r", "when": when}],
    }
    errors = validate_payload(payload)
    if not errors:
        policy = Policy.from_payload(payload)
        for probe in (value, "x", 3, None, [value], {"v": value}):
            evaluate(policy, Bundle("a.b", {"v": probe}), Risk(0, "LOW", "read"))
    assert all(e.field.startswith("rules[0].when") for e in errors)


REAL_ENGINE_EXAMPLES = [
    ({"tool": "gmail.get_profile", "arguments": {}}, ALLOW),
    (
        {"tool": "gmail.send_message", "arguments": {"to": "a@b.com", "subject": "s", "body": "b"}},
        REQUIRE_APPROVAL,
    ),
    ({"tool": "github.delete_repo", "arguments": {"owner": "o", "repo": "r"}}, REQUIRE_STEP_UP),
    (
        {"tool": "stripe.create_charge", "arguments": {"amount": 50000, "currency": "usd"}},
        REQUIRE_STEP_UP,
    ),
    (
        {
            "tool": "iam.grant_role",
            "arguments": {"member": "user:mallory@evil.example", "role": "admin"},
        },
        DENY,
    ),
    (
        {
            "tool": "github.add_collaborator",
            "arguments": {"owner": "o", "repo": "r", "username": "m", "permission": "admin"},
        },
        DENY,
    ),
]


@pytest.mark.parametrize(
    "body, outcome", REAL_ENGINE_EXAMPLES, ids=[b["tool"] for b, _ in REAL_ENGINE_EXAMPLES]
)
def test_default_policy_with_the_real_parser_and_risk_engine(body: dict, outcome: str) -> None:
    parse = pytest.importorskip("vettra.domain.action_bundle", reason="action_bundle.py is missing")
    risk = pytest.importorskip("vettra.domain.risk", reason="risk.py not written yet")
    action = parse.parse_bundle(body)
    assert evaluate(DEFAULT, action, risk.assess(action)).outcome == outcome
