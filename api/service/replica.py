"""Replicas: Archivist servers that answer from a Qdrant collection another Archivist writes.

The writer (ARCHIVIST_QDRANT_URL with ARCHIVIST_KEYWORD=qdrant) keeps both search legs in the
collection's points and, with each chunk, what a citation needs (`chunk_payload`: its text,
document, paths, pages and section); it records itself in the collection's metadata after
every sync (`writer_record`). A replica (ARCHIVIST_REPLICA=true) keeps no documents of its
own: `ReplicaStore` stands in for the SQLite store where searches and answers read chunks, and
every write is refused with `ReplicaOnly`, naming the writer.
"""

import fnmatch
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from api.service.announcement import running_server
from api.service.errors import BadRequest
from api.service.settings import Settings
from ingest.errors import ReadOnly
from ingest.store import DocumentRecord, StoredChunk
from retrieval.dense_base import PAGE, point_id

WRITER = "writer"  # the collection metadata's entry for the Archivist that writes it
_KNOWN_PATHS = 10_000  # documents whose paths a replica keeps from the payloads it read


class ReplicaOnly(ReadOnly):
    """A replica was asked to change the documents, or for what only the writer keeps."""

    reason = "replica"


def chunk_payload(chunk: StoredChunk, records: Sequence[DocumentRecord]) -> dict[str, Any]:
    """What a replica cites a chunk by: the chunk itself and its document's ingested paths."""
    return {
        "text": chunk.text,
        "document": chunk.sha256,
        "paths": [record.path for record in records],
        "file_type": records[0].file_type if records else None,
        "ordinal": chunk.ordinal,
        "section": list(chunk.heading_path),
        "page_start": chunk.page_start,
        "page_end": chunk.page_end,
        "title": chunk.document_title,
        "page_opening": chunk.page_opening,
    }


def writer_record(settings: Settings, documents: int) -> dict[str, Any]:
    """How the writing Archivist names itself in the collection: its machine, data folder,
    server (if one runs), the documents it holds and when it last wrote."""
    return {
        "host": socket.gethostname(),
        "data": str(settings.data.resolve()),
        "server": running_server(settings),
        "documents": documents,
        "synced_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def describe_writer(writer: dict[str, Any] | None) -> str:
    """The writer as a person finds it: "the Archivist of /srv/data on host-a (serving URL)"."""
    if not writer:
        return "no Archivist has written it yet"
    where = f"the Archivist of {writer.get('data')} on {writer.get('host')}"
    return where + (f" (serving {writer['server']})" if writer.get("server") else "")


class ReplicaStore:
    """The store's reading side, from the payloads of the collection's points: the chunks a
    search found, their documents' paths and the chunks a filter allows. `collection()` gives
    the open dense index (retrieval.dense_server.ClientDenseIndex) of the collection."""

    read_only = False  # its data folder holds its sessions; documents are refused (ReplicaOnly)

    def __init__(self, settings: Settings, collection: Callable[[], Any]) -> None:
        self._settings = settings
        self._collection = collection
        self._paths: dict[str, list[str]] = {}  # content hash -> paths, from payloads read
        self._lock = threading.Lock()

    def writer(self) -> dict[str, Any] | None:
        """What the writing Archivist last recorded of itself in the collection."""
        recorded = self._collection().metadata().get(WRITER)
        return recorded if isinstance(recorded, dict) else None

    def refusal(self, doing: str) -> ReplicaOnly:
        """The error for `doing` something only the writer does, naming the writer."""
        settings = self._settings
        return ReplicaOnly(
            f"this Archivist is a replica (ARCHIVIST_REPLICA=true): it answers from the "
            f"collection '{settings.qdrant_collection}' on {settings.qdrant_url}, which "
            f"{describe_writer(self.writer())} writes — {doing} there (a replica changes nothing)"
        )

    def _points(self, ids: Sequence[str], fields: Sequence[str] | bool = True) -> list[Any]:
        index = self._collection()
        with index.asking():
            return list(index.client.retrieve(index.collection, [point_id(i) for i in ids],
                                              with_payload=fields))  # fmt: skip

    def chunks(self, ids: Sequence[str]) -> list[StoredChunk]:
        """These chunks, in order (those without a payload skipped: not written yet)."""
        found = {str(point.id): point.payload for point in self._points(ids) if point.payload}
        chunks = []
        for chunk_id in ids:
            payload = found.get(point_id(chunk_id))
            if payload is None:
                continue
            chunks.append(_stored_chunk(chunk_id, payload))
            self._remember(payload["document"], payload.get("paths") or [])
        return chunks

    def contents_of(self, ids: Sequence[str]) -> dict[str, str]:
        """The content hash (the document) of each of these chunks."""
        points = self._points(ids, ["document"])
        return {str(p.id): p.payload["document"] for p in points if p.payload}

    def paths_of(self, sha256s: Iterable[str]) -> dict[str, list[str]]:
        """The ingested paths holding each content hash, as the chunks read recorded them."""
        wanted = set(sha256s)
        with self._lock:
            known = {sha256: self._paths[sha256] for sha256 in wanted if sha256 in self._paths}
        for sha256 in wanted - known.keys():
            index = self._collection()
            with index.asking():
                points, _ = index.client.scroll(
                    index.collection, scroll_filter=_matching("document", sha256), limit=1,
                    with_payload=["paths"],
                )  # fmt: skip
            if points and points[0].payload:
                known[sha256] = list(points[0].payload.get("paths") or [])
                self._remember(sha256, known[sha256])
        return known

    def _remember(self, sha256: str, paths: list[str]) -> None:
        with self._lock:
            if len(self._paths) >= _KNOWN_PATHS:
                self._paths.clear()
            self._paths[sha256] = list(paths)

    def chunk_ids_where(
        self,
        *,
        path_glob: str | None = None,
        file_type: str | None = None,
        document: int | None = None,
    ) -> set[str]:
        """Ids of the chunks matching every given filter (a path pattern reads every chunk's
        paths: a filtered search on a replica costs a pass over the collection)."""
        if document is not None:
            raise BadRequest(
                "a replica does not know the writer's document ids — filter by path or file "
                "type, or ask the writer"
            )
        from qdrant_client import models

        where = models.Filter(must=[_matching("file_type", file_type)] if file_type else [])
        index, found, offset = self._collection(), set[str](), None
        while True:
            with index.asking():
                points, offset = index.client.scroll(
                    index.collection, scroll_filter=where, limit=PAGE, offset=offset,
                    with_payload=["paths"],
                )  # fmt: skip
            found.update(
                str(p.id)
                for p in points
                if p.payload
                and (path_glob is None or any(fnmatch.fnmatchcase(path, path_glob)
                                              for path in p.payload.get("paths") or []))
            )  # fmt: skip
            if offset is None:
                return found

    def chunk_count(self) -> int:
        """Chunks in the collection (with their dense vectors)."""
        return int(self._collection().count())

    def pending_count(self, *, after: int = 0) -> int:
        """Nothing waits here: the writer's queue is its own."""
        return 0

    def sample_chunk_ids(self, count: int) -> list[str]:
        return []

    def document(self, path: str) -> DocumentRecord | None:
        """No document records here: citations carry the path alone."""
        return None

    def summary(self) -> dict[str, Any]:
        """Counts for `archivist status`: the collection's chunks, and the documents the writer
        held when it last wrote."""
        writer = self.writer() or {}
        return {
            "documents": {"ingested": writer.get("documents", 0), "failed": 0},
            "chunks": self.chunk_count(),
            "pending_index_work": 0,
            "failed": [],
            "ocr": {"documents": 0, "pages": 0, "low_confidence": []},
            "replica_of": describe_writer(writer),
        }

    def problems(self, *, thorough: bool = False) -> list[str]:
        return []

    def close(self) -> None:
        """Nothing to close: the collection belongs to the indexes."""

    # What only the writer keeps: its documents' records.

    def documents_page(self, *args: Any, **kwargs: Any) -> Any:
        raise self.refusal("the list of documents is kept by the writer: list them")

    def document_by_id(self, document_id: int) -> DocumentRecord | None:
        raise self.refusal("documents are kept by the writer: open them")

    def documents(self, under: str | None = None) -> list[DocumentRecord]:
        raise self.refusal("documents are kept by the writer: list them")


def _matching(key: str, value: Any) -> Any:
    from qdrant_client import models

    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _stored_chunk(chunk_id: str, payload: dict[str, Any]) -> StoredChunk:
    return StoredChunk(
        id=chunk_id,
        sha256=payload["document"],
        ordinal=int(payload.get("ordinal", 0)),
        text=payload["text"],
        heading_path=tuple(payload.get("section") or ()),
        page_start=payload.get("page_start"),
        page_end=payload.get("page_end"),
        document_title=payload.get("title", ""),
        page_opening=payload.get("page_opening", ""),
    )
