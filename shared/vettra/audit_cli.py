"""``vettra audit export|verify|pubkey``: the log leaves the server, and anyone
holding the published verifier key can check it offline.

Export format (JSON Lines, ``vettra.audit-export/v1``): a header line, then one
``{"checkpoint": "<signed note>"}`` line per checkpoint (oldest first), then one
line per entry as ``AuditEntry.export_line`` writes it.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from .domain.audit_verify import EXPORT_FORMAT, LogVerifier, parse_export_header, split_export_line
from .domain.checkpoint import NoteVerifier, verify_checkpoint
from .domain.errors import VerificationError

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
_PROGRESS_EVERY = 20_000
_BAR_WIDTH = 30


def _local(args: Any, home_of: Callable[[str | None], Path]) -> tuple[Any, Any]:
    from .adapters.local_keys import LocalKeyStore
    from .adapters.sqlite_store import SqliteStore
    from .bootstrap import DB_FILE

    home = home_of(args.home)
    keys = LocalKeyStore(home)
    return keys, SqliteStore(home / DB_FILE, keys)


def _private(path: str, flags: int) -> int:
    """Exports are created 0600, whatever the umask (they may sit in the home)."""
    import os

    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def export(args: Any, home_of: Callable[[str | None], Path]) -> int:
    from .domain.checkpoint import audit_origin

    keys, store = _local(args, home_of)
    out: TextIO = (open(args.output, "w", encoding="utf-8", opener=_private) if args.output
                   else sys.stdout)
    try:
        size, _ = store.audit_log.tree_state(args.tenant)
        header = {"format": EXPORT_FORMAT, "origin": audit_origin(args.tenant), "chain": args.tenant,
                  "entries": size, "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        out.write(json.dumps(header) + "\n")
        for _, note in store.audit_log.checkpoints(args.tenant):
            out.write(json.dumps({"checkpoint": note}) + "\n")
        for entry in store.audit_log.entries(args.tenant):
            out.write(entry.export_line() + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
        store.close()
    return EXIT_OK


def pubkey(args: Any, home_of: Callable[[str | None], Path]) -> int:
    from .domain.checkpoint import NoteSigner, audit_origin
    from .adapters.local_keys import LocalKeyStore

    keys = LocalKeyStore(home_of(args.home))
    print(NoteSigner(audit_origin(args.tenant), keys.checkpoint_signing_key()).verifier_key())
    return EXIT_OK


def _verifier_keys(values: list[str]) -> list[NoteVerifier]:
    out = []
    for value in values:
        path = Path(value)
        text = path.read_text().strip() if "+" not in value and path.exists() else value.strip()
        out.append(NoteVerifier(text))
    return out


class _Progress:
    """A progress bar on stderr when it is a terminal; a line per 10% otherwise."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.quiet = max(total, 1), quiet
        self.tty = sys.stderr.isatty()
        self.started = time.monotonic()
        self.shown_decile = 0

    def update(self, done: int) -> None:
        if self.quiet or done % _PROGRESS_EVERY:
            return
        fraction = min(done / self.total, 1.0)
        rate = done / max(time.monotonic() - self.started, 1e-9)
        if self.tty:
            filled = int(fraction * _BAR_WIDTH)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] "
                             f"{done}/{self.total} entries ({rate:,.0f}/s)")
            sys.stderr.flush()
        elif int(fraction * 10) > self.shown_decile:
            self.shown_decile = int(fraction * 10)
            sys.stderr.write(f"verified {done}/{self.total} entries ({rate:,.0f}/s)\n")

    def done(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\n")


def verify(args: Any, home_of: Callable[[str | None], Path]) -> int:
    if not args.pubkey:
        print("vettra audit verify: --pubkey is required (see `vettra audit pubkey`)", file=sys.stderr)
        return EXIT_USAGE
    try:
        verifiers = _verifier_keys(args.pubkey)
    except (OSError, VerificationError) as exc:
        print(f"vettra audit verify: bad --pubkey: {exc}", file=sys.stderr)
        return EXIT_USAGE
    hmac_keys = None
    if args.home:
        from .adapters.local_keys import LocalKeyStore
        hmac_keys = LocalKeyStore(home_of(args.home)).audit_hmac_keys()
    with open(args.file, "rb") as fh:
        try:
            header = parse_export_header(fh.readline())
        except (ValueError, VerificationError) as exc:
            print(f"invalid: {exc}", file=sys.stderr)
            return EXIT_INVALID
        checkpoints, first_entry = [], None
        for line in fh:
            if line.startswith(b'{"checkpoint":'):
                try:
                    note = json.loads(line)["checkpoint"]
                except (ValueError, KeyError, TypeError):
                    note = None
                cp = _open_checkpoint(note, verifiers, header.get("origin")) if isinstance(note, str) else None
                if cp is None:
                    print(f"invalid: bad checkpoint signature on the checkpoint line "
                          f"#{len(checkpoints) + 1}", file=sys.stderr)
                    return EXIT_INVALID
                checkpoints.append(cp)
                continue
            first_entry = line
            break
        verifier = LogVerifier(hmac_keys=hmac_keys, checkpoints=checkpoints)
        progress = _Progress(int(header.get("entries") or 0), args.quiet)
        line = first_entry
        while line:
            try:
                body, hash_hex, mac_hex = split_export_line(line)
            except VerificationError as exc:
                verifier.failure = {"seq": verifier.count + 1, "reason": exc.detail}
                break
            if not verifier.add(body, hash_hex, mac_hex):
                break
            progress.update(verifier.count)
            line = fh.readline()
        progress.done()
    report = verifier.finish()
    if report.valid:
        print(f"valid: {report.length} entries; {report.checkpoints_verified} signed checkpoint(s) "
              f"match; root {report.root_hash}; HMAC {'checked' if report.hmac_checked else 'not checked (no --home)'}")
        return EXIT_OK
    bad = report.first_invalid or {}
    print(f"invalid at seq {bad.get('seq')}: {bad.get('reason')}", file=sys.stderr)
    return EXIT_INVALID


def _open_checkpoint(note: str, verifiers: list[NoteVerifier], origin: str | None) -> Any:
    for verifier in verifiers:
        try:
            return verify_checkpoint(note, verifier, origin=origin)
        except VerificationError:
            continue
    return None
