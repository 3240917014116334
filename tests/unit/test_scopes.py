"""The scope book (vettra/data/scopes.json) and the catalogue's credential needs."""

from __future__ import annotations

import pytest

from vettra.domain.catalogue import Catalogue
from vettra.domain.scopes import UNKNOWN_TEXT, ScopeBook

G = "https://www.googleapis.com/auth/"


@pytest.fixture(scope="module")
def book() -> ScopeBook:
    return ScopeBook.default()


def test_the_book_covers_the_five_providers_with_sixty_scopes_or_more(book) -> None:
    assert book.providers == ["github", "google", "microsoft", "slack", "stripe"]
    assert book.size() >= 60
    services = {
        m["service"]
        for s in (G + "gmail.send", G + "calendar", G + "drive")
        for m in book.translate(s)["matches"]
    }
    assert services == {"Gmail", "Google Calendar", "Google Drive"}


@pytest.mark.parametrize(
    "scope, provider, risk, words",
    [
        ("https://mail.google.com/", None, "high", "permanently delete"),
        (G + "gmail.readonly", None, "medium", "Read all email"),
        ("gmail.send", "google", "high", "Send email as the user"),  # Google's short form
        (G + "calendar.freebusy", None, "low", "free or busy"),
        ("delete_repo", None, "high", "Delete repositories"),
        ("chat:write", None, "medium", "Post, edit and delete messages"),
        ("read_write", "stripe", "high", "moves money"),
        ("mail.send", "microsoft", "high", "Send email"),  # Graph: case-insensitive
        ("https://graph.microsoft.com/Files.ReadWrite.All", None, "high", "every file"),
    ],
)
def test_known_scopes_are_plain_language_with_a_risk(book, scope, provider, risk, words) -> None:
    answer = book.translate(scope, provider)
    assert answer["known"] is True and answer["risk"] == risk
    assert words in answer["text"]


def test_an_unknown_scope_is_answered_honestly(book) -> None:
    answer = book.translate("admin:everything")
    assert answer == {
        "scope": "admin:everything",
        "known": False,
        "provider": None,
        "text": UNKNOWN_TEXT,
        "risk": "unknown",
        "matches": [],
    }
    assert book.translate("repo", "google")["known"] is False  # not Google's scope


def test_an_ambiguous_scope_lists_every_reading_and_takes_the_riskiest(book) -> None:
    answer = book.translate("openid")
    assert {m["provider"] for m in answer["matches"]} == {"google", "microsoft"}
    assert book.translate("openid", "microsoft")["provider"] == "microsoft"


def test_broader_scopes_cover_the_narrower_ones_they_include(book) -> None:
    assert book.covers("google", ["https://mail.google.com/"], [G + "gmail.send"]) == []
    assert book.covers("google", [G + "gmail.modify"], [G + "gmail.readonly"]) == []
    assert book.covers("google", [G + "gmail.readonly"], [G + "gmail.send"]) == [G + "gmail.send"]
    assert book.covers("github", ["repo"], ["public_repo", "repo:status"]) == []
    assert book.covers("github", ["repo"], ["delete_repo"]) == ["delete_repo"]
    assert book.covers("microsoft", ["mail.readwrite"], ["Mail.Read"]) == []
    assert book.covers("stripe", ["read_only"], ["read_write"]) == ["read_write"]
    assert book.covers(None, ["x"], ["x"]) == []  # an unknown provider: exact names only
    assert book.provider_of("google-oauth2") == "google" and book.provider_of("nope") is None


@pytest.mark.parametrize(
    "data, message",
    [
        ({"version": 2}, "expected"),
        ({"version": 1, "providers": {}}, "no providers"),
        (
            {"version": 1, "providers": {"p": {"scopes": {"s": {"text": "t", "risk": "meh"}}}}},
            "risk",
        ),
        (
            {
                "version": 1,
                "providers": {
                    "p": {"scopes": {"s": {"text": "t", "risk": "low", "includes": ["z"]}}}
                },
            },
            "includes unknown",
        ),
    ],
)
def test_a_broken_book_is_refused(data, message) -> None:
    with pytest.raises(ValueError, match=message):
        ScopeBook.from_dict(data)


# -- the catalogue's scopes --------------------------------------------------------------------


def test_every_catalogued_tool_of_a_provider_needs_scopes_the_book_knows(book) -> None:
    catalogue = Catalogue.default()
    for pattern, profile in catalogue.profiles.items():
        service = pattern.split(".")[0]
        if service in {"gmail", "calendar", "drive", "github", "slack", "stripe"}:
            assert profile.scopes, pattern
            need = catalogue.credential_need(pattern.replace("*", "x"))
            assert need is not None, pattern
            provider = book.provider_of(need[0])
            assert all(book.lookup(s, provider) for s in need[1]), (pattern, need)
        else:
            assert not profile.scopes, pattern


def test_credential_needs_follow_aliases_and_stay_out_of_the_score() -> None:
    catalogue = Catalogue.default()
    assert catalogue.credential_need("gcal.create_event") == (
        "google-oauth2",
        (G + "calendar.events",),
    )
    assert catalogue.credential_need("gmail.delete_message") == (
        "google-oauth2",
        ("https://mail.google.com/",),
    )
    assert catalogue.credential_need("iam.grant_role") is None
    assert catalogue.credential_need("notion.get_page") is None  # not catalogued: nothing


@pytest.mark.parametrize(
    "change, message",
    [
        ({"connections": {"gmail": "bad name"}}, "connections must map"),
        ({"tools": {"x.y": {"scopes": ["a b"]}}}, "scopes must be a list"),
        ({"tools": {"x.y": {"scopes": ["a", "a"]}}}, "scopes must be a list"),
    ],
)
def test_bad_credential_data_in_a_catalogue_is_refused(change, message) -> None:
    entry = {
        "category": "read",
        "reversibility": "reversible",
        "blast_radius": "single",
        "sensitivity": "public",
        "description": "d",
    }
    data = {"version": 1, "tools": {"x.y": dict(entry)}}
    if "connections" in change:
        data["connections"] = change["connections"]
    else:
        data["tools"]["x.y"].update(change["tools"]["x.y"])
    with pytest.raises(ValueError, match=message):
        Catalogue.from_dict(data)
