"""Converting files to text, chunking, and the SQLite store of documents and chunks."""

from ingest.chunker import Chunk, ChunkOptions, TokenCounter, split_blocks
from ingest.convert import SUPPORTED_SUFFIXES, Limits, convert_file
from ingest.database import open_database
from ingest.errors import IngestError, StoreError
from ingest.ingester import FileResult, IngestReport, find_files, ingest_paths
from ingest.store import ChunkStore, DocumentRecord, QueuedOp, StoredChunk
from ingest.workers import ConversionPool

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Chunk",
    "ChunkOptions",
    "ChunkStore",
    "ConversionPool",
    "QueuedOp",
    "DocumentRecord",
    "FileResult",
    "IngestError",
    "IngestReport",
    "Limits",
    "StoreError",
    "StoredChunk",
    "TokenCounter",
    "convert_file",
    "find_files",
    "ingest_paths",
    "open_database",
    "split_blocks",
]
