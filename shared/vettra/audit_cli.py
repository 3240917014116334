"""``vettra audit export|verify|pubkey``: the log leaves the server, and anyone
holding the published verifier key can check it offline.

An outside auditor saves a signed checkpoint now (the body of ``GET
/api/audit/checkpoint``, or just its ``note``) and verifies any later export
against it with ``--checkpoint``: a log cut back or rewritten behind a saved
checkpoint fails even when its own covering checkpoints were removed.

Export format (JSON Lines, ``vettra.audit-export/v1``): a header line, then one
``{"checkpoint": "<signed note>"}`` line per checkpoint (oldest first), then one
line per entry as ``AuditEntry.export_line`` writes it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .domain.errors import VerificationError

if TYPE_CHECKING:  # the commands import them: `vettra --help` runs without cryptography
    from .domain.checkpoint import Checkpoint, NoteVerifier

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
EXIT_BROKEN_PIPE = 128 + 13  # what a Unix tool killed by SIGPIPE reports (`export | head`)
_PROGRESS_EVERY = 20_000  # entries between two updates of the bar
_PROGRESS_INTERVAL_S = 0.5


def _local(args: Any, home_of: Callable[[str | None], Path]) -> tuple[Any, Any]:
    from .bootstrap import home_store

    return home_store(
        home_of(args.home),
        backend=getattr(args, "backend", None) or "local",
        project=getattr(args, "project", None) or "",
    )


def _private(path: str, flags: int) -> int:
    """Exports are created 0600, whatever the umask (they may sit in the home)."""
    import os

    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def export(args: Any, home_of: Callable[[str | None], Path]) -> int:
    from .bootstrap import BackendUnavailable

    try:
        keys, store = _local(args, home_of)
    except BackendUnavailable as exc:
        print(f"vettra audit export: {exc}", file=sys.stderr)
        return EXIT_INVALID
    out: TextIO = (
        open(args.output, "w", encoding="utf-8", opener=_private) if args.output else sys.stdout
    )
    try:
        _write_export(args, store, out)
    except BrokenPipeError:
        # The reader stopped (`| head`): say nothing, and keep the interpreter's final
        # flush of stdout from raising again (Python docs, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    finally:
        if out is not sys.stdout:
            out.close()
        store.close()
    return EXIT_OK


def _write_export(args: Any, store: Any, out: TextIO) -> None:
    from .domain.audit_verify import EXPORT_FORMAT
    from .domain.checkpoint import audit_origin

    size, _ = store.audit_log.tree_state(args.tenant)
    header = {
        "format": EXPORT_FORMAT,
        "origin": audit_origin(args.tenant),
        "chain": args.tenant,
        "entries": size,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.write(json.dumps(header) + "\n")
    for _, note in store.audit_log.checkpoints(args.tenant):
        out.write(json.dumps({"checkpoint": note}) + "\n")
    for entry in store.audit_log.entries(args.tenant):
        out.write(entry.export_line() + "\n")
    out.flush()


def pubkey(args: Any, home_of: Callable[[str | None], Path]) -> int:
    from cryptography.hazmat.primitives import serialization

    from .bootstrap import home_keys
    from .domain.checkpoint import NoteSigner, audit_origin, ed25519_verifier_key

    keys = home_keys(home_of(args.home))
    if not getattr(args, "all", False):
        print(NoteSigner(audit_origin(args.tenant), keys.checkpoint_signing_key()).verifier_key())
        return EXIT_OK
    # Current first, then every retired key: old exports' checkpoints verify with one of them.
    for public in keys.checkpoint_public_keys():
        print(
            ed25519_verifier_key(
                audit_origin(args.tenant),
                public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw),
            )
        )
    return EXIT_OK


def _verifier_keys(values: list[str]) -> list[NoteVerifier]:
    from .domain.checkpoint import NoteVerifier

    out = []
    for value in values:
        path = Path(value)
        text = path.read_text().strip() if "+" not in value and path.exists() else value.strip()
        out.append(NoteVerifier(text))
    return out


def _progress(total: int, quiet: bool) -> Any:
    """tqdm's bar on stderr, only where stderr is a terminal (``disable=None``) and not ``--quiet``."""
    from tqdm import tqdm

    return tqdm(
        total=total or None,
        unit=" entries",
        unit_scale=True,
        file=sys.stderr,
        disable=True if quiet else None,
        mininterval=_PROGRESS_INTERVAL_S,
    )


def verify(args: Any, home_of: Callable[[str | None], Path]) -> int:
    try:
        return _verify(args, home_of)
    except OSError as exc:
        print(
            f"vettra audit verify: cannot read {exc.filename or args.file}: {exc.strerror}",
            file=sys.stderr,
        )
        return EXIT_USAGE


def _verify(args: Any, home_of: Callable[[str | None], Path]) -> int:
    from .domain.audit_verify import LogVerifier, parse_export_header, split_export_line

    if not args.pubkey:
        print(
            "vettra audit verify: --pubkey is required (see `vettra audit pubkey`)", file=sys.stderr
        )
        return EXIT_USAGE
    try:
        verifiers = _verifier_keys(args.pubkey)
    except (OSError, VerificationError) as exc:
        print(f"vettra audit verify: bad --pubkey: {exc}", file=sys.stderr)
        return EXIT_USAGE
    hmac_keys = None
    if args.home:
        from .bootstrap import home_keys

        hmac_keys = home_keys(home_of(args.home)).audit_hmac_keys()
    with open(args.file, "rb") as fh:
        try:
            header = parse_export_header(fh.readline())
        except (ValueError, VerificationError) as exc:
            print(f"invalid: {exc}", file=sys.stderr)
            return EXIT_INVALID
        try:
            saved = [
                _saved_checkpoint(path, verifiers, header.get("origin"))
                for path in getattr(args, "checkpoint", None) or []
            ]
        except (OSError, VerificationError) as exc:
            print(f"vettra audit verify: bad --checkpoint: {exc}", file=sys.stderr)
            return EXIT_USAGE
        checkpoints: list[Checkpoint] = []
        first_entry = b""  # stays empty when the export has no entry lines
        for line in fh:
            if line.startswith(b'{"checkpoint":'):
                try:
                    note = json.loads(line)["checkpoint"]
                except (ValueError, KeyError, TypeError):
                    note = None
                cp = (
                    _open_checkpoint(note, verifiers, header.get("origin"))
                    if isinstance(note, str)
                    else None
                )
                if cp is None:
                    print(
                        f"invalid: bad checkpoint signature on the checkpoint line "
                        f"#{len(checkpoints) + 1}",
                        file=sys.stderr,
                    )
                    return EXIT_INVALID
                checkpoints.append(cp)
                continue
            first_entry = line
            break
        verifier = LogVerifier(hmac_keys=hmac_keys, checkpoints=checkpoints, saved=saved)
        progress = _progress(int(header.get("entries") or 0), args.quiet)
        shown = 0
        line = first_entry
        while line:
            try:
                body, hash_hex, mac_hex = split_export_line(line)
            except VerificationError as exc:
                verifier.failure = {"seq": verifier.count + 1, "reason": exc.detail}
                break
            if not verifier.add(body, hash_hex, mac_hex):
                break
            if verifier.count - shown >= _PROGRESS_EVERY:
                progress.update(verifier.count - shown)
                shown = verifier.count
            line = fh.readline()
        progress.update(verifier.count - shown)
        progress.close()
    report = verifier.finish()
    if report.valid and report.uncovered and getattr(args, "require_covered", False):
        report.valid = False
        report.first_invalid = {
            "seq": report.length - report.uncovered + 1,
            "reason": (
                f"uncovered: the last {report.uncovered} entries are under no signed checkpoint "
                "(--require-covered)"
            ),
        }
    if report.valid:
        saved_note = f"; {report.saved_verified} saved checkpoint(s) consistent" if saved else ""
        print(
            f"valid: {report.length} entries; {report.checkpoints_verified} signed checkpoint(s) "
            f"match{saved_note}; {report.uncovered} trailing entries under no signed checkpoint; "
            f"root {report.root_hash}; HMAC {'checked' if report.hmac_checked else 'not checked (no --home)'}"
        )
        return EXIT_OK
    bad = report.first_invalid or {}
    print(f"invalid at seq {bad.get('seq')}: {bad.get('reason')}", file=sys.stderr)
    return EXIT_INVALID


def _saved_checkpoint(path: str, verifiers: list[NoteVerifier], origin: str | None) -> Any:
    """A checkpoint the verifier saved: the JSON body of ``GET /api/audit/checkpoint``
    (its ``note``) or the signed note text itself; it must verify with a ``--pubkey``."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        if not isinstance(doc.get("note"), str):
            raise VerificationError(
                f"{path}: expected the JSON of GET /api/audit/checkpoint with a "
                "signed 'note' (it is null while the log is empty)"
            )
        text = doc["note"]
    # `jq -r .note > file` and editors add a newline; a signed note ends with exactly one.
    note = text.rstrip("\n") + "\n"
    cp = _open_checkpoint(note, verifiers, None)
    if cp is None:
        raise VerificationError(
            f"{path}: expected a signed checkpoint that verifies with a --pubkey key"
        )
    if origin is not None and cp.origin != origin:
        raise VerificationError(
            f"{path}: expected a checkpoint of {origin!r} (the export's log), "
            f"got one of {cp.origin!r}"
        )
    return cp


def _open_checkpoint(
    note: str, verifiers: list[NoteVerifier], origin: str | None
) -> Checkpoint | None:
    from .domain.checkpoint import verify_checkpoint

    for verifier in verifiers:
        try:
            return verify_checkpoint(note, verifier, origin=origin)
        except VerificationError:
            continue
    return None


def add_parser(sub: Any, default_tenant: str) -> argparse.ArgumentParser:
    """``vettra audit …``; options a command cannot run without are listed under "required"."""
    aud: argparse.ArgumentParser = sub.add_parser("audit", help="export and verify the audit log")
    asub = aud.add_subparsers(dest="audit_cmd", required=True)
    exp = asub.add_parser("export", help="write the log and its signed checkpoints as JSON Lines")
    exp.add_argument("--home")
    exp.add_argument("--tenant", default=default_tenant)
    exp.add_argument("-o", "--output")
    exp.add_argument(
        "--backend",
        choices=["local", "firestore"],
        default="local",
        help="firestore: export the project's log (the emulator when FIRESTORE_EMULATOR_HOST "
        "is set); only sequenced entries are exported",
    )
    exp.add_argument("--project", help="Google Cloud project id (firestore; or $VETTRA_PROJECT)")
    av = asub.add_parser(
        "verify",
        help="verify an export offline with only the public key",
        description="Verify an export offline. Exit 0 valid, 1 invalid (the first "
        "bad seq and why on stderr), 2 bad usage.",
    )
    av.add_argument("file", help="the export (JSON Lines from `vettra audit export`)")
    required = av.add_argument_group("required")
    required.add_argument(
        "--pubkey",
        action="append",
        required=True,
        metavar="KEY",
        help="verifier key (signed-note form, or a file holding it); repeatable "
        "for rotated keys (`vettra audit pubkey --all`)",
    )
    av.add_argument(
        "--checkpoint",
        action="append",
        metavar="NOTE",
        help="a signed checkpoint saved earlier (the body of GET /api/audit/checkpoint "
        "or its note): the export must contain it or extend it; repeatable",
    )
    av.add_argument(
        "--require-covered",
        action="store_true",
        help="fail if trailing entries are under no signed checkpoint",
    )
    av.add_argument("--home", help="also check entry HMACs with this home's keys")
    av.add_argument("--quiet", action="store_true", help="no progress bar")
    apk = asub.add_parser("pubkey", help="print the checkpoint verifier key to publish")
    apk.add_argument("--home")
    apk.add_argument("--tenant", default=default_tenant)
    apk.add_argument(
        "--all",
        action="store_true",
        help="every key still trusted, current first, then retired ones (one a line): "
        "what verifying exports from before `vettra keys rotate checkpoint` needs",
    )
    return aud
