"""The Firestore adapter's pure parts: error translation at the boundary, ids, and the
shipped index file (firestore.indexes.json) covering every composite query it runs.

The adapter's behaviour against Firestore itself is the store contract suite and
tests/contract/test_firestore_sequencer.py, on the official emulator.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vettra.adapters.firestore_repos import doc_key, mapped, number_key, ordered_id, translate
from vettra.domain.errors import Conflict, Unavailable

gexc = pytest.importorskip(
    "google.api_core.exceptions",
    reason="google-cloud-firestore is not installed (the 'test' extra)",
)

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "raised, expected",
    [
        (gexc.AlreadyExists("exists"), Conflict),
        (gexc.FailedPrecondition("update time"), Conflict),
        (gexc.Aborted("Transaction lock timeout."), Conflict),
        (gexc.ServiceUnavailable("down"), Unavailable),
        (gexc.DeadlineExceeded("slow"), Unavailable),
        (gexc.PermissionDenied("rules"), Unavailable),
        (gexc.RetryError("gave up", cause=None), Unavailable),
    ],
)
def test_google_errors_leave_the_adapter_as_domain_errors(
    raised: Exception, expected: type
) -> None:
    with pytest.raises(expected) as caught:
        with mapped():
            raise raised
    assert caught.value.__cause__ is raised
    assert (
        raised.message not in caught.value.detail
    )  # the kind only: Google's text may name documents


def test_other_exceptions_pass_through_untouched() -> None:
    assert translate(KeyError("x")) is None
    with pytest.raises(KeyError):
        with mapped():
            raise KeyError("x")


def test_missing_credentials_are_unavailable_not_a_crash() -> None:
    from google.auth.exceptions import DefaultCredentialsError

    with pytest.raises(Unavailable):
        with mapped():
            raise DefaultCredentialsError("no ADC")


def test_document_ids_are_legal_and_distinct() -> None:
    assert doc_key("ses_1") == "ses_1"
    odd = ["a/b", ".", "..", "__x__", "~abc", "", "é" * 400]
    keys = [doc_key(t) for t in odd]
    assert all("/" not in k and k.startswith("~") and len(k) == 65 for k in keys)
    assert len(set(keys)) == len(odd)
    assert number_key(7) < number_key(10) < number_key(123456789)


def test_ordered_ids_increase_within_a_process() -> None:
    ids = [ordered_id() for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(len(i) == 32 for i in ids)


def test_importing_the_adapter_builds_no_client_and_imports_no_google_sdk() -> None:
    code = (
        "import sys; import vettra.adapters.firestore_store, vettra.adapters.firestore_sequencer;"
        "print(sorted(m for m in sys.modules if m.startswith('google.cloud.firestore')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# (collection group, fields in order, array-contains field) for each composite query the adapter
# or the dashboard runs
QUERIES = [
    ("actions", ["tenant", "status", "user", "created_at"], None),  # pending: own
    (
        "actions",
        ["tenant", "status", "approvers", "created_at"],
        "approvers",
    ),  # pending: named approver
    ("actions", ["status", "expires_at"], None),  # pending_with_deadline
    ("items", ["owner", "created"], None),  # docs.list
    ("entries", ["action_id", "seq"], None),  # audit entries by action
    ("entries", ["user", "seq"], None),  # audit entries by user
    # the dashboard's own queries under firestore.rules (docs/firestore.md, "Security rules")
    # reuse the ones above, except an admin's view of its tenant's actions by time
    ("actions", ["tenant", "created_at"], None),
]


def test_the_index_file_declares_every_composite_query() -> None:
    spec = json.loads((REPO / "firestore.indexes.json").read_text())
    declared = []
    for index in spec["indexes"]:
        assert index["queryScope"] == "COLLECTION"
        fields = [f["fieldPath"] for f in index["fields"]]
        contains = [f["fieldPath"] for f in index["fields"] if f.get("arrayConfig") == "CONTAINS"]
        declared.append((index["collectionGroup"], fields, contains[0] if contains else None))
    assert sorted(map(repr, declared)) == sorted(map(repr, QUERIES))
    exempt = {
        (o["collectionGroup"], o["fieldPath"]) for o in spec["fieldOverrides"] if o["indexes"] == []
    }
    # large text fields are never queried: exempt from single-field indexes (cost, 1500-byte limit)
    assert {("actions", "record"), ("items", "body"), ("entries", "body")} <= exempt
    # the sequencers' sweep asks every chain's outbox at once (seq == null, a
    # collection-group query): its single-field index must exist in that scope too,
    # besides the automatic per-collection ones an override replaces
    (outbox_seq,) = [
        o
        for o in spec["fieldOverrides"]
        if (o["collectionGroup"], o["fieldPath"]) == ("outbox", "seq")
    ]
    scopes = {
        (i["queryScope"], i.get("order") or i.get("arrayConfig")) for i in outbox_seq["indexes"]
    }
    assert ("COLLECTION_GROUP", "ASCENDING") in scopes and ("COLLECTION", "ASCENDING") in scopes
