"""`vettra policy sign --key` / `verify --pubkey` with a key that is not Ed25519 (docs/policy.md).

Policy bundles are signed with Ed25519 only; any other PEM key is bad input: one line
naming the file, exit 2, no traceback. Runs the installed ``vettra`` script.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from vettra.domain.policy_envelope import load_default_payload

EXIT_USAGE = 2
RSA_BITS = 2048


def _vettra(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("vettra")
    return subprocess.run([str(script), *args], capture_output=True, text=True, timeout=60)


def _rsa_pems(tmp_path: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    private, public = tmp_path / "rsa.pem", tmp_path / "rsa.pub"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_signing_with_a_non_ed25519_key_is_refused_in_one_line(tmp_path) -> None:
    private, _ = _rsa_pems(tmp_path)
    (tmp_path / "p.json").write_text(json.dumps(load_default_payload()))
    r = _vettra("policy", "sign", str(tmp_path / "p.json"), "--key", str(private))
    assert r.returncode == EXIT_USAGE, r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr
    assert (
        r.stderr.strip() == f"vettra policy: {private} is not an Ed25519 private key "
        "(policy bundles are signed with Ed25519)"
    )


def test_verifying_with_a_non_ed25519_public_key_is_refused_in_one_line(tmp_path) -> None:
    _, public = _rsa_pems(tmp_path)
    (tmp_path / "p.json").write_text(json.dumps(load_default_payload()))
    signed = _vettra(
        "policy",
        "sign",
        str(tmp_path / "p.json"),
        "--home",
        str(tmp_path / "home"),
        "-o",
        str(tmp_path / "s.json"),
    )
    assert signed.returncode == 0, signed.stderr
    r = _vettra("policy", "verify", str(tmp_path / "s.json"), "--pubkey", str(public))
    assert r.returncode == EXIT_USAGE, r.stderr
    assert (
        r.stderr.strip() == f"vettra policy: {public} is not an Ed25519 public key "
        "(policy bundles are signed with Ed25519)"
    )
