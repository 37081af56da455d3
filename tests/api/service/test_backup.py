"""Backups of a live data folder and restores into an empty one, on real stores."""

import json
import sqlite3
from pathlib import Path

import pytest

from api.service import Archivist, AskOptions, ConfigError, Settings, make_backup, restore_backup
from api.service.backup import MANIFEST

FILES = 24


def _library(docs: Path) -> None:
    """Notes that each hold one word found nowhere else (quillon0, quillon1, …)."""
    for n in range(FILES):
        (docs / f"note{n:02d}.md").write_text(
            f"# Note {n}\n\nThe keeper stored crate quillon{n} in the boathouse on day {n}.\n"
        )


def _documents(database: Path) -> set[str]:
    connection = sqlite3.connect(database)
    try:
        return {Path(path).name for (path,) in connection.execute("SELECT path FROM documents")}
    finally:
        connection.close()


def test_a_backup_taken_during_an_ingest_restores_every_committed_document(
    settings: Settings, docs: Path, tmp_path: Path
) -> None:
    _library(docs)
    backup_folder = tmp_path / "backup"
    recorded: list[object] = []

    def back_up_halfway(result: object) -> None:
        recorded.append(result)
        if len(recorded) == FILES // 2:  # the ingest goes on: files left, indexing running
            make_backup(settings, backup_folder)

    with Archivist(settings) as service:
        asked = service.ask("Where is crate quillon3?", AskOptions(start_session=True))
        service.ingest([docs], on_file=back_up_halfway)
    backed_up = _documents(backup_folder / "archivist.db")
    manifest = json.loads((backup_folder / MANIFEST).read_text())
    assert 0 < len(backed_up) < FILES  # some committed when the backup was taken, not all
    assert manifest["documents"] == len(backed_up) and set(manifest["files"]) == {
        "archivist.db",
        "sessions.db",
    }

    restored = settings.model_copy(update={"data": tmp_path / "restored"})
    report = restore_backup(restored, backup_folder)
    assert report.documents == len(backed_up)
    with Archivist(restored) as service:
        service.reindex()
        for name in sorted(backed_up):
            n = int(name.removeprefix("note").removesuffix(".md"))
            hits = service.search(f"quillon{n}", k=1)
            assert hits and Path(hits[0].path).name == name, name
        assert asked.session_id is not None
        (turn,) = service.sessions.history(asked.session_id)
        assert turn.question == "Where is crate quillon3?"


def test_a_backup_never_overwrites_and_a_restore_never_replaces_a_database(
    settings: Settings, docs: Path, tmp_path: Path
) -> None:
    (docs / "a.md").write_text("# A\n\nThe lamp is lit at dusk.\n")
    with Archivist(settings) as service:
        service.ingest([docs])
    full = tmp_path / "full"
    (full / "old.txt").parent.mkdir()
    (full / "old.txt").write_text("an earlier backup")
    with pytest.raises(ConfigError, match="not an empty folder"):
        make_backup(settings, full)
    make_backup(settings, tmp_path / "backup")
    with pytest.raises(ConfigError, match="already holds an Archivist database"):
        restore_backup(settings, tmp_path / "backup")
    empty = settings.model_copy(update={"data": tmp_path / "empty"})
    with pytest.raises(ConfigError, match="holds no Archivist database"):
        make_backup(empty, tmp_path / "nothing")


def test_a_damaged_backup_is_refused(settings: Settings, docs: Path, tmp_path: Path) -> None:
    (docs / "a.md").write_text("# A\n\nThe lamp is lit at dusk.\n")
    with Archivist(settings) as service:
        service.ingest([docs])
    make_backup(settings, tmp_path / "backup")
    copy = tmp_path / "backup" / "archivist.db"
    data = bytearray(copy.read_bytes())
    data[-100] ^= 0xFF
    copy.write_bytes(bytes(data))
    target = settings.model_copy(update={"data": tmp_path / "restored"})
    with pytest.raises(ConfigError, match="the backup is damaged"):
        restore_backup(target, tmp_path / "backup")
    assert not target.database.exists()
    with pytest.raises(ConfigError, match="not an Archivist backup"):
        restore_backup(target, docs)
