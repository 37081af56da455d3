"""The two search indexes derived from SQLite, and the sync step that keeps them in line."""

import logging
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np

from api.service.health import forget_passed, passed_before, remember_passed
from api.service.models import embedding_model, exports_to_onnx, onnx_cache, runtime_of
from api.service.replica import WRITER, chunk_payload
from api.service.settings import Settings
from ingest.store import ChunkStore, StoredChunk
from ingest.titles import context_parts
from retrieval.dense import (
    open_dense_index,
    probe_shard,
    shard_exists,
    shard_files,
    unwant_shard,
    want_shard,
)
from retrieval.dense_base import DenseIndex
from retrieval.embedder import Embedder, embedder_identity, shared_embedder
from retrieval.embedding_models import EmbeddingModel
from retrieval.encoders import onnx_model_file, resolve_backend, resolve_device
from retrieval.errors import (
    IndexBusy,
    IndexDamaged,
    IndexMismatch,
    IndexUnavailable,
    RetrievalError,
)
from retrieval.keyword import KeywordDoc, KeywordIndex
from retrieval.rerank import CrossEncoderReranker, Reranker

if TYPE_CHECKING:  # qdrant-client loads only when a Qdrant server is used
    from retrieval.keyword_server import ServerKeywordIndex

log = logging.getLogger(__name__)
KeywordLeg = Union[KeywordIndex, "ServerKeywordIndex"]
SYNC_BATCH = 256
_FILL_POLL_S = 0.05  # a sync beside a conversion looks at the queue this often for a batch


@dataclass(frozen=True)
class SyncReport:
    """What one sync did."""

    upserted: int
    deleted: int


class Indexes:
    """The BM25 and dense indexes, plus the embedder: Tantivy and Qdrant's engine under the
    data folder, or a collection on a Qdrant server for the dense leg (ARCHIVIST_QDRANT_URL)
    and optionally the BM25 leg too, in the same points (ARCHIVIST_KEYWORD=qdrant).

    The embedding model loads on first use, so commands with nothing to embed start fast.
    Opening never writes. A dense index built by another embedding model is `stale`, and an
    index that cannot be read, or that disagrees with SQLite (`check`), is `damaged`; both are
    reported (by `counts()`, and by the leg when searched) until `heal()` rebuilds them from
    SQLite, which ingest, serve and reindex do first, so vectors are never mixed and a lost
    index comes back without the user asking.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.model = settings.embed_model
        self.device = resolve_device(settings.device)
        self.backend = resolve_backend(
            settings.embed_backend, self.device, runtime_of(self.model),
            exports=exports_to_onnx(self.model),
        )  # fmt: skip
        self._embedding_model: EmbeddingModel | None = None
        self.stale: str | None = None
        self.damaged: dict[str, str] = {}  # "keyword" / "dense" -> what is wrong
        self._keyword: KeywordLeg | None = None
        self._dense: DenseIndex | None = None
        self._dense_tried = False  # opened, or found stale or damaged
        self._lengths_looked_at: int | None = None  # chunks when `reweigh` last looked
        self.on_server = settings.keyword == "qdrant"  # the BM25 leg lives in the collection
        if not self.on_server:
            try:
                self._keyword = KeywordIndex(self._keyword_path)
            except RetrievalError as error:
                self._note_damage("keyword", error)
        self._embedder: Embedder | None = None
        self._reranker: Reranker | None = None

    @property
    def embedding_model(self) -> EmbeddingModel:
        """The embedding model, described from its files on first use (not loaded)."""
        if self._embedding_model is None:
            self._embedding_model = embedding_model(self._settings)
        return self._embedding_model

    @property
    def dimension(self) -> int:
        """The embedding model's vector size."""
        return self.embedding_model.dimension

    @property
    def _keyword_path(self) -> Path:
        return self._settings.state_dir / "keyword"

    @property
    def _dense_path(self) -> Path:
        return self._settings.state_dir / "dense"

    @property
    def _dense_checked(self) -> Path:
        return self._settings.state_dir / "dense.checked"

    def _try_dense(self, wait_s: float) -> None:
        """Open the dense index unless done: only on first use, because the embedded one can
        be open in one process at a time and a BM25 search or `status` needs none of it.
        Raises IndexBusy if another process still holds it after `wait_s`."""
        if self._dense_tried:
            return
        try:
            self._dense = self._open_dense(recreate=False, wait_s=wait_s)
        except IndexMismatch as mismatch:
            self.stale = str(mismatch)
        except IndexDamaged as error:
            self._note_damage("dense", error)
        self._dense_tried = True

    def _open_dense(
        self, *, recreate: bool, damaged: bool = False, wait_s: float = 0
    ) -> DenseIndex:
        """Open (or create) the dense index, retrying for `wait_s` while another process holds
        it, which is asked to lend it (retrieval.dense.EdgeDenseIndex)."""
        path, embedded = self._dense_path, not self._settings.qdrant_url
        deadline = time.monotonic() + wait_s
        while True:
            try:
                if embedded and not recreate and shard_exists(path):
                    self._probe_dense()
                dense = open_dense_index(
                    path,
                    model=embedder_identity(self.model, self.backend),
                    dimension=self.dimension,
                    url=self._settings.qdrant_url,
                    recreate=recreate,
                    damaged=damaged,
                    collection=self._settings.qdrant_collection,
                    shards=self._settings.qdrant_shards,
                    replicas=self._settings.qdrant_replicas,
                    keyword=self.on_server,
                    create=not self._settings.replica,  # a replica only reads what is there
                )
                if self._settings.replica:
                    self._check_written(dense)
                return dense
            except IndexBusy:
                if time.monotonic() >= deadline:
                    unwant_shard(path)
                    raise
                want_shard(path)  # until close()
                time.sleep(_RETRY_S)

    def _check_written(self, dense: DenseIndex) -> None:
        """A replica's collection must be written by an Archivist that keeps both legs and the
        passages there (it records itself); raises IndexUnavailable, closing it, if not."""
        from retrieval.dense_server import ClientDenseIndex

        assert isinstance(dense, ClientDenseIndex)
        if WRITER not in dense.metadata():
            dense.close()
            raise IndexUnavailable(
                f"no Archivist has written the collection '{dense.collection}' with its BM25 leg "
                "and passages there — run its writer with ARCHIVIST_KEYWORD=qdrant (it records "
                "itself after each ingest), then ask this replica again"
            )

    def _probe_dense(self) -> None:
        """Check the embedded index in a child process unless its files are as a process that
        closed it cleanly (or the last check) left them: see health.py."""
        files = shard_files(self._dense_path)
        if passed_before(self._dense_checked, files):
            return
        problem = probe_shard(self._dense_path, self.dimension)
        if problem is not None:
            raise IndexDamaged(f"the dense index at {self._dense_path} is damaged ({problem})")
        remember_passed(self._dense_checked, files)

    def _note_damage(self, index: str, error: Exception | str) -> None:
        self.damaged[index] = str(error)
        log.warning("%s", error)

    @property
    def keyword(self) -> KeywordLeg:
        """The BM25 index; raises IndexDamaged while it cannot be read (and, on a Qdrant
        server, the dense index's errors: both legs live in its collection)."""
        if self.on_server and self._keyword is None:
            self._keyword = self._open_server_keyword(self.dense)
        if self._keyword is None or "keyword" in self.damaged:
            raise IndexDamaged(_way_out("keyword", self.damaged.get("keyword")))
        return self._keyword

    @property
    def dense(self) -> DenseIndex:
        """The dense index; raises IndexMismatch while it was built by another model,
        IndexDamaged while it cannot be read, IndexBusy while another process writes it."""
        self._try_dense(READER_WAIT_S)
        if "dense" in self.damaged:
            raise IndexDamaged(_way_out("dense", self.damaged["dense"]))
        if self._dense is None:
            raise IndexMismatch(self.stale or "the dense index is not open")
        return self._dense

    def _open_server_keyword(self, dense: DenseIndex) -> "ServerKeywordIndex":
        """The keyword leg in the dense index's collection (damage noted: terms weighed
        another way)."""
        from retrieval.dense_server import ClientDenseIndex
        from retrieval.keyword_server import ServerKeywordIndex

        assert isinstance(dense, ClientDenseIndex)
        leg = ServerKeywordIndex(dense)
        try:
            leg.check_weighting()
        except IndexDamaged as error:
            self._note_damage("keyword", error)
        return leg

    def unusable_legs(self) -> dict[str, str]:
        """The search legs whose index cannot be used now ("bm25", "dense"), each with what is
        wrong and how to rebuild it. Raises IndexBusy while another process writes the dense
        index."""
        unusable = {}
        for leg, index in (("bm25", lambda: self.keyword), ("dense", lambda: self.dense)):
            try:
                index()
            except (IndexDamaged, IndexMismatch, IndexUnavailable) as error:
                unusable[leg] = str(error)
        return unusable

    def check(self, store: ChunkStore) -> None:
        """Mark as damaged an index whose size SQLite cannot explain, or that lacks chunks it
        should hold. Cheap (counts, and a few ids), so every open runs it: each queued
        operation explains at most one chunk of difference; beyond that, the index lost or
        gained chunks behind SQLite's back (a deleted folder, a restored backup)."""
        pending, chunks = store.pending_count(), store.chunk_count()
        sample = [] if pending else store.sample_chunk_ids(_SAMPLE)  # all indexed when none pending
        if not self.on_server:
            self._check_leg("keyword", self._keyword, chunks, pending, sample)
        try:
            self._try_dense(0)
        except IndexBusy:
            return  # written by another process now: it checks as it writes
        except IndexUnavailable:
            return  # a server that does not answer now: checked when it does, never rebuilt
        if self._dense is not None:
            self._check_leg("dense", self._dense, chunks, pending, sample)
            if self.on_server and "dense" not in self.damaged:
                if self._keyword is None:
                    self._keyword = self._open_server_keyword(self._dense)
                self._check_leg("keyword", self._keyword, chunks, pending, sample)

    def _check_leg(
        self, leg: str, index: Any, chunks: int, pending: int, sample: list[str]
    ) -> None:
        """Mark `leg` damaged if `index` holds more or fewer chunks than the queue explains, or
        lacks one of the `sample` chunks (a server that does not answer is checked later)."""
        if index is None or leg in self.damaged:
            return
        try:
            held = index.count()
            missing = len(sample) - len(index.present(sample))
        except IndexUnavailable:
            return
        except RetrievalError as error:
            self._note_damage(leg, error)
            return
        if abs(held - chunks) > pending:
            self._note_damage(leg, _disagrees(leg, held, chunks))
        elif missing:
            self._note_damage(leg, f"{missing} of {len(sample)} sampled chunks missing")

    def heal(self, store: ChunkStore) -> bool:
        """Rebuild from SQLite what is stale (another embedding model) or damaged: a dense
        index is recreated and every chunk queued to be embedded again; a keyword index alone
        is refilled straight from SQLite, with no embedding. Returns whether it rebuilt.
        Writers call it first: it opens the dense index, waiting for a reader to let go."""
        self._try_dense(WRITER_WAIT_S)
        if self.stale is None and not self.damaged:
            return False
        if self.stale is not None or "dense" in self.damaged:
            log.warning("%s — rebuilding the indexes", self.stale or self.damaged["dense"])
            self.rebuild(store)
            return True
        log.warning("%s — rebuilding it from SQLite", self.damaged["keyword"])
        self._refill_keyword(store)
        return True

    def _refill_keyword(self, store: ChunkStore) -> None:
        """Empty the keyword leg and index every chunk again from SQLite (on a Qdrant server,
        weighed with the average lengths of a sample of the chunks)."""
        self._recreate_keyword()
        leg = self.keyword
        if not isinstance(leg, KeywordIndex):
            leg.weigh_with(_sampled_lengths(store))
        refill_keyword(store, leg, cited=self.on_server)

    def record_writer(self, record: dict[str, Any]) -> None:
        """Name the writing Archivist in the collection on the Qdrant server (replica.py)."""
        from retrieval.dense_server import ClientDenseIndex

        dense = self.dense
        assert isinstance(dense, ClientDenseIndex)
        dense.record({WRITER: record})

    def reweigh(self, store: ChunkStore) -> bool:
        """On a Qdrant server, weigh the BM25 leg again from SQLite when its chunks' average
        lengths have moved by more than REWEIGH_DRIFT from those its weights use (the first
        chunks ingested are rarely typical: cisi's first 256 are 20% longer than the rest).
        Looked at when the store has grown or shrunk by a tenth since the last look (a sample
        of the chunks is read: 0.1-0.2 s). Every chunk's weights are overwritten in place, so
        searches meanwhile find every chunk. Returns whether it weighed again."""
        chunks = store.chunk_count()
        last = self._lengths_looked_at
        if not self.on_server or "keyword" in self.damaged or not chunks:
            return False
        if last is not None and abs(chunks - last) < last * REWEIGH_DRIFT:
            return False
        self._lengths_looked_at = chunks
        leg = self.keyword
        assert not isinstance(leg, KeywordIndex)
        used, now = leg.lengths(), _sampled_lengths(store)
        if used is not None and all(
            abs(n - u) <= u * REWEIGH_DRIFT for n, u in zip(now, used, strict=True)
        ):
            return False
        log.warning("the keyword leg was weighed with average lengths %s where the chunks' are "
                    "now %s — weighing it again from SQLite", used, now)  # fmt: skip
        leg.weigh_with(now)
        refill_keyword(store, leg, cited=True)
        return True

    def rebuild(self, store: ChunkStore) -> None:
        """Empty both indexes, without reading what they held, and queue every chunk again:
        `archivist reindex`, which works however damaged the indexes are."""
        if self._dense is not None:
            self._dense.close()
            self._dense = None
            if self.on_server:  # it searched the collection through the dense index
                self._keyword = None
        forget_passed(self._dense_checked)
        self._dense = self._open_dense(
            recreate=True, damaged="dense" in self.damaged, wait_s=WRITER_WAIT_S
        )
        self._dense_tried = True
        self.stale = None
        self.damaged.pop("dense", None)
        self._recreate_keyword()
        store.requeue_all()

    def _recreate_keyword(self) -> None:
        self.damaged.pop("keyword", None)
        if self.on_server:
            self.keyword.clear()
            return
        if self._keyword is not None:
            try:
                self._keyword.clear()
            except (RetrievalError, ValueError) as error:  # unreadable: start a new folder
                log.warning("%s", error)
                self._keyword.close()
                self._keyword = None
        if self._keyword is None:
            shutil.rmtree(self._keyword_path, ignore_errors=True)
            self._keyword = KeywordIndex(self._keyword_path)

    @property
    def sync_batch(self) -> int:
        """Chunks per sync batch: several model batches, so a GPU's large batches fill it."""
        return max(SYNC_BATCH, 4 * self._settings.embed_batch_for(self.device))

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use."""
        if self._embedder is None:
            self._embedder = shared_embedder(
                self.embedding_model,
                self.backend,
                self.device,
                self._settings.embed_batch_for(self.device),
                self._onnx_cache,
            )
            if self._settings.embed_compile == "on":
                self._embedder.compile_queries(self._compiled_cache)
        return self._embedder

    @property
    def question_path(self) -> str | None:
        """How questions are embedded once a compile was asked for (`compile_queries`):
        compiling, compiled, or uncompiled (the runtime has no compiled path, or compiling
        failed); None where none was asked for or the model is not loaded."""
        compiled = self._embedder.queries_compiled if self._embedder else None
        if compiled is None:
            return None
        if not compiled.done():
            return "compiling"
        return "compiled" if compiled.result() else "uncompiled"

    def load_embedder(self, stop: Callable[[], bool]) -> None:
        """Load the embedding model now, unless `stop()` turns true while its ONNX export (the
        first use of a models folder: seconds, or minutes on a busy machine) is under way; for
        the processes that stay up, which also compile its question path on a CPU
        (ARCHIVIST_EMBED_COMPILE=auto)."""
        path = self.embedding_model.path
        if self.backend in ("onnx", "onnx-int8") and path is not None:
            onnx_model_file(path, self.backend, self._onnx_cache, stop)
        if not stop():
            self.embedder.encode_query("warm up")
            if self._settings.embed_compile == "auto" and (self.backend, self.device) == (
                "torch", "cpu",
            ):  # fmt: skip
                self.embedder.compile_queries(self._compiled_cache)  # this process stays up

    @property
    def _onnx_cache(self) -> Path:
        return onnx_cache(self._settings)

    @property
    def _compiled_cache(self) -> Path:
        return self._settings.models / "compiled"

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
        """Release both indexes (and their locks); an embedded dense index closed sound is
        remembered as checked, so the next open need not probe it."""
        if self._keyword is not None:
            self._keyword.close()
            self._keyword = None
        if self._dense is not None:
            self._dense.close()
            self._dense = None
            if not self._settings.qdrant_url and "dense" not in self.damaged:
                remember_passed(self._dense_checked, shard_files(self._dense_path))
        if not self._settings.qdrant_url:
            unwant_shard(self._dense_path)

    def counts(self, store: ChunkStore, *, exact: bool = False) -> dict[str, Any]:
        """Chunk counts per store and whether the indexes agree with SQLite: the same counts,
        nothing queued and nothing found damaged (every open looks a few chunk ids up), or,
        `exact`, the very same chunk ids (loaded into memory: 12 s at a million chunks)."""
        pending = store.pending_count()
        busy = unavailable = None
        try:
            self._try_dense(READER_WAIT_S)
        except IndexBusy as error:
            busy = str(error)
        except IndexUnavailable as error:
            unavailable = str(error)
        chunks: Any = store.chunk_ids() if exact else store.chunk_count()
        keyword: Any = None
        dense: Any = None
        try:
            if self._dense is not None:
                dense = self._dense.ids() if exact else self._dense.count()
            if self._keyword is None and self.on_server and self._dense is not None:
                self._keyword = self._open_server_keyword(self._dense)
            leg = self._keyword
            if leg is not None:
                keyword = leg.chunk_ids() if exact else leg.count()
        except IndexDamaged as error:
            self._note_damage("dense", error)
        except IndexUnavailable as error:
            unavailable = str(error)

        def size(held: Any) -> int | None:  # ids (exact) or a count; None: not open
            return len(held) if exact and held is not None else held

        counts: dict[str, Any] = {
            "sqlite": size(chunks),
            "qdrant_bm25" if self.on_server else "tantivy": size(keyword),
            "qdrant": size(dense),
            "pending": pending,
            "in_sync": pending == 0 and chunks == keyword == dense and not self.damaged,
        }
        if self.stale is not None:
            counts["stale"] = self.stale
        if self.damaged:
            counts["damaged"] = dict(self.damaged)
        if busy is not None:
            counts["busy"] = busy
        if unavailable is not None:
            counts["unavailable"] = unavailable
        return counts


_SAMPLE = 8  # chunk ids looked up in the dense index at every open
_LENGTH_SAMPLE = 1000  # chunks whose average lengths stand for all (the mean within ~1.5%)
REWEIGH_DRIFT = 0.1
# How long to wait for another process to let go of the embedded dense index: a reader
# waits out a search or a writer's batch hand-off, a writer waits out readers.
READER_WAIT_S = 2.0
WRITER_WAIT_S = 60.0
_RETRY_S = 0.05


def _disagrees(index: str, held: int, chunks: int) -> str:
    return f"the {index} index holds {held} chunks where SQLite has {chunks}"


def _way_out(index: str, problem: str | None) -> str:
    return (
        f"the {index} index cannot be used ({problem or 'not open'}) — `archivist reindex` "
        "rebuilds it from SQLite (so do `archivist ingest` and `archivist serve`, on their own)"
    )


def _sampled_lengths(store: ChunkStore) -> tuple[float, float]:
    """The average body and title lengths of a random sample of the stored chunks."""
    from retrieval.keyword_server import average_lengths

    return average_lengths(keyword_docs(store.chunks(store.sample_chunk_ids(_LENGTH_SAMPLE))))


def refill_keyword(store: ChunkStore, keyword: KeywordLeg, *, cited: bool = False) -> None:
    """Index every chunk SQLite holds in the keyword index, straight from SQLite (BM25 needs no
    embedding: a lost keyword index is back in seconds where re-embedding takes hours); with
    `cited` (the leg on a Qdrant server), with what a replica cites them by, a batch a request."""
    ids = sorted(store.chunk_ids())
    for start in range(0, len(ids), SYNC_BATCH * 4):
        chunks = store.chunks(ids[start : start + SYNC_BATCH * 4])
        keyword.upsert(keyword_docs(chunks, store if cited else None))
        if cited:
            keyword.commit()
    keyword.commit()


def chunk_context(chunk: StoredChunk) -> str:
    """Where a chunk sits: "Title (file name) > Section > first words of its page" (the page's
    words left out of the page's first chunk, which starts with them)."""
    return " > ".join(_context(chunk))


def keyword_docs(chunks: list[StoredChunk], store: ChunkStore | None = None) -> list[KeywordDoc]:
    """What the keyword index holds of these chunks: each led by where it sits; with the
    `store` (the keyword leg on a Qdrant server), also what a replica cites it by."""
    if store is None:
        return [KeywordDoc(c.id, chunk_context(c), c.text) for c in chunks]
    records = store.ingested_with_contents({c.sha256 for c in chunks})
    return [KeywordDoc(c.id, chunk_context(c), c.text, chunk_payload(c, records.get(c.sha256, [])))
            for c in chunks]  # fmt: skip


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
    filling: Callable[[], bool] | None = None,
) -> SyncReport:
    """Drain the queue into both indexes; work is marked done only after both committed.

    Every step is idempotent (an upsert replaces, a delete of a missing id is a no-op), so a
    sync cut short at any point is finished by the next one. `on_progress(done, total)`
    reports chunks handled; `max_batches` stops early (used to test interruption), and so does
    `stop()` returning True (checked between model batches: a server shutting down).
    While `filling()` returns True (files are still being converted into the queue), the sync
    takes only full batches and waits for more rather than ending when the queue runs dry.

    Three things overlap, so that a GPU never waits: a batch is embedded on the embedder's
    thread while the next one is read from SQLite here, and written to the indexes on a
    thread of its own (`_IndexWriter`) while the next one is embedded. On an H100, writing in
    turn with embedding held the pipeline to 0.46 of the raw model's throughput. Batches are
    written in queue order, so later operations on a chunk still win.
    `optimize` builds the dense index's HNSW graph afterwards: instant below ~20k chunks, but
    it holds the interpreter while it runs, so a long-running server should defer it.
    """
    batch_size = batch_size or indexes.sync_batch
    total, done = store.pending_count(), 0
    upserted = deleted = batches = 0

    def read(after: int, *, wait: bool = True) -> _Batch | None:
        """The next batch of work queued after `after`, or None: the queue is done (or
        `stop()`), or, while `filling()`, holds less than a batch — waited for unless not to
        `wait` (a look-ahead must not hold back the batch before it)."""
        while not (stop and stop()):
            more_coming = filling is not None and filling()  # asked first: then the queue
            work = store.pending_work(limit=batch_size, after=after)
            if more_coming and len(work) < batch_size:
                if not wait:
                    return None
                time.sleep(_FILL_POLL_S)
                continue
            return _Batch.of(store, work) if work else None
        return None

    with _IndexWriter(store, indexes) as writer:
        batch = read(after=0)
        while batch is not None and (max_batches is None or batches < max_batches):
            embedding = _Embedding(indexes.embedder, batch.chunks) if batch.chunks else None
            seq = batch.work[-1].seq
            following = read(after=seq, wait=False)  # from SQLite while the model works
            vectors = embedding.vectors(stop) if embedding else None
            if embedding and vectors is None:
                break  # stopped mid-batch: nothing of it was written, it stays queued
            writer.write(batch.work, batch.chunks, vectors, batch.gone)  # after the last write
            upserted, deleted = upserted + len(batch.chunks), deleted + len(batch.gone)
            batches, done = batches + 1, done + len(batch.work)
            if filling is not None:
                total = done + store.pending_count(after=seq)
            if on_progress:
                on_progress(done, total)
            batch = following or read(after=seq)
    if batches and optimize:
        indexes.dense.optimize()
    return SyncReport(upserted, deleted)


@dataclass(frozen=True)
class _Batch:
    """Queued operations, the chunks to upsert (as stored now) and the ids to delete."""

    work: list[Any]
    chunks: list[StoredChunk]
    gone: list[str]

    @classmethod
    def of(cls, store: ChunkStore, work: list[Any]) -> "_Batch":
        latest = {item.chunk_id: item.op for item in work}  # later operations win
        chunks = store.chunks([cid for cid, op in latest.items() if op == "upsert"])
        stored = {c.id for c in chunks}
        return cls(work, chunks, [cid for cid in latest if cid not in stored])


class _Embedding:
    """Chunks' vectors being computed on the embedder's thread, a model batch at a time.
    Texts go to the model longest first, so each model batch holds texts of similar length
    and little padding, as if the whole batch were encoded in one call."""

    def __init__(self, embedder: Embedder, chunks: list[StoredChunk]) -> None:
        texts = [embedding_text(c) for c in chunks]
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        size = embedder.batch_size
        self._rows = np.empty((len(texts), embedder.dimension), dtype=np.float32)
        self._parts = [
            (picked, embedder.submit([texts[i] for i in picked]))
            for picked in (order[n : n + size] for n in range(0, len(order), size))
        ]

    def vectors(self, stop: Callable[[], bool] | None) -> Any:
        """The vectors, in the chunks' order; None if `stop()` turned True between model
        batches (those not started yet are cancelled)."""
        for picked, part in self._parts:
            if stop and stop():
                for _, pending in self._parts:
                    pending.cancel()
                return None
            self._rows[picked] = part.result()
        return self._rows


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
        if self._store is None:
            self._store = ChunkStore(self._store_path)
        if chunks:
            indexes.dense.upsert([c.id for c in chunks], vectors)
            cited = self._store if indexes.on_server else None  # (a replica reads it there)
            indexes.keyword.upsert(keyword_docs(chunks, cited))
        if gone:
            indexes.dense.delete(gone)
            indexes.keyword.delete(gone)
        indexes.dense.flush()
        indexes.keyword.commit()
        self._store.complete_work(item.seq for item in work)

    def _close(self) -> None:
        if self._store is not None:
            self._store.close()
