"""`archivist backup` and `archivist restore`: the data folder's databases, copied whole.

SQLite is the source of truth: the store (documents, chunks, the index queue) and the
sessions. A backup copies both with SQLite's online backup API, which reads a consistent
snapshot under a read transaction, so a server may keep ingesting and answering meanwhile; a
document is in the backup once its transaction committed, whole or not at all. The indexes
are not copied: a restore rebuilds them from SQLite (`Archivist.reindex`). The original files
stay where they are (the inbox is the user's folder): copy it alongside if it should travel.

A backup folder holds `archivist.db`, `sessions.db` and `archivist-backup.json`, which lists
each file's size and SHA-256; a restore refuses a backup whose files do not match it.
"""

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from api.service.errors import ConfigError
from api.service.settings import Settings

MANIFEST = "archivist-backup.json"
_WAIT_S = 30.0  # for a writer's transaction to end before the snapshot is read


@dataclass(frozen=True)
class BackupReport:
    """What a backup holds, or what a restore brought back."""

    folder: Path
    files: dict[str, dict[str, Any]]  # name -> {"bytes", "sha256"}
    documents: int
    chunks: int

    def to_json(self) -> dict[str, Any]:
        return {"folder": str(self.folder), "files": self.files, "documents": self.documents,
                "chunks": self.chunks}  # fmt: skip


def make_backup(settings: Settings, destination: Path) -> BackupReport:
    """Copy the data folder's databases into `destination` (a new or empty folder)."""
    if not settings.database.is_file():
        raise ConfigError(
            f"{settings.data} holds no Archivist database — nothing to back up (is "
            "ARCHIVIST_DATA the data folder you meant?)"
        )
    if destination.exists() and (not destination.is_dir() or any(destination.iterdir())):
        raise ConfigError(
            f"{destination} is not an empty folder — back up into a new or empty folder, so "
            "that no earlier backup is overwritten"
        )
    destination.mkdir(parents=True, exist_ok=True)
    files = {}
    for source in (settings.database, settings.sessions_database):
        if source.is_file():
            target = destination / source.name
            _copy_database(source, target)
            files[source.name] = _describe(target)
    documents, chunks = _counts(destination / settings.database.name)
    manifest = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_folder": str(settings.data.resolve()),
        "documents": documents,
        "chunks": chunks,
        "files": files,
    }
    _write_atomically(destination / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return BackupReport(destination, files, documents, chunks)


def restore_backup(settings: Settings, source: Path) -> BackupReport:
    """Copy a backup's databases into a data folder that holds none; the caller then rebuilds
    the indexes (`Archivist.reindex`)."""
    names = (settings.database.name, settings.sessions_database.name)
    manifest = _checked_manifest(source, names)
    if settings.database.exists():
        raise ConfigError(
            f"{settings.data} already holds an Archivist database — restore into a new data "
            f"folder (ARCHIVIST_DATA=/path/to/new archivist restore {source}), or move this "
            "one's state/ folder aside first"
        )
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    for name in manifest["files"]:
        _copy_database(source / name, settings.state_dir / name)
    documents, chunks = _counts(settings.database)
    return BackupReport(settings.data, manifest["files"], documents, chunks)


def _copy_database(source: Path, target: Path) -> None:
    """A consistent copy of a live SQLite database, written under another name first."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    reading = sqlite3.connect(source, timeout=_WAIT_S)
    try:
        writing = sqlite3.connect(partial)
        try:
            reading.backup(writing)  # every page in one step: one snapshot
            (verdict,) = writing.execute("PRAGMA integrity_check").fetchone()
            if verdict != "ok":
                raise ConfigError(
                    f"{source} fails SQLite's integrity check ({verdict}) — it cannot be "
                    "copied as it is; `archivist status --deep` says more"
                )
        finally:
            writing.close()
    finally:
        reading.close()
    with open(partial, "rb") as written:
        os.fsync(written.fileno())
    os.replace(partial, target)


def _describe(path: Path) -> dict[str, Any]:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _counts(database: Path) -> tuple[int, int]:
    connection = sqlite3.connect(database)
    try:
        (documents,) = connection.execute("SELECT count(*) FROM documents").fetchone()
        (chunks,) = connection.execute("SELECT count(*) FROM chunks").fetchone()
    finally:
        connection.close()
    return int(documents), int(chunks)


def _checked_manifest(source: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """The backup's manifest, once it lists the store (and maybe the sessions) and every file
    has its recorded size and SHA-256."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"{source} is not an Archivist backup ({MANIFEST} cannot be read: {error}) — "
            "give the folder `archivist backup` wrote"
        ) from error
    if names[0] not in files or not set(files) <= set(names):
        raise ConfigError(
            f"{source}: the backup must list {names[0]} (and may list {names[1]}), it lists "
            f"{', '.join(files) or 'nothing'} — give the folder `archivist backup` wrote"
        )
    for name, expected in files.items():
        path = source / name
        if not path.is_file() or _describe(path) != expected:
            raise ConfigError(
                f"{path} is missing or differs from the backup's record (size and SHA-256) — "
                "the backup is damaged; restore from another one"
            )
    return dict(manifest)


def _write_atomically(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
