"""The tool catalogue: the shipped data, its validation, lookup and unknown tools."""

from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from vettra.domain.catalogue import (
    CATEGORIES,
    FACTOR_POINTS,
    Catalogue,
    ToolProfile,
    classify_unknown,
    load_catalogue_json,
)
from vettra.domain.patterns import MAX_PATTERN_LENGTH

DEFAULT = Catalogue.default()


def _shipped() -> dict:
    text = resources.files("vettra").joinpath("data/catalogue.json").read_text("utf-8")
    return json.loads(text)


def _minimal(**tools) -> dict:
    return {"version": 1, "tools": tools or {"a.b": _entry()}}


def _entry(**changes) -> dict:
    entry = {
        "category": "read",
        "reversibility": "reversible",
        "blast_radius": "single",
        "sensitivity": "internal",
        "description": "d",
    }
    entry.update(changes)
    return entry


# --- the shipped catalogue ---------------------------------------------------------------


def test_default_is_loaded_once():
    assert Catalogue.default() is Catalogue.default()


def test_shipped_data_round_trips_through_from_dict():
    assert Catalogue.from_dict(_shipped()).profiles == DEFAULT.profiles


@pytest.mark.parametrize("pattern", sorted(DEFAULT.profiles))
def test_every_entry_is_reachable(pattern):
    """No glob is shadowed: a name built from it resolves to that very entry."""
    probe = pattern.replace("*", "x").replace("?", "x")
    assert DEFAULT.profile_for(probe).pattern == pattern


@pytest.mark.parametrize("pattern", sorted(DEFAULT.profiles))
def test_every_entry_is_well_formed(pattern):
    profile = DEFAULT.profiles[pattern]
    assert profile.known and profile.description.strip()
    for factor, option in profile.choices().items():
        assert option in FACTOR_POINTS[factor]
    for rule in profile.rules:
        assert rule.reason
        for factor, option in rule.sets:
            # a rule that could not raise anything would be dead data
            assert FACTOR_POINTS[factor][option] > 0


# What the brief asks the catalogue to cover, by category.
COVERAGE = [
    ("user.get_profile", "read"),
    ("gmail.list_messages", "read"),
    ("gmail.get_message", "read"),
    ("gmail.search_messages", "read"),
    ("gmail.get_profile", "read"),
    ("gmail.send_message", "write"),
    ("gmail.create_draft", "write"),
    ("gmail.delete_message", "delete"),
    ("gmail.trash_message", "delete"),
    ("gmail.modify_labels", "write"),
    ("gmail.forward_message", "write"),
    ("calendar.list_events", "read"),
    ("calendar.get_event", "read"),
    ("calendar.create_event", "write"),
    ("calendar.update_event", "write"),
    ("calendar.delete_event", "delete"),
    ("calendar.invite_attendees", "write"),
    ("drive.list_files", "read"),
    ("drive.get_file", "read"),
    ("drive.download_file", "read"),
    ("drive.upload_file", "write"),
    ("drive.create_file", "write"),
    ("drive.share_file", "auth"),
    ("drive.create_permission", "auth"),
    ("drive.delete_file", "delete"),
    ("github.get_repo", "read"),
    ("github.list_issues", "read"),
    ("github.get_pull_request", "read"),
    ("github.create_issue", "write"),
    ("github.create_issue_comment", "write"),
    ("github.create_pull_request", "write"),
    ("github.merge_pull_request", "write"),
    ("github.push_files", "write"),
    ("github.create_commit", "write"),
    ("github.delete_repo", "delete"),
    ("github.add_collaborator", "auth"),
    ("github.update_permissions", "auth"),
    ("github.create_branch", "write"),
    ("github.delete_branch", "delete"),
    ("slack.list_channels", "read"),
    ("slack.get_channel_history", "read"),
    ("slack.post_message", "write"),
    ("slack.delete_message", "delete"),
    ("slack.invite_user", "auth"),
    ("slack.admin_users_remove", "auth"),
    ("stripe.list_charges", "read"),
    ("stripe.retrieve_customer", "read"),
    ("stripe.create_charge", "financial"),
    ("stripe.create_payment_intent", "financial"),
    ("stripe.create_refund", "financial"),
    ("stripe.create_transfer", "financial"),
    ("stripe.create_payout", "financial"),
    ("iam.grant_role", "auth"),
    ("cloud.grant_access", "auth"),
    ("drive.set_permissions", "auth"),
    ("iam.list_roles", "read"),
]


@pytest.mark.parametrize("tool,category", COVERAGE)
def test_catalogue_covers_the_brief(tool, category):
    profile = DEFAULT.profile_for(tool)
    assert profile.known, f"{tool} fell through to the unknown-tool guess"
    assert profile.category == category


@pytest.mark.parametrize(
    "tool,sensitivity",
    [
        ("stripe.list_charges", "confidential"),
        ("stripe.retrieve_customer", "regulated"),
        ("stripe.list_customers", "regulated"),
        ("stripe.create_charge", "regulated"),
    ],
)
def test_payment_data_is_sensitive(tool, sensitivity):
    assert DEFAULT.profile_for(tool).sensitivity == sensitivity


def test_delete_repo_is_irreversible_and_system_wide():
    profile = DEFAULT.profile_for("github.delete_repo")
    assert (profile.reversibility, profile.blast_radius) == ("irreversible", "system")


@pytest.mark.parametrize(
    "alias,canonical",
    [
        ("gcal.create_event", "calendar.create_event"),
        ("google_drive.share_file", "drive.share_file"),
        ("gmail.send_message", "gmail.send_message"),
        ("nodot", "nodot"),
    ],
)
def test_service_aliases(alias, canonical):
    assert DEFAULT.canonical_tool(alias) == canonical
    assert DEFAULT.profile_for(alias) == DEFAULT.profile_for(canonical)


# --- lookup precedence -------------------------------------------------------------------


def test_most_specific_glob_wins():
    cat = Catalogue.from_dict(
        _minimal(
            **{
                "a.*": _entry(category="write"),
                "a.get_*": _entry(category="read"),
                "*": _entry(category="delete"),
            }
        )
    )
    assert cat.profile_for("a.get_x").category == "read"
    assert cat.profile_for("a.put_x").category == "write"
    assert cat.profile_for("b.get_x").category == "delete"


def test_ties_do_not_depend_on_file_order():
    first = {"a.?x*": _entry(category="write"), "a.x?*": _entry(category="read")}
    second = dict(reversed(list(first.items())))
    one, two = Catalogue.from_dict(_minimal(**first)), Catalogue.from_dict(_minimal(**second))
    assert one.profile_for("a.xxx") == two.profile_for("a.xxx")
    assert one.profile_for("a.xxx").pattern == "a.?x*"  # equal length: alphabetical first


MULTIPLE = {"blast_radius": "multiple"}


def _with_rule(when: dict, sets: dict) -> dict:
    return _minimal(**{"x.y": _entry(rules=[{"reason": "r", "when": when, "set": sets}])})


# --- validation ------------------------------------------------------------------------

BAD = [
    ("not an object", [], "expected an object"),
    ("wrong version", {**_minimal(), "version": 2}, "expected version 1"),
    ("unknown top key", {**_minimal(), "extra": 1}, "unknown key 'extra'"),
    ("no tools", {"version": 1, "tools": {}}, "non-empty"),
    ("bad alias", {**_minimal(), "service_aliases": {"a.b": "c"}}, "service_aliases"),
    ("bad category", _minimal(**{"x.y": _entry(category="fly")}), "'x.y': action_type"),
    ("bad reversibility", _minimal(**{"x.y": _entry(reversibility="maybe")}), "'x.y'"),
    ("missing field", _minimal(**{"x.y": {"category": "read"}}), "missing 'description'"),
    ("unknown entry key", _minimal(**{"x.y": _entry(colour="red")}), "unknown key 'colour'"),
    ("uppercase glob", _minimal(**{"X.y": _entry()}), "lowercase"),
    ("long glob", _minimal(**{"x" * (MAX_PATTERN_LENGTH + 1): _entry()}), "1-128"),
    ("empty description", _minimal(**{"x.y": _entry(description=" ")}), "description"),
    ("bad show_args", _minimal(**{"x.y": _entry(show_args="amount")}), "show_args"),
    ("rules not a list", _minimal(**{"x.y": _entry(rules={})}), "rules must be a list"),
    (
        "rule without set",
        _minimal(**{"x.y": _entry(rules=[{"reason": "r", "when": {"arg": "a", "present": True}}])}),
        "rule 0",
    ),
    (
        "rule without reason",
        _minimal(
            **{
                "x.y": _entry(
                    rules=[
                        {"when": {"arg": "a", "present": True}, "set": {"blast_radius": "system"}}
                    ]
                )
            }
        ),
        "expected {when, set, reason}",
    ),
    (
        "blank reason",
        _minimal(
            **{
                "x.y": _entry(
                    rules=[
                        {
                            "reason": " ",
                            "when": {"arg": "a", "present": True},
                            "set": {"blast_radius": "system"},
                        }
                    ]
                )
            }
        ),
        "reason must be",
    ),
    (
        "unknown operator",
        _with_rule({"arg": "to", "count_ge": 2}, MULTIPLE),
        "exactly one operator",
    ),
    (
        "two operators",
        _with_rule({"arg": "to", "count_gte": 2, "present": True}, MULTIPLE),
        "exactly one operator",
    ),
    ("bad count", _with_rule({"arg": "to", "count_gte": 0}, MULTIPLE), "count_gte"),
    ("bool count", _with_rule({"arg": "to", "count_gte": True}, MULTIPLE), "count_gte"),
    ("missing arg", _with_rule({"present": True}, MULTIPLE), "when.arg"),
    (
        "unknown factor",
        _with_rule({"arg": "a", "present": True}, {"colour": "red"}),
        "unknown factor 'colour'",
    ),
    (
        "unknown option",
        _with_rule({"arg": "a", "present": True}, {"blast_radius": "galaxy"}),
        "blast_radius must be one of",
    ),
    ("in not a list", _with_rule({"arg": "a", "in": "main"}, MULTIPLE), "in takes"),
    (
        "contains_any empty",
        _with_rule({"arg": "a", "contains_any": []}, MULTIPLE),
        "contains_any takes",
    ),
    ("equals object", _with_rule({"arg": "a", "equals": {}}, MULTIPLE), "equals takes"),
    ("present false", _with_rule({"arg": "a", "present": False}, MULTIPLE), "present takes true"),
]


@pytest.mark.parametrize("desc,data,needle", BAD, ids=[b[0] for b in BAD])
def test_from_dict_rejects_and_names_the_problem(desc, data, needle):
    with pytest.raises(ValueError) as info:
        Catalogue.from_dict(data)
    assert needle in str(info.value)


def test_every_problem_is_reported_at_once():
    data = _minimal(**{"a.b": _entry(category="fly"), "c.d": _entry(sensitivity="secret")})
    with pytest.raises(ValueError) as info:
        Catalogue.from_dict(data)
    assert "'a.b'" in str(info.value) and "'c.d'" in str(info.value)


def test_duplicate_keys_in_json_are_rejected():
    text = '{"version": 1, "tools": {"a.b": %s, "a.b": %s}}' % ((json.dumps(_entry()),) * 2)
    with pytest.raises(ValueError, match="duplicate key 'a.b'"):
        load_catalogue_json(text)


def test_from_dict_does_not_keep_references_to_the_input():
    data = _minimal(
        **{
            "a.b": _entry(
                rules=[
                    {
                        "reason": "r",
                        "when": {"arg": "to", "in": ["x"]},
                        "set": {"blast_radius": "multiple"},
                    }
                ]
            )
        }
    )
    cat = Catalogue.from_dict(copy.deepcopy(data))
    data["tools"]["a.b"]["rules"][0]["when"]["in"].append("y")
    assert cat.profile_for("a.b").rules[0].operand == ("x",)


# --- tools the catalogue does not know -----------------------------------------------------

UNKNOWN = [
    ("acme.get_and_delete_widget", "read", "single"),
    ("acme.list_api_keys", "read", "single"),
    ("vault.read", "read", "single"),
    ("acme.get_password", "read", "single"),
    ("acme.create_widget", "write", "multiple"),
    ("acme.send_fax", "write", "multiple"),
    ("acme.upload", "write", "multiple"),
    ("acme.rename_widget", "write", "multiple"),
    ("acme.delete_widget", "delete", "multiple"),
    ("acme.purge_cache", "delete", "multiple"),
    ("acme.trash", "delete", "multiple"),
    ("acme.pay_bill", "financial", "multiple"),
    ("acme.refund_order", "financial", "multiple"),
    ("acme.buy_shares", "financial", "multiple"),
    ("acme.grant_access", "auth", "multiple"),
    ("acme.impersonate_user", "auth", "multiple"),
    ("acme.sudo", "auth", "multiple"),
    ("acme.get_admin_keys", "auth", "multiple"),
    ("acme.update_user_roles", "auth", "multiple"),
    ("acme.list_permissions", "auth", "multiple"),
    ("acme.frobnicate", "write", "multiple"),
    ("acme.chat_post_message", "write", "multiple"),
    ("noservice", "write", "multiple"),
]


@pytest.mark.parametrize("tool,category,blast", UNKNOWN)
def test_unknown_tools_are_classified_conservatively(tool, category, blast):
    profile = classify_unknown(tool)
    assert not profile.known and profile.pattern is None
    assert (profile.category, profile.blast_radius) == (category, blast)
    assert profile.reversibility == "unknown"
    assert profile.sensitivity == ("regulated" if category == "read" else "confidential")
    assert "not in the catalogue" in profile.description


@pytest.mark.parametrize(
    "tool",
    [
        "acme.get_widget",
        "acme.list_widgets",
        "acme.search",
        "acme.describe-thing",
        "acme.query_rows",
        "acme.fetch",
    ],
)
def test_unknown_plain_reads_change_nothing_and_are_reversible(tool):
    profile = classify_unknown(tool)
    assert (profile.category, profile.reversibility, profile.blast_radius, profile.sensitivity) == (
        "read",
        "reversible",
        "single",
        "confidential",
    )
    assert "plain read" in profile.description


@pytest.mark.parametrize("tool", ["acme.frobnicate", "acme.get_widget", "gmail.undo_send"])
def test_lookup_falls_back_to_the_verb_guess(tool):
    assert DEFAULT.profile_for(tool) == classify_unknown(tool)


def test_unknown_classification_is_a_pure_function():
    assert classify_unknown("acme.frobnicate") == classify_unknown("acme.frobnicate")
    assert isinstance(classify_unknown("acme.x"), ToolProfile)
    assert set(CATEGORIES) == {"read", "write", "delete", "financial", "auth"}
