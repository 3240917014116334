"""The cloud key store over mounted Secret Manager files, and the CLI that makes the files."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vettra.adapters.local_keys import LocalKeyStore
from vettra.adapters.secret_keys import (
    ALL,
    AUDIT_HMAC,
    CHECKPOINT,
    DATA,
    POLICY_SIGNING,
    POLICY_TRUSTED,
    ReadOnlyKeys,
    SecretFileError,
    SecretFilesKeyStore,
    fresh_secret_files,
    read_secret_files,
    rotated_secret_files,
    secret_files_from_home,
    write_secret_files,
)
from vettra.cli import main
from vettra.domain.policy_envelope import (
    key_id,
    load_default_payload,
    sign_bundle,
    verify_bundle,
)


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    out = tmp_path / "secrets"
    write_secret_files(out, fresh_secret_files())
    return out


def test_fresh_files_make_a_working_store(secrets_dir: Path) -> None:
    keys = SecretFilesKeyStore(secrets_dir)
    kid, hmac_key = keys.audit_hmac_key()
    assert (
        kid.startswith("hk_") and len(hmac_key) == 32 and keys.audit_hmac_keys() == {kid: hmac_key}
    )
    sealed = keys.seal_secret(b"totp-seed", context="stepup:alice")
    assert keys.open_secret(sealed, context="stepup:alice") == b"totp-seed"
    with pytest.raises(ValueError, match="does not open"):
        keys.open_secret(sealed, context="stepup:bob")
    signer = keys.checkpoint_signing_key()
    assert (
        keys.checkpoint_public_keys()[0].public_bytes_raw()
        == signer.public_key().public_bytes_raw()
    )
    envelope = sign_bundle(load_default_payload(), keys.policy_signing_key())
    assert key_id(keys.policy_signing_key().public_key()) in keys.policy_trusted_keys()
    verify_bundle(envelope, keys.policy_trusted_keys())


def test_files_are_private(secrets_dir: Path) -> None:
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert sorted(p.name for p in secrets_dir.iterdir()) == sorted(ALL)
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in secrets_dir.iterdir())
    with pytest.raises(FileExistsError, match="exist already"):
        write_secret_files(secrets_dir, fresh_secret_files())


def test_a_secret_volume_per_secret_is_read_too(tmp_path: Path) -> None:
    """Cloud Functions mounts each secret at its own path: DIR/NAME/NAME (or one file)."""
    files = fresh_secret_files()
    for name, data in files.items():
        folder = tmp_path / "mnt" / name
        folder.mkdir(parents=True)
        (folder / (name if name != DATA else "latest")).write_bytes(data)
    keys = SecretFilesKeyStore(tmp_path / "mnt")
    assert keys.audit_hmac_key()[0] == json.loads(files[AUDIT_HMAC])["current"]


def test_rotation_is_refused_with_what_to_do(secrets_dir: Path) -> None:
    keys = SecretFilesKeyStore(secrets_dir)
    with pytest.raises(ReadOnlyKeys, match="gcloud secrets versions add audit-hmac-key"):
        keys.rotate_audit_hmac_key()
    with pytest.raises(ReadOnlyKeys, match="--rotate data"):
        keys.rotate_data_key()
    with pytest.raises(ReadOnlyKeys, match="--rotate checkpoint"):
        keys.rotate_checkpoint_key()
    assert sorted(p.name for p in secrets_dir.iterdir()) == sorted(ALL)  # nothing written


def _rewrite(directory: Path, name: str, data: bytes | None) -> None:
    path = directory / name
    path.unlink()
    if data is not None:
        path.write_bytes(data)


def _ring(current: str, keys: dict[str, str]) -> bytes:
    return json.dumps({"current": current, "keys": keys}).encode()


RSA_PEM = (
    rsa.generate_private_key(public_exponent=65537, key_size=2048)
    .private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    .decode()
)


@pytest.mark.parametrize(
    "name, data, want",
    [
        (AUDIT_HMAC, b"{not json", "audit-hmac-key: not JSON"),
        (AUDIT_HMAC, b"   ", "audit-hmac-key: empty"),
        (AUDIT_HMAC, b'{"current": "a", "keys": []}', 'audit-hmac-key: expected {"current"'),
        (AUDIT_HMAC, _ring("b", {"a": base64.b64encode(b"k" * 32).decode()}), "current 'b' is not"),
        (
            AUDIT_HMAC,
            _ring("a", {"a": base64.b64encode(b"k" * 16).decode()}),
            "16 bytes, expected 32",
        ),
        (DATA, _ring("a", {"a": "not base64!"}), "data-key: key 'a' is not base64"),
        (CHECKPOINT, _ring("c", {"c": "-----BEGIN PRIVATE KEY-----\nxx"}), "not a PEM key"),
        (CHECKPOINT, _ring("c", {"c": RSA_PEM}), "must be an Ed25519 private key"),
        (POLICY_TRUSTED, b'["x"]', 'policy-trusted-keys: expected {"<kid>"'),
        (POLICY_SIGNING, RSA_PEM.encode(), "policy-signing-key: the key must be an Ed25519"),
    ],
    ids=lambda v: str(v)[:30],
)
def test_a_missing_or_malformed_secret_names_its_file(
    secrets_dir: Path, name: str, data: bytes | None, want: str
) -> None:
    _rewrite(secrets_dir, name, data)
    with pytest.raises(SecretFileError) as caught:
        SecretFilesKeyStore(secrets_dir)
    assert want in str(caught.value)
    assert "PRIVATE KEY" not in str(caught.value)  # never the key material


@pytest.mark.parametrize(
    "name, use",
    [
        (AUDIT_HMAC, lambda keys: keys.audit_hmac_key()),
        (AUDIT_HMAC, lambda keys: keys.audit_hmac_keys()),
        (DATA, lambda keys: keys.seal_secret(b"seed", context="c")),
        (CHECKPOINT, lambda keys: keys.checkpoint_signing_key()),
        (CHECKPOINT, lambda keys: keys.checkpoint_public_keys()),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_function_boots_with_only_the_secrets_it_mounts(
    secrets_dir: Path, name: str, use: Any
) -> None:
    """Least privilege (terraform/ mounts per function): an absent file is refused only when
    its key is asked for, naming the file; the mounted ones still work."""
    _rewrite(secrets_dir, name, None)
    keys = SecretFilesKeyStore(secrets_dir)
    with pytest.raises(SecretFileError) as caught:
        use(keys)
    assert f"the secret {name!r} is not mounted for this function" in str(caught.value)
    assert keys.policy_trusted_keys()  # what is mounted still serves


def test_a_function_with_no_secrets_mounted_boots(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    keys = SecretFilesKeyStore(tmp_path / "secrets")
    assert not keys.has_policy_signing_key()
    assert keys.receipt_public_keys() == []
    with pytest.raises(SecretFileError, match="'policy-trusted-keys' is not mounted"):
        keys.policy_trusted_keys()
    with pytest.raises(SecretFileError, match="'data-key' is not mounted"):
        keys.seal_secret(b"seed", context="c")


def test_export_from_a_directory_still_wants_the_full_set(secrets_dir: Path) -> None:
    _rewrite(secrets_dir, DATA, None)
    with pytest.raises(SecretFileError, match="'data-key' is not mounted"):
        read_secret_files(secrets_dir)


def test_the_policy_signing_key_is_optional(secrets_dir: Path) -> None:
    trusted = json.loads((secrets_dir / POLICY_TRUSTED).read_text())
    _rewrite(secrets_dir, POLICY_SIGNING, None)
    keys = SecretFilesKeyStore(secrets_dir)
    assert set(keys.policy_trusted_keys()) == set(trusted)
    with pytest.raises(SecretFileError, match="vettra policy sign"):
        keys.policy_signing_key()
    _rewrite(secrets_dir, POLICY_TRUSTED, b"{}")
    with pytest.raises(SecretFileError, match="no key trusted"):
        SecretFilesKeyStore(secrets_dir)


def test_a_homes_keys_move_to_the_cloud_intact(tmp_path: Path) -> None:
    home = LocalKeyStore(tmp_path / "home")
    sealed = home.seal_secret(b"seed-1", context="c")
    home.rotate_audit_hmac_key()
    home.rotate_data_key()
    home.rotate_checkpoint_key()
    write_secret_files(tmp_path / "out", secret_files_from_home(home))
    cloud = SecretFilesKeyStore(tmp_path / "out")
    assert cloud.audit_hmac_key() == home.audit_hmac_key()
    assert cloud.audit_hmac_keys() == home.audit_hmac_keys()
    assert cloud.open_secret(sealed, context="c") == b"seed-1"
    raw = [k.public_bytes_raw() for k in cloud.checkpoint_public_keys()]
    assert raw == [k.public_bytes_raw() for k in home.checkpoint_public_keys()]
    assert set(cloud.policy_trusted_keys()) == set(home.policy_trusted_keys())


@pytest.mark.parametrize(
    "which, name", [("audit-hmac", AUDIT_HMAC), ("data", DATA), ("checkpoint", CHECKPOINT)]
)
def test_rotated_files_add_a_current_key_and_keep_the_old(
    secrets_dir: Path, tmp_path: Path, which: str, name: str
) -> None:
    before = SecretFilesKeyStore(secrets_dir)
    sealed = before.seal_secret(b"s", context="c")
    files = rotated_secret_files(read_secret_files(secrets_dir), which)
    write_secret_files(tmp_path / "v2", files)
    after = SecretFilesKeyStore(tmp_path / "v2")
    assert after.open_secret(sealed, context="c") == b"s"
    assert set(before.audit_hmac_keys()) <= set(after.audit_hmac_keys())
    old_cp = before.checkpoint_signing_key().public_key().public_bytes_raw()
    assert old_cp in [k.public_bytes_raw() for k in after.checkpoint_public_keys()]
    doc = json.loads(files[name])
    assert doc["current"] != json.loads((secrets_dir / name).read_text())["current"]
    if name == CHECKPOINT:
        assert after.checkpoint_signing_key().public_key().public_bytes_raw() != old_cp
        retired = [v for k, v in doc["keys"].items() if k != doc["current"]]
        assert all("PRIVATE" not in pem for pem in retired)  # retired keys sign nothing again


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_exports_fresh_files_and_says_how_to_upload(tmp_path: Path, capsys) -> None:
    assert main(["keys", "export-cloud-secrets", "--fresh", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "gcloud secrets create audit-hmac-key --data-file=" in out
    SecretFilesKeyStore(tmp_path / "s")
    assert main(["keys", "export-cloud-secrets", "--fresh", "--out", str(tmp_path / "s")]) == 1
    assert "exist already" in capsys.readouterr().err


def test_cli_exports_a_home_and_rotates_existing_files(tmp_path: Path, capsys) -> None:
    home = tmp_path / "home"
    assert main(["keys", "rotate", "data", "--home", str(home)]) == 0
    capsys.readouterr()
    assert (
        main(["keys", "export-cloud-secrets", "--home", str(home), "--out", str(tmp_path / "a")])
        == 0
    )
    capsys.readouterr()
    assert (
        main(
            [
                "keys",
                "export-cloud-secrets",
                "--from",
                str(tmp_path / "a"),
                "--rotate",
                "data",
                "--out",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "gcloud secrets versions add data-key" in out and "audit-hmac-key" not in out
    assert (
        SecretFilesKeyStore(tmp_path / "b").audit_hmac_keys()
        == LocalKeyStore(home).audit_hmac_keys()
    )


def test_cli_refusals(tmp_path: Path, capsys) -> None:
    assert (
        main(
            [
                "keys",
                "export-cloud-secrets",
                "--fresh",
                "--rotate",
                "data",
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    assert "--from" in capsys.readouterr().err
    assert (
        main(
            [
                "keys",
                "export-cloud-secrets",
                "--home",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 1
    )
    assert "no keys/" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    assert (
        main(
            [
                "keys",
                "export-cloud-secrets",
                "--from",
                str(tmp_path / "broken"),
                "--out",
                str(tmp_path / "z"),
            ]
        )
        == 1
    )
    assert "is not mounted" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["keys", "export-cloud-secrets", "--out", str(tmp_path / "w")])  # a source is required


# -- the receipt signing key (optional; docs/credentials.md) --------------------------------


def test_the_receipt_key_is_a_ring_like_the_checkpoint_key(secrets_dir: Path) -> None:
    from vettra.adapters.secret_keys import RECEIPT

    keys = SecretFilesKeyStore(secrets_dir)
    signer = keys.receipt_signing_key()
    assert (
        keys.receipt_public_keys()[0].public_bytes_raw() == signer.public_key().public_bytes_raw()
    )
    rotated = rotated_secret_files(read_secret_files(secrets_dir), "receipt")
    out = secrets_dir.parent / "rotated"
    write_secret_files(out, rotated)
    again = SecretFilesKeyStore(out)
    assert again.receipt_signing_key().public_key() != signer.public_key()
    # the retired key still verifies what it signed; its private half is gone
    raws = [k.public_bytes_raw() for k in again.receipt_public_keys()]
    assert raws[1] == signer.public_key().public_bytes_raw() and len(raws) == 2
    assert (
        "PRIVATE"
        not in json.loads(rotated[RECEIPT])["keys"][
            json.loads(read_secret_files(secrets_dir)[RECEIPT])["current"]
        ]
    )


def test_without_the_receipt_key_no_receipt_is_signed(secrets_dir: Path) -> None:
    from vettra.adapters.secret_keys import RECEIPT
    from vettra.domain.errors import NotConfigured

    _rewrite(secrets_dir, RECEIPT, None)
    keys = SecretFilesKeyStore(secrets_dir)  # optional: the store still opens
    with pytest.raises(NotConfigured, match="receipt-signing-key is not mounted"):
        keys.receipt_signing_key()
    assert keys.receipt_public_keys() == []
    with pytest.raises(SecretFileError, match="nothing to rotate"):
        rotated_secret_files(read_secret_files(secrets_dir), "receipt")


def test_a_home_exports_its_receipt_key(tmp_path: Path) -> None:
    home = LocalKeyStore(tmp_path / "home")
    out = tmp_path / "out"
    write_secret_files(out, secret_files_from_home(home))
    assert (
        SecretFilesKeyStore(out).receipt_signing_key().public_key().public_bytes_raw()
        == home.receipt_signing_key().public_key().public_bytes_raw()
    )
