"""SQLite, Tantivy and Qdrant stay in agreement through add, change, delete, rename and crashes."""

import shutil
import threading
from pathlib import Path

import pytest

from api.service import Archivist, Settings
from api.service.indexes import sync_indexes
from ingest.store import ChunkStore
from retrieval.errors import RetrievalError
from tests.fixtures import make_pdf

NOTES = {
    "garden.md": "# Garden\n\nWater the tomatoes every morning before eight.\n",
    "bikes.md": "# Bikes\n\nOil the chain every two weeks in wet weather.\n",
    "bread.md": "# Bread\n\nBake the loaf until it reaches 96 degrees inside.\n",
}
IN_SYNC_3 = {"sqlite": 3, "tantivy": 3, "qdrant": 3, "pending": 0, "in_sync": True}
BLEND, EQUAL = {"bm25": 0.45, "dense": 0.55}, {"bm25": 1.0, "dense": 1.0}


def write_notes(folder: Path) -> None:
    for name, text in NOTES.items():
        (folder / name).write_text(text)


def test_ingest_indexes_every_chunk_once(service: Archivist, docs: Path) -> None:
    write_notes(docs)
    make_pdf(docs / "manual.pdf", ["The pump is serviced in April.", "Spare fuses are in the box."])
    outcome = service.ingest([docs])
    assert outcome.index is not None and outcome.index.upserted == 5  # 3 notes, 2 PDF pages
    stores = service.status()["stores"]
    assert stores["in_sync"] is True
    assert stores["sqlite"] == stores["tantivy"] == stores["qdrant"] == 5


def test_change_delete_and_rename_keep_the_stores_in_agreement(
    service: Archivist, docs: Path
) -> None:
    write_notes(docs)
    service.ingest([docs])
    (docs / "garden.md").write_text("# Garden\n\nWater the beans at dusk.\n")
    (docs / "bikes.md").unlink()
    (docs / "bread.md").rename(docs / "sourdough.md")
    service.ingest([docs])
    stores = service.status()["stores"]
    assert stores == {"sqlite": 2, "tantivy": 2, "qdrant": 2, "pending": 0, "in_sync": True}


def test_a_move_needs_no_new_embedding(service: Archivist, docs: Path) -> None:
    write_notes(docs)
    service.ingest([docs])
    (docs / "kitchen").mkdir()
    (docs / "bread.md").rename(docs / "kitchen" / "bread.md")
    index = service.ingest([docs]).index
    assert index is not None and (index.upserted, index.deleted) == (0, 0)


def test_a_new_name_is_indexed_with_the_same_chunks(service: Archivist, docs: Path) -> None:
    write_notes(docs)
    service.ingest([docs])
    (docs / "bread.md").rename(docs / "sourdough starter.md")
    index = service.ingest([docs]).index
    assert index is not None and (index.upserted, index.deleted) == (1, 0)
    (hit,) = service.search("sourdough starter", k=1, mode="bm25")
    assert hit.path.endswith("sourdough starter.md") and "sourdough" not in hit.text.lower()


def test_remove_forgets_a_file_in_every_store(service: Archivist, docs: Path) -> None:
    write_notes(docs)
    service.ingest([docs])
    assert service.remove([docs / "bikes.md"]) == [str((docs / "bikes.md").resolve())]
    assert service.status()["stores"] == {**IN_SYNC_3, "sqlite": 2, "tantivy": 2, "qdrant": 2}
    assert not service.search("oil the chain", k=5, mode="bm25")


def test_an_interrupted_sync_is_finished_by_the_next(service: Archivist, docs: Path) -> None:
    for n in range(12):
        (docs / f"note{n}.md").write_text(f"Note number {n} about topic {n * 7}.\n")
    service.ingest([docs], index=False)
    first = sync_indexes(service.store, service.indexes, batch_size=5, max_batches=1)  # "crash"
    assert first.upserted == 5
    assert service.store.pending_count() == 7
    service.sync()
    stores = service.status()["stores"]
    assert stores == {"sqlite": 12, "tantivy": 12, "qdrant": 12, "pending": 0, "in_sync": True}


def test_a_batch_whose_keyword_write_fails_stays_queued(
    service: Archivist, settings: Settings, docs: Path
) -> None:
    """A batch is marked done only once both indexes committed it: every chunk no longer
    queued is searchable by keyword, and the batch that failed is written by the next sync."""
    for n in range(12):
        (docs / f"note{n}.md").write_text(f"Note number {n} about topic {n * 7}.\n")
    service.ingest([docs], index=False)
    meta = settings.state_dir / "keyword" / "meta.json"

    def break_the_keyword_index(done: int, total: int) -> None:
        if done == 10:  # after the first batch: Tantivy can no longer replace its meta.json
            meta.unlink()
            meta.mkdir()

    with pytest.raises(RetrievalError, match="could not be saved.*Is a directory"):
        sync_indexes(
            service.store, service.indexes, batch_size=5, on_progress=break_the_keyword_index
        )
    queued = {op.chunk_id for op in service.store.pending_work()}
    assert len(queued) >= 2  # the failing batch and those after it
    done = service.store.chunk_ids() - queued
    assert len(done) >= 5
    assert service.indexes.keyword.present(sorted(done)) == done

    meta.rmdir()
    service.indexes.heal(service.store)
    service.sync()
    assert service.status()["stores"] == {
        "sqlite": 12,
        "tantivy": 12,
        "qdrant": 12,
        "pending": 0,
        "in_sync": True,
    }


def test_indexing_runs_beside_the_conversion(service: Archivist, docs: Path) -> None:
    """Chunks are embedded while later files are still being converted: here the conversion
    of the last files waits until a batch of chunks has been indexed, which never happens if
    indexing only starts once every file is in."""
    batch = service.indexes.sync_batch
    for n in range(batch + 40):
        (docs / f"note{n:03}.md").write_text(f"Note {n} about the pump in room {n * 7}.\n")
    indexed, converted = threading.Event(), []

    def on_file(_: object) -> None:
        converted.append(1)
        if len(converted) == batch + 20:
            assert indexed.wait(120), "no chunk was indexed while files were being converted"

    outcome = service.ingest([docs], on_file=on_file, on_progress=lambda done, total: indexed.set())
    assert outcome.index is not None and outcome.index.upserted == batch + 40
    assert service.status()["stores"]["in_sync"] is True


def test_a_conversion_that_fails_leaves_its_queue_to_the_next_sync(
    service: Archivist, docs: Path
) -> None:
    for n in range(30):
        (docs / f"note{n:02}.md").write_text(f"Note {n} about the boiler in hall {n}.\n")
    converted = []

    def on_file(_: object) -> None:
        converted.append(1)
        if len(converted) == 20:
            raise KeyboardInterrupt  # Ctrl+C in the middle of an ingest

    with pytest.raises(KeyboardInterrupt):
        service.ingest([docs], on_file=on_file)
    recorded = service.store.chunk_count()
    assert 20 <= recorded < 30
    service.sync()
    stores = service.status()["stores"]
    assert stores["pending"] == 0 and stores["in_sync"] is True
    assert stores["tantivy"] == stores["qdrant"] == recorded


def test_reindex_rebuilds_both_indexes_from_sqlite(settings: Settings, docs: Path) -> None:
    write_notes(docs)
    with Archivist(settings) as service:
        service.ingest([docs])
    shutil.rmtree(settings.state_dir / "keyword")
    with Archivist(settings) as service:
        assert service.status()["stores"]["tantivy"] == 0
        assert service.reindex().upserted == 3
        assert service.status()["stores"] == IN_SYNC_3


def test_another_embedding_model_is_reported_then_every_chunk_embedded_again(
    settings: Settings, docs: Path, nomic_gguf: Path
) -> None:
    """nomic-embed-text-v1.5 by name: extracted into the models folder, run on llama.cpp; until
    a sync its index is reported stale (status writes nothing, BM25 still answers), then its
    768-d vectors replace MiniLM's 384-d ones, and the switch back does the same."""
    write_notes(docs)
    with Archivist(settings) as service:
        service.ingest([docs])
    assert nomic_gguf.parent == settings.models  # extracted there once for the session
    nomic = settings.model_copy(update={"embed_model": "nomic-embed-text-v1.5"})
    with Archivist(nomic) as service:
        assert (
            "'all-MiniLM-L6-v2 (onnx-int8)' (384 dimensions)" in service.status()["stores"]["stale"]
        )
        assert service.status()["embedder"] == {
            "model": "nomic-embed-text-v1.5", "backend": "llamacpp", "device": "cpu"
        }  # fmt: skip
        assert service.sync().upserted == 3
        assert service.indexes.dense.model == "nomic-embed-text-v1.5 (llamacpp)"
        assert service.indexes.embedder.dimension == 768
        assert service.status()["stores"] == IN_SYNC_3
        (hit,) = service.search("when should the vegetables be watered", k=1, mode="dense")
        assert hit.path.endswith("garden.md")
        # Its hybrid fuses min-max scores with equal weights (blend was measured with MiniLM):
        # a chunk first in both legs scores 1 from each, times the leg's focus (1 / the number
        # of documents among its first 5 hits), times its document's evidence factor.
        assert service.status()["fusion"] == {"method": "score", "weights": EQUAL}
        query = "when should the vegetables be watered"
        (hit,) = service.search(query, k=1)
        assert hit.legs["bm25"][0] == hit.legs["dense"][0] == 1
        focus = {
            mode: 1 / len({h.path for h in service.search(query, k=5, mode=mode)})
            for mode in ("bm25", "dense")
        }
        assert hit.score == pytest.approx(sum(focus.values()) * hit.legs["document"][1])
        assert sum(focus.values()) < 2  # the legs' first hits span more than one document
    with Archivist(settings) as service:
        assert (
            "'nomic-embed-text-v1.5 (llamacpp)' (768 dimensions)"
            in service.status()["stores"]["stale"]
        )
        assert service.sync().upserted == 3
        assert service.status()["stores"] == IN_SYNC_3
        assert service.status()["fusion"] == {"method": "blend", "weights": BLEND}
        (hit,) = service.search("when should the vegetables be watered", k=1)
        assert hit.score < hit.legs["document"][1]  # 0.45 + 0.55 × a cosine below 1, at most


def test_an_ollama_embedding_model_indexes_and_answers(
    settings: Settings, docs: Path, ollama_embed_url: str
) -> None:
    write_notes(docs)
    through_ollama = settings.model_copy(
        update={"embed_model": "nomic-embed-text", "embed_backend": "ollama",
                "ollama_url": ollama_embed_url}
    )  # fmt: skip
    with Archivist(through_ollama) as service:
        assert service.ingest([docs]).index.upserted == 3
        assert service.indexes.dense.model == "nomic-embed-text (ollama)"
        assert service.status()["embedder"]["backend"] == "ollama"
        (hit,) = service.search("when should the vegetables be watered", k=1, mode="dense")
        assert hit.path.endswith("garden.md")


def test_vectors_from_another_runtime_are_rebuilt(settings: Settings, docs: Path) -> None:
    """torch and ONNX Runtime vectors differ slightly: an index is never a mix of both."""
    write_notes(docs)
    with Archivist(settings.model_copy(update={"embed_backend": "torch"})) as service:
        service.ingest([docs])
        assert service.indexes.dense.model == "all-MiniLM-L6-v2"
    with Archivist(settings) as service:  # the default: onnx-int8 on a CPU
        stale = service.status()["stores"]["stale"]
        assert "'all-MiniLM-L6-v2' (384 dimensions), not 'all-MiniLM-L6-v2 (onnx-int8)'" in stale
        assert service.ingest([docs]).index.upserted == 3
        assert service.indexes.dense.model == "all-MiniLM-L6-v2 (onnx-int8)"
        assert service.status()["stores"] == IN_SYNC_3
        (hit,) = service.search("when to water tomatoes", k=1, mode="dense")
        assert hit.path.endswith("garden.md")


def test_search_runs_while_a_sync_writes(service: Archivist, docs: Path) -> None:
    (docs / "anchor.md").write_text("# Anchor\n\nThe anchor chain is painted red.\n")
    service.ingest([docs])
    for n in range(40):
        (docs / f"log{n}.md").write_text(f"Log entry {n}: wind {n % 7} knots, sky clear.\n")
    service.ingest([docs], index=False)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            writer_store = ChunkStore(service.settings.database)
            sync_indexes(writer_store, service.indexes, batch_size=4)
            writer_store.close()
        except BaseException as error:  # reported by the assertion below
            errors.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    seen = []
    while writer.is_alive():
        hits = service.search("anchor chain colour", k=1)
        seen.append(Path(hits[0].path).name)
    writer.join()
    assert errors == []
    assert seen and set(seen) == {"anchor.md"}
    assert service.status()["stores"]["in_sync"] is True


def test_one_service_is_shared_by_threads(service: Archivist, docs: Path) -> None:
    write_notes(docs)
    service.ingest([docs])
    results: list[str] = []

    def ask_search() -> None:
        results.append(Path(service.search("loaf degrees", k=1)[0].path).name)

    threads = [threading.Thread(target=ask_search) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["bread.md"] * 4
