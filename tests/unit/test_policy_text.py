"""Deny rules see through types and spellings (issue 7, item 3; docs/policy.md, "Text operators").

The shipped default policy, the real parser and the real risk engine: no rewrapping
(list, nested object, list of objects, JSON text) or respelling (case, compatibility
forms, confusable homoglyphs, invisible characters, whitespace) of a denied argument
turns ``deny`` into anything else.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from typing import Any

import pytest
from confusable_homoglyphs.confusables import confusables_data
from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.action_bundle import parse_bundle
from vettra.domain.frameworks import ADAPTERS
from vettra.domain.policy import DENY, Policy, evaluate
from vettra.domain.policy_envelope import load_default_payload
from vettra.domain.risk import LOW, assess
from vettra.domain.textfold import fold, is_suspicious, skeleton, texts

DEFAULT = Policy.from_payload(load_default_payload())

GRANTING_TOOLS = [
    "iam.grant_role",
    "github.add_collaborator",
    "org.add_member",
    "iam.set_iam_policy",
    "drive.create_permission",
    "gitlab.update_member",
    "slack.set_user_role",
    "okta.assign_role",
    "github.update_membership",
    "acme.invite_user",
    "workspace.patch_user",
]
PRIVILEGED = [
    "admin",
    "owner",
    "roles/owner",
    "Administrator",
    "org_admin",
    "superadmin",
    "roles/resourcemanager.organizationAdmin",
    "OWNER",
    "co-owner",
]
# Keys real APIs use for the role, and ones an attacker might try instead.
ROLE_PATHS: list[Callable[[Any], dict]] = [
    lambda v: {"role": v},
    lambda v: {"roles": v},
    lambda v: {"permission": v},
    lambda v: {"permissions": v},
    lambda v: {"access_level": v},
    lambda v: {"privileges": v},
    lambda v: {"scope": v},
    lambda v: {"accessRole": v},
    lambda v: {"new_role": v},
    lambda v: {"members": [{"email": "m@evil.example", "role": v}]},
    lambda v: {"bindings": [{"role": v, "members": ["user:m@evil.example"]}]},
    lambda v: {"policy": {"bindings": [{"role": v}], "etag": "BwX"}},
    lambda v: {"policy": json.dumps({"bindings": [{"role": v}]})},
    lambda v: {"r\u043ele": v},  # the key itself with a Cyrillic о
    lambda v: {"ROLE": v},
    lambda v: {"team": {"name": "core", "permission": v}},
]
WRAPS: list[Callable[[Any], Any]] = [
    lambda v: v,
    lambda v: [v],
    lambda v: [[v]],
    lambda v: {"name": v},
    lambda v: [{"name": v}],
    lambda v: {"value": {"id": v}},
    lambda v: ["viewer", v],
    lambda v: json.dumps([v]),
    lambda v: json.dumps({"role": v}),
]

ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"]
SPACES = [" ", "\t", "\u00a0", "\u2003", "\u3000", "\n"]


def _homoglyphs(letter: str) -> list[str]:
    """Single characters Unicode's confusables.txt lists as looking like ``letter``."""
    glyphs = [g["c"].strip("\u200e\u200f") for g in confusables_data.get(letter, [])]
    return [g for g in glyphs if len(g) == 1 and not g.isascii()]


HOMOGLYPHS = {c: _homoglyphs(c) for c in "abcdefghijklmnopqrstuvwxyz"}


@st.composite
def respelled(draw: st.DrawFn, text: str) -> str:
    out = []
    for ch in text:
        kind = draw(
            st.sampled_from(
                [
                    "same",
                    "case",
                    "fullwidth",
                    "bold",
                    "homoglyph",
                    "invisible",
                    "space",
                    "combining",
                ]
            )
        )
        if kind == "case":
            ch = ch.swapcase()
        elif kind == "fullwidth" and "!" <= ch <= "~":
            ch = chr(ord(ch) + 0xFEE0)
        elif kind == "bold" and ch.isascii() and ch.isalpha():
            base = 0x1D400 if ch.isupper() else 0x1D41A  # MATHEMATICAL BOLD, NFKC to ASCII
            ch = chr(base + ord(ch.lower()) - ord("a"))
        elif kind == "homoglyph" and HOMOGLYPHS.get(ch.lower()):
            ch = draw(st.sampled_from(HOMOGLYPHS[ch.lower()]))
        elif kind == "invisible":
            ch = draw(st.sampled_from(ZERO_WIDTH)) + ch
        elif kind == "space" and out:
            ch = draw(st.sampled_from(SPACES)) + ch
        elif kind == "combining" and ch.isalpha():
            ch = ch + draw(st.sampled_from(["\u0301", "\u0308", "\u0323"]))
        out.append(ch)
    return "".join(out)


def decide(tool: str, arguments: dict) -> str:
    bundle = parse_bundle({"tool": tool, "arguments": arguments})
    return evaluate(DEFAULT, bundle, assess(bundle, overrides=DEFAULT.overrides)).outcome


@pytest.mark.parametrize("tool", GRANTING_TOOLS)
@pytest.mark.parametrize("value", PRIVILEGED)
def test_every_privileged_role_is_denied_plainly(tool: str, value: str) -> None:
    assert decide(tool, {"user": "m@evil.example", "role": value}) == DENY


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(GRANTING_TOOLS),
    st.sampled_from(PRIVILEGED).flatmap(respelled),
    st.sampled_from(ROLE_PATHS),
    st.sampled_from(WRAPS),
    st.sampled_from(WRAPS),
)
def test_no_rewrapping_or_respelling_lifts_the_deny(tool, value, path, outer, inner) -> None:
    arguments = {"user": "m@evil.example", **path(outer(inner(value)))}
    assert decide(tool, arguments) == DENY, arguments


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["admin", "owner"]).flatmap(respelled))
def test_skeleton_of_a_respelling_still_holds_the_word(value: str) -> None:
    assert ("admin" in skeleton(value)) or ("owner" in skeleton(value))


# Operations whose *name* grants admin/owner rights are denied like the argument form.
NAMED_GRANTS = [
    "github.add_org_admin",
    "slack.make_owner",
    "acme.grant_admin",
    "workspace.promote_to_admin",
    "iam.set_owner",
    "drive.transfer_ownership",
    "gitlab.add_group_owner",
    "okta.assign_admin_role",
    "acme.elevate_to_admin",
    "x.make-admin",
    "google_admin.users_make_admin",
    "acme.setadmin",
]
NAMED_NOT_GRANTS = [
    "github.list_admins",
    "slack.get_owner",
    "acme.remove_admin",
    "iam.revoke_owner",
    "acme.search_admin_logs",
    "acme.describe_owner",
]


@pytest.mark.parametrize("tool", NAMED_GRANTS)
def test_operations_that_grant_admin_by_name_are_denied(tool: str) -> None:
    assert decide(tool, {"user": "m@evil.example"}) == DENY


@pytest.mark.parametrize("tool", NAMED_NOT_GRANTS)
def test_reads_and_removals_of_admins_are_not_denied_by_name(tool: str) -> None:
    assert decide(tool, {"user": "m@evil.example"}) != DENY


@pytest.mark.parametrize(
    "framework, raw",
    [
        (
            "openai",
            {
                "type": "function",
                "function": {"name": "GitHub__Add_Org_Admin", "arguments": '{"user": "m"}'},
            },
        ),
        ("anthropic", {"type": "tool_use", "name": "mcp__slack__make_owner", "input": {}}),
        ("langchain", {"name": "IAM_grant_role", "args": {"role": ["roles/\u043ewner"]}}),
        (
            "mcp",
            {
                "name": "set_iam_policy",
                "server": "iam",
                "arguments": {"policy": '{"bindings": [{"role": "roles/OWNER"}]}'},
            },
        ),
    ],
)
def test_every_framework_shape_reaches_the_same_deny(framework: str, raw: dict) -> None:
    bundle = parse_bundle({"framework": framework, **raw})
    assert evaluate(DEFAULT, bundle, assess(bundle)).outcome == DENY


@pytest.mark.parametrize(
    "tool, arguments",
    [
        ("slack.users_update", {"user": "U1", "is_admin": True}),
        ("github.update_user", {"login": "m", "site_admin": True}),
        ("acme.update_member", {"user": "m", "flags": {"admin": True}}),
        ("gitlab.add_member", {"project": "acme/api", "user_id": 7, "access_level": 50}),
        ("drive.update_file", {"file": "f1", "ownership": {"transfer_to": "m@evil.example"}}),
    ],
)
def test_flags_and_numeric_levels_that_grant_admin_are_denied(tool: str, arguments: dict) -> None:
    assert decide(tool, arguments) == DENY


@pytest.mark.parametrize(
    "tool, arguments",
    [
        ("gitlab.add_member", {"project": "acme/api", "user_id": 7, "access_level": 30}),
        (
            "github.add_collaborator",
            {"owner": "acme", "repo": "admin-portal", "username": "bob", "permission": "push"},
        ),
        ("iam.grant_role", {"member": "user:owner@example.com", "role": "roles/viewer"}),
        ("iam.list_members", {"role": "roles/owner"}),
        (
            "drive.create_permission",
            {"type": "user", "role": "writer", "emailAddress": "admin@example.com"},
        ),
    ],
)
def test_ordinary_grants_and_reads_are_not_denied(tool: str, arguments: dict) -> None:
    # the role-like keys decide: an owner's address or an "admin" repo name is not a role
    assert decide(tool, arguments) != DENY


# --------------------------------------------------------------------------- disguised values


@pytest.mark.parametrize(
    "value", ["\u0430dmin", "ad\u200bmin", "r\u043eles/owner", "\u0455ud\u043e"]
)
def test_disguised_values_raise_a_plain_read_out_of_low(value: str) -> None:
    bundle = parse_bundle({"tool": "acme.get_widget", "arguments": {"id": value}})
    risk = assess(bundle)
    assert risk.level != LOW and any("disguised" in r for r in risk.reasons)


@pytest.mark.parametrize(
    "value",
    [
        "admin",
        "caf\u00e9",
        "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430?",
        "\u65e5\u672c",
        "na\u00efve r\u00e9sum\u00e9",
        "ＡＤＭＩＮ",
    ],
)
def test_ordinary_text_is_not_called_disguised(value: str) -> None:
    assert is_suspicious(value) is None


def test_fold_and_texts() -> None:
    assert fold(" ＡＤ\u200bＭＩＮ ") == "admin"
    assert fold("Stra\u00dfe") == "strasse"  # full case folding, not lower()
    assert skeleton("\u0430dm\u0456n") == "admin"
    assert unicodedata.is_normalized("NFKC", fold("\u2126"))
    found = list(texts({"a": ["x", {"b": '{"c": "y"}'}], "d": 5}))
    assert sorted(found) == ["a", "b", "c", "d", "x", "y", '{"c": "y"}']
    assert sorted(texts({"role": {"x": "y"}, "other": "z"}, ("*role*",))) == ["role", "x", "y"]


def test_json_text_nested_past_the_parsers_limit_is_just_text() -> None:
    deep = "[" * 20_000 + "]" * 20_000  # json.loads raises RecursionError on it
    assert list(texts({"role": deep})) == ["role", deep]
    assert decide("iam.grant_role", {"role": deep}) == "require_step_up"  # scored, not raised


def test_texts_is_bounded_for_huge_values() -> None:
    value = [str(i) for i in range(20_000)]
    assert len(list(texts(value))) == 8192


def test_every_shape_adapter_is_covered() -> None:
    assert set(ADAPTERS) == {"openai", "anthropic", "langchain", "mcp"}


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            "add org admin",
            "make owner",
            "grant admin",
            "promote to admin",
            "set owner",
            "transfer ownership",
            "assign admin role",
        ]
    ),
    st.sampled_from(["_", "-", "__", ""]),
    st.booleans(),
    st.sampled_from(["openai", "anthropic", "langchain", "mcp"]),
)
def test_no_spelling_of_an_admin_granting_name_lifts_the_deny(words, sep, title, framework):
    spelled = [w.title() if title else w for w in words.split()]
    if sep == "__":
        name = "acme__" + "_".join(spelled)  # a__b spells the service; one dot only
    else:
        name = sep.join(spelled)
    raw = {
        "openai": {"type": "function", "function": {"name": name, "arguments": "{}"}},
        "anthropic": {"type": "tool_use", "name": name, "input": {}},
        "langchain": {"name": name, "args": {}},
        "mcp": {"name": name, "server": "acme"} if sep != "__" else {"name": name},
    }
    bundle = parse_bundle({"framework": framework, **raw[framework]})
    assert evaluate(DEFAULT, bundle, assess(bundle)).outcome == DENY, bundle.tool


ODD_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
) | st.sampled_from(["[", '{"a": [', '[1, {"role": "adm"}]', "\u0430", "\u200b", "\u02db"])
ODD_ARGS = st.recursive(
    st.none() | st.booleans() | st.integers(-9, 9) | ODD_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ODD_TEXT, inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(GRANTING_TOOLS + NAMED_NOT_GRANTS + ["acme.get_widget"]),
    st.dictionaries(ODD_TEXT, ODD_ARGS, max_size=4),
)
def test_scoring_and_the_default_policy_never_raise_on_odd_arguments(tool, arguments) -> None:
    assert decide(tool, arguments) in {"allow", "require_approval", "require_step_up", DENY}
