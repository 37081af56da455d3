"""The one Archivist service: every interface (CLI, HTTP, watcher, batch) goes through it.

Made once per process from `Settings`, it owns the SQLite store, both indexes, the embedder,
the conversion workers and the LLM backend. It is safe to share between threads: each thread
gets its own SQLite connection, writes (ingest, sync, reindex) take one lock, the embedder
runs on its own thread, and answers go through a bounded generation queue.
"""

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from api.answer_eval import run_answer_eval
from api.answers import Answer, AskOptions, answer_question
from api.errors import BadRequest, ConfigError
from api.evaluation import Dataset, run_eval
from api.indexes import Indexes, SyncReport, rebuild_indexes, sync_indexes
from api.llm import LLM
from api.page_evaluation import PageDataset, run_page_eval
from api.search import Filters, Mode, SearchHit, search
from api.sessions import SessionStore
from api.settings import Settings
from generation.backend import Backend
from ingest.chunker import ChunkOptions
from ingest.convert import Limits
from ingest.ingester import FileResult, IngestReport, ingest_paths
from ingest.store import ChunkStore
from ingest.workers import ConversionPool
from retrieval.embedder import max_sequence_tokens, tokenizer_file
from retrieval.errors import RetrievalError

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class IngestOutcome:
    """What `ingest` did: each file's result, and the index work done afterwards (if any)."""

    report: IngestReport
    index: SyncReport | None


class Archivist:
    """Documents in, cited answers out: the stores, models and workers of one data folder."""

    def __init__(self, settings: Settings, *, backend: Backend | None = None) -> None:
        """Open lazily what `settings` names; `backend`, if given, answers every question."""
        self.settings = settings
        self._check_settings()
        self._local = threading.local()
        self._stores: list[ChunkStore] = []
        self._lock = threading.Lock()  # guards lazy opening below
        # Files are converted into SQLite under one lock and the indexes are written under
        # another, so a long import becomes searchable as it goes (the indexes catch up
        # while later files convert).
        self._converting = threading.Lock()
        self._writing = threading.RLock()  # one index writer at a time: sync, reindex
        self._interrupted = threading.Event()
        self._indexes: Indexes | None = None
        self._pool: ConversionPool | None = None
        self._sessions: SessionStore | None = None
        self.llm = LLM(settings, backend)

    def __enter__(self) -> "Archivist":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def interrupt(self) -> None:
        """Make ingestion and index upkeep stop at the next file or batch (before `close`, so
        a server shuts down in seconds during a large import). Nothing is lost: the next
        ingest or sync carries on where they stopped."""
        self._interrupted.set()

    def close(self) -> None:
        """Release the model, the indexes (and their locks) and every database connection."""
        self.llm.close()
        if self._indexes is not None:
            self._indexes.close()
            self._indexes = None
        if self._sessions is not None:
            self._sessions.close()
        with self._lock:
            for store in self._stores:
                store.close()
            self._stores.clear()

    # The parts, opened on first use

    @property
    def store(self) -> ChunkStore:
        """This thread's connection to the SQLite store."""
        store: ChunkStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = ChunkStore(self.settings.database)
            with self._lock:
                self._stores.append(store)
        return store

    @property
    def indexes(self) -> Indexes:
        """Both search indexes (opening the embedded one takes its lock for this process)."""
        with self._lock:
            if self._indexes is None:
                self._indexes = Indexes(self.settings)
            return self._indexes

    @property
    def sessions(self) -> SessionStore:
        """Conversations, by session id."""
        with self._lock:
            if self._sessions is None:
                self._sessions = SessionStore(self.settings.sessions_database)
            return self._sessions

    @property
    def pool(self) -> ConversionPool:
        """The worker processes that convert and chunk files."""
        with self._lock:
            if self._pool is None:
                self._pool = ConversionPool(
                    tokenizer_file(self.settings.embed_model),
                    self._chunk_options(),
                    self._limits(),
                    workers=self.settings.workers,
                )
            return self._pool

    # Operations

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        force: bool = False,
        index: bool = True,
        optimize: bool = True,
        on_start: Callable[[int], None] | None = None,
        on_file: Callable[[FileResult], None] | None = None,
        on_progress: Progress | None = None,
        within: Sequence[Path] | None = None,
    ) -> IngestOutcome:
        """Bring the store in line with files and folders, then both indexes with the store
        (symbolic links followed only into `within`: see `ingest_paths`)."""
        with self._converting:
            report = ingest_paths(
                self.store, self.pool, paths, force=force, on_start=on_start, on_file=on_file,
                stop=self._interrupted.is_set, within=within,
            )  # fmt: skip
        synced = self.sync(on_progress=on_progress, optimize=optimize) if index else None
        return IngestOutcome(report, synced)

    def remove(self, paths: Sequence[Path], *, optimize: bool = True) -> list[str]:
        """Forget these files (or every file under these folders) in every store."""
        removed = []
        with self._converting:
            for path in (p.resolve() for p in paths):
                single = self.store.document(str(path))
                records = [single] if single else self.store.documents(under=str(path))
                for record in records:
                    self.store.remove(record.path)
                    removed.append(record.path)
        self.sync(optimize=optimize)
        return removed

    def sync(self, *, on_progress: Progress | None = None, optimize: bool = True) -> SyncReport:
        """Drain the index queue into both indexes (rebuilding first after a model change)."""
        with self._writing:
            self.indexes.adopt_model(self.store)
            return sync_indexes(
                self.store, self.indexes, on_progress=on_progress, optimize=optimize,
                stop=self._interrupted.is_set,
            )  # fmt: skip

    def reindex(self, *, on_progress: Progress | None = None) -> SyncReport:
        """Rebuild both indexes from SQLite alone."""
        with self._converting, self._writing:
            self.indexes.adopt_model(self.store)
            rebuild_indexes(self.store, self.indexes)
            return self.sync(on_progress=on_progress)

    def search(
        self, query: str, *, k: int, mode: Mode = "hybrid", filters: Filters | None = None
    ) -> list[SearchHit]:
        """The `k` best passages for a query, with file, page and section."""
        indexes = self.indexes
        return search(
            self.store, indexes, self.settings, query, k=k, mode=mode, filters=filters,
            reranker=indexes.reranker,
        )  # fmt: skip

    def ask(
        self,
        question: str,
        options: AskOptions | None = None,
        *,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer a question from the documents, citing file and page; streams to `on_token`."""
        return answer_question(self, question, options or AskOptions(), on_token=on_token)

    def evaluate(
        self,
        dataset: Dataset | PageDataset,
        *,
        modes: Sequence[Mode],
        answers: bool = False,
        on_stage: Callable[[str], None] | None = None,
        on_answer: Progress | None = None,
    ) -> dict[str, Any]:
        """Ingest a dataset into this (scratch) data folder; score search, and answers if asked
        (BEIR sets score documents; page-level sets score files and evidence pages)."""
        if isinstance(dataset, PageDataset):
            if answers:
                raise BadRequest(f"{dataset.name}: answers are scored on BEIR sets only")
            return run_page_eval(self, dataset, modes=modes, on_stage=on_stage)
        report = run_eval(self, dataset, modes=modes, on_stage=on_stage)
        if answers:
            report["answers"] = run_answer_eval(self, dataset, on_answer=on_answer)
        return report

    def status(self) -> dict[str, Any]:
        """What the store holds and whether the indexes agree with it. Never writes."""
        summary = self.store.summary()
        try:
            stores = self.indexes.counts(self.store)
        except RetrievalError as error:  # e.g. the dense index is open in another process
            stores = {"error": str(error)}
        return {**summary, "stores": stores, "llm": self.llm.describe()}

    # Settings checked before anything runs

    def _check_settings(self) -> None:
        self._chunk_options()

    def _chunk_options(self) -> ChunkOptions:
        """Chunk sizes, checked against the embedding model's input limit."""
        settings = self.settings
        limit = max_sequence_tokens(settings.embed_model) - 2  # room for [CLS] and [SEP]
        if settings.chunk_max_tokens > limit:
            raise ConfigError(
                f"ARCHIVIST_CHUNK_MAX_TOKENS={settings.chunk_max_tokens} is over what "
                f"{settings.embed_model} reads ({limit} tokens) — lower it"
            )
        if (
            not 0
            <= settings.chunk_overlap_tokens
            < settings.chunk_tokens
            <= settings.chunk_max_tokens
        ):
            raise ConfigError(
                "chunk sizes must satisfy 0 <= ARCHIVIST_CHUNK_OVERLAP_TOKENS < "
                "ARCHIVIST_CHUNK_TOKENS <= ARCHIVIST_CHUNK_MAX_TOKENS"
            )
        return ChunkOptions(
            settings.chunk_tokens, settings.chunk_max_tokens, settings.chunk_overlap_tokens
        )

    def _limits(self) -> Limits:
        settings = self.settings
        return Limits(
            timeout_s=settings.convert_timeout_s,
            memory_mb=settings.convert_memory_mb,
            max_file_mb=settings.max_file_mb,
            max_expand_mb=settings.max_expand_mb,
        )
