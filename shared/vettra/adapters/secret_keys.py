"""The cloud key store: Secret Manager secrets mounted as files (``VETTRA_SECRETS_DIR``).

One file per secret, in the formats below (docs/identity.md, "Keys in the cloud"). Each
function mounts only the secrets it uses (terraform/). The store reads and checks every
mounted file once, at boot, and never writes or generates a key: a malformed file is one
:class:`SecretFileError` naming the file and what was expected, so a deployment with a
broken secret fails its first request loudly instead of running with a key nobody can
verify; asking for a key whose file is not mounted is the same error, naming it. Rotation is a new *secret version* (made by
``vettra keys export-cloud-secrets --from DIR --rotate WHICH``), picked up by new
instances; the ``rotate_*`` methods say so.

======================== =================================================================
file                     contents
======================== =================================================================
audit-hmac-key           ``{"current": kid, "keys": {kid: base64 of 32 bytes}}``
checkpoint-signing-key   ``{"current": kid, "keys": {kid: PEM}}``: the current one an Ed25519
                         private key (it signs); the others private or public (retired:
                         their checkpoints still verify)
data-key                 ``{"current": kid, "keys": {kid: base64 of 32 bytes}}`` AES-256-GCM
policy-trusted-keys      ``{label: PEM Ed25519 public}``; trusted by their computed
                         ``ed25519:…`` key id (the label is for people)
policy-signing-key       PEM Ed25519 private; optional: signs only the shipped default
                         policy at a tenant's first boot (its public half is trusted too)
receipt-signing-key      optional; the format of checkpoint-signing-key: the current key signs
                         credential receipts, retired ones still verify. Without it no
                         credential is released (404 not-configured)
======================== =================================================================

Each may sit directly in the directory (``DIR/audit-hmac-key``) or, as Cloud Functions
mounts a secret volume per secret, as ``DIR/audit-hmac-key/audit-hmac-key``.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..domain.errors import NotConfigured
from ..domain.policy_envelope import key_id as policy_key_id
from ..ports import KeyStore
from .local_keys import DATA_KEY_BYTES, HMAC_KEY_BYTES, AesGcmSealer, public_pem

AUDIT_HMAC = "audit-hmac-key"
CHECKPOINT = "checkpoint-signing-key"
DATA = "data-key"
POLICY_TRUSTED = "policy-trusted-keys"
POLICY_SIGNING = "policy-signing-key"
RECEIPT = "receipt-signing-key"
#: Text, not a key of the key store: the Token Vault exchange's client secret, which a
#: bootstrap reads with :func:`read_text_secret` (mounted only where it is used)
AUTH0_CLIENT_SECRET = "auth0-client-secret"
REQUIRED = (AUDIT_HMAC, CHECKPOINT, DATA, POLICY_TRUSTED)
ALL = (*REQUIRED, POLICY_SIGNING, RECEIPT)
MAX_SECRET_BYTES = 64 * 1024  # Secret Manager's own limit is 64 KiB per version
ROTATABLE = {"audit-hmac": AUDIT_HMAC, "checkpoint": CHECKPOINT, "data": DATA, "receipt": RECEIPT}
_KID_PREFIX = {AUDIT_HMAC: "hk_", CHECKPOINT: "ck_", DATA: "dk_", RECEIPT: "rk_"}
_SIGNING_RINGS = (CHECKPOINT, RECEIPT)  # rings of Ed25519 keys: retired ones keep the public half


class SecretFileError(ValueError):
    """A mounted secret is missing or not in its format (the message names the file)."""


class ReadOnlyKeys(RuntimeError):
    """The cloud key store does not rotate keys itself: a new secret version does."""


def _read(directory: Path, name: str, *, required: bool = True) -> bytes | None:
    """The secret ``name``: ``DIR/name``, or the one file inside a ``DIR/name`` mount."""
    path = directory / name
    if path.is_dir():
        inner = path / name
        if not inner.is_file():
            files = [p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")]
            if len(files) != 1:
                raise SecretFileError(
                    f"{path}: a mounted secret directory must hold the file {name!r} "
                    f"(or exactly one file); found {sorted(p.name for p in files)}"
                )
            inner = files[0]
        path = inner
    if not path.is_file():
        if required:
            raise SecretFileError(
                f"{path}: the secret {name!r} is not mounted (VETTRA_SECRETS_DIR); create it "
                "with `vettra keys export-cloud-secrets` (docs/identity.md)"
            )
        return None
    data = path.read_bytes()
    if not data.strip() or len(data) > MAX_SECRET_BYTES:
        raise SecretFileError(f"{path}: empty, or over {MAX_SECRET_BYTES} bytes")
    return data


def _json(name: str, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SecretFileError(f"{name}: not JSON ({exc})") from None


def _ring(name: str, raw: bytes) -> tuple[str, dict[str, str]]:
    """``(current, keys)`` of a ``{"current": kid, "keys": {kid: text}}`` document."""
    doc = _json(name, raw)
    if (
        not isinstance(doc, dict)
        or not isinstance(doc.get("current"), str)
        or not isinstance(doc.get("keys"), dict)
        or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in doc["keys"].items())
    ):
        raise SecretFileError(
            f'{name}: expected {{"current": "<kid>", "keys": {{"<kid>": "<key>"}}}}'
        )
    if doc["current"] not in doc["keys"]:
        raise SecretFileError(f"{name}: current {doc['current']!r} is not among its keys")
    return doc["current"], doc["keys"]


def _key_bytes(name: str, kid: str, text: str, size: int) -> bytes:
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SecretFileError(f"{name}: key {kid!r} is not base64") from None
    if len(key) != size:
        raise SecretFileError(f"{name}: key {kid!r} is {len(key)} bytes, expected {size}")
    return key


def _pem(name: str, what: str, text: str | bytes) -> Any:
    data = text.encode() if isinstance(text, str) else text
    try:
        if b"PRIVATE KEY" in data:
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise SecretFileError(f"{name}: {what} is not a PEM key ({exc})") from None


def _ed25519_private(name: str, what: str, text: str | bytes) -> Ed25519PrivateKey:
    key = _pem(name, what, text)
    if not isinstance(key, Ed25519PrivateKey):
        raise SecretFileError(
            f"{name}: {what} must be an Ed25519 private key, found {type(key).__name__}"
        )
    return key


def _ed25519_public(name: str, what: str, text: str | bytes) -> Ed25519PublicKey:
    key = _pem(name, what, text)
    if isinstance(key, Ed25519PrivateKey):
        return key.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise SecretFileError(f"{name}: {what} must be an Ed25519 key, found {type(key).__name__}")
    return key


def _hmac_ring(name: str, raw: bytes, size: int) -> tuple[str, dict[str, bytes]]:
    current, text = _ring(name, raw)
    return current, {k: _key_bytes(name, k, v, size) for k, v in text.items()}


def _signing_ring(name: str, raw: bytes) -> tuple[Ed25519PrivateKey, list[Ed25519PublicKey]]:
    """``(current signer, retired public keys)`` of a ring of Ed25519 keys."""
    current, text = _ring(name, raw)
    signer = _ed25519_private(name, f"key {current!r} (current)", text[current])
    retired = [_ed25519_public(name, f"key {k!r}", v) for k, v in text.items() if k != current]
    return signer, retired


def _trusted(raw: bytes | None, policy_signer: Ed25519PrivateKey | None) -> dict[str, Any]:
    """The policy keys trusted by key id: the file's, and the signer's own public half."""
    keys: list[Ed25519PublicKey] = []
    if raw is not None:
        doc = _json(POLICY_TRUSTED, raw)
        if not isinstance(doc, dict) or not all(isinstance(v, str) for v in doc.values()):
            raise SecretFileError(f'{POLICY_TRUSTED}: expected {{"<kid>": "<PEM Ed25519 public>"}}')
        keys = [_ed25519_public(POLICY_TRUSTED, f"key {k!r}", v) for k, v in doc.items()]
    if policy_signer is not None:
        keys.insert(0, policy_signer.public_key())
    if not keys:
        raise SecretFileError(
            f"{POLICY_TRUSTED}: no key trusted to sign policy bundles (and no {POLICY_SIGNING})"
        )
    return {policy_key_id(k): k for k in keys}


@dataclass
class _Keys:
    """What the mounted files hold, each parsed and checked at boot; None: not mounted."""

    hmac: tuple[str, dict[str, bytes]] | None = None
    checkpoint: tuple[Ed25519PrivateKey, list[Ed25519PublicKey]] | None = None
    data: tuple[str, dict[str, bytes]] | None = None
    trusted: dict[str, Any] | None = None
    policy_signer: Ed25519PrivateKey | None = None
    receipt: tuple[Ed25519PrivateKey, list[Ed25519PublicKey]] | None = None


def _parse(raw: dict[str, bytes | None]) -> _Keys:
    """Every mounted secret checked; the first problem is a :class:`SecretFileError`.

    A function mounts only the secrets it uses (least privilege, terraform/), so an absent
    file is not an error here: using a key whose file is absent is (:func:`_missing`)."""
    keys = _Keys()
    if (hmac_raw := raw.get(AUDIT_HMAC)) is not None:
        keys.hmac = _hmac_ring(AUDIT_HMAC, hmac_raw, HMAC_KEY_BYTES)
    if (data_raw := raw.get(DATA)) is not None:
        keys.data = _hmac_ring(DATA, data_raw, DATA_KEY_BYTES)
    if (cp_raw := raw.get(CHECKPOINT)) is not None:
        keys.checkpoint = _signing_ring(CHECKPOINT, cp_raw)
    if (rk_raw := raw.get(RECEIPT)) is not None:
        keys.receipt = _signing_ring(RECEIPT, rk_raw)
    if (policy_raw := raw.get(POLICY_SIGNING)) is not None:
        keys.policy_signer = _ed25519_private(POLICY_SIGNING, "the key", policy_raw)
    if raw.get(POLICY_TRUSTED) is not None or keys.policy_signer is not None:
        keys.trusted = _trusted(raw.get(POLICY_TRUSTED), keys.policy_signer)
    return keys


def _missing(directory: Path, name: str) -> SecretFileError:
    return SecretFileError(
        f"{directory / name}: the secret {name!r} is not mounted for this function "
        "(VETTRA_SECRETS_DIR); create it with `vettra keys export-cloud-secrets` and mount "
        "it where it is used (docs/cloud.md)"
    )


def read_text_secret(directory: Path | str, name: str) -> str | None:
    """A mounted text secret (``DIR/name`` or ``DIR/name/name``), stripped; None if absent."""
    raw = _read(Path(directory), name, required=False)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError(f"{name}: not UTF-8 text") from None


def read_secret_files(directory: Path | str) -> dict[str, bytes]:
    """The raw secrets of ``directory``, each checked (:class:`SecretFileError` otherwise)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SecretFileError(f"{directory}: VETTRA_SECRETS_DIR is not a directory")
    raw = {name: _read(directory, name, required=name in REQUIRED) for name in ALL}
    _parse(raw)
    return {name: value for name, value in raw.items() if value is not None}


def read_mounted_files(directory: Path | str) -> dict[str, bytes]:
    """The secrets mounted in ``directory`` (any subset of them), each checked."""
    directory = Path(directory)
    if not directory.is_dir():
        raise SecretFileError(f"{directory}: VETTRA_SECRETS_DIR is not a directory")
    raw = {name: _read(directory, name, required=False) for name in ALL}
    _parse(raw)
    return {name: value for name, value in raw.items() if value is not None}


class SecretFilesKeyStore(AesGcmSealer, KeyStore):
    """:class:`KeyStore` over the mounted secrets (module docstring); read-only.

    Each function mounts only the secrets it uses: every mounted file is checked at boot
    (a malformed one fails it, naming the file), and a key whose file is not mounted is
    a :class:`SecretFileError` naming it when something asks for that key."""

    def __init__(self, directory: Path | str):
        self.dir = Path(directory)
        self._keys = _parse(dict(read_mounted_files(self.dir)))

    def _need(self, value: Any, name: str) -> Any:
        if value is None:
            raise _missing(self.dir, name)
        return value

    # -- audit ------------------------------------------------------------------
    def audit_hmac_key(self) -> tuple[str, bytes]:
        current, keys = self._need(self._keys.hmac, AUDIT_HMAC)
        return current, keys[current]

    def audit_hmac_keys(self) -> dict[str, bytes]:
        return dict(self._need(self._keys.hmac, AUDIT_HMAC)[1])

    def checkpoint_signing_key(self) -> Ed25519PrivateKey:
        signer: Ed25519PrivateKey = self._need(self._keys.checkpoint, CHECKPOINT)[0]
        return signer

    def checkpoint_public_keys(self) -> list[Ed25519PublicKey]:
        signer, retired = self._need(self._keys.checkpoint, CHECKPOINT)
        return [signer.public_key(), *retired]

    # -- policy -----------------------------------------------------------------
    def policy_trusted_keys(self) -> dict[str, Any]:
        return dict(self._need(self._keys.trusted, POLICY_TRUSTED))

    def policy_signing_key(self) -> Ed25519PrivateKey:
        if self._keys.policy_signer is None:
            raise SecretFileError(
                f"{POLICY_SIGNING}: not mounted, and this tenant has no active policy to "
                "start from: mount it, or sign a policy with `vettra policy sign` and "
                "activate it (POST /api/policy)"
            )
        return self._keys.policy_signer

    def has_policy_signing_key(self) -> bool:
        return self._keys.policy_signer is not None

    # -- receipts ---------------------------------------------------------------
    def receipt_signing_key(self) -> Ed25519PrivateKey:
        if self._keys.receipt is None:
            raise NotConfigured(
                f"{RECEIPT} is not mounted: this deployment signs no credential receipts, so it "
                "releases no credentials (`vettra keys export-cloud-secrets` makes the file)"
            )
        return self._keys.receipt[0]

    def receipt_public_keys(self) -> list[Ed25519PublicKey]:
        if self._keys.receipt is None:
            return []
        signer, retired = self._keys.receipt
        return [signer.public_key(), *retired]

    # -- sealing ----------------------------------------------------------------
    def _sealing_key(self) -> tuple[str, bytes]:
        current, keys = self._need(self._keys.data, DATA)
        return current, keys[current]

    def _data_key(self, key_id: str) -> bytes:
        key: bytes = self._need(self._keys.data, DATA)[1][key_id]
        return key

    # -- what the local store does and this one may not -------------------------
    def _read_only(self, which: str) -> ReadOnlyKeys:
        secret = ROTATABLE[which]
        return ReadOnlyKeys(
            f"keys in the cloud are Secret Manager secrets: run `vettra keys "
            f"export-cloud-secrets --from <dir of the current secrets> --rotate {which} --out "
            f"<dir>`, add {secret} from it as a new version (`gcloud secrets versions add "
            f"{secret} --data-file=<dir>/{secret}`), then redeploy"
        )

    def rotate_audit_hmac_key(self) -> str:
        raise self._read_only("audit-hmac")

    def rotate_data_key(self) -> str:
        raise self._read_only("data")

    def rotate_checkpoint_key(self) -> None:
        raise self._read_only("checkpoint")

    def identity_signing_key(self) -> Ed25519PrivateKey:
        raise ReadOnlyKeys(
            "the cloud key store holds no key for local development tokens: the cloud "
            "accepts Auth0 access tokens (docs/identity.md)"
        )


# -- making the files (``vettra keys export-cloud-secrets``) ---------------------------------
def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def _private_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _ring_doc(current: str, keys: dict[str, str]) -> bytes:
    return json.dumps({"current": current, "keys": keys}, indent=2).encode() + b"\n"


def _new_kid(name: str, taken: set[str]) -> str:
    while True:
        kid = _KID_PREFIX[name] + secrets.token_hex(4)
        if kid not in taken:
            return kid


def fresh_secret_files() -> dict[str, bytes]:
    """New keys for a new deployment, in the mounted formats."""
    checkpoint = Ed25519PrivateKey.generate()
    policy = Ed25519PrivateKey.generate()
    hk, dk, ck, rk = (_new_kid(n, set()) for n in (AUDIT_HMAC, DATA, CHECKPOINT, RECEIPT))
    return {
        RECEIPT: _ring_doc(rk, {rk: _private_pem(Ed25519PrivateKey.generate())}),
        AUDIT_HMAC: _ring_doc(hk, {hk: _b64(secrets.token_bytes(HMAC_KEY_BYTES))}),
        DATA: _ring_doc(dk, {dk: _b64(secrets.token_bytes(DATA_KEY_BYTES))}),
        CHECKPOINT: _ring_doc(ck, {ck: _private_pem(checkpoint)}),
        POLICY_TRUSTED: json.dumps(
            {policy_key_id(policy.public_key()): public_pem(policy.public_key())}, indent=2
        ).encode()
        + b"\n",
        POLICY_SIGNING: _private_pem(policy).encode(),
    }


def secret_files_from_home(keys: Any) -> dict[str, bytes]:
    """A home's keys (a :class:`~.local_keys.LocalKeyStore`) in the mounted formats: the
    same audit chain, checkpoints and sealed secrets verify and open in the cloud."""
    hk, _ = keys.audit_hmac_key()
    dk, data = keys.data_key_ring()
    signer = keys.checkpoint_signing_key()
    checkpoint = {policy_key_id(signer.public_key()): _private_pem(signer)}
    for retired in keys.checkpoint_public_keys()[1:]:
        checkpoint.setdefault(policy_key_id(retired), public_pem(retired))
    policy = keys.policy_signing_key()
    trusted = {kid: public_pem(k) for kid, k in keys.policy_trusted_keys().items()}
    receipt = keys.receipt_signing_key()
    return {
        RECEIPT: _ring_doc(
            policy_key_id(receipt.public_key()),
            {policy_key_id(receipt.public_key()): _private_pem(receipt)},
        ),
        AUDIT_HMAC: _ring_doc(hk, {k: _b64(v) for k, v in keys.audit_hmac_keys().items()}),
        DATA: _ring_doc(dk, {k: _b64(v) for k, v in data.items()}),
        CHECKPOINT: _ring_doc(policy_key_id(signer.public_key()), checkpoint),
        POLICY_TRUSTED: json.dumps(trusted, indent=2).encode() + b"\n",
        POLICY_SIGNING: _private_pem(policy).encode(),
    }


def rotated_secret_files(files: dict[str, bytes], which: str) -> dict[str, bytes]:
    """``files`` with a new current key for ``which`` (audit-hmac, checkpoint or data);
    the old keys stay in the ring, so what they sealed or signed still verifies."""
    if which not in ROTATABLE:
        raise ValueError(f"rotate one of {', '.join(ROTATABLE)}, found {which!r}")
    name = ROTATABLE[which]
    if name not in files:
        raise SecretFileError(
            f"{name}: not among the current secrets, so there is nothing to rotate"
        )
    current, keys = _ring(name, files[name])
    kid = _new_kid(name, set(keys))
    if name in _SIGNING_RINGS:
        # the retired key keeps only its public half: nothing signs with it again
        old = _ed25519_public(name, f"key {current!r}", keys[current])
        keys = {**keys, current: public_pem(old), kid: _private_pem(Ed25519PrivateKey.generate())}
    else:
        size = HMAC_KEY_BYTES if name == AUDIT_HMAC else DATA_KEY_BYTES
        keys = {**keys, kid: _b64(secrets.token_bytes(size))}
    out = dict(files)
    out[name] = _ring_doc(kid, keys)
    _parse(dict(out))
    return out


def write_secret_files(out: Path | str, files: dict[str, bytes]) -> list[Path]:
    """Write each file 0600 into ``out`` (created 0700); refuses to overwrite any."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(out, 0o700)
    clashes = [out / name for name in files if (out / name).exists()]
    if clashes:
        raise FileExistsError(
            f"{', '.join(map(str, clashes))} exist already; choose an empty --out directory"
        )
    written = []
    for name, data in files.items():
        path = out / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, data)
        finally:
            os.close(fd)
        written.append(path)
    return written
