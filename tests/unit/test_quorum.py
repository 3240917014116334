"""Quorum approvals (docs/approvals.md): the policy field, its evaluation, and the votes.

The vectors in ``tests/vectors/policy/quorum*.json`` are shared with the Rust/WASM
evaluator; here they are also checked for ``approvers``, which the generic vector
test in ``test_policy.py`` does not compare. The service tests run the real
services on a real SQLite home (fakes only where the clock matters: none here).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.actions import APPROVED, DENIED, PENDING
from vettra.domain.errors import Conflict, Forbidden, NotFound
from vettra.domain.identity import Principal
from vettra.domain.policy import PolicyRule, combine_quorums, validate_payload
from vettra.ports import EntryQuery
from vettra.services import actions

from ..policies import issues_quorum, signed_default_with
from ..races import race
from .policy_inputs import check_evaluate_vector
from .vectors import vector_cases, vector_files

QUORUM_VECTORS = vector_files("policy", "quorum*.json")


def _cases(kind: str) -> list[Any]:
    return vector_cases(QUORUM_VECTORS, kind)


# --------------------------------------------------------------------------- the policy field


def test_both_vector_kinds_are_present() -> None:
    assert {json.loads(p.read_text("utf-8"))["kind"] for p in QUORUM_VECTORS} == {
        "evaluate",
        "validate",
    }


@pytest.mark.parametrize("doc, case", _cases("evaluate"))
def test_evaluate_vector_with_approvers(doc: dict, case: dict) -> None:
    check_evaluate_vector(doc, case, "approvers")


@pytest.mark.parametrize("doc, case", _cases("validate"))
def test_validate_vector(doc: dict, case: dict) -> None:
    assert sorted({e.field for e in validate_payload(case["policy"])}) == case["want_err"]


def _rule(i: int, quorum: int, names: list[str]) -> PolicyRule:
    return PolicyRule(
        id=f"r{i}",
        effect="require_approval",
        tools=("*",),
        reason="r",
        approvers={"quorum": quorum, "of": names},
    )


_NAMES = st.sampled_from(["alice", "bob", "carol", "dave", "erin", "Zed", "émile"])
_QUORUMS = st.lists(
    st.lists(_NAMES, min_size=1, max_size=7, unique=True).flatmap(
        lambda names: st.tuples(st.integers(1, len(names)), st.just(names))
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=300, deadline=None)
@given(_QUORUMS, st.randoms())
def test_combined_quorum_satisfies_every_rule_and_ignores_rule_order(
    quorums: list, rnd: Any
) -> None:
    rules = [_rule(i, k, names) for i, (k, names) in enumerate(quorums)]
    combined = combine_quorums(rules)
    shuffled = rules[:]
    rnd.shuffle(shuffled)
    assert combine_quorums(shuffled) == combined
    common = set.intersection(*(set(names) for _, names in quorums))
    k = max(k for k, _ in quorums)
    if k > len(common):
        assert combined is None
        return
    assert combined == {"quorum": k, "of": sorted(common)}
    # any k of the combined names are enough approvals for every single rule
    chosen = set(combined["of"][:k])
    assert all(len(chosen & set(names)) >= q for q, names in quorums)


# --------------------------------------------------------------------------- the votes

OWNER = "alice"
AGENT = Principal(sub="agent-1", role="agent", user=OWNER)
ADMIN = Principal(sub="root", role="admin", user="root")

ISSUE = {
    "tool": "github.create_issue",
    "arguments": {"repo": "acme/api", "title": "t"},
}  # 2 of carol, dave, erin
POST = {
    "tool": "slack.post_message",
    "arguments": {"channel": "#ops", "text": "hi"},
}  # 2 of alice, carol
QUORUM_RULES = [
    issues_quorum("carol", "dave", "erin"),
    {
        "id": "owner-and-carol-posts",
        "effect": "require_approval",
        "tools": ["slack.post_message"],
        "approvers": {"quorum": 2, "of": ["carol", "alice"]},
        "reason": "posts need alice and carol",
    },
]


def quorum_envelope(signing_key: Any, version: int | None = None) -> dict[str, Any]:
    return signed_default_with(signing_key, QUORUM_RULES, version=version)


def who(user: str) -> Principal:
    return Principal(sub=user, role="approver", user=user)


@pytest.fixture
def deps(runtime: Any) -> Any:
    deps = runtime.deps
    deps.policies.activate(ADMIN, quorum_envelope(deps.keys.policy_signing_key()))
    return deps


def _intercept(deps: Any, bundle: dict) -> str:
    action = actions.intercept(deps, AGENT, bundle).action
    assert action.status == PENDING and action.policy["approvers"], action
    return action.id


def _trail(runtime: Any, action_id: str) -> list[tuple[str, str]]:
    return [
        (e.type, e.actor)
        for e in runtime.deps.store.audit_log.entries("default", EntryQuery(action_id=action_id))
        if e.type != "action.decision_rejected"
    ]


def test_intercept_stores_the_quorum_and_the_view_shows_it(deps: Any) -> None:
    action_id = _intercept(deps, ISSUE)
    view = actions.get_action(deps, who("dave"), action_id)
    assert view["policy"]["approvers"] == {"quorum": 2, "of": ["carol", "dave", "erin"]}
    assert view["quorum"] == {"required": 2, "approvals": [], "of": ["carol", "dave", "erin"]}
    plain = actions.intercept(
        deps, AGENT, {"tool": "calendar.create_event", "arguments": {"title": "x"}}
    )
    assert "approvers" not in plain.action.policy and "quorum" not in plain.action.view()


def test_named_approvers_see_it_strangers_do_not(deps: Any) -> None:
    action_id = _intercept(deps, ISSUE)
    for user in ("alice", "carol", "dave", "erin"):
        assert actions.get_action(deps, who(user), action_id)["action_id"] == action_id
        assert [a["action_id"] for a in actions.list_pending(deps, who(user))] == [action_id]
    assert actions.list_pending(deps, who("bob")) == []
    with pytest.raises(NotFound):
        actions.get_action(deps, who("bob"), action_id)
    with pytest.raises(NotFound):
        actions.decide(deps, who("bob"), action_id, "deny")
    elsewhere = Principal(sub="carol", role="approver", user="carol", tenant="other")
    with pytest.raises(NotFound):
        actions.get_action(deps, elsewhere, action_id)
    # an agent acting for a named approver is not that approver
    with pytest.raises(NotFound):
        actions.get_action(deps, Principal(sub="agent-1", role="agent", user="carol"), action_id)


def test_k_distinct_approvals_approve_once(runtime: Any, deps: Any) -> None:
    action_id = _intercept(deps, ISSUE)
    first = actions.decide(deps, who("carol"), action_id, "approve")
    assert first["status"] == PENDING and first["quorum"]["approvals"] == ["carol"]
    again = actions.decide(deps, who("carol"), action_id, "approve")  # counts once, still 200
    assert again["status"] == PENDING and again["quorum"]["approvals"] == ["carol"]
    done = actions.decide(deps, who("erin"), action_id, "approve")
    assert done["status"] == APPROVED and done["quorum"]["approvals"] == ["carol", "erin"]
    assert done["decided_by"] == "approver:erin" and "2 of the named approvers" in done["reason"]
    with pytest.raises(Conflict):
        actions.decide(deps, who("dave"), action_id, "approve")
    assert _trail(runtime, action_id) == [
        ("action.intercepted", "agent:agent-1"),
        ("action.vote", "approver:carol"),
        ("action.vote", "approver:erin"),
        ("action.approved", "approver:erin"),
    ]
    last = [
        e
        for e in runtime.deps.store.audit_log.entries("default", EntryQuery(action_id=action_id))
        if e.type == "action.approved"
    ][-1]
    assert last.data["quorum"] == {"required": 2, "approvals": ["carol", "erin"]}


def test_the_owner_not_named_may_deny_but_not_approve(runtime: Any, deps: Any) -> None:
    action_id = _intercept(deps, ISSUE)
    with pytest.raises(Forbidden):
        actions.decide(deps, who(OWNER), action_id, "approve")
    actions.decide(deps, who("dave"), action_id, "approve")
    denied = actions.decide(deps, who(OWNER), action_id, "deny", reason="not this sprint")
    assert denied["status"] == DENIED and denied["reason"] == "not this sprint"
    votes = [
        e.data
        for e in runtime.deps.store.audit_log.entries("default", EntryQuery(action_id=action_id))
        if e.type == "action.vote"
    ]
    assert [(v["voter"], v["vote"], v["named"]) for v in votes] == [
        ("dave", "approve", True),
        ("alice", "deny", False),
    ]
    assert [t for t, _ in _trail(runtime, action_id)].count("action.denied") == 1


def test_a_named_approver_denies_even_after_approving(deps: Any) -> None:
    action_id = _intercept(deps, ISSUE)
    actions.decide(deps, who("carol"), action_id, "approve")
    assert actions.decide(deps, who("carol"), action_id, "deny")["status"] == DENIED
    assert actions.list_pending(deps, who("dave")) == []


def test_a_named_owner_counts_as_one_approver(deps: Any) -> None:
    action_id = _intercept(deps, POST)
    assert actions.decide(deps, who(OWNER), action_id, "approve")["status"] == PENDING
    assert actions.decide(deps, who("carol"), action_id, "approve")["status"] == APPROVED


@pytest.mark.parametrize("round_", range(5))
def test_concurrent_votes_of_every_approver_approve_exactly_once(
    runtime: Any, deps: Any, round_: int
) -> None:
    action_id = _intercept(deps, ISSUE)
    results = race(
        [
            lambda u=u: actions.decide(deps, who(u), action_id, "approve")
            for u in ("carol", "dave", "erin")
        ]
    )
    ok = [r for r in results if isinstance(r, dict)]
    assert len(ok) == 2 and sum(isinstance(r, Conflict) for r in results) == 1, results
    assert [r["status"] for r in ok].count(APPROVED) == 1
    types = [t for t, _ in _trail(runtime, action_id)]
    assert types.count("action.approved") == 1 and types.count("action.vote") == 2


@pytest.mark.parametrize("round_", range(5))
def test_final_approval_racing_a_deny_ends_in_one_terminal_entry(
    runtime: Any, deps: Any, round_: int
) -> None:
    action_id = _intercept(deps, ISSUE)
    actions.decide(deps, who("carol"), action_id, "approve")
    results = race(
        [
            lambda: actions.decide(deps, who("dave"), action_id, "approve"),
            lambda: actions.decide(deps, who(OWNER), action_id, "deny"),
        ]
    )
    assert (
        sum(isinstance(r, dict) for r in results) == 1
        and sum(isinstance(r, Conflict) for r in results) == 1
    )
    types = [t for t, _ in _trail(runtime, action_id)]
    assert types.count("action.approved") + types.count("action.denied") == 1
    final = actions.get_action(deps, who("carol"), action_id)["status"]
    assert final == (APPROVED if "action.approved" in types else DENIED)
