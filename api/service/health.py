"""Thorough store checks, run only when a store's files changed since they last passed one.

Checking a store fully costs time that grows with it (SQLite's quick_check: 0.12 s per 100k
chunks; reading every vector of the dense index), so each check leaves a fingerprint of the
files it passed — their names, sizes and modification times — and is skipped while they still
match. A process that closes a store cleanly records the fingerprint it left; one killed
mid-write does not, so the next start checks. So does anything else that touched the files.
"""

import hashlib
import os
from pathlib import Path


def fingerprint(*paths: Path) -> str:
    """A digest of the names, sizes and modification times of these files (folders: every
    file beneath them; missing paths count as missing)."""
    digest = hashlib.sha256()
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            try:
                stat = file.stat()
            except OSError:
                digest.update(f"{file}\0missing\n".encode())
                continue
            digest.update(f"{file}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def passed_before(marker: Path, *paths: Path) -> bool:
    """Whether these files are exactly as they were when `remember_passed` last saw them."""
    try:
        return marker.read_text().strip() == fingerprint(*paths)
    except OSError:
        return False


def remember_passed(marker: Path, *paths: Path) -> None:
    """Record that these files, as they are now, are sound (quietly skipped where the folder
    cannot be written: the check then simply runs every time)."""
    tmp = marker.with_name(marker.name + ".tmp")
    try:
        tmp.write_text(fingerprint(*paths) + "\n")
        os.replace(tmp, marker)
    except OSError:
        pass


def forget_passed(marker: Path) -> None:
    """Make the next open check again (after a check failed, or a store was rebuilt)."""
    marker.unlink(missing_ok=True)
