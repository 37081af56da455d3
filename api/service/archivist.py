"""The one Archivist service: every interface (CLI, HTTP, watcher, batch) goes through it.

Made once per process from `Settings`, it owns the SQLite store, both indexes, the embedder,
the conversion workers and the LLM backend. It is safe to share between threads: each thread
gets its own SQLite connection, writes (ingest, sync, reindex) take one lock, the embedder
runs on its own thread, and answers go through a bounded generation queue.
"""

import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from api.service.answers import Answer, AskOptions, answer_question
from api.service.errors import BadRequest, ConfigError
from api.service.health import passed_before, remember_passed
from api.service.indexes import Indexes, SyncReport, sync_indexes
from api.service.llm import LLM
from api.service.models import embedding_model
from api.service.replica import ReplicaStore, writer_record
from api.service.search import Filters, Mode, SearchHits, search_passages
from api.service.sessions import SessionStore
from api.service.settings import Settings
from generation.backend import Backend
from ingest.chunker import ChunkOptions
from ingest.convert import Limits
from ingest.errors import ReadOnly
from ingest.ingester import FileResult, IngestReport, ingest_paths
from ingest.ocr import missing_ocr_data
from ingest.store import ChunkStore, store_damaged
from ingest.workers import MAIN_GUARD_HINT, ConversionPool, starting_a_worker
from retrieval.errors import RetrievalError

_SURROGATE = re.compile("[\ud800-\udfff]")

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class IngestOutcome:
    """What `ingest` did: each file's result, and the index work done afterwards (if any:
    `index_error` says why indexing could not run; the files are stored and stay queued)."""

    report: IngestReport
    index: SyncReport | None
    index_error: RetrievalError | None = None


class Archivist:
    """Documents in, cited answers out: the stores, models and workers of one data folder."""

    def __init__(self, settings: Settings, *, backend: Backend | None = None) -> None:
        """Open lazily what `settings` names; `backend`, if given, answers every question."""
        if starting_a_worker():  # the script's top level, run again by a conversion worker
            raise ConfigError(f"Archivist was started by a conversion worker: {MAIN_GUARD_HINT}")
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
        self._store_checked = False
        self._scratch: tempfile.TemporaryDirectory[str] | None = None  # see _writable_state
        self._pool: ConversionPool | None = None
        self._sessions: SessionStore | None = None
        self._replica: ReplicaStore | None = None
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
            if self._stores and self._store_checked and not self._stores[0].read_only:
                remember_passed(self._store_marker, *_database_files(self.settings))
            self._stores.clear()
        if self._scratch is not None:  # after the indexes and sessions opened from it
            self._scratch.cleanup()
            self._scratch = None

    # The parts, opened on first use

    @property
    def store(self) -> ChunkStore:
        """This thread's connection to the SQLite store (on a replica, the collection's
        payloads, read as the store is: replica.py)."""
        if self.settings.replica:
            return cast(ChunkStore, self._replica_store())
        store: ChunkStore | None = getattr(self._local, "store", None)
        if store is None:
            # Looked at before connecting: a connection creates the write-ahead log file.
            files = _database_files(self.settings)
            unchanged = not self._store_checked and passed_before(self._store_marker, *files)
            store = ChunkStore(self.settings.database)
            with self._lock:
                self._stores.append(store)
                if not self._store_checked:
                    self._check_store(store, unchanged)
            self._local.store = store
        return store

    def _replica_store(self) -> ReplicaStore:
        with self._lock:
            if self._replica is None:
                self._replica = ReplicaStore(self.settings, lambda: self.indexes.dense)
            return self._replica

    def _check_store(self, store: ChunkStore, unchanged: bool) -> None:
        """SQLite's quick_check on the first connection, unless the file is `unchanged` since
        the last sound close or check (health.py): a corrupt database is never written to."""
        if not unchanged:
            if problems := store.problems():
                raise store_damaged(self.settings.database, problems)
            if not store.read_only:
                remember_passed(self._store_marker, *_database_files(self.settings))
        self._store_checked = True

    @property
    def _store_marker(self) -> Path:
        return self.settings.database.with_name(self.settings.database.name + ".checked")

    @property
    def indexes(self) -> Indexes:
        """Both search indexes (opening the embedded one takes its lock for this process)."""
        read_only = self.store.read_only  # asked first: opening the store takes the lock too
        with self._lock:
            if self._indexes is None:
                indexes = Indexes(self._writable_state(read_only))
                try:
                    if not self.settings.replica:  # (the writer checks its collection)
                        indexes.check(self.store)
                except BaseException:
                    indexes.close()
                    raise
                self._indexes = indexes
            return self._indexes

    def _writable_state(self, read_only: bool) -> Settings:
        """The settings to open the indexes and sessions with. Those of a read-only data folder
        are copied to a scratch folder first (removed on `close`): Tantivy and Qdrant's engine
        write lock files even to search, and answers record their session. The copy costs a
        few seconds per GB of index; nothing written to it is kept. Call with the lock held."""
        if not read_only:
            return self.settings
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="archivist-read-only-")
            state, scratch = self.settings.state_dir, Path(self._scratch.name) / "state"
            try:
                scratch.mkdir()
                for name in ("keyword", "dense"):
                    if (state / name).is_dir():
                        _copy_writable(state / name, scratch / name)
                for file in state.glob(self.settings.sessions_database.name + "*"):
                    shutil.copyfile(file, scratch / file.name)
                if self.settings.data_models.is_dir():  # an older folder's own models, read
                    (scratch.parent / "models").symlink_to(self.settings.data_models.resolve())
            except OSError as error:
                raise ReadOnly(
                    f"the data folder {self.settings.data} is read-only, and its indexes could "
                    f"not be copied to {scratch} to search them ({error}) — make it writable"
                ) from None
        data = Path(self._scratch.name)
        return self.settings.model_copy(update={"data": data})

    def check_writable(self, doing: str) -> None:
        """Refuse `doing` (e.g. "ingesting") where it cannot be done: on a replica, naming the
        Archivist that writes its collection, or in a read-only data folder."""
        if self.settings.replica:
            raise self._replica_store().refusal(doing)
        if self.store.read_only:
            data = self.settings.data
            raise ReadOnly(
                f"the data folder {data} is read-only, and {doing} writes to it — make it "
                f"writable (e.g. chmod -R u+w {data}) or set ARCHIVIST_DATA to a writable folder; "
                "status and search work without writing"
            )

    @property
    def sessions(self) -> SessionStore:
        """Conversations, by session id."""
        read_only = self.store.read_only
        with self._lock:
            if self._sessions is None:
                self._sessions = SessionStore(self._writable_state(read_only).sessions_database)
            return self._sessions

    @property
    def pool(self) -> ConversionPool:
        """The worker processes that convert and chunk files."""
        with self._lock:
            if self._pool is None:
                self._pool = ConversionPool(
                    embedding_model(self.settings).tokenizer,
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
        on_page: Callable[[str, int, int], None] | None = None,
        on_progress: Progress | None = None,
        within: Sequence[Path] | None = None,
    ) -> IngestOutcome:
        """Bring the store in line with files and folders, then both indexes with the store
        (symbolic links followed only into `within`, and `on_page` for long files: see
        `ingest_paths`)."""
        self.check_writable("ingesting")
        converting, abandoned = threading.Event(), threading.Event()
        converting.set()
        with ThreadPoolExecutor(1, thread_name_prefix="indexing") as indexing:
            # The conversion lock is taken before the indexing thread takes the writing one,
            # in the order `reindex` takes them.
            with self._converting:
                # Indexing runs beside the conversion, taking chunks as files are recorded: on
                # a GPU the two in turn left the card idle while the cores converted.
                synced = (
                    indexing.submit(self._sync, on_progress, optimize, converting.is_set,
                                    abandoned.is_set)
                    if index else None
                )  # fmt: skip
                try:
                    report = ingest_paths(
                        self.store, self.pool, paths, force=force, on_start=on_start,
                        on_file=on_file, on_page=on_page, stop=self._interrupted.is_set,
                        within=within,
                    )  # fmt: skip
                except BaseException:  # Ctrl+C, a damaged store: the queue waits for next time
                    abandoned.set()
                    raise
                finally:
                    converting.clear()
            if synced is None:
                return IngestOutcome(report, None)
            try:
                return IngestOutcome(report, synced.result())
            except RetrievalError as error:  # e.g. the index stayed busy: nothing converted is lost
                return IngestOutcome(report, None, error)

    def remove(self, paths: Sequence[Path], *, optimize: bool = True) -> list[str]:
        """Forget these files (or every file under these folders) in every store."""
        self.check_writable("removing documents")
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
        return self._sync(on_progress, optimize)

    def _sync(
        self,
        on_progress: Progress | None,
        optimize: bool,
        filling: Callable[[], bool] | None = None,
        abandoned: Callable[[], bool] | None = None,
    ) -> SyncReport:
        """`sync`, waiting for more work while `filling()` and stopping once `abandoned()`."""
        self.check_writable("indexing")
        interrupted = self._interrupted.is_set
        with self._writing:
            self.indexes.heal(self.store)
            report = sync_indexes(
                self.store, self.indexes, on_progress=on_progress, optimize=optimize,
                stop=(lambda: interrupted() or abandoned()) if abandoned else interrupted,
                filling=filling,
            )  # fmt: skip
            if self.indexes.on_server:  # replicas name the writer, and count its documents
                if not interrupted():
                    self.indexes.reweigh(self.store)
                documents = self.store.document_counts()["ingested"]
                self.indexes.record_writer(writer_record(self.settings, documents))
            return report

    def reindex(self, *, on_progress: Progress | None = None) -> SyncReport:
        """Rebuild both indexes from SQLite alone."""
        self.check_writable("reindexing")
        with self._converting, self._writing:
            self.indexes.rebuild(self.store)
            return self.sync(on_progress=on_progress)

    def search(
        self,
        query: str,
        *,
        k: int,
        mode: Mode = "hybrid",
        filters: Filters | None = None,
        one_per_page: bool = True,
    ) -> SearchHits:
        """The `k` best passages for a query, with file, page and section (and the legs a
        hybrid search went without: SearchHits); `one_per_page`: a page's best chunk only."""
        query = encodable(query)
        if not query.strip():
            # Refused rather than searched: the dense leg would rank every chunk against the
            # embedding of nothing and return arbitrary passages as if they matched.
            raise BadRequest(
                'the search query is empty — say what to look for, e.g. "how often is the '
                'lens cleaned"'
            )
        indexes = self.indexes
        return search_passages(
            self.store, indexes, self.settings, query, k=k, mode=mode, filters=filters,
            reranker=indexes.reranker, one_per_page=one_per_page,
        )  # fmt: skip

    def ask(
        self,
        question: str,
        options: AskOptions | None = None,
        *,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        """Answer a question from the documents, citing file and page; streams to `on_token`."""
        question = encodable(question)
        return answer_question(self, question, options or AskOptions(), on_token=on_token)

    def status(self, *, deep: bool = False) -> dict[str, Any]:
        """What the store holds and whether the indexes agree with it (`deep`: chunk by chunk,
        and SQLite's full integrity check, 0.4 s per 100k chunks). Never writes."""
        summary = self.store.summary()
        if deep:
            problems = self.store.problems(thorough=True)
            summary["database"] = {"sound": not problems, "problems": problems}
        try:
            stores = self.indexes.counts(self.store, exact=deep)
        except RetrievalError as error:  # e.g. the dense index is open in another process
            stores = {"error": str(error)}
        if self.settings.replica:  # the collection is all there is: no SQLite to agree with
            stores.pop("sqlite", None)
        models = str(self.settings.models)
        ocr = self._ocr()
        summary["ocr"]["reads"] = self.settings.ocr_languages if ocr == "on" else ocr
        indexes = self.indexes
        embedder = {"model": indexes.model, "backend": indexes.backend, "device": indexes.device}
        if indexes.question_path:
            embedder["questions"] = indexes.question_path
        fusion = {"method": self.settings.fusion_method, "weights": self.settings.fusion_weights}
        return {
            **summary, "stores": stores, "embedder": embedder, "fusion": fusion,
            "llm": self.llm.describe(), "models": models,
        }  # fmt: skip

    # Settings checked before anything runs

    def _check_settings(self) -> None:
        self._chunk_options()
        settings = self.settings
        if settings.keyword == "qdrant" and not settings.qdrant_url:
            raise ConfigError(
                "ARCHIVIST_KEYWORD=qdrant keeps the BM25 leg on a Qdrant server, and "
                "ARCHIVIST_QDRANT_URL is not set — set it, or unset ARCHIVIST_KEYWORD (tantivy)"
            )
        if settings.replica and not (settings.qdrant_url and settings.keyword == "qdrant"):
            raise ConfigError(
                "ARCHIVIST_REPLICA=true answers from a collection another Archivist writes on a "
                "Qdrant server, with both search legs there — set ARCHIVIST_QDRANT_URL and "
                "ARCHIVIST_KEYWORD=qdrant (as the writer has them), or unset ARCHIVIST_REPLICA"
            )

    def _chunk_options(self) -> ChunkOptions:
        """Chunk sizes, checked against the embedding model's input limit."""
        settings = self.settings
        model = embedding_model(settings)
        limit = model.text_tokens  # what the model reads of a document after its prefix
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
            ocr_languages=settings.ocr_languages if self._ocr() == "on" else None,
        )

    def _ocr(self) -> str:
        """Whether scans are read: "on", or "off: " and why not."""
        if self.settings.ocr == "off":
            return "off: ARCHIVIST_OCR=off"
        missing = missing_ocr_data(self.settings.ocr_languages)
        if missing:
            packages = " ".join(missing)
            return f"off: Tesseract's data is not installed (make ocr; apt install {packages})"
        return "on"


def encodable(text: str) -> str:
    """The text with any lone surrogate as U+FFFD: bytes a command line could not decode
    (Python keeps them as surrogates) and "\\ud800" escapes in a JSON file made the
    tokenizers raise mid-search. The HTTP API refuses such text before it gets here."""
    return _SURROGATE.sub("\ufffd", text)


def _database_files(settings: Settings) -> tuple[Path, Path]:
    return settings.database, settings.database.with_name(settings.database.name + "-wal")


def _copy_writable(source: Path, target: Path) -> None:
    """Copy a folder tree that this process may write to (copytree would carry over the
    read-only modes of the folders)."""
    shutil.copytree(source, target, copy_function=shutil.copyfile)
    for folder, _, _ in os.walk(target):
        os.chmod(folder, 0o700)
