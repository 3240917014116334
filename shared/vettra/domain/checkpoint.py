"""Signed audit checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes.

A checkpoint commits to a tenant's audit log at one size (https://c2sp.org/tlog-checkpoint)::

    vettra.dev/audit/acme          origin (Vettra: ``vettra.dev/audit/<tenant>``)
    20852163                       tree size, decimal, no leading zeros
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=   RFC 6962 root hash, base64
                                   (optional non-empty extension lines; Vettra writes none)

and is published as a signed note (https://c2sp.org/signed-note, implemented as in
``golang.org/x/mod/sumdb/note``): the text, a blank line, then one or more lines
``"— " name " " base64(key ID || Ed25519 signature over the text)``. The key ID is
``SHA-256(name || "\\n" || 0x01 || public key)[:4]``; verifier keys are written
``<name>+<hex8 key ID>+<base64(0x01 || public key)>``, exactly as Go's sumdb.

Readers are stricter than Go in one respect only: base64 and hex must be in their
canonical spelling, so no two distinct notes carry the same signature bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from .errors import VerificationError

ORIGIN_PREFIX = "vettra.dev/audit/"
ALG_ED25519 = 0x01  # signed-note signature type byte for Ed25519
KEY_ID_SIZE = 4  # signed-note key ID: 4 bytes, big-endian uint32
ED25519_KEY_SIZE = 32
HASH_SIZE = 32  # RFC 6962 Merkle tree with SHA-256
MAX_TREE_SIZE = 2**64 - 1  # sizes are uint64 in every checkpoint implementation
MAX_SIGNATURES = 100  # spec: limit SHOULD be applied, MUST be >= 16; Go uses 100
SIG_PREFIX = "\u2014 "  # EM DASH, SPACE
PRIVATE_KEY_PREFIX = "PRIVATE+KEY+"
_SIZE_RE = re.compile(r"0|[1-9][0-9]*")
_KEY_ID_RE = re.compile(r"[0-9a-f]{8}")
_NEWLINE = "\n"
_CONTROL_LIMIT = 0x20  # signed notes refuse ASCII controls below U+0020, except newline


class CheckpointError(VerificationError):
    """A checkpoint, note or key is malformed or does not verify: says expected vs found."""

    slug = "checkpoint-invalid"
    title = "Checkpoint did not verify"


def _fail(what: str, expected: str, found: object) -> CheckpointError:
    shown = (
        found
        if isinstance(found, (int, str)) and len(str(found)) <= 80
        else f"{str(found)[:77]}..."
    )
    return CheckpointError(f"{what}: expected {expected}, found {shown!r}")


def _check_text(text: str, what: str) -> None:
    """UTF-8 and no ASCII control other than newline (signed-note §Format)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _fail(what, "valid UTF-8", f"unpaired surrogate at index {exc.start}") from None
    for index, char in enumerate(text):
        if ord(char) < _CONTROL_LIMIT and char != _NEWLINE:
            raise _fail(
                what, "no control characters but newline", f"U+{ord(char):04X} at index {index}"
            )


def _check_name(name: str, what: str = "key name") -> None:
    """Non-empty, no Unicode space, no '+' (signed-note §Format; Go's isValidName)."""
    _check_text(name, what)
    if not name or "+" in name or _NEWLINE in name or any(c.isspace() for c in name):
        raise _fail(what, "a non-empty name without spaces or '+'", name)


def _b64decode(value: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 §4), canonical spelling only."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError):
        raise _fail(what, "standard base64", value) from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise _fail(what, "canonical base64", value)
    return raw


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id(name: str, public_key: bytes) -> bytes:
    """signed-note §Signatures: SHA-256(name || 0x0A || 0x01 || 32-byte key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[
        :KEY_ID_SIZE
    ]


def ed25519_verifier_key(name: str, public_key: bytes) -> str:
    """The verifier key string for a raw 32-byte key (Go's NewEd25519VerifierKey)."""
    _check_name(name)
    if len(public_key) != ED25519_KEY_SIZE:
        raise _fail("public key", f"{ED25519_KEY_SIZE} bytes", f"{len(public_key)} bytes")
    return f"{name}+{key_id(name, public_key).hex()}+{_b64(bytes([ALG_ED25519]) + public_key)}"


def audit_origin(tenant: str) -> str:
    """The origin (and signing key name) of one tenant's audit log."""
    origin = ORIGIN_PREFIX + tenant
    _check_name(origin, "origin")
    return origin


@dataclass(frozen=True)
class Checkpoint:
    """A tree head of an RFC 6962 log, as C2SP tlog-checkpoint note text."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for label, line in [("origin", self.origin)] + [
            ("extension line", e) for e in self.extensions
        ]:
            if not isinstance(line, str) or not line or _NEWLINE in line:
                raise _fail(label, "a non-empty single line", line)
            _check_text(line, label)
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise _fail("tree size", f"an integer 0..{MAX_TREE_SIZE}", self.size)
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != HASH_SIZE:
            raise _fail("root hash", f"{HASH_SIZE} bytes", self.root_hash)

    def body(self) -> str:
        lines = (self.origin, str(self.size), _b64(self.root_hash), *self.extensions)
        return "".join(line + _NEWLINE for line in lines)

    @classmethod
    def parse(cls, body: str) -> Checkpoint:
        """tlog-checkpoint §Note text, strictly: three or more non-empty lines, each ending in newline."""
        _check_text(body, "checkpoint")
        if not body.endswith(_NEWLINE):
            raise _fail("checkpoint", "text ending in a newline", body[-20:])
        lines = body[:-1].split(_NEWLINE)
        if len(lines) < 3:
            raise _fail(
                "checkpoint", "at least 3 lines (origin, size, root hash)", f"{len(lines)} lines"
            )
        origin, size, root, *extensions = lines
        if not _SIZE_RE.fullmatch(size) or int(size) > MAX_TREE_SIZE:
            raise _fail("tree size", "decimal digits without leading zeros, at most 2^64-1", size)
        root_hash = _b64decode(root, "root hash")
        return cls(origin, int(size), root_hash, tuple(extensions))


class NoteVerifier:
    """An Ed25519 note verifier, from a key string ``<name>+<hex8>+<base64(0x01 || key)>``."""

    def __init__(self, verifier_key: str):
        name, sep1, rest = verifier_key.partition("+")
        hex_id, sep2, key64 = rest.partition("+")
        if not (sep1 and sep2):
            raise _fail("verifier key", "<name>+<hex8>+<base64 key>", verifier_key)
        _check_name(name)
        if not _KEY_ID_RE.fullmatch(hex_id):
            raise _fail("verifier key ID", "8 lowercase hex digits", hex_id)
        raw = _b64decode(key64, "verifier key")
        if len(raw) != 1 + ED25519_KEY_SIZE or raw[0] != ALG_ED25519:
            raise _fail(
                "verifier key", f"0x01 then {ED25519_KEY_SIZE} key bytes", f"{len(raw)} bytes"
            )
        if key_id(name, raw[1:]) != bytes.fromhex(hex_id):
            raise _fail("verifier key ID", key_id(name, raw[1:]).hex(), hex_id)
        self.name = name
        self.key_hash = bytes.fromhex(hex_id)
        self._key = Ed25519PublicKey.from_public_bytes(raw[1:])
        self.verifier_key = verifier_key

    def verify(self, text: bytes, signature: bytes) -> bool:
        try:
            self._key.verify(signature, text)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"NoteVerifier({self.verifier_key!r})"


class NoteSigner:
    """Signs notes as ``name`` with an Ed25519 key. Never log :meth:`signer_key`."""

    def __init__(self, name: str, private_key: Ed25519PrivateKey):
        _check_name(name)
        self.name = name
        self._key = private_key
        self._public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.key_hash = key_id(name, self._public)

    @classmethod
    def from_signer_key(cls, signer_key: str) -> NoteSigner:
        """Parse ``PRIVATE+KEY+<name>+<hex8>+<base64(0x01 || seed)>`` (Go's NewSigner)."""
        if not signer_key.startswith(PRIVATE_KEY_PREFIX):
            raise CheckpointError(
                "signer key: expected the PRIVATE+KEY+ prefix, found something else"
            )
        name, _, rest = signer_key[len(PRIVATE_KEY_PREFIX) :].partition("+")
        hex_id, _, seed64 = rest.partition("+")
        _check_name(name)
        try:
            raw = _b64decode(seed64, "signer key")
        except CheckpointError:
            raise CheckpointError("signer key: expected canonical base64 key data") from None
        if len(raw) != 1 + ED25519_KEY_SIZE or raw[0] != ALG_ED25519:
            raise CheckpointError(f"signer key: expected 0x01 then a {ED25519_KEY_SIZE}-byte seed")
        signer = cls(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
        if not _KEY_ID_RE.fullmatch(hex_id) or bytes.fromhex(hex_id) != signer.key_hash:
            raise _fail("signer key ID", signer.key_hash.hex(), hex_id)
        return signer

    def verifier_key(self) -> str:
        return ed25519_verifier_key(self.name, self._public)

    def signer_key(self) -> str:
        seed = self._key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"{PRIVATE_KEY_PREFIX}{self.name}+{self.key_hash.hex()}+{_b64(bytes([ALG_ED25519]) + seed)}"

    def sign(self, text: str) -> str:
        """The signed note: ``text``, a blank line, one signature line."""
        _check_text(text, "note text")
        if not text.endswith(_NEWLINE):
            raise _fail("note text", "text ending in a newline", text[-20:])
        signature = self._key.sign(text.encode("utf-8"))
        return f"{text}\n{SIG_PREFIX}{self.name} {_b64(self.key_hash + signature)}\n"

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r}, key_hash={self.key_hash.hex()!r})"


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> tuple[str, list[str]]:
    """signed-note §Signatures: return (text, names whose signatures verified).

    Signatures by unknown (name, key ID) pairs are ignored; a known key's bad
    signature rejects the note; at least one known signature must verify.
    """
    if isinstance(note, bytes):
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _fail(
                "note", "valid UTF-8", f"byte 0x{note[exc.start]:02x} at {exc.start}"
            ) from None
    _check_text(note, "note")
    split = note.rfind("\n\n")
    if split < 0:
        raise _fail("note", "a blank line before the signatures", "none")
    text, block = note[: split + 1], note[split + 2 :]
    if not block.endswith(_NEWLINE):
        raise _fail("signature block", "lines ending in a newline", block[-20:])
    known: dict[tuple[str, bytes], list[NoteVerifier]] = {}
    for verifier in verifiers:
        known.setdefault((verifier.name, verifier.key_hash), []).append(verifier)
    lines = block[:-1].split(_NEWLINE)
    if len(lines) > MAX_SIGNATURES:
        raise _fail("note", f"at most {MAX_SIGNATURES} signatures", len(lines))
    verified: list[str] = []
    seen: set[tuple[str, bytes]] = set()
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise _fail("signature line", "'\u2014 <name> <base64>'", line)
        name, _, sig64 = line[len(SIG_PREFIX) :].partition(" ")
        _check_name(name, "signature key name")
        raw = _b64decode(sig64, "signature")
        if len(raw) <= KEY_ID_SIZE:
            raise _fail("signature", f"more than {KEY_ID_SIZE} bytes", f"{len(raw)} bytes")
        ident = (name, raw[:KEY_ID_SIZE])
        candidates = known.get(ident, [])
        if len(candidates) > 1:
            raise _fail(
                "verifiers", "one verifier per name and key ID", f"{len(candidates)} for {name}"
            )
        if not candidates or ident in seen:
            continue  # unknown key (rotation, witnesses) or a repeat: ignored as in Go
        seen.add(ident)
        if not candidates[0].verify(text.encode("utf-8"), raw[KEY_ID_SIZE:]):
            raise _fail(
                "signature", f"a valid signature by {name}+{ident[1].hex()}", "an invalid one"
            )
        verified.append(name)
    if not verified:
        wanted = sorted(f"{n}+{h.hex()}" for n, h in known)
        raise _fail("note", f"a signature by one of {wanted}", f"{len(lines)} by unknown keys")
    return text, verified


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> str:
    return signer.sign(cp.body())


def verify_checkpoint(
    note: str | bytes, verifier: NoteVerifier, *, origin: str | None = None
) -> Checkpoint:
    """Open ``note`` with ``verifier`` and parse its checkpoint.

    ``origin`` defaults to the verifier's name: tlog-checkpoint §Signatures says the
    key name SHOULD match the origin, and Vettra always signs that way.
    """
    text, _ = open_note(note, [verifier])
    checkpoint = Checkpoint.parse(text)
    expected = verifier.name if origin is None else origin
    if checkpoint.origin != expected:
        raise _fail("origin", repr(expected), checkpoint.origin)
    return checkpoint
