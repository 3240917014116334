"""The first-cut audit chain: linking, and detection of every kind of tampering."""

from __future__ import annotations

import copy

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vettra.domain.audit import GENESIS_HASH, AuditEvent, check_entry, link, link_all, verify_chain
from vettra.domain.errors import VerificationError

from ..audit_events import audit_event

KEY_ID, KEY = "hk_test", b"k" * 32
KEYS = {KEY_ID: KEY}


def _events(n: int) -> list[AuditEvent]:
    return [
        audit_event(
            actor="agent:a",
            at=f"2026-01-01T00:00:{i % 60:02d}.000Z",
            action_id=f"act_{i}",
            data={"n": i, "tool": "gmail.send_message"},
        )
        for i in range(n)
    ]


def _chain(n: int) -> list[dict]:
    return [
        e.as_dict()
        for e in link_all(_events(n), head_seq=0, head_hash=GENESIS_HASH, key_id=KEY_ID, key=KEY)
    ]


def test_valid_chain_verifies_and_links() -> None:
    chain = _chain(5)
    assert [e["seq"] for e in chain] == [1, 2, 3, 4, 5]
    assert chain[0]["prev_hash"] == GENESIS_HASH
    assert all(chain[i]["prev_hash"] == chain[i - 1]["hash"] for i in range(1, 5))
    report = verify_chain(chain, KEYS)
    assert report.valid and report.length == 5 and report.head_hash == chain[-1]["hash"]


def test_linking_continues_after_a_head() -> None:
    first = link_all(_events(2), head_seq=0, head_hash=GENESIS_HASH, key_id=KEY_ID, key=KEY)
    more = link_all(_events(2), head_seq=2, head_hash=first[-1].hash, key_id=KEY_ID, key=KEY)
    assert verify_chain([e.as_dict() for e in first + more], KEYS).valid


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda c: c[2]["data"].update(n=99), "hash mismatch"),
        (lambda c: c.pop(2), "gap"),
        (lambda c: c.insert(2, copy.deepcopy(c[1])), "gap"),
        (lambda c: c.__setitem__(slice(1, 3), [c[2], c[1]]), "gap"),
        (lambda c: c[3].update(mac="0" * 64), "bad HMAC"),
        (lambda c: c[3].update(key_id="hk_other"), "hash mismatch"),
        (lambda c: c[3].update(prev_hash="f" * 64), "broken link"),
    ],
)
def test_tampering_is_pinpointed(tamper, reason) -> None:
    chain = _chain(6)
    tamper(chain)
    report = verify_chain(chain, KEYS)
    assert not report.valid
    assert reason in report.first_invalid["reason"]
    assert report.first_invalid["seq"] in (2, 3, 4)


def test_resealed_entry_without_the_key_is_caught() -> None:
    chain = _chain(3)
    from vettra.domain.audit import body_hash

    chain[1]["data"]["n"] = 42
    body = {k: v for k, v in chain[1].items() if k not in ("hash", "mac")}
    chain[1]["hash"] = body_hash(body)  # attacker recomputes the hash…
    report = verify_chain(chain, KEYS)  # …but cannot forge the HMAC
    assert not report.valid and report.first_invalid == {
        "seq": 2,
        "reason": report.first_invalid["reason"],
    }
    assert "HMAC" in report.first_invalid["reason"]


def test_check_entry_raises_verification_error_with_expected_and_got() -> None:
    chain = _chain(2)
    with pytest.raises(VerificationError, match="expected seq 1, got 2"):
        check_entry(chain[1], expected_seq=1, expected_prev=GENESIS_HASH, keys=KEYS)


def test_unknown_key_id_is_reported() -> None:
    report = verify_chain(_chain(2), {"hk_other": KEY})
    assert not report.valid and "unknown HMAC key" in report.first_invalid["reason"]


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_single_character_change_is_detected(data) -> None:
    import json

    chain = _chain(4)
    index = data.draw(st.integers(0, 3))
    text = json.dumps(chain[index], sort_keys=True)
    pos = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.characters(codec="ascii", exclude_characters=text[pos]))
    mutated = text[:pos] + replacement + text[pos + 1 :]
    try:
        chain[index] = json.loads(mutated)
    except ValueError:
        return  # no longer JSON: a reader rejects it before verification
    if chain[index] == json.loads(text):
        return  # a change that JSON normalises away (e.g. whitespace) is no change
    assert not verify_chain(chain, KEYS).valid


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=100))
def test_fast_hmac_equals_the_standard_library(key, message) -> None:
    import hashlib
    import hmac

    from vettra.domain.audit_verify import KeyedHmac

    assert KeyedHmac(key).digest(message) == hmac.digest(key, message, hashlib.sha256)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=70))
def test_fast_frontier_equals_checked_append(datas) -> None:
    from vettra.domain.merkle import CompactRange, leaf_hash

    fast, checked = CompactRange(), CompactRange()
    for d in datas:
        fast.append_leaf_data(d)
        checked.append(leaf_hash(d))
        assert fast.root() == checked.root() and fast.size == checked.size


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "type": st.text(max_size=20),
            "chain": st.text(max_size=10),
            "actor": st.text(max_size=10),
            "at": st.text(max_size=25),
            "action_id": st.none() | st.text(max_size=12),
            "user": st.none() | st.text(max_size=8),
            "data": st.dictionaries(
                st.text(max_size=6),
                st.none()
                | st.integers(-(10**6), 10**6)
                | st.text(max_size=6)
                | st.floats(allow_nan=False, allow_infinity=False),
                max_size=4,
            ),
        }
    ),
    st.integers(1, 10**9),
    st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    st.text(max_size=12),
)
def test_spliced_body_is_the_canonical_body(fields, seq, prev_hash, key_id) -> None:
    from vettra.domain.canonical import canonical_json

    try:
        event = AuditEvent(**fields)
    except UnicodeEncodeError:  # lone surrogates cannot be canonicalised at all
        return
    entry = link(event, seq=seq, prev_hash=prev_hash, key_id=key_id, key=KEY)
    assert entry.body_json.encode() == canonical_json(entry.body())
