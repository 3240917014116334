"""Keys of the embedded default, kept in the ``--home`` directory.

Layout (created on first use, files mode 0600, folder 0700)::

    keys/audit-hmac.json        {"current": id, "keys": {id: hex}}  HMAC-SHA256 keys
    keys/identity-ed25519.pem   signs local bearer tokens (JWT, RFC 7519)
    keys/policy-ed25519.pem     this home's policy signing key (the operator's)
    keys/checkpoint-ed25519.pem signs audit checkpoints (C2SP signed notes)
    keys/checkpoint-retired/*.pem  earlier checkpoint public keys, still accepted
    keys/receipt-ed25519.pem    signs credential receipts (Ed25519 JWTs, docs/credentials.md)
    keys/trusted-policy/*.pem   further Ed25519 public keys trusted to sign policy
    keys/data-keys.json         {"current": id, "keys": {id: hex}}  AES-256-GCM data keys
                                that seal shared secrets stored in the database (TOTP)

Nothing here is ever logged or returned by the API; only key ids are.
"""

from __future__ import annotations

import abc
import json
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..ports import KeyStore, SecretSealer
from .local_files import private_dir, tighten_tree

HMAC_KEY_BYTES = 32
DATA_KEY_BYTES = 32  # AES-256-GCM
GCM_NONCE_BYTES = 12  # NIST SP 800-38D §8.2.2: random 96-bit nonces
DATA_KEYS_FILE = "data-keys.json"
_PRIVATE_MODE = 0o600


def _write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` fsync'd, mode 0600, to a fresh file beside ``path``; return its name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _PRIVATE_MODE)
    try:
        os.fchmod(fd, _PRIVATE_MODE)  # whatever the umask (docs/step-up.md, secrets at rest)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` with 0600 contents atomically (used for rotation)."""
    os.replace(_write_temp(path, data), path)


def _create_once(path: Path, data: bytes) -> bytes:
    """Create ``path`` with ``data`` unless it exists; return what ``path`` holds.

    Several processes may use a fresh home at once (``vettra dev`` booting while
    ``vettra token`` runs): the file is written completely under a unique name and
    then hard-linked into place, which fails if another process got there first,
    so everyone ends up with the same key and no one sees half a file.
    """
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


def _load_or_create_ed25519(path: Path) -> Ed25519PrivateKey:
    if path.exists():
        data = path.read_bytes()
    else:
        fresh = Ed25519PrivateKey.generate()
        data = _create_once(
            path,
            fresh.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
    key = serialization.load_pem_private_key(data, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(
            f"{path.name}: expected an Ed25519 private key, found {type(key).__name__}"
        )
    return key


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


class _RingFile:
    """A ``{"current": id, "keys": {id: hex}}`` file of symmetric keys (audit HMAC keys,
    data keys): made with one key on first use, rotated by adding a key and making it
    current, so what the old keys sealed still verifies or opens."""

    def __init__(self, path: Path, prefix: str, size: int, lock: threading.Lock):
        self.path = path
        self._prefix = prefix
        self._size = size
        self._lock = lock
        self._doc: dict[str, Any] | None = None

    def doc(self, *, reload: bool = False) -> dict[str, Any]:
        with self._lock:
            if self._doc is None or reload:
                if not self.path.exists():
                    _create_once(self.path, json.dumps(self._with_new_key({})).encode())
                self._doc = json.loads(self.path.read_text())
            return self._doc

    def ring(self, *, reload: bool = False) -> tuple[str, dict[str, bytes]]:
        """``(current key id, every key by id)``."""
        doc = self.doc(reload=reload)
        return doc["current"], {k: bytes.fromhex(v) for k, v in doc["keys"].items()}

    def rotate(self) -> str:
        """Add a key and make it current (over the file as it is now); return its id."""
        doc = self._with_new_key(self.doc(reload=True)["keys"])
        with self._lock:
            _write_private(self.path, json.dumps(doc).encode())
            self._doc = doc
        return str(doc["current"])

    def _with_new_key(self, keys: dict[str, str]) -> dict[str, Any]:
        key_id = self._prefix + secrets.token_hex(4)
        return {"current": key_id, "keys": {**keys, key_id: secrets.token_hex(self._size)}}


class AesGcmSealer(SecretSealer):
    """:class:`SecretSealer` with AES-256-GCM under a ring of data keys named by id; the
    key store says which key seals now and finds any key by id."""

    @abc.abstractmethod
    def _sealing_key(self) -> tuple[str, bytes]:
        """``(key id, key)`` that seals new secrets."""

    @abc.abstractmethod
    def _data_key(self, key_id: str) -> bytes:
        """The data key ``key_id``; KeyError if this store does not hold it."""

    def seal_secret(self, plaintext: bytes, *, context: str) -> dict[str, str]:
        key_id, key = self._sealing_key()
        nonce = os.urandom(GCM_NONCE_BYTES)
        sealed = AESGCM(key).encrypt(nonce, plaintext, context.encode())
        return {"kid": key_id, "nonce": nonce.hex(), "ct": sealed.hex()}

    def open_secret(self, sealed: dict[str, str], *, context: str) -> bytes:
        try:
            key = self._data_key(str(sealed["kid"]))
            return AESGCM(key).decrypt(
                bytes.fromhex(sealed["nonce"]), bytes.fromhex(sealed["ct"]), context.encode()
            )
        except (KeyError, ValueError, TypeError, InvalidTag) as exc:
            raise ValueError(f"sealed secret does not open ({type(exc).__name__})") from None


class LocalKeyStore(AesGcmSealer, KeyStore):
    def __init__(self, home: Path | str):
        self.home = Path(home)
        self.dir = self.home / "keys"
        self._lock = threading.Lock()
        self._hmac = _RingFile(self.dir / "audit-hmac.json", "hk_", HMAC_KEY_BYTES, self._lock)
        self._data = _RingFile(self.dir / DATA_KEYS_FILE, "dk_", DATA_KEY_BYTES, self._lock)
        private_dir(self.dir)
        private_dir(self.dir / "trusted-policy")
        tighten_tree(self.dir)

    # -- audit HMAC -------------------------------------------------------------
    def audit_hmac_key(self) -> tuple[str, bytes]:
        doc = self._hmac.doc()  # per commit: only the current key is decoded
        return doc["current"], bytes.fromhex(doc["keys"][doc["current"]])

    def audit_hmac_keys(self) -> dict[str, bytes]:
        return self._hmac.ring()[1]

    def rotate_audit_hmac_key(self) -> str:
        """Start sealing with a new key; old ones stay for verification."""
        return self._hmac.rotate()

    # -- sealing shared secrets (AES-GCM) --------------------------------------
    def data_key_ring(self) -> tuple[str, dict[str, bytes]]:
        """``(current key id, every data key by id)`` (``vettra keys export-cloud-secrets``)."""
        return self._data.ring(reload=True)

    def _sealing_key(self) -> tuple[str, bytes]:
        key_id = self._data.doc()["current"]
        return key_id, self._data_key(key_id)

    def _data_key(self, key_id: str) -> bytes:
        keys = self._data.doc()["keys"]
        if key_id not in keys:  # sealed after a rotation by another process
            keys = self._data.doc(reload=True)["keys"]
        return bytes.fromhex(keys[key_id])

    def rotate_data_key(self) -> str:
        """Seal new secrets with a new data key; ciphertexts under old ones still open."""
        return self._data.rotate()

    # -- signing keys -----------------------------------------------------------
    def identity_signing_key(self) -> Ed25519PrivateKey:
        with self._lock:
            return _load_or_create_ed25519(self.dir / "identity-ed25519.pem")

    def policy_signing_key(self) -> Ed25519PrivateKey:
        with self._lock:
            return _load_or_create_ed25519(self.dir / "policy-ed25519.pem")

    def checkpoint_signing_key(self) -> Ed25519PrivateKey:
        with self._lock:
            return _load_or_create_ed25519(self.dir / "checkpoint-ed25519.pem")

    def receipt_signing_key(self) -> Ed25519PrivateKey:
        with self._lock:
            return _load_or_create_ed25519(self.dir / "receipt-ed25519.pem")

    def receipt_public_keys(self) -> list[Ed25519PublicKey]:
        return [self.receipt_signing_key().public_key()]

    def checkpoint_public_keys(self) -> list[Ed25519PublicKey]:
        keys = [self.checkpoint_signing_key().public_key()]
        retired = self.dir / "checkpoint-retired"
        for pem in sorted(retired.glob("*.pem")) if retired.is_dir() else []:
            loaded = serialization.load_pem_public_key(pem.read_bytes())
            if isinstance(loaded, Ed25519PublicKey):
                keys.append(loaded)
        return keys

    def rotate_checkpoint_key(self) -> None:
        """Retire the current checkpoint key (its public half stays trusted) and start a new one."""
        current = self.checkpoint_signing_key()
        retired = self.dir / "checkpoint-retired"
        private_dir(retired)
        name = secrets.token_hex(4) + ".pem"
        _write_private(retired / name, public_pem(current.public_key()).encode())
        with self._lock:
            (self.dir / "checkpoint-ed25519.pem").unlink()
            _load_or_create_ed25519(self.dir / "checkpoint-ed25519.pem")

    def policy_trusted_keys(self) -> dict[str, Any]:
        from ..domain.policy_envelope import key_id

        keys: list[Ed25519PublicKey] = [self.policy_signing_key().public_key()]
        for pem in sorted((self.dir / "trusted-policy").glob("*.pem")):
            loaded = serialization.load_pem_public_key(pem.read_bytes())
            if isinstance(loaded, Ed25519PublicKey):
                keys.append(loaded)
        return {key_id(k): k for k in keys}
