"""SQLite, Tantivy and Qdrant stay in agreement through add, change, delete, rename and crashes."""

import shutil
import threading
from pathlib import Path

from api import pipeline
from api.indexes import sync_indexes
from api.search import search
from api.settings import Settings
from retrieval.embedder import resolve_model_path
from tests.fixtures import make_pdf

NOTES = {
    "garden.md": "# Garden\n\nWater the tomatoes every morning before eight.\n",
    "bikes.md": "# Bikes\n\nOil the chain every two weeks in wet weather.\n",
    "bread.md": "# Bread\n\nBake the loaf until it reaches 96 degrees inside.\n",
}


def write_notes(folder: Path) -> None:
    for name, text in NOTES.items():
        (folder / name).write_text(text)


def counts(settings: Settings) -> dict[str, object]:
    return pipeline.status(settings)["stores"]


def ingest_and_sync(settings: Settings, folder: Path) -> None:
    pipeline.ingest(settings, [folder])
    pipeline.sync(settings)


def test_sync_indexes_every_chunk_once(settings: Settings, docs: Path) -> None:
    write_notes(docs)
    make_pdf(docs / "manual.pdf", ["The pump is serviced in April.", "Spare fuses are in the box."])
    ingest_and_sync(settings, docs)
    stores = counts(settings)
    assert stores["in_sync"] is True
    assert stores["sqlite"] == stores["tantivy"] == stores["qdrant"] == 5  # 3 notes, 2 PDF pages


def test_change_delete_and_rename_keep_the_stores_in_agreement(
    settings: Settings, docs: Path
) -> None:
    write_notes(docs)
    ingest_and_sync(settings, docs)
    (docs / "garden.md").write_text("# Garden\n\nWater the beans at dusk.\n")
    (docs / "bikes.md").unlink()
    (docs / "bread.md").rename(docs / "sourdough.md")
    ingest_and_sync(settings, docs)
    stores = counts(settings)
    assert stores == {"sqlite": 2, "tantivy": 2, "qdrant": 2, "pending": 0, "in_sync": True}


def test_rename_needs_no_new_embedding(settings: Settings, docs: Path) -> None:
    write_notes(docs)
    ingest_and_sync(settings, docs)
    (docs / "bread.md").rename(docs / "loaf.md")
    pipeline.ingest(settings, [docs])
    report = pipeline.sync(settings)
    assert (report.upserted, report.deleted) == (0, 0)


def test_an_interrupted_sync_is_finished_by_the_next(settings: Settings, docs: Path) -> None:
    for n in range(12):
        (docs / f"note{n}.md").write_text(f"Note number {n} about topic {n * 7}.\n")
    pipeline.ingest(settings, [docs])
    store = pipeline.open_store(settings)
    indexes = pipeline.open_indexes(settings, store)
    try:
        first = sync_indexes(store, indexes, batch_size=5, max_batches=1)  # then "crash"
        assert first.upserted == 5
        assert store.pending_count() == 7
    finally:
        indexes.close()
        store.close()
    pipeline.sync(settings)
    stores = counts(settings)
    assert stores == {"sqlite": 12, "tantivy": 12, "qdrant": 12, "pending": 0, "in_sync": True}


def test_reindex_rebuilds_both_indexes_from_sqlite(settings: Settings, docs: Path) -> None:
    write_notes(docs)
    ingest_and_sync(settings, docs)
    shutil.rmtree(settings.state_dir / "keyword")
    pipeline.rebuild(settings)
    assert counts(settings)["pending"] == 3
    pipeline.sync(settings)
    assert counts(settings) == {
        "sqlite": 3,
        "tantivy": 3,
        "qdrant": 3,
        "pending": 0,
        "in_sync": True,
    }


def test_another_embedding_model_rebuilds_instead_of_mixing_vectors(
    settings: Settings, docs: Path, tmp_path: Path
) -> None:
    write_notes(docs)
    ingest_and_sync(settings, docs)
    other = tmp_path / "minilm-copy"
    shutil.copytree(resolve_model_path("all-MiniLM-L6-v2"), other)
    switched = settings.model_copy(update={"embed_model": str(other)})
    store = pipeline.open_store(switched)
    indexes = pipeline.open_indexes(switched, store)
    try:
        assert indexes.dense.count() == 0
        assert store.pending_count() == 3
        assert indexes.dense.model == str(other)
    finally:
        indexes.close()
        store.close()
    pipeline.sync(switched)
    assert counts(switched)["in_sync"] is True


def test_search_runs_while_a_sync_writes(settings: Settings, docs: Path) -> None:
    (docs / "anchor.md").write_text("# Anchor\n\nThe anchor chain is painted red.\n")
    ingest_and_sync(settings, docs)
    for n in range(40):
        (docs / f"log{n}.md").write_text(f"Log entry {n}: wind {n % 7} knots, sky clear.\n")
    pipeline.ingest(settings, [docs])
    store = pipeline.open_store(settings)
    indexes = pipeline.open_indexes(settings, store)
    writer_store = pipeline.open_store(settings)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            sync_indexes(writer_store, indexes, batch_size=4)
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    writer = threading.Thread(target=write)
    try:
        writer.start()
        seen = []
        while writer.is_alive():
            hits = search(store, indexes, settings, "anchor chain colour", k=1)
            seen.append(Path(hits[0].path).name)
        writer.join()
        assert errors == []
        assert seen and set(seen) == {"anchor.md"}
        assert indexes.counts(store)["in_sync"] is True
    finally:
        indexes.close()
        store.close()
        writer_store.close()
