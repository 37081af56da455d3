"""The SQLite store writes each file's row, chunks and queued index work in one transaction."""

from pathlib import Path

import pytest

from ingest.chunker import Chunk
from ingest.store import ChunkStore, FileState


def test_a_file_row_and_its_chunks_commit_together_or_not_at_all(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "archivist.db")
    file = FileState(str(tmp_path / "note.md"), "ab" * 32, 10, 1)
    good = Chunk(0, "Water the beans.", ("Garden",), None, None, 4)
    unstorable = Chunk(1, None, ("Garden",), None, None, 4)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):  # the chunk id hashes its text
        store.record_chunks(file, "md", [good, unstorable])
    # Before: sqlite-utils committed the row on its own, so a failure (or a kill) after it
    # left the file "ingested" with no chunks, never to be converted again.
    assert store.document(file.path) is None
    assert store.chunk_count() == 0 and store.pending_count() == 0
    store.record_chunks(file, "md", [good])
    assert store.document(file.path) is not None and store.chunk_count() == 1
    store.close()


def test_a_sample_of_a_small_store_is_every_chunk(tmp_path: Path) -> None:
    """Each open looks the sample up in both indexes: in a small store, all of it, so a chunk
    swapped for another is always found (drawn at random, 8 draws missed one of 3 chunks
    about one time in nine)."""
    store = ChunkStore(tmp_path / "archivist.db")
    for n in range(3):
        chunks = [Chunk(k, f"Note {n} line {k}.", (), None, None, 4) for k in range(n + 1)]
        store.record_chunks(FileState(str(tmp_path / f"n{n}.md"), f"{n:064x}", 1, 1), "md", chunks)
    everything = sorted(store.chunk_ids())
    assert len(everything) == 6
    assert store.sample_chunk_ids(6) == store.sample_chunk_ids(8) == everything
    some = store.sample_chunk_ids(3)
    assert 1 <= len(some) <= 3 and set(some) <= set(everything)
    store.close()


def _counted(store: ChunkStore) -> int:
    (count,) = store.db.execute("SELECT count(*) FROM chunks").fetchone()
    return int(count)


def test_the_chunk_count_follows_every_change_without_counting(tmp_path: Path) -> None:
    """The count is kept in the transaction that changes the chunks (no count(*) per open)."""
    store = ChunkStore(tmp_path / "archivist.db")
    lines = [Chunk(k, f"Line {k} of the note.", (), None, None, 5) for k in range(3)]
    first = FileState(str(tmp_path / "a.md"), "a" * 64, 1, 1)
    steps = [
        lambda: store.record_chunks(first, "md", lines),
        lambda: store.record_chunks(first, "md", lines),  # the same chunks written again
        lambda: store.record_chunks(first, "md", lines[:2]),  # one gone
        lambda: store.record_chunks(FileState(str(tmp_path / "b.md"), "b" * 64, 1, 1), "md", lines),
        lambda: store.remove(first.path),
    ]
    counts = []
    for step in steps:
        step()
        counts.append((store.chunk_count(), _counted(store)))
    store.close()

    assert counts == [(3, 3), (3, 3), (2, 2), (5, 5), (3, 3)]


def test_a_store_from_before_the_kept_count_counts_its_chunks_once(tmp_path: Path) -> None:
    from sqlite_utils import Database

    from ingest.migrations import MIGRATIONS, m005_chunk_total, migrate

    database = tmp_path / "archivist.db"
    old = Database(database)
    old.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for migration in MIGRATIONS[: MIGRATIONS.index(m005_chunk_total)]:
        migration(old)
        old.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", [migration.__name__])
    for n in range(4):
        old.execute(
            "INSERT INTO chunks (id, sha256, ordinal, text, heading_path, token_count) "
            "VALUES (?, ?, ?, 'text', '[]', 1)",
            [f"chunk-{n}", "c" * 64, n],
        )
    old.conn.commit()
    old.close()

    store = ChunkStore(database)
    assert store.chunk_count() == _counted(store) == 4
    store.record_chunks(
        FileState(str(tmp_path / "n.md"), "d" * 64, 1, 1),
        "md",
        [Chunk(0, "New.", (), None, None, 1)],
    )
    assert store.chunk_count() == _counted(store) == 5
    migrate(store.db)  # nothing left to apply
    assert store.chunk_count() == 5
    store.close()
