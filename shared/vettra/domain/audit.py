"""The audit chain: hash-linked, HMAC-authenticated entries, one chain per tenant.

Each entry's ``hash`` is SHA-256 over the RFC 8785 canonical JSON of its body
(every field but ``hash`` and ``mac``), and the body carries ``prev_hash``, the
previous entry's hash (:data:`GENESIS_HASH` for the first). ``mac`` is
HMAC-SHA256 (RFC 2104) over the raw hash bytes with the key named by ``key_id``,
so a key can rotate without breaking older entries.

Sequencing is separate from recording: a state change records an
:class:`AuditEvent` in its own transaction, and :func:`link` turns events into
entries in order. The embedded store links inside the same transaction; a store
with a contended head (Firestore) links in batches from an outbox.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from json.encoder import encode_basestring as _encode_string
from typing import Any

from .actions import rfc3339
from .canonical import canonical_json
from .errors import VerificationError
from .identity import Principal

GENESIS_HASH = "0" * 64

ACTION_INTERCEPTED = "action.intercepted"
ACTION_APPROVED = "action.approved"
ACTION_DENIED = "action.denied"
ACTION_EXPIRED = "action.expired"
POLICY_ACTIVATED = "policy.activated"

_BODY_FIELDS = (
    "seq",
    "chain",
    "type",
    "action_id",
    "actor",
    "user",
    "at",
    "data",
    "prev_hash",
    "key_id",
)


@dataclass(frozen=True)
class AuditEvent:
    """A state change to be recorded; no position in the chain yet.

    Everything but ``seq``, ``prev_hash`` and ``key_id`` is canonicalised here, when
    the event is made, so the sequencer's critical section only splices three
    values into ready text (see :func:`link`).
    """

    type: str
    chain: str
    actor: str
    at: str
    action_id: str | None = None
    user: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    _parts: tuple[str, str] = field(default=("", ""), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # RFC 8785 orders the members: action_id actor at chain data | key_id prev_hash seq | type user
        head = (
            '{"action_id":'
            + _text(self.action_id)
            + ',"actor":'
            + _text(self.actor)
            + ',"at":'
            + _text(self.at)
            + ',"chain":'
            + _text(self.chain)
            + ',"data":'
            + canonical_json(self.data).decode("utf-8")
        )
        tail = ',"type":' + _text(self.type) + ',"user":' + _text(self.user) + "}"
        object.__setattr__(self, "_parts", (head, tail))


def event_by(
    principal: Principal,
    kind: str,
    at: datetime,
    data: dict[str, Any],
    *,
    action_id: str | None = None,
    chain: str | None = None,
    user: str | None = None,
) -> AuditEvent:
    """An event ``principal`` caused at ``at``: in its tenant's chain and about its own
    user, unless ``chain``/``user`` name the record it acted on."""
    return AuditEvent(
        type=kind,
        chain=principal.tenant if chain is None else chain,
        actor=principal.actor,
        at=rfc3339(at),
        action_id=action_id,
        user=principal.user if user is None else user,
        data=data,
    )


def _text(value: Any) -> str:
    """Canonical text of one member value; strings through the C string encoder, whose
    escaping is RFC 8785 §3.2.2.2's (checked against canonical_json in the tests)."""
    if type(value) is str:
        return _encode_string(value)
    if value is None:
        return "null"
    return canonical_json(value).decode("utf-8")


@dataclass(frozen=True)
class AuditEntry:
    """An event placed in its chain: ``seq`` is 1-based and gap-free.

    ``body_json`` is the exact canonical text that was hashed; it is stored and
    exported as is, so a verifier hashes bytes instead of re-canonicalising.
    ``event_id`` is the outbox id the entry was linked from, where linking is
    deferred (the Firestore store): not part of the hashed body, it lets an
    answer that cited the event find its ``seq`` later.
    """

    seq: int
    chain: str
    type: str
    action_id: str | None
    actor: str
    user: str | None
    at: str
    data: dict[str, Any]
    prev_hash: str
    key_id: str
    hash: str
    mac: str
    body_json: str = ""
    event_id: str | None = field(default=None, compare=False)

    def body(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _BODY_FIELDS}

    def as_dict(self) -> dict[str, Any]:
        out = self.body()
        out["hash"] = self.hash
        out["mac"] = self.mac
        if self.event_id is not None:
            out["event_id"] = self.event_id
        return out

    def export_line(self) -> str:
        """One JSON Lines record: ``{"body":<canonical body>,"hash":…,"mac":…}``.

        The body is embedded byte for byte; the fixed-length suffix lets a
        verifier slice it out without parsing (see :mod:`vettra.domain.audit_verify`).
        """
        return f'{{"body":{self.body_json},"hash":"{self.hash}","mac":"{self.mac}"}}'

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AuditEntry:
        body = {name: d[name] for name in _BODY_FIELDS}
        return cls(
            **body, hash=d["hash"], mac=d["mac"], body_json=canonical_json(body).decode("utf-8")
        )

    @classmethod
    def from_stored(
        cls, body_json: str, hash_hex: str, mac_hex: str, *, event_id: str | None = None
    ) -> AuditEntry:
        body = json.loads(body_json)
        return cls(
            **{name: body[name] for name in _BODY_FIELDS},
            hash=hash_hex,
            mac=mac_hex,
            body_json=body_json,
            event_id=event_id,
        )


def body_hash(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(dict(body))).hexdigest()


def entry_mac(key: bytes, hash_hex: str) -> str:
    return hmac.digest(key, bytes.fromhex(hash_hex), "sha256").hex()


def link(event: AuditEvent, *, seq: int, prev_hash: str, key_id: str, key: bytes) -> AuditEntry:
    """Place ``event`` at ``seq`` after ``prev_hash`` and seal it."""
    body: dict[str, Any] = {
        "seq": seq,
        "chain": event.chain,
        "type": event.type,
        "action_id": event.action_id,
        "actor": event.actor,
        "user": event.user,
        "at": event.at,
        "data": event.data,
        "prev_hash": prev_hash,
        "key_id": key_id,
    }
    head, tail = event._parts
    body_json = (
        head
        + ',"key_id":'
        + _text(key_id)
        + ',"prev_hash":"'
        + prev_hash
        + '","seq":'
        + str(int(seq))
        + tail
    )
    digest = hashlib.sha256(body_json.encode("utf-8")).hexdigest()
    return AuditEntry(hash=digest, mac=entry_mac(key, digest), body_json=body_json, **body)


def link_all(
    events: Iterable[AuditEvent], *, head_seq: int, head_hash: str, key_id: str, key: bytes
) -> list[AuditEntry]:
    """Link a batch after the head ``(head_seq, head_hash)``."""
    out: list[AuditEntry] = []
    seq, prev = head_seq, head_hash
    for event in events:
        seq += 1
        entry = link(event, seq=seq, prev_hash=prev, key_id=key_id, key=key)
        out.append(entry)
        prev = entry.hash
    return out


@dataclass(frozen=True)
class ChainReport:
    """What :func:`verify_chain` found: the first bad entry, if any, and why."""

    valid: bool
    length: int
    first_invalid: dict[str, Any] | None = None
    head_hash: str = GENESIS_HASH

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_entry(
    entry: Mapping[str, Any], *, expected_seq: int, expected_prev: str, keys: Mapping[str, bytes]
) -> str:
    """Verify one entry in place; returns its hash or raises :class:`VerificationError`."""
    try:
        body = {name: entry[name] for name in _BODY_FIELDS}
        claimed, mac = entry["hash"], entry["mac"]
    except (KeyError, TypeError) as exc:
        raise VerificationError(f"malformed entry: missing {exc}") from exc
    if body["seq"] != expected_seq:
        raise VerificationError(f"gap: expected seq {expected_seq}, got {body['seq']}")
    if body["prev_hash"] != expected_prev:
        raise VerificationError(
            f"broken link: expected prev_hash {expected_prev[:16]}…, got {str(body['prev_hash'])[:16]}…"
        )
    actual = body_hash(body)
    if not hmac.compare_digest(actual, str(claimed)):
        raise VerificationError(f"hash mismatch: expected {actual[:16]}…, got {str(claimed)[:16]}…")
    key = keys.get(body["key_id"])
    if key is None:
        raise VerificationError(f"unknown HMAC key id {body['key_id']!r}")
    if not hmac.compare_digest(entry_mac(key, actual), str(mac)):
        raise VerificationError("bad HMAC: the entry was not sealed with the named key")
    return actual


def verify_chain(entries: Iterable[Mapping[str, Any]], keys: Mapping[str, bytes]) -> ChainReport:
    """Walk a whole chain from seq 1; stop at the first bad entry and say why."""
    expected_prev, count = GENESIS_HASH, 0
    for entry in entries:
        try:
            expected_prev = check_entry(
                entry, expected_seq=count + 1, expected_prev=expected_prev, keys=keys
            )
        except VerificationError as exc:
            seq = entry.get("seq") if isinstance(entry, Mapping) else None
            return ChainReport(
                False,
                count,
                {"seq": seq if isinstance(seq, int) else count + 1, "reason": exc.detail},
                expected_prev,
            )
        count += 1
    return ChainReport(True, count, None, expected_prev)
