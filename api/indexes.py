"""The two search indexes derived from SQLite, and the sync step that keeps them in line."""

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from api.settings import Settings
from ingest.store import ChunkStore, StoredChunk
from ingest.titles import context_parts
from retrieval.dense import DenseIndex, open_dense_index
from retrieval.embedder import Embedder, embedder_identity, model_dimension, shared_embedder
from retrieval.encoders import resolve_backend, resolve_device
from retrieval.errors import IndexMismatch
from retrieval.keyword import KeywordDoc, KeywordIndex
from retrieval.rerank import CrossEncoderReranker, Reranker

log = logging.getLogger(__name__)
SYNC_BATCH = 256


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    upserted: int
    deleted: int


class Indexes:
    """Tantivy (BM25) and Qdrant (dense) indexes under the data folder, plus the embedder.

    The embedding model loads on first use, so commands with nothing to embed start fast.
    Opening never writes: a dense index built by another embedding model is reported as
    `stale` (by `counts()`, and by the dense leg when searched) until `adopt_model()` rebuilds
    it, which ingest, serve and reindex do explicitly, so vectors are never mixed.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.model = settings.embed_model
        self.dimension = model_dimension(self.model)
        self.device = resolve_device(settings.device)
        self.backend = resolve_backend(settings.embed_backend, self.device)
        self.keyword = KeywordIndex(settings.state_dir / "keyword")
        self.stale: str | None = None
        self._dense: DenseIndex | None = None
        try:
            self._dense = self._open_dense(recreate=False)
        except IndexMismatch as mismatch:
            self.stale = str(mismatch)
        except BaseException:
            self.keyword.close()
            raise
        self._embedder: Embedder | None = None
        self._reranker: Reranker | None = None

    def _open_dense(self, *, recreate: bool) -> DenseIndex:
        return open_dense_index(
            self._settings.state_dir / "dense",
            model=embedder_identity(self.model, self.backend),
            dimension=self.dimension,
            url=self._settings.qdrant_url,
            recreate=recreate,
        )

    @property
    def dense(self) -> DenseIndex:
        """The dense index; raises IndexMismatch while it was built by another model."""
        if self._dense is None:
            raise IndexMismatch(self.stale or "the dense index is not open")
        return self._dense

    def adopt_model(self, store: ChunkStore) -> bool:
        """Rebuild for the configured embedding model if another one built the dense index.

        Returns whether it rebuilt: both indexes emptied and every chunk queued again.
        """
        if self.stale is None:
            return False
        log.warning("%s — rebuilding the indexes", self.stale)
        self._dense = self._open_dense(recreate=True)
        self.keyword.clear()
        store.requeue_all()
        self.stale = None
        return True

    @property
    def sync_batch(self) -> int:
        """Chunks per sync batch: several model batches, so a GPU's large batches fill it."""
        return max(SYNC_BATCH, 4 * self._settings.embed_batch_for(self.device))

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use."""
        if self._embedder is None:
            self._embedder = shared_embedder(
                self.model,
                self.backend,
                self.device,
                self._settings.embed_batch_for(self.device),
                self._settings.models / "onnx",
            )
        return self._embedder

    def embed_query(self, text: str) -> "Future[Any]":
        """Start embedding a query on the model's thread, so the keyword search can run
        meanwhile; `.result()` gives the vector."""
        return self.embedder.submit_query(text)

    @property
    def reranker(self) -> Reranker | None:
        """The configured cross-encoder, loaded on first use; None when reranking is off."""
        name = self._settings.rerank_model
        if name and self._reranker is None:
            self._reranker = CrossEncoderReranker(name, device=self.device)
        return self._reranker

    def close(self) -> None:
        """Release both indexes (and their locks)."""
        self.keyword.close()
        if self._dense is not None:
            self._dense.close()

    def counts(self, store: ChunkStore) -> dict[str, Any]:
        """Chunk counts per store and whether the indexes hold exactly SQLite's chunks."""
        chunks = store.chunk_ids()
        keyword = self.keyword.chunk_ids()
        pending = store.pending_count()
        dense = self._dense.ids() if self._dense is not None else None
        counts: dict[str, Any] = {
            "sqlite": len(chunks),
            "tantivy": len(keyword),
            "qdrant": None if dense is None else len(dense),
            "pending": pending,
            "in_sync": pending == 0 and chunks == keyword == dense,
        }
        if dense is None:
            counts["stale"] = self.stale
        return counts


def chunk_context(chunk: StoredChunk) -> str:
    """Where a chunk sits: "Title (file name) > Section > first words of its page" (the page's
    words left out of the page's first chunk, which starts with them)."""
    return " > ".join(_context(chunk))


def embedding_text(chunk: StoredChunk) -> str:
    """What the dense index embeds: the chunk led by where it sits (the last heading left out
    when the chunk starts with it: a heading is part of the text)."""
    parts = _context(chunk)
    if parts and f"{chunk.text}\n".startswith(f"{parts[-1]}\n"):
        parts.pop()
    return "\n".join([" > ".join(parts), chunk.text]) if parts else chunk.text


def _context(chunk: StoredChunk) -> list[str]:
    starts_page = " ".join(chunk.text.split()).startswith(chunk.page_opening)
    opening = "" if starts_page else chunk.page_opening
    return context_parts(chunk.document_title, chunk.heading_path, opening)


def sync_indexes(
    store: ChunkStore,
    indexes: Indexes,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
    optimize: bool = True,
    stop: Callable[[], bool] | None = None,
) -> SyncReport:
    """Drain the queue into both indexes; work is marked done only after both committed.

    Every step is idempotent (an upsert replaces, a delete of a missing id is a no-op), so a
    sync cut short at any point is finished by the next one. `on_progress(done, total)`
    reports chunks handled; `max_batches` stops early (used to test interruption), and so does
    `stop()` returning True (checked between model batches: a server shutting down).
    A batch is written to the indexes on a thread of its own while the next one is embedded:
    on a GPU, writing took as long as embedding (pipeline 0.46 of the raw model's throughput
    with the two in turn, H100). Batches are written in queue order, so later operations on a
    chunk still win.
    `optimize` builds the dense index's HNSW graph afterwards: instant below ~20k chunks, but
    it holds the interpreter while it runs, so a long-running server should defer it.
    """
    batch_size = batch_size or indexes.sync_batch
    total, done, last_seq = store.pending_count(), 0, 0
    upserted = deleted = batches = 0
    with _IndexWriter(store, indexes) as writer:
        while (work := store.pending_work(limit=batch_size, after=last_seq)) and (
            max_batches is None or batches < max_batches
        ):
            if stop and stop():
                break
            latest = {item.chunk_id: item.op for item in work}  # later operations win
            wanted = [cid for cid, op in latest.items() if op == "upsert"]
            chunks = store.chunks(wanted)
            gone = [cid for cid in latest if cid not in {c.id for c in chunks}]
            vectors = None
            if chunks:
                vectors = _embed(indexes.embedder, [embedding_text(c) for c in chunks], stop)
                if vectors is None:
                    break  # stopped mid-batch: nothing of it was written, it stays queued
            writer.write(work, chunks, vectors, gone)  # waits for the previous batch's write
            last_seq = work[-1].seq
            upserted, deleted, batches = upserted + len(chunks), deleted + len(gone), batches + 1
            done += len(work)
            if on_progress:
                on_progress(done, total)
    if batches and optimize:
        indexes.dense.optimize()
    return SyncReport(upserted, deleted)


class _IndexWriter:
    """Writes one batch at a time to both indexes on a thread of its own, then marks it done
    in SQLite (through its own connection). Leaving the block waits for the last write and
    raises its error, if any."""

    def __init__(self, store: ChunkStore, indexes: Indexes) -> None:
        self._store_path, self._indexes = store.path, indexes
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="index-writer")
        self._store: ChunkStore | None = None
        self._last: Future[None] | None = None

    def __enter__(self) -> "_IndexWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._wait()
        finally:
            self._thread.submit(self._close).result()
            self._thread.shutdown()

    def write(
        self, work: list[Any], chunks: list[StoredChunk], vectors: Any, gone: list[str]
    ) -> None:
        self._wait()
        self._last = self._thread.submit(self._write, work, chunks, vectors, gone)

    def _wait(self) -> None:
        if self._last is not None:
            last, self._last = self._last, None
            last.result()

    def _write(
        self, work: list[Any], chunks: list[StoredChunk], vectors: Any, gone: list[str]
    ) -> None:
        indexes = self._indexes
        if chunks:
            indexes.dense.upsert([c.id for c in chunks], vectors)
            indexes.keyword.upsert([KeywordDoc(c.id, chunk_context(c), c.text) for c in chunks])
        if gone:
            indexes.dense.delete(gone)
            indexes.keyword.delete(gone)
        indexes.dense.flush()
        indexes.keyword.commit()
        if self._store is None:
            self._store = ChunkStore(self._store_path)
        self._store.complete_work(item.seq for item in work)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()


def _embed(embedder: Embedder, texts: list[str], stop: Callable[[], bool] | None) -> Any:
    """Vectors for `texts`, a model batch at a time (checking `stop()` between: None if it
    turned True). Texts go to the model longest first, so each model batch holds texts of
    similar length and little padding, as if the whole batch were encoded in one call."""
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    vectors = np.empty((len(texts), embedder.dimension), dtype=np.float32)
    for start in range(0, len(texts), embedder.batch_size):
        if stop and stop():
            return None
        picked = order[start : start + embedder.batch_size]
        vectors[picked] = embedder.encode([texts[i] for i in picked])
    return vectors


def rebuild_indexes(store: ChunkStore, indexes: Indexes) -> None:
    """Empty both indexes and queue every chunk again: `archivist reindex` from SQLite alone."""
    indexes.keyword.clear()
    indexes.dense.clear()
    store.requeue_all()
