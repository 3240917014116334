"""Risk scoring: the write-up's table, the five scenarios, rules, overrides, properties."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.catalogue import Catalogue
from vettra.domain.risk import (
    FACTOR_POINTS,
    HIGH,
    LOW,
    MEDIUM,
    RiskAssessment,
    assess,
    count_items,
    level_for,
    rule_holds,
    validate_override,
)

from .policy_inputs import Bundle

DEFAULT = Catalogue.default()


def score(tool: str, overrides=(), **arguments: Any) -> RiskAssessment:
    return assess(Bundle(tool, arguments), DEFAULT, overrides)


# --- the table ---------------------------------------------------------------------------


def test_factor_points_are_the_write_up_table():
    assert FACTOR_POINTS == {
        "action_type": {"read": 0, "write": 20, "delete": 35, "financial": 40, "auth": 40},
        "reversibility": {"reversible": 0, "unknown": 15, "irreversible": 25},
        "blast_radius": {"single": 0, "multiple": 12, "system": 20},
        "sensitivity": {"public": 0, "internal": 5, "confidential": 10, "regulated": 15},
    }


@pytest.mark.parametrize(
    "points,category,level",
    [
        (0, "read", LOW),
        (19, "write", LOW),
        (20, "write", MEDIUM),
        (54, "delete", MEDIUM),
        (55, "read", HIGH),
        (100, "delete", HIGH),
        (0, "financial", HIGH),
        (0, "auth", HIGH),
        (19, "auth", HIGH),
        (40, "financial", HIGH),
    ],
)
def test_level_for(points, category, level):
    assert level_for(points, category) == level


@pytest.mark.parametrize(
    "points,category", [(-1, "read"), (101, "read"), (True, "read"), (5.0, "read"), (5, "fly")]
)
def test_level_for_rejects_nonsense(points, category):
    with pytest.raises(ValueError):
        level_for(points, category)


# --- the five required scenarios (hackathon write-up, "Threat Simulation") ----------------


def test_scenario_1_read_profile_is_low():
    risk = score("user.get_profile")
    assert (risk.level, risk.category, risk.forced_high) == (LOW, "read", False)


def test_scenario_2_send_email_is_medium():
    risk = score("gmail.send_message", to="partner@external.example", subject="Hi", body="…")
    assert risk.factors == {
        "action_type": 20,
        "reversibility": 25,
        "blast_radius": 0,
        "sensitivity": 5,
    }
    assert (risk.score, risk.level) == (50, MEDIUM)


def test_scenario_3_delete_repo_is_high():
    risk = score("github.delete_repo", repo="acme/api")
    assert (risk.level, risk.category, risk.forced_high) == (HIGH, "delete", False)
    assert risk.score >= 55


def test_scenario_4_charge_is_forced_high_and_shows_the_amount():
    risk = score("stripe.create_charge", amount=50000, currency="usd", customer="cus_1")
    assert (risk.level, risk.category, risk.forced_high) == (HIGH, "financial", True)
    assert any("amount=50000" in r and '"usd"' in r for r in risk.reasons)
    assert any(r.startswith("Forced HIGH") for r in risk.reasons)


def test_scenario_5_grant_admin_is_high_auth():
    risk = score("iam.grant_role", member="user:mallory@evil.example", role="admin")
    assert (risk.level, risk.category, risk.forced_high) == (HIGH, "auth", True)
    assert risk.choices["blast_radius"] == "system"


# --- the rule vocabulary ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,count",
    [
        (None, 0),
        ("", 0),
        ("a@x", 1),
        ("a@x, b@y", 2),
        ("a@x;b@y, c@z", 3),
        (" , ,", 0),
        (["a@x", "b@y"], 2),
        (["a@x, b@y", "c@z"], 3),
        ([], 0),
        ([{"email": "a@x"}], 1),
        ({"email": "a@x"}, 1),
        (7, 1),
        ([[["a", "b"]]], 2),
    ],
)
def test_count_items(value, count):
    assert count_items(value) == count


def _rule(when: dict):
    data = {
        "version": 1,
        "tools": {
            "t.x": {
                "category": "read",
                "reversibility": "reversible",
                "blast_radius": "single",
                "sensitivity": "internal",
                "description": "d",
                "rules": [{"reason": "r", "when": when, "set": {"blast_radius": "system"}}],
            }
        },
    }
    return Catalogue.from_dict(data).profile_for("t.x").rules[0]


RULE_CASES = [
    ({"arg": "a", "present": True}, {"a": "x"}, True),
    ({"arg": "a", "present": True}, {"a": ""}, False),
    ({"arg": "a", "present": True}, {"a": None}, False),
    ({"arg": "a", "present": True}, {}, False),
    ({"arg": ["to", "cc"], "count_gte": 2}, {"to": "a@x", "cc": ["b@y"]}, True),
    ({"arg": ["to", "cc"], "count_gte": 2}, {"to": "a@x"}, False),
    ({"arg": "visibility", "equals": "public"}, {"visibility": " Public "}, True),
    ({"arg": "visibility", "equals": "public"}, {"visibility": "private"}, False),
    ({"arg": "public", "equals": True}, {"public": True}, True),
    ({"arg": "public", "equals": True}, {"public": 1}, False),  # a bool never equals a number
    ({"arg": "n", "equals": 1}, {"n": True}, False),
    ({"arg": "n", "equals": 1}, {"n": 1.0}, True),
    ({"arg": "permission.type", "equals": "anyone"}, {"permission": {"type": "anyone"}}, True),
    ({"arg": "permission.type", "equals": "anyone"}, {"permission": "anyone"}, False),
    ({"arg": "branch", "in": ["main", "master"]}, {"branch": "MAIN"}, True),
    ({"arg": "branch", "in": ["main", "master"]}, {"branch": ["dev", "master"]}, True),
    ({"arg": "branch", "in": ["main", "master"]}, {"branch": "dev"}, False),
    ({"arg": "text", "contains_any": ["<!channel>"]}, {"text": "hi <!CHANNEL>"}, True),
    ({"arg": "text", "contains_any": ["<!channel>"]}, {"text": 5}, False),
]


@pytest.mark.parametrize("when,arguments,expected", RULE_CASES)
def test_rule_conditions(when, arguments, expected):
    assert rule_holds(_rule(when), arguments) is expected


# --- argument rules in the catalogue ----------------------------------------------------


@pytest.mark.parametrize(
    "arguments,blast,level",
    [
        ({"to": "a@x.example"}, "single", MEDIUM),
        ({"to": "a@x.example, b@y.example"}, "multiple", HIGH),
        ({"to": ["a@x.example"], "cc": "b@y.example"}, "multiple", HIGH),
        ({"to": "a@x.example", "bcc": [f"u{i}@x.example" for i in range(49)]}, "system", HIGH),
        ({"to": [f"u{i}@x.example" for i in range(49)]}, "multiple", HIGH),
        ({}, "single", MEDIUM),
    ],
)
def test_email_recipients_set_the_blast_radius(arguments, blast, level):
    risk = score("gmail.send_message", **arguments)
    assert (risk.choices["blast_radius"], risk.level) == (blast, level)


@pytest.mark.parametrize(
    "tool,arguments,factor,option",
    [
        ("slack.post_message", {"channel": "C1", "text": "hi"}, "blast_radius", "multiple"),
        (
            "slack.post_message",
            {"channel": "C1", "text": "<!channel> outage"},
            "blast_radius",
            "system",
        ),
        ("drive.share_file", {"file_id": "f", "email": "a@x.example"}, "blast_radius", "single"),
        ("drive.share_file", {"file_id": "f", "type": "anyone"}, "blast_radius", "system"),
        (
            "drive.share_file",
            {"file_id": "f", "visibility": "public"},
            "reversibility",
            "irreversible",
        ),
        ("drive.create_permission", {"permission": {"type": "domain"}}, "blast_radius", "multiple"),
        ("drive.update_file", {"file_id": "f", "public": True}, "blast_radius", "system"),
        (
            "github.update_repo",
            {"repo": "acme/api", "visibility": "public"},
            "sensitivity",
            "confidential",
        ),
        ("github.push_files", {"branch": "feature"}, "blast_radius", "multiple"),
        ("github.push_files", {"branch": "main"}, "blast_radius", "system"),
        (
            "github.push_files",
            {"branch": "feature", "force": True},
            "reversibility",
            "irreversible",
        ),
        ("calendar.create_event", {"summary": "1:1"}, "reversibility", "reversible"),
        (
            "calendar.create_event",
            {"attendees": [{"email": "a@x"}]},
            "reversibility",
            "irreversible",
        ),
        ("calendar.create_event", {"attendees": ["a@x", "b@y"]}, "blast_radius", "multiple"),
    ],
)
def test_argument_rules(tool, arguments, factor, option):
    risk = score(tool, **arguments)
    assert risk.choices[factor] == option
    if option != DEFAULT.profile_for(tool).choices()[factor]:
        assert any(
            r.startswith(f"{factor.replace('_', ' ').capitalize()}: {option}") and "because" in r
            for r in risk.reasons
        )


def test_a_rule_never_lowers_the_catalogue():
    data = {
        "version": 1,
        "tools": {
            "t.x": {
                "category": "write",
                "reversibility": "irreversible",
                "blast_radius": "system",
                "sensitivity": "internal",
                "description": "d",
                "rules": [
                    {
                        "reason": "r",
                        "when": {"arg": "to", "count_gte": 1},
                        "set": {"blast_radius": "multiple", "reversibility": "unknown"},
                    }
                ],
            }
        },
    }
    risk = assess(Bundle("t.x", {"to": "a@x"}), Catalogue.from_dict(data))
    assert (risk.choices["blast_radius"], risk.choices["reversibility"]) == (
        "system",
        "irreversible",
    )


def test_unknown_tool_says_so_and_is_not_low():
    risk = score("acme.frobnicate", x=1)
    assert "not in the catalogue" in risk.reasons[0]
    assert (risk.category, risk.level) == ("write", HIGH)
    assert score("acme.get_widget").level == LOW  # a plain read changes nothing
    assert score("acme.get_widget_secret").level == MEDIUM  # unless it points at secrets


# Tools of services the catalogue does not list: plain reads are LOW; reads that point at
# secrets, credentials, keys, tokens, passwords, payment or admin data, and every change,
# are not (docs/risk.md, "Tools not in the catalogue").
UNLISTED_READS = [
    "notion.get_page",
    "jira.search_issues",
    "confluence.list_spaces",
    "salesforce.query",
    "hubspot.fetch_contact",
    "linear.describe_issue",
    "zendesk.read_ticket",
    "asana.list_tasks",
    "trello.find_board",
    "figma.view_file",
    "datadog.lookup_monitor",
]
UNLISTED_SENSITIVE_READS = [
    ("vault.read", {}),
    ("aws.get_secret_value", {}),
    ("okta.list_api_tokens", {}),
    ("onepassword.get_item", {}),
    ("jira.get_credentials", {}),
    ("acme.list_payment_methods", {}),
    ("notion.get_page", {"page": "prod database password"}),
    ("salesforce.query", {"soql": "SELECT Id FROM Secret__c"}),
    ("confluence.get_admin_settings", {}),
    ("hubspot.search", {"q": ["x", {"k": "api-key"}]}),
]
UNLISTED_CHANGES = [
    "notion.update_page",
    "jira.create_issue",
    "confluence.delete_space",
    "salesforce.transfer_owner",
    "hubspot.send_email",
    "linear.archive_issue",
    "zendesk.get_and_close_ticket",
    "asana.list_and_delete_tasks",
]


@pytest.mark.parametrize("tool", UNLISTED_READS)
def test_unlisted_plain_reads_are_low(tool):
    risk = score(tool, page_token="abc", key="photos/cat.jpg")
    assert (risk.category, risk.score, risk.level) == ("read", 10, LOW)
    assert "plain read" in risk.reasons[0]


@pytest.mark.parametrize("tool, arguments", UNLISTED_SENSITIVE_READS)
def test_unlisted_reads_of_secrets_stay_at_least_as_today(tool, arguments):
    risk = score(tool, **arguments)
    assert risk.score >= 25 and risk.level != LOW  # 25 was the score of every unknown read


@pytest.mark.parametrize("tool", UNLISTED_CHANGES)
def test_unlisted_changes_are_not_low(tool):
    assert score(tool).level != LOW


def test_the_generalisation_spans_eight_services_or_more():
    services = {t.partition(".")[0] for t in UNLISTED_READS + UNLISTED_CHANGES}
    assert len(services & {t.partition(".")[0] for t in UNLISTED_READS}) >= 8


def test_reasons_cover_every_factor_and_as_dict_is_json():
    risk = score("gmail.send_message", to="a@x.example")
    for label in ("Action type", "Reversibility", "Blast radius", "Sensitivity"):
        assert any(r.startswith(label + ":") for r in risk.reasons)
    body = risk.as_dict()
    assert set(body) == {"score", "level", "category", "factors", "reasons"}
    assert json.loads(json.dumps(body)) == body


def test_a_bundle_without_a_mapping_for_arguments_scores_as_if_empty():
    assert assess(Bundle("gmail.send_message", None), DEFAULT) == score("gmail.send_message")


# --- overrides from the signed policy -------------------------------------------------------


def test_override_lowers_a_factor_and_says_so():
    override = {
        "tool": "gmail.*",
        "set": {"reversibility": "reversible"},
        "reason": "undo-send is on",
    }
    risk = score("gmail.send_message", [override], to="a@x.example")
    assert (risk.score, risk.level) == (25, MEDIUM)
    assert any("policy override for 'gmail.*': undo-send is on" in r for r in risk.reasons)


def test_last_matching_override_wins_per_factor():
    overrides = [
        {"tool": "gmail.*", "set": {"sensitivity": "public", "blast_radius": "system"}},
        {"tool": "gmail.send_*", "set": {"sensitivity": "regulated"}},
        {"tool": "slack.*", "set": {"sensitivity": "public"}},
    ]
    risk = score("gmail.send_message", overrides, to="a@x.example")
    assert risk.choices["sensitivity"] == "regulated"
    assert risk.choices["blast_radius"] == "system"


def test_override_matches_the_alias_and_the_canonical_name():
    override = {"tool": "calendar.create_event", "set": {"action_type": "read"}}
    assert score("gcal.create_event", [override]).category == "read"


def test_override_cannot_unforce_financial():
    override = {
        "tool": "stripe.*",
        "set": {
            "action_type": "read",
            "reversibility": "reversible",
            "blast_radius": "single",
            "sensitivity": "public",
        },
    }
    risk = score("stripe.create_charge", [override], amount=100)
    assert (risk.level, risk.category, risk.forced_high) == (HIGH, "financial", True)
    assert risk.choices["sensitivity"] == "public"  # the other factors did apply
    assert any(r.startswith("Ignored the action type") for r in risk.reasons)


def test_override_to_auth_forces_high():
    risk = score("gmail.get_message", [{"tool": "gmail.get_*", "set": {"action_type": "auth"}}])
    assert (risk.level, risk.category, risk.forced_high) == (HIGH, "auth", True)


def test_assess_rejects_a_malformed_override():
    with pytest.raises(ValueError, match="risk override 0"):
        score("gmail.send_message", [{"tool": "gmail.*", "set": {"colour": "red"}}])


@pytest.mark.parametrize(
    "override,needle",
    [
        ("gmail.*", "expected an object"),
        ({"set": {"sensitivity": "public"}}, "tool must be a glob"),
        ({"tool": "", "set": {"sensitivity": "public"}}, "tool must be a glob"),
        ({"tool": "x" * 129, "set": {"sensitivity": "public"}}, "tool must be a glob"),
        ({"tool": "a.b"}, "set must be"),
        ({"tool": "a.b", "set": {}}, "set must be"),
        ({"tool": "a.b", "set": {"colour": "red"}}, "unknown factor 'colour'"),
        ({"tool": "a.b", "set": {"sensitivity": "secret"}}, "unknown option 'secret'"),
        ({"tool": "a.b", "set": {"sensitivity": "public"}, "why": "x"}, "unknown key 'why'"),
        ({"tool": "a.b", "set": {"sensitivity": "public"}, "reason": 5}, "reason must be"),
    ],
)
def test_validate_override_names_the_problem(override, needle):
    problems = validate_override(override)
    assert problems and any(needle in p for p in problems)


def test_validate_override_accepts_a_good_one():
    assert (
        validate_override(
            {
                "tool": "gmail.*",
                "set": {"action_type": "write", "sensitivity": "public"},
                "reason": "ok",
            }
        )
        == []
    )


# --- properties ---------------------------------------------------------------------------

TOOLS = sorted(p.replace("*", "x").replace("?", "x") for p in DEFAULT.profiles) + [
    "acme.frobnicate",
    "acme.get_thing",
    "acme.delete_thing",
    "acme.pay_now",
    "acme.grant_x",
]
ARG_NAMES = sorted(
    {a for p in DEFAULT.profiles.values() for r in p.rules for a in r.args} | {"amount", "subject"}
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.text(max_size=12)
    | st.sampled_from(["main", "public", "anyone", "domain", "owner", "admin", "<!here>"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["type", "role", "email"]), inner, max_size=3)
    ),
    max_leaves=8,
)
arguments = st.dictionaries(st.sampled_from(ARG_NAMES), json_values, max_size=5)
factor_sets = st.dictionaries(
    st.sampled_from(sorted(FACTOR_POINTS)), st.just(None), min_size=1
).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.sampled_from(sorted(FACTOR_POINTS[k])) for k in keys})
)
overrides = st.lists(
    st.fixed_dictionaries(
        {
            "tool": st.sampled_from(
                ["*", "gmail.*", "stripe.*", "iam.*", "*.grant_*", "acme.*", "github.delete_*"]
            ),
            "set": factor_sets,
        }
    ),
    max_size=4,
)
emails = st.lists(st.from_regex(r"[a-z]{1,5}@[a-z]{1,5}\.example", fullmatch=True), max_size=6)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(TOOLS), arguments, overrides)
def test_score_is_the_sum_and_level_follows_it(tool, args, ovr):
    risk = assess(Bundle(tool, args), DEFAULT, ovr)
    assert 0 <= risk.score <= 100
    assert risk.score == sum(risk.factors.values())
    assert risk.factors == {f: FACTOR_POINTS[f][o] for f, o in risk.choices.items()}
    assert risk.category == risk.choices["action_type"]
    assert risk.level == (HIGH if risk.forced_high else level_for(risk.score, risk.category))
    if risk.category in ("financial", "auth"):
        assert risk.level == HIGH and risk.forced_high
    assert len(risk.reasons) >= 5


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TOOLS), arguments, overrides)
def test_deterministic(tool, args, ovr):
    assert assess(Bundle(tool, args), DEFAULT, ovr) == assess(Bundle(tool, args), DEFAULT, ovr)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(TOOLS), arguments)
def test_arguments_never_lower_the_catalogue_baseline(tool, args):
    with_args, baseline = assess(Bundle(tool, args), DEFAULT), assess(Bundle(tool, {}), DEFAULT)
    for factor in FACTOR_POINTS:
        assert with_args.factors[factor] >= baseline.factors[factor]


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            "gmail.send_message",
            "gmail.forward_message",
            "gmail.reply_message",
            "calendar.create_event",
            "calendar.invite_attendees",
            "drive.share_file",
            "slack.invite_user",
        ]
    ),
    st.sampled_from(["to", "cc", "bcc", "attendees", "emails", "users"]),
    emails,
    emails,
    st.booleans(),
)
def test_adding_recipients_never_lowers_the_score(tool, arg, before, added, as_string):
    def render(items):
        return ", ".join(items) if as_string else list(items)

    fewer = assess(Bundle(tool, {arg: render(before)}), DEFAULT)
    more = assess(Bundle(tool, {arg: render(before + added)}), DEFAULT)
    assert more.score >= fewer.score


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            "stripe.create_charge",
            "stripe.create_refund",
            "iam.grant_role",
            "drive.share_file",
            "acme.pay_now",
            "acme.grant_x",
        ]
    ),
    arguments,
    overrides,
)
def test_overrides_never_lower_forced_high(tool, args, ovr):
    risk = assess(Bundle(tool, args), DEFAULT, ovr)
    assert (risk.level, risk.forced_high) == (HIGH, True)
    assert risk.category in ("financial", "auth")
