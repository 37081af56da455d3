"""The SQLite store: the source of truth for documents, chunks and pending index work."""

import contextlib
import hashlib
import json
import os
import random
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from ingest.chunker import Chunk
from ingest.database import open_database
from ingest.errors import ReadOnly, StoreDamaged, StoreError
from ingest.migrations import migrate, pending_migrations
from ingest.titles import identity, name_words

# Bump when conversion or chunking changes, to redo stored files (5: scanned pages and pictures
# are read by OCR, so scans stored as failed or short are converted again; 6: a printed page's
# list items keep their own lines; 7: a PDF's running headers, footers and page numbers are
# left out; 8: a contents page of headings is left out, and a heading whose level skips
# closes its siblings; 9: a page's opening is the context only of the section it opens in).
PIPELINE_VERSION = 9
_CHUNK_COLUMNS = (
    "id", "sha256", "ordinal", "text", "heading_path", "page_start", "page_end", "token_count",
    "page_opening",
)  # fmt: skip
# An upsert: INSERT OR REPLACE would delete and insert again, counted right by m005's
# triggers only while `recursive_triggers` is on (sqlite-utils' default, not SQLite's).
_UPSERT_CHUNK = (
    f"INSERT INTO chunks ({', '.join(_CHUNK_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_CHUNK_COLUMNS))}) ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{column} = excluded.{column}" for column in _CHUNK_COLUMNS[1:])
)


@dataclass(frozen=True)
class FileState:
    """A file on disk as the ingester saw it."""

    path: str
    sha256: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class DocumentRecord:
    """One row of `documents`."""

    id: int
    path: str
    sha256: str
    size: int
    mtime_ns: int
    file_type: str
    status: str
    reason: str | None
    error: str | None
    page_count: int | None
    pages_without_text: int
    chunk_count: int
    pipeline_version: int
    updated_at: str
    ocr_pages: int = 0  # pages read by OCR
    low_confidence_pages: str = ""  # of those, read with low confidence: "3 7"


@dataclass(frozen=True)
class StoredChunk:
    """One row of `chunks`."""

    id: str
    sha256: str
    ordinal: int
    text: str
    heading_path: tuple[str, ...]
    page_start: int | None
    page_end: int | None
    # Which document it belongs to, as the indexes see it: title and file name (ingest.titles).
    document_title: str = ""
    page_opening: str = ""  # the first words of its page (ingest.chunker.Chunk.page_opening)


@dataclass(frozen=True)
class QueuedOp:
    """A pending index operation from the queue."""

    seq: int
    chunk_id: str
    op: str


def chunk_id(sha256: str, chunk: Chunk) -> str:
    """Stable chunk id (a UUID string) from content hash, position and what gets indexed."""
    text_hash = hashlib.sha256(chunk.text.encode()).hexdigest()
    key = f"{sha256}:{chunk.ordinal}:{text_hash}"
    if chunk.page_opening:
        key += ":" + hashlib.sha256(chunk.page_opening.encode()).hexdigest()
    digest = hashlib.sha256(key.encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


class ChunkStore:
    """Documents, chunks and the index queue in one SQLite file."""

    def __init__(self, path: Path) -> None:
        # A database this process cannot write (a read-only mount, no permission) is opened
        # read-only, so that status and search still work; writers check `read_only` first.
        self.read_only = path.exists() and not _writable(path)
        self.path = path
        try:
            if self.read_only:
                self.db = Database(_connect_read_only(path))
                self._check_schema()
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = Database(open_database(path))
            self.db.execute("PRAGMA synchronous=NORMAL")
            if pending_migrations(self.db):  # looked at first without taking the write lock
                with self._transaction():
                    migrate(self.db)
        except (sqlite3.Error, OSError) as error:
            folder = None if path.exists() else _read_only_folder(path)
            if folder is not None:
                raise ReadOnly(
                    f"cannot create the database at {path}: {folder} is read-only — make it "
                    "writable, or set ARCHIVIST_DATA to a writable folder"
                ) from None
            if isinstance(error, sqlite3.DatabaseError) and "malformed" in str(error):
                raise store_damaged(path, [str(error)]) from None
            raise StoreError(f"cannot open the database at {path}: {error}") from None

    def _check_schema(self) -> None:
        """A read-only database must already have this version's schema (it cannot migrate)."""
        if pending_migrations(self.db):
            raise ReadOnly(
                f"the database at {self.path} was made by an older Archivist and needs an "
                f"upgrade, which writes to it — make {self.path.parent} writable and run "
                "`archivist status` once"
            )

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction, opened explicitly: sqlite-utils' execute() commits on its own
        every write made while no transaction is open, so `with connection:` alone let a
        file's row commit without its chunks (the kill -9 test left such a file "ingested"
        and unsearchable for good). IMMEDIATE takes the write lock at once, so two writers
        queue up at BEGIN (for up to the connection's timeout) instead of failing mid-way."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.conn.rollback()
            raise
        self.db.conn.commit()

    # Reading

    def document(self, path: str) -> DocumentRecord | None:
        """The record for one path, if any."""
        rows = self._documents("path = ?", [path])
        return rows[0] if rows else None

    def documents(self, under: str | None = None) -> list[DocumentRecord]:
        """All records, or those whose path lies under a folder."""
        if under is None:
            return self._documents("1", [])
        prefix = under.rstrip("/") + "/"
        return self._documents("substr(path, 1, ?) = ?", [len(prefix), prefix])

    def document_by_id(self, document_id: int) -> DocumentRecord | None:
        """The record with this id, if any."""
        rows = self._documents("id = ?", [document_id])
        return rows[0] if rows else None

    def documents_page(
        self, *, status: str | None, offset: int, limit: int
    ) -> tuple[list[DocumentRecord], int]:
        """One page of records ordered by path (optionally of one status), and how many match."""
        where, params = ("status = ?", [status]) if status else ("1", [])
        count = f"SELECT count(*) FROM documents WHERE {where}"
        (total,) = self.db.execute(count, params).fetchone()
        page = self._documents(f"{where} ORDER BY path LIMIT ? OFFSET ?", [*params, limit, offset])
        return page, total

    def documents_with_content(self, sha256: str) -> list[DocumentRecord]:
        """Every record (any path, any status) whose file has this content hash."""
        return self._documents("sha256 = ?", [sha256])

    def ingested_with_contents(self, sha256s: Iterable[str]) -> dict[str, list[DocumentRecord]]:
        """The ingested records holding each of these content hashes, by path."""
        wanted = list(set(sha256s))
        found: dict[str, list[DocumentRecord]] = {}
        marks = ",".join("?" * len(wanted))
        where = f"status = 'ingested' AND sha256 IN ({marks}) ORDER BY path"
        for record in self._documents(where, wanted) if wanted else []:
            found.setdefault(record.sha256, []).append(record)
        return found

    def ingested_content(self, sha256: str) -> DocumentRecord | None:
        """A successfully ingested document with this content, whose chunks can be shared."""
        rows = self._documents(
            "sha256 = ? AND status = 'ingested' AND pipeline_version = ? LIMIT 1",
            [sha256, PIPELINE_VERSION],
        )
        return rows[0] if rows else None

    def chunks(self, ids: Sequence[str]) -> list[StoredChunk]:
        """Chunks by id, in the order asked (missing ids are skipped).

        The rows come back as one JSON array, in one step of the query: Python's sqlite3 lets
        go of the interpreter at every row, and waited up to 5 ms for it back each time while
        another thread ran Python (2,048 chunks: 22 s beside a busy thread instead of 0.03 s;
        as one array, 0.055 s) — the indexing thread beside the writer and the conversions.
        """
        marks = ",".join("?" * len(ids))
        (rows,) = self.db.execute(
            "SELECT json_group_array(json_array(c.id, c.sha256, c.ordinal, c.text, "
            "c.heading_path, c.page_start, c.page_end, t.title, t.name, c.page_opening)) "
            "FROM chunks c LEFT JOIN titles t ON t.sha256 = c.sha256 "
            f"WHERE c.id IN ({marks})",
            list(ids),
        ).fetchone()
        by_id = {row[0]: _stored_chunk(row) for row in json.loads(rows)}
        return [by_id[i] for i in ids if i in by_id]

    def chunks_of(self, sha256: str, first: int = 0, last: int | None = None) -> list[StoredChunk]:
        """A document's chunks in reading order, ordinals `first` to `last` (inclusive)."""
        ids = self.db.execute(
            "SELECT id FROM chunks WHERE sha256 = ? AND ordinal >= ? AND ordinal <= ? "
            "ORDER BY ordinal",
            [sha256, first, last if last is not None else 2**63 - 1],
        ).fetchall()
        return self.chunks([row[0] for row in ids])

    def contents_of(self, ids: Sequence[str]) -> dict[str, str]:
        """The content hash (the document) of each of these chunks."""
        marks = ",".join("?" * len(ids))
        rows = self.db.execute(f"SELECT id, sha256 FROM chunks WHERE id IN ({marks})", list(ids))
        return dict(rows.fetchall())

    def chunk_count(self) -> int:
        """Number of stored chunks."""
        (count,) = self.db.execute("SELECT count FROM totals WHERE name = 'chunks'").fetchone()
        return int(count)

    def chunk_ids(self) -> set[str]:
        """Every stored chunk id (for consistency checks against the indexes)."""
        return {row[0] for row in self.db.execute("SELECT id FROM chunks")}

    def sample_chunk_ids(self, count: int) -> list[str]:
        """Up to `count` chunk ids picked at random, at the cost of `count` index lookups;
        every chunk id when there are no more than `count`."""
        few = self.db.execute("SELECT id FROM chunks LIMIT ?", [count + 1]).fetchall()
        if len(few) <= count:
            return sorted(row[0] for row in few)
        (top,) = self.db.execute("SELECT max(rowid) FROM chunks").fetchone()
        picked = set()
        for _ in range(count):
            row = self.db.execute(
                "SELECT id FROM chunks WHERE rowid >= ? ORDER BY rowid LIMIT 1",
                [random.randint(1, top)],
            ).fetchone()
            if row:
                picked.add(row[0])
        return sorted(picked)

    def problems(self, *, thorough: bool = False) -> list[str]:
        """What SQLite finds wrong with the database file (empty when sound): `quick_check`,
        0.12 s per 100k chunks, or with `thorough` the full `integrity_check` (3x slower)."""
        check = "integrity_check" if thorough else "quick_check"
        try:
            rows = self.db.execute(f"PRAGMA {check}(20)").fetchall()
        except sqlite3.DatabaseError as error:
            return [str(error)]
        found = [str(row[0]) for row in rows]
        return [] if found == ["ok"] else found

    def chunk_ids_where(
        self,
        *,
        path_glob: str | None = None,
        file_type: str | None = None,
        document: int | None = None,
    ) -> set[str]:
        """Ids of chunks of ingested documents matching every given filter."""
        where, params = ["d.status = 'ingested'"], []
        for clause, value in (("d.path GLOB ?", path_glob), ("d.file_type = ?", file_type),
                              ("d.id = ?", document)):  # fmt: skip
            if value is not None:
                where.append(clause)
                params.append(value)
        rows = self.db.execute(
            "SELECT DISTINCT c.id FROM chunks c JOIN documents d ON d.sha256 = c.sha256 "
            f"WHERE {' AND '.join(where)}",
            params,
        )
        return {row[0] for row in rows}

    def paths_of(self, sha256s: Iterable[str]) -> dict[str, list[str]]:
        """The ingested paths holding each content hash, sorted."""
        wanted = list(set(sha256s))
        marks = ",".join("?" * len(wanted))
        rows = self.db.execute(
            f"SELECT sha256, path FROM documents WHERE status = 'ingested' AND sha256 IN ({marks}) "
            "ORDER BY path",
            wanted,
        )
        paths: dict[str, list[str]] = {}
        for sha256, path in rows:
            paths.setdefault(sha256, []).append(path)
        return paths

    def awaiting_index(self, sha256s: Iterable[str]) -> set[str]:
        """Which of these contents still have chunks waiting in the index queue."""
        wanted = list(set(sha256s))
        if not wanted:
            return set()
        marks = ", ".join("?" * len(wanted))
        rows = self.db.execute(
            "SELECT DISTINCT c.sha256 FROM index_queue q JOIN chunks c ON c.id = q.chunk_id "
            f"WHERE c.sha256 IN ({marks})",
            wanted,
        ).fetchall()
        return {row[0] for row in rows}

    def pending_count(self, *, after: int = 0) -> int:
        """Number of index operations not yet done (of those queued after `after`, a seq)."""
        query = "SELECT count(*) FROM index_queue WHERE seq > ?"
        return int(self.db.execute(query, [after]).fetchone()[0])

    def pending_work(self, limit: int = 1000, *, after: int = 0) -> list[QueuedOp]:
        """The oldest pending index operations (those queued after `after`, a seq)."""
        rows = self.db.execute(
            "SELECT seq, chunk_id, op FROM index_queue WHERE seq > ? ORDER BY seq LIMIT ?",
            [after, limit],
        ).fetchall()
        return [QueuedOp(*row) for row in rows]

    def complete_work(self, seqs: Iterable[int]) -> None:
        """Drop index operations that both indexes have committed."""
        with self._transaction():
            self.db.conn.executemany("DELETE FROM index_queue WHERE seq = ?", [(s,) for s in seqs])

    def document_counts(self) -> dict[str, int]:
        """How many documents are ingested and how many failed."""
        by_status = dict(
            self.db.execute("SELECT status, count(*) FROM documents GROUP BY status").fetchall()
        )
        return {"ingested": by_status.get("ingested", 0), "failed": by_status.get("failed", 0)}

    def summary(self) -> dict[str, Any]:
        """Counts for `archivist status`."""
        return {
            "documents": self.document_counts(),
            "chunks": self.chunk_count(),
            "pending_index_work": self.pending_count(),
            "failed": [
                {"path": d.path, "reason": d.reason, "error": d.error}
                for d in self._documents("status = 'failed' ORDER BY path", [])
            ],
            "ocr": self._ocr_summary(),
        }

    def _ocr_summary(self) -> dict[str, Any]:
        """Pages read by OCR, in how many documents, and the documents with pages read with
        low confidence (flagged for a person to check; their text is searchable all the same)."""
        documents, pages = self.db.execute(
            "SELECT count(*), coalesce(sum(ocr_pages), 0) FROM documents WHERE ocr_pages > 0"
        ).fetchone()
        doubtful = self._documents("low_confidence_pages != '' ORDER BY path", [])
        return {
            "documents": documents,
            "pages": pages,
            "low_confidence": [
                {"path": d.path, "pages": [int(n) for n in d.low_confidence_pages.split()]}
                for d in doubtful
            ],
        }

    # Writing: each method is one transaction.

    def requeue_all(self) -> None:
        """Replace the queue by an upsert of every chunk (to rebuild indexes from SQLite)."""
        with self._transaction():
            self.db.execute("DELETE FROM index_queue")
            self.db.execute(
                "INSERT INTO index_queue (chunk_id, op, enqueued_at) "
                "SELECT id, 'upsert', ? FROM chunks ORDER BY sha256, ordinal",
                [datetime.now(UTC).isoformat(timespec="seconds")],
            )

    def record_chunks(
        self,
        file: FileState,
        file_type: str,
        chunks: list[Chunk],
        *,
        page_count: int | None = None,
        pages_without_text: int = 0,
        title: str = "",
        ocr_pages: int = 0,
        low_confidence_pages: tuple[int, ...] = (),
    ) -> None:
        """Store a converted file: its row, and its content's chunks in place of older ones
        (all of them queued again when the document's title or name changed)."""
        with self._transaction():
            indexed_as = self._indexed_as(file.sha256)
            self._put_document(
                file,
                file_type=file_type,
                status="ingested",
                reason=None,
                error=None,
                page_count=page_count,
                pages_without_text=pages_without_text,
                chunk_count=len(chunks),
                ocr_pages=ocr_pages,
                low_confidence_pages=" ".join(map(str, low_confidence_pages)),
            )
            name = self._name_of(file.sha256)
            self.db.execute(
                "INSERT OR REPLACE INTO titles VALUES (?, ?, ?)", [file.sha256, title, name]
            )
            retitled = indexed_as != identity(title, name)
            self._replace_chunks(file.sha256, chunks, requeue_all=retitled)

    def record_copy(self, file: FileState, source: DocumentRecord) -> None:
        """Store a file whose content is already ingested under another path (no new chunks)."""
        with self._transaction():
            self._put_document(
                file,
                file_type=source.file_type,
                status="ingested",
                reason=None,
                error=None,
                page_count=source.page_count,
                pages_without_text=source.pages_without_text,
                chunk_count=source.chunk_count,
                ocr_pages=source.ocr_pages,
                low_confidence_pages=source.low_confidence_pages,
            )
            self._rename(file.sha256)

    def record_failure(self, file: FileState, file_type: str, reason: str, error: str) -> None:
        """Store a file that could not be ingested, with the reason."""
        with self._transaction():
            self._put_document(
                file,
                file_type=file_type,
                status="failed",
                reason=reason,
                error=error,
                page_count=None,
                pages_without_text=0,
                chunk_count=0,
                ocr_pages=0,
                low_confidence_pages="",
            )

    def record_stat(self, path: str, size: int, mtime_ns: int) -> None:
        """Remember a new size/mtime for a file whose content did not change."""
        with self._transaction():
            self.db.execute(
                "UPDATE documents SET size = ?, mtime_ns = ? WHERE path = ?", [size, mtime_ns, path]
            )

    def remove(self, path: str) -> None:
        """Forget a file; its chunks go when no other path has the same content."""
        with self._transaction():
            old = self.document(path)
            self.db.execute("DELETE FROM documents WHERE path = ?", [path])
            if old is not None:
                self._release(old.sha256)
                self._rename(old.sha256)

    # Helpers (called inside a transaction)

    def _put_document(self, file: FileState, **fields: Any) -> None:
        old = self.document(file.path)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        row = {
            "path": file.path,
            "sha256": file.sha256,
            "size": file.size,
            "mtime_ns": file.mtime_ns,
            "pipeline_version": PIPELINE_VERSION,
            "updated_at": now,
            **fields,
        }
        # Plain SQL: sqlite-utils' insert() and update() manage transactions of their own.
        if old is None:
            row["created_at"] = now
            names = ", ".join(row)
            marks = ", ".join("?" * len(row))
            self.db.execute(f"INSERT INTO documents ({names}) VALUES ({marks})", list(row.values()))
        else:
            assignments = ", ".join(f"{name} = ?" for name in row)
            self.db.execute(
                f"UPDATE documents SET {assignments} WHERE id = ?", [*row.values(), old.id]
            )
            if old.sha256 != file.sha256 or fields["status"] != "ingested":
                self._release(old.sha256)
                self._rename(old.sha256)

    def _replace_chunks(self, sha256: str, chunks: list[Chunk], *, requeue_all: bool) -> None:
        """Make `chunks` the content's chunk set; queue only ids that appear or disappear,
        or every id with `requeue_all`."""
        old = {r[0] for r in self.db.execute("SELECT id FROM chunks WHERE sha256 = ?", [sha256])}
        rows = [
            (
                chunk_id(sha256, c),
                sha256,
                c.ordinal,
                c.text,
                json.dumps(c.heading_path),
                c.page_start,
                c.page_end,
                c.token_count,
                c.page_opening,
            )
            for c in chunks
        ]
        new = {row[0] for row in rows}
        gone = sorted(old - new)
        self.db.conn.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in gone])
        self.db.conn.executemany(_UPSERT_CHUNK, rows)
        self._enqueue("delete", gone)
        self._enqueue("upsert", [row[0] for row in rows if requeue_all or row[0] not in old])

    def _release(self, sha256: str) -> None:
        """Delete a content's chunks once no ingested document refers to it."""
        still_used = self.db.execute(
            "SELECT 1 FROM documents WHERE sha256 = ? AND status = 'ingested' LIMIT 1", [sha256]
        ).fetchone()
        if still_used:
            return
        ids = [r[0] for r in self.db.execute("SELECT id FROM chunks WHERE sha256 = ?", [sha256])]
        self.db.execute("DELETE FROM chunks WHERE sha256 = ?", [sha256])
        self.db.execute("DELETE FROM titles WHERE sha256 = ?", [sha256])
        self._enqueue("delete", ids)

    def _title_row(self, sha256: str) -> tuple[str, str] | None:
        """A content's (title, name), if it was chunked."""
        row = self.db.execute("SELECT title, name FROM titles WHERE sha256 = ?", [sha256])
        return row.fetchone()  # type: ignore[no-any-return]

    def _indexed_as(self, sha256: str) -> str | None:
        """The document identity a content's chunks are indexed under (None: not yet)."""
        found = self._title_row(sha256)
        return identity(*found) if found else None

    def _name_of(self, sha256: str) -> str:
        """The file name a content is known by: that of the first of its ingested paths."""
        row = self.db.execute(
            "SELECT path FROM documents WHERE sha256 = ? AND status = 'ingested' "
            "ORDER BY path LIMIT 1",
            [sha256],
        ).fetchone()
        return name_words(row[0]) if row else ""

    def _rename(self, sha256: str) -> None:
        """After a path of this content came or went: when the name it is indexed under is no
        longer the first path's, re-index its chunks under the new one (a rename)."""
        found = self._title_row(sha256)
        if found is None:
            return  # no longer stored (released), or not chunked yet
        title, name = found
        new_name = self._name_of(sha256)
        if new_name == name:
            return
        self.db.execute("UPDATE titles SET name = ? WHERE sha256 = ?", [new_name, sha256])
        if identity(title, new_name) != identity(title, name):
            ids = self.db.execute(
                "SELECT id FROM chunks WHERE sha256 = ? ORDER BY ordinal", [sha256]
            ).fetchall()
            self._enqueue("upsert", [row[0] for row in ids])

    def _enqueue(self, op: str, ids: list[str]) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.db.conn.executemany(
            "INSERT INTO index_queue (chunk_id, op, enqueued_at) VALUES (?, ?, ?)",
            [(i, op, now) for i in ids],
        )

    def _documents(self, where: str, params: list[Any]) -> list[DocumentRecord]:
        fields = ", ".join(DocumentRecord.__dataclass_fields__)
        rows = self.db.execute(f"SELECT {fields} FROM documents WHERE {where}", params).fetchall()
        return [DocumentRecord(*row) for row in rows]


def store_damaged(path: Path, problems: list[str]) -> StoreDamaged:
    """The error for a corrupt database file, with the ways out."""
    shown = "; ".join(problems[:3]) + ("; …" if len(problems) > 3 else "")
    return StoreDamaged(
        f"the database {path} is damaged ({shown}) and will not be written to — restore it from "
        "a backup, or set ARCHIVIST_DATA to a new folder and ingest your folders again (the "
        "source files are never changed, so nothing is lost but the time to convert them)"
    )


def _writable(path: Path) -> bool:
    """Whether SQLite may write this database: the file, and its folder (for the journal)."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _read_only_folder(path: Path) -> Path | None:
    """The nearest existing folder above `path`, if this process cannot write to it."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return None if os.access(folder, os.W_OK) else folder


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection. `mode=ro` reads a WAL database only where its -shm file exists
    or can be made; failing that, `immutable=1` reads the main file as it stands (changes left
    in a -wal file that was never checkpointed are then not seen)."""
    uri = path.resolve().as_uri()
    options: dict[str, Any] = {"uri": True, "timeout": 30, "check_same_thread": False}
    connection = sqlite3.connect(f"{uri}?mode=ro", **options)
    try:
        connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return connection
    except sqlite3.OperationalError:
        connection.close()
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", **options)


def _stored_chunk(row: tuple[Any, ...]) -> StoredChunk:
    heading_path = tuple(json.loads(row[4]))
    title = identity(row[7], row[8]) if row[7] is not None else ""
    return StoredChunk(row[0], row[1], row[2], row[3], heading_path, row[5], row[6], title, row[9])
