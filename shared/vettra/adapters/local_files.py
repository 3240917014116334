"""Files of the embedded default in the home: private to the user who runs Vettra.

Every file Vettra writes in the home is mode 0600 and every folder 0700, whatever the
umask: files are created with the mode and ``fchmod``-ed to it (the umask could only
narrow it, and a narrower one would lock the owner out), and files found at open are
``chmod``-ed, so a home made by an older build or by hand is tightened on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
#: SQLite's companions of a database file; the WAL and SHM copy the database's mode
#: when SQLite creates them, and are chmod-ed here when found.
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR_MODE)
    os.chmod(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists; either way leave it 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
    try:
        os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return path


def private_sqlite(path: Path) -> Path:
    """A database file and whatever companions it has, all 0600, before SQLite opens it."""
    private_file(path)
    for suffix in SQLITE_SUFFIXES[1:]:
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            os.chmod(companion, PRIVATE_FILE_MODE)
    return path


def tighten_tree(root: Path) -> None:
    """Folders 0700 and files 0600 under ``root`` (keys found from an older build)."""
    for folder, _dirs, files in os.walk(root):
        _chmod_if_there(folder, PRIVATE_DIR_MODE)
        for name in files:
            _chmod_if_there(os.path.join(folder, name), PRIVATE_FILE_MODE)


def _chmod_if_there(path: str, mode: int) -> None:
    # another process sharing a fresh home renames its temporary key files away meanwhile
    try:
        os.chmod(path, mode)
    except FileNotFoundError:
        pass
