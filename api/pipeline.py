"""Wiring: builds the store, converters and (later) indexes from settings, for the CLI and API."""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from api.indexes import Indexes, SyncReport, rebuild_indexes, sync_indexes
from api.settings import Settings
from ingest.chunker import ChunkOptions
from ingest.convert import Limits
from ingest.ingester import FileResult, IngestReport, ingest_paths
from ingest.store import ChunkStore
from ingest.workers import ConversionPool
from retrieval.embedder import max_sequence_tokens, tokenizer_file
from retrieval.errors import RetrievalError


class ConfigError(Exception):
    """Settings that cannot work together; the message says which to change."""


def open_store(settings: Settings) -> ChunkStore:
    """The SQLite store under the data folder."""
    return ChunkStore(settings.database)


def chunk_options(settings: Settings) -> ChunkOptions:
    """Chunk sizes from settings, checked against the embedding model's input limit."""
    limit = max_sequence_tokens(settings.embed_model) - 2  # room for [CLS] and [SEP]
    if settings.chunk_max_tokens > limit:
        raise ConfigError(
            f"ARCHIVIST_CHUNK_MAX_TOKENS={settings.chunk_max_tokens} is over what "
            f"{settings.embed_model} reads ({limit} tokens) — lower it"
        )
    if not 0 <= settings.chunk_overlap_tokens < settings.chunk_tokens <= settings.chunk_max_tokens:
        raise ConfigError(
            "chunk sizes must satisfy 0 <= ARCHIVIST_CHUNK_OVERLAP_TOKENS < "
            "ARCHIVIST_CHUNK_TOKENS <= ARCHIVIST_CHUNK_MAX_TOKENS"
        )
    return ChunkOptions(
        settings.chunk_tokens, settings.chunk_max_tokens, settings.chunk_overlap_tokens
    )


def conversion_pool(settings: Settings) -> ConversionPool:
    """Worker processes that convert and chunk files within the configured limits."""
    limits = Limits(
        timeout_s=settings.convert_timeout_s,
        memory_mb=settings.convert_memory_mb,
        max_file_mb=settings.max_file_mb,
        max_expand_mb=settings.max_expand_mb,
    )
    return ConversionPool(
        tokenizer_file(settings.embed_model),
        chunk_options(settings),
        limits,
        workers=settings.workers,
    )


def ingest(
    settings: Settings,
    paths: Sequence[Path],
    *,
    force: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> IngestReport:
    """Ingest files and folders into the store (the one ingestion path)."""
    store = open_store(settings)
    try:
        return ingest_paths(
            store, conversion_pool(settings), paths, force=force, on_start=on_start, on_file=on_file
        )
    finally:
        store.close()


def open_indexes(settings: Settings, store: ChunkStore) -> Indexes:
    """The keyword and dense indexes (rebuilt when the embedding model changed)."""
    return Indexes(settings, store)


@contextmanager
def opened(settings: Settings) -> Iterator[tuple[ChunkStore, Indexes]]:
    """The store and both indexes, closed again on exit."""
    store = open_store(settings)
    try:
        indexes = open_indexes(settings, store)
        try:
            yield store, indexes
        finally:
            indexes.close()
    finally:
        store.close()


def sync(
    settings: Settings, *, on_progress: Callable[[int, int], None] | None = None
) -> SyncReport:
    """Bring both indexes in line with SQLite by draining the index queue."""
    with opened(settings) as (store, indexes):
        return sync_indexes(store, indexes, on_progress=on_progress)


def rebuild(settings: Settings) -> None:
    """Empty both indexes and queue every chunk again (the next sync refills them)."""
    with opened(settings) as (store, indexes):
        rebuild_indexes(store, indexes)


def status(settings: Settings) -> dict[str, Any]:
    """What the store holds, plus each store's chunk count and whether they agree."""
    try:
        with opened(settings) as (store, indexes):
            return {**store.summary(), "stores": indexes.counts(store)}
    except RetrievalError as error:  # e.g. the dense index is open in another process
        store = open_store(settings)
        try:
            return {**store.summary(), "stores": {"error": str(error)}}
        finally:
            store.close()
