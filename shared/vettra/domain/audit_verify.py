"""Streaming verification of an audit chain against its signed checkpoints.

What is checked, entry by entry (the first failure stops the walk and is
reported with its ``seq`` and why):

- **hash**: SHA-256 of the stored canonical body equals the entry's ``hash``;
- **link and order**: the body's ``seq`` is the next number and its ``prev_hash``
  is the previous entry's hash (deletions, insertions and reordering break this);
- **HMAC** (when the keys are at hand): HMAC-SHA256 over the hash, by ``key_id``;
- **Merkle** (RFC 9162 §2.1): the root over the first *n* leaves equals every
  signed checkpoint of size *n*, so a chain rebuilt by someone without the
  signing key cannot match; a log shorter than a checkpoint was rolled back.
  Checkpoints the verifier *saved* earlier (``saved``) are held to the same rule,
  so removing the log's own covering checkpoints cannot hide a rollback or a
  rewrite: the log must contain each saved size with the same root, i.e. extend
  it consistently (RFC 9162 §2.1.4; C2SP tlog-checkpoint "witnessing").

The report also counts the trailing entries no signed checkpoint covers
(``uncovered``): only the chain and the operator's HMAC vouch for those.

The hot loop hashes bytes and slices the few fields it needs out of the
canonical text; it never re-serialises JSON. In canonical JSON (RFC 8785) keys
are sorted, so the top-level members after ``data`` are, in order, ``key_id``,
``prev_hash``, ``seq``, ``type``, ``user``; they hold only strings and integers,
and a string can never contain an unescaped quote, so the last occurrence of
``,"key_id":"`` is the top-level one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .audit import GENESIS_HASH
from .checkpoint import Checkpoint
from .errors import VerificationError
from .merkle import CompactRange

_KEY_ID = b',"key_id":"'
_TAIL = re.compile(
    rb',"key_id":"([^"\\]*)","prev_hash":"([0-9a-f]{64})","seq":(0|[1-9][0-9]{0,17}),'
)
_HASH_HEX = 64
_EXPORT_PREFIX = b'{"body":'
_HASH_AT = len(',"hash":"')
_MAC_MARK = b'","mac":"'
_EXPORT_SUFFIX_LEN = _HASH_AT + _HASH_HEX + len(_MAC_MARK) + _HASH_HEX + len('"}')


class KeyedHmac:
    """HMAC-SHA256 (RFC 2104) under one key, keyed once: each message copies the keyed
    state (``hmac.HMAC.copy``) instead of padding the key again, which dominates the
    cost for 32-byte messages; the result is ``hmac.digest``'s."""

    def __init__(self, key: bytes):
        self._keyed = hmac.new(key, digestmod=hashlib.sha256)

    def digest(self, message: bytes) -> bytes:
        mac = self._keyed.copy()
        mac.update(message)
        return mac.digest()


def split_export_line(line: str | bytes) -> tuple[bytes, str, str]:
    """``(body bytes, hash hex, mac hex)`` of one exported record (see ``AuditEntry.export_line``)."""
    data = line.encode("utf-8") if isinstance(line, str) else line
    data = data.rstrip(b"\r\n")
    cut = len(data) - _EXPORT_SUFFIX_LEN
    mac_at = cut + _HASH_AT + _HASH_HEX
    if (
        cut <= len(_EXPORT_PREFIX)
        or not data.startswith(_EXPORT_PREFIX)
        or data[cut : cut + _HASH_AT] != b',"hash":"'
        or data[mac_at : mac_at + len(_MAC_MARK)] != _MAC_MARK
        or not data.endswith(b'"}')
    ):
        raise VerificationError('malformed record: expected {"body":…,"hash":…,"mac":…}')
    return (
        data[len(_EXPORT_PREFIX) : cut],
        data[cut + _HASH_AT : mac_at].decode("ascii", "replace"),
        data[mac_at + len(_MAC_MARK) : -2].decode("ascii", "replace"),
    )


def _fields(body: bytes) -> tuple[str, str, int]:
    """``(key_id, prev_hash, seq)`` sliced out of canonical body bytes."""
    at = body.rfind(_KEY_ID)
    match = _TAIL.match(body, at) if at >= 0 else None
    if match is None:
        raise VerificationError(
            "malformed entry: expected key_id, prev_hash and seq members after data"
        )
    return (
        match.group(1).decode("utf-8", "replace"),
        match.group(2).decode("ascii"),
        int(match.group(3)),
    )


@dataclass
class Report:
    valid: bool
    length: int
    first_invalid: dict[str, Any] | None = None
    head_hash: str = GENESIS_HASH
    root_hash: str | None = None
    checkpoints_verified: int = 0
    hmac_checked: bool = False
    uncovered: int = 0
    saved_verified: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "length": self.length,
            "first_invalid": self.first_invalid,
            "head_hash": self.head_hash,
            "root_hash": self.root_hash,
            "checkpoints_verified": self.checkpoints_verified,
            "hmac_checked": self.hmac_checked,
            "uncovered": self.uncovered,
        }


@dataclass
class LogVerifier:
    """Feed entries in order with :meth:`add`; :meth:`finish` returns the report.

    ``checkpoints`` (the log's own) and ``saved`` (those the verifier kept from
    earlier) must already have had their signatures verified
    (:func:`vettra.domain.checkpoint.verify_checkpoint`).
    """

    hmac_keys: Mapping[str, bytes] | None = None
    checkpoints: Sequence[Checkpoint] = ()
    saved: Sequence[Checkpoint] = ()
    count: int = 0
    prev: str = GENESIS_HASH
    failure: dict[str, Any] | None = None
    _tree: CompactRange = field(default_factory=CompactRange)
    _due: dict[int, list[Checkpoint]] = field(default_factory=dict)
    _matched: int = 0
    _matched_size: int = 0
    _saved_matched: int = 0
    _macs: dict[str, KeyedHmac] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._macs = {k: KeyedHmac(v) for k, v in (self.hmac_keys or {}).items()}
        for cp in self.checkpoints:
            self._due.setdefault(cp.size, []).append(cp)
        self._saved_ids = {id(cp) for cp in self.saved}
        for cp in self.saved:
            self._due.setdefault(cp.size, []).append(cp)
        if 0 in self._due:
            self._check_roots(0)

    def add(self, body: bytes, hash_hex: str, mac_hex: str) -> bool:
        """Check one entry; False (and :attr:`failure` set) at the first bad one."""
        if self.failure is not None:
            return False
        expected = self.count + 1
        try:
            key_id, prev, seq = _fields(body)
            if seq != expected:
                raise VerificationError(f"gap: expected seq {expected}, got {seq}")
            if prev != self.prev:
                raise VerificationError(
                    f"broken link: expected prev_hash {self.prev[:16]}…, got {prev[:16]}…"
                )
            actual = hashlib.sha256(body).digest()
            actual_hex = actual.hex()
            if actual_hex != hash_hex:  # public values: no timing to hide
                raise VerificationError(
                    f"hash mismatch: expected {actual_hex[:16]}…, got {hash_hex[:16]}…"
                )
            if self.hmac_keys is not None:
                mac = self._macs.get(key_id)
                if mac is None:
                    raise VerificationError(f"unknown HMAC key id {key_id!r}")
                if not hmac.compare_digest(mac.digest(actual).hex(), mac_hex):
                    raise VerificationError("bad HMAC: the entry was not sealed with the named key")
        except VerificationError as exc:
            self.failure = {"seq": expected, "reason": exc.detail}
            return False
        self._tree.append_leaf_data(actual)
        self.count, self.prev = expected, hash_hex
        if expected in self._due:
            return self._check_roots(expected)
        return True

    def _check_roots(self, size: int) -> bool:
        root = self._tree.root()
        for cp in self._due.pop(size):
            saved = id(cp) in self._saved_ids
            if not hmac.compare_digest(root, cp.root_hash):
                # Without the HMAC key the chain alone cannot say which entry changed:
                # name the first entry not covered by an earlier matching checkpoint.
                first = self._matched_size + 1
                which = "your saved checkpoint" if saved else "the signed root"
                self.failure = {
                    "seq": first,
                    "last_seq": size,
                    "reason": f"inconsistent checkpoint: entries {first}..{size} do not match "
                    f"{which} for size {size} (expected {cp.root_hash.hex()[:16]}…, "
                    f"the entries give {root.hex()[:16]}…)",
                }
                return False
            if saved:
                self._saved_matched += 1
            else:
                self._matched += 1
        self._matched_size = size
        return True

    def finish(self) -> Report:
        if self.failure is None and self._due:
            largest = max(self._due)
            saved = any(id(cp) in self._saved_ids for cp in self._due[largest])
            which = "your saved checkpoint" if saved else "a signed checkpoint"
            self.failure = {
                "seq": self.count + 1,
                "reason": f"rollback: {which} covers {largest} entries, the log has {self.count}",
            }
        return Report(
            valid=self.failure is None,
            length=self.count,
            first_invalid=self.failure,
            head_hash=self.prev,
            root_hash=self._tree.root().hex(),
            checkpoints_verified=self._matched,
            hmac_checked=self.hmac_keys is not None,
            uncovered=self.count - self._matched_size,
            saved_verified=self._saved_matched,
        )


def verify_entries(
    entries: Iterable[Any],
    *,
    hmac_keys: Mapping[str, bytes] | None = None,
    checkpoints: Sequence[Checkpoint] = (),
    saved: Sequence[Checkpoint] = (),
) -> Report:
    """Verify stored entries (objects with ``body_json``, ``hash``, ``mac``) or flat dicts."""
    verifier = LogVerifier(hmac_keys=hmac_keys, checkpoints=checkpoints, saved=saved)
    for entry in entries:
        if isinstance(entry, Mapping):
            from .audit import AuditEntry

            try:
                entry = AuditEntry.from_dict(entry)
            except (KeyError, TypeError, ValueError) as exc:
                verifier.failure = {"seq": verifier.count + 1, "reason": f"malformed entry: {exc}"}
                break
        if not verifier.add(entry.body_json.encode("utf-8"), entry.hash, entry.mac):
            break
    return verifier.finish()


def parse_export_header(line: str | bytes) -> dict[str, Any]:
    header = json.loads(line)
    if not isinstance(header, dict) or header.get("format") != EXPORT_FORMAT:
        raise VerificationError(f"not a Vettra audit export: expected format {EXPORT_FORMAT!r}")
    return header


EXPORT_FORMAT = "vettra.audit-export/v1"
