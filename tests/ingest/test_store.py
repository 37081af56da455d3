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
