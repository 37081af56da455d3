"""Damaged stores: a damaged or missing index is reported, and rebuilt from SQLite by the next
writer (or `reindex`, which never needs to read it first); a corrupt database is reported with
the way out and never written to."""

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from api.service import Archivist, AskOptions, Settings
from ingest.errors import StoreDamaged
from retrieval.errors import IndexDamaged
from retrieval.keyword import KeywordDoc
from tests.api.cli.test_cli import archivist

NOTES = {
    "garden.md": "# Garden\n\nWater the tomatoes every morning before eight.\n",
    "bikes.md": "# Bikes\n\nOil the chain every two weeks in wet weather.\n",
    "bread.md": "# Bread\n\nBake the loaf until it reaches 96 degrees inside.\n",
}
IN_SYNC_3 = {"sqlite": 3, "tantivy": 3, "qdrant": 3, "pending": 0, "in_sync": True}


def ingest_notes(settings: Settings, docs: Path) -> None:
    for name, text in NOTES.items():
        (docs / name).write_text(text)
    with Archivist(settings) as service:
        service.ingest([docs])
        assert service.status()["stores"] == IN_SYNC_3


def shard(settings: Settings, pattern: str) -> Path:
    (found,) = (settings.state_dir / "dense" / "shard").glob(pattern)
    return found


def assert_heals(settings: Settings, docs: Path) -> None:
    with Archivist(settings) as service:
        service.ingest([docs])
        assert service.status()["stores"] == IN_SYNC_3
        (hit,) = service.search("when are the tomatoes watered", k=1)
        assert hit.path.endswith("garden.md")


def test_garbage_in_the_id_tracker_no_longer_aborts_every_command(
    tmp_path: Path, settings: Settings, docs: Path
) -> None:
    ingest_notes(settings, docs)
    # A well-formed insert of a huge internal id: Qdrant's engine tries to allocate ~43 GB for
    # it and aborts the process (SIGABRT), which no exception handler survives.
    mappings = shard(settings, "segments/*/mutable_id_tracker.mappings")
    mappings.write_bytes(bytes.fromhex("01 00000000000000aa fffffff0"))

    status = archivist(settings.data, "status", "--json")
    assert status.returncode == 0, status.stderr
    damaged = json.loads(status.stdout)["stores"]["damaged"]
    assert "crashed opening it (SIGABRT" in damaged["dense"]
    bm25 = archivist(settings.data, "search", "--mode", "bm25", "tomatoes")
    assert bm25.returncode == 0 and "garden.md" in bm25.stdout
    hybrid = archivist(settings.data, "search", "tomatoes")  # BM25 alone, and says so
    assert hybrid.returncode == 0 and "garden.md" in hybrid.stdout, hybrid.stderr
    assert "Searched without the dense leg" in hybrid.stderr
    assert "damaged" in hybrid.stderr and "archivist reindex" in hybrid.stderr
    dense = archivist(settings.data, "search", "--mode", "dense", "tomatoes")
    assert dense.returncode == 1 and "Traceback" not in dense.stderr
    assert "damaged" in dense.stderr and "archivist reindex" in dense.stderr
    assert archivist(settings.data, "ingest", str(docs)).returncode == 0
    healed = json.loads(archivist(settings.data, "status", "--json").stdout)["stores"]
    assert healed == IN_SYNC_3


@pytest.mark.parametrize(
    ("pattern", "damage"),
    [
        ("edge_config.json", b"{ not json"),
        ("segments/*/segment.json", b'{"version": 1, "conf'),
    ],
)
def test_reindex_rebuilds_an_index_it_cannot_open(
    settings: Settings, docs: Path, pattern: str, damage: bytes
) -> None:
    ingest_notes(settings, docs)
    shard(settings, pattern).write_bytes(damage)
    with Archivist(settings) as service:
        assert "dense" in service.status()["stores"]["damaged"]
        with pytest.raises(IndexDamaged, match="archivist reindex"):
            service.search("tomatoes", k=1, mode="dense")
        service.reindex()
        assert service.status()["stores"] == IN_SYNC_3
        (hit,) = service.search("when are the tomatoes watered", k=1)
        assert hit.path.endswith("garden.md")


def test_a_truncated_vector_file_is_found_at_open_and_healed(
    settings: Settings, docs: Path
) -> None:
    ingest_notes(settings, docs)
    vectors = shard(settings, "segments/*/vector_storage-dense/vectors/chunk_0.mmap")
    with vectors.open("r+b") as file:
        file.truncate(100)
    with Archivist(settings) as service:
        assert "not readable" in service.status()["stores"]["damaged"]["dense"]
        with pytest.raises(IndexDamaged):
            service.search("tomatoes", k=1, mode="dense")
    assert_heals(settings, docs)


def test_a_deleted_keyword_folder_is_refilled_from_sqlite_without_embedding(
    settings: Settings, docs: Path
) -> None:
    ingest_notes(settings, docs)
    shutil.rmtree(settings.state_dir / "keyword")
    with Archivist(settings) as service:
        stores = service.status()["stores"]
        assert "holds 0 chunks where SQLite has 3" in stores["damaged"]["keyword"]
        with pytest.raises(IndexDamaged, match="keyword index"):
            service.search("tomatoes", k=1, mode="bm25")
        index = service.ingest([docs]).index
        assert index is not None and index.upserted == 0  # nothing embedded again
        assert service.status()["stores"] == IN_SYNC_3
        (hit,) = service.search("tomatoes", k=1, mode="bm25")
        assert hit.path.endswith("garden.md")


def test_a_hybrid_search_without_its_keyword_index_answers_from_the_dense_one(
    settings: Settings, docs: Path
) -> None:
    ingest_notes(settings, docs)
    shutil.rmtree(settings.state_dir / "keyword")
    with Archivist(settings) as service:
        hits = service.search("when are the tomatoes watered", k=1)
        assert [hit.path.endswith("garden.md") for hit in hits] == [True]
        assert set(hits[0].legs) == {"dense"}
        assert "keyword index cannot be used" in hits.missing_legs["bm25"]
        assert "archivist reindex" in hits.missing_legs["bm25"]
        answer = service.ask("When are the tomatoes watered?", AskOptions(extractive=True))
        assert "morning" in answer.answer
        assert answer.missing_legs == hits.missing_legs
        assert answer.to_json()["missing_legs"] == hits.missing_legs


def test_a_hybrid_search_without_either_index_is_refused(settings: Settings, docs: Path) -> None:
    ingest_notes(settings, docs)
    shutil.rmtree(settings.state_dir / "keyword")
    shard(settings, "edge_config.json").write_bytes(b"{ not json")
    with Archivist(settings) as service, pytest.raises(IndexDamaged, match="keyword index"):
        service.search("tomatoes", k=1)


def test_the_cli_says_which_leg_a_search_went_without(settings: Settings, docs: Path) -> None:
    ingest_notes(settings, docs)
    shutil.rmtree(settings.state_dir / "keyword")
    hybrid = archivist(settings.data, "search", "when are the tomatoes watered", "-k", "1")
    assert hybrid.returncode == 0 and "garden.md" in hybrid.stdout, hybrid.stderr
    assert "Searched without the bm25 leg: the keyword index cannot be used" in hybrid.stderr
    found = json.loads(archivist(settings.data, "search", "tomatoes", "--json").stdout)
    assert "archivist reindex" in found["missing_legs"]["bm25"]
    assert found["hits"][0]["path"].endswith("garden.md")
    asked = archivist(
        settings.data, "ask", "When are the tomatoes watered?", "--extractive", "--json"
    )
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["missing_legs"] == found["missing_legs"]
    bm25 = archivist(settings.data, "search", "--mode", "bm25", "tomatoes")
    assert bm25.returncode == 1 and "keyword index cannot be used" in bm25.stderr
    status = archivist(settings.data, "status")
    assert status.stderr.splitlines()[0].startswith("the keyword index holds 0 chunks")


def test_a_keyword_index_from_an_older_analysis_is_refilled_without_embedding(
    settings: Settings, docs: Path
) -> None:
    ingest_notes(settings, docs)
    (settings.state_dir / "keyword" / "archivist-analysis").unlink()  # as built before it
    with Archivist(settings) as service:
        stores = service.status()["stores"]
        assert "split text into words differently" in stores["damaged"]["keyword"]
        with pytest.raises(IndexDamaged, match="refills it from SQLite"):
            service.search("tomatoes", k=1, mode="bm25")
        index = service.ingest([docs]).index
        assert index is not None and index.upserted == 0  # nothing embedded again
        assert service.status()["stores"] == IN_SYNC_3
        (hit,) = service.search("tomatoes", k=1, mode="bm25")
        assert hit.path.endswith("garden.md")


def test_a_dense_index_missing_chunks_is_found_by_the_count(settings: Settings, docs: Path) -> None:
    ingest_notes(settings, docs)
    with Archivist(settings) as service:
        service.indexes.dense.delete(sorted(service.store.chunk_ids())[:1])
    with Archivist(settings) as service:
        assert "holds 2 chunks where SQLite has 3" in service.status()["stores"]["damaged"]["dense"]
    assert_heals(settings, docs)


def test_an_index_with_the_right_count_but_other_chunks_is_found_at_open(
    settings: Settings, docs: Path
) -> None:
    """Plain `status` compares counts (a million chunk ids took 12 s to load) and the chunk ids
    every open looks up in both indexes; `--deep` compares every chunk id."""
    ingest_notes(settings, docs)
    with Archivist(settings) as service:
        keyword = service.indexes.keyword
        (first, *_) = sorted(service.store.chunk_ids())
        keyword.delete([first])
        keyword.upsert([KeywordDoc("00000000-0000-0000-0000-000000000001", "", "stray")])
        keyword.commit()
    with Archivist(settings) as service:  # the sample at open holds every chunk: found
        plain = service.status()["stores"]
        assert plain["tantivy"] == plain["sqlite"] == 3 and plain["in_sync"] is False
        assert "1 of 3 sampled chunks missing" in plain["damaged"]["keyword"]
        deep = service.status(deep=True)["stores"]
        assert deep["tantivy"] == deep["sqlite"] == 3 and deep["in_sync"] is False
        service.sync()  # a writer refills it from SQLite
        assert service.status(deep=True)["stores"] == IN_SYNC_3
    with Archivist(settings) as service:
        dense = service.indexes.dense
        (first, *_) = sorted(service.store.chunk_ids())
        vector = service.indexes.embedder.encode(["stray"])
        dense.delete([first])
        dense.upsert(["00000000-0000-0000-0000-000000000001"], vector)
    with Archivist(settings) as service:
        plain = service.status()["stores"]
        assert plain["qdrant"] == 3 and plain["in_sync"] is False
        assert "1 of 3 sampled chunks missing" in plain["damaged"]["dense"]


def corrupt_one_page(database: Path) -> None:
    """Overwrite the b-tree header of one page in the middle of the file with garbage."""
    page_size = int.from_bytes(database.read_bytes()[16:18], "big")
    pages = database.stat().st_size // page_size
    with database.open("r+b") as file:
        file.seek(page_size * (pages // 2))
        file.write(b"\xa5" * 64)


def test_a_corrupt_database_is_reported_and_never_written(settings: Settings, docs: Path) -> None:
    for n in range(40):
        (docs / f"note{n}.md").write_text(f"# Note {n}\n\n" + f"Words about topic {n}. " * 300)
    with Archivist(settings) as service:
        service.ingest([docs])
    corrupt_one_page(settings.database)
    before = hashlib.sha256(settings.database.read_bytes()).hexdigest()
    keyword_files = sorted(p.name for p in (settings.state_dir / "keyword").iterdir())

    for command in ("status", "search", "ingest", "reindex"):
        with Archivist(settings) as service, pytest.raises(StoreDamaged) as raised:
            if command == "status":
                service.status()
            elif command == "search":
                service.search("topic", k=3)
            elif command == "ingest":
                service.ingest([docs])
            else:
                service.reindex()
        message = str(raised.value)
        assert "is damaged" in message and "restore it from a backup" in message
        assert "source files are never changed" in message
    assert hashlib.sha256(settings.database.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in (settings.state_dir / "keyword").iterdir()) == keyword_files


def test_status_deep_runs_the_full_integrity_check(tmp_path: Path, docs: Path) -> None:
    (docs / "a.md").write_text("# A\n\nAlpha.\n")
    data = tmp_path / "data"
    assert archivist(data, "ingest", str(docs)).returncode == 0
    done = archivist(data, "status", "--deep")
    assert done.returncode == 0 and "Database:    sound" in done.stdout
    report = json.loads(archivist(data, "status", "--deep", "--json").stdout)
    assert report["database"] == {"sound": True, "problems": []}
