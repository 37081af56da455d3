"""Numbered schema migrations, applied in order when the store opens."""

from collections.abc import Callable

from sqlite_utils import Database

Migration = Callable[[Database], None]


def m001_create_tables(db: Database) -> None:
    """Documents (one per path), chunks (one set per content hash) and the index queue."""
    _run_statements(
        db,
        """
        CREATE TABLE documents (
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            sha256 TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            type TEXT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('ingested', 'failed')),
            reason TEXT,
            error TEXT,
            page_count INTEGER,
            pages_without_text INTEGER NOT NULL DEFAULT 0,
            chunk_count INTEGER NOT NULL DEFAULT 0,
            pipeline_version INTEGER NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX documents_sha256 ON documents (sha256);
        CREATE TABLE chunks (
            id TEXT PRIMARY KEY,
            sha256 TEXT NOT NULL,
            ordinal INTEGER NOT NULL,
            text TEXT NOT NULL,
            heading_path TEXT NOT NULL,
            page_start INTEGER,
            page_end INTEGER,
            token_count INTEGER NOT NULL
        );
        CREATE INDEX chunks_sha256 ON chunks (sha256, ordinal);
        CREATE TABLE index_queue (
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            chunk_id TEXT NOT NULL,
            op TEXT NOT NULL CHECK (op IN ('upsert', 'delete')),
            enqueued_at TEXT NOT NULL
        );
        """,
    )


def m002_file_type(db: Database) -> None:
    """One name for a file's type everywhere: `documents.type` becomes `file_type`."""
    db.execute("ALTER TABLE documents RENAME COLUMN type TO file_type")


def m003_titles(db: Database) -> None:
    """Each content's title and the file name it is indexed under (see ingest.titles)."""
    db.execute(
        "CREATE TABLE titles (sha256 TEXT PRIMARY KEY, title TEXT NOT NULL, name TEXT NOT NULL)"
    )


def m004_page_openings(db: Database) -> None:
    """The first words of a chunk's page (ingest.chunker.Chunk.page_opening)."""
    db.execute("ALTER TABLE chunks ADD COLUMN page_opening TEXT NOT NULL DEFAULT ''")


def m005_chunk_total(db: Database) -> None:
    """The number of chunks, kept by triggers in the transaction that changes them: counting
    a million rows at every open took 31-73 ms, and 2.1 s from a cold page cache."""
    db.execute("CREATE TABLE totals (name TEXT PRIMARY KEY, count INTEGER NOT NULL)")
    db.execute("INSERT INTO totals SELECT 'chunks', count(*) FROM chunks")
    for trigger, event, change in (("chunk_added", "INSERT", "+"), ("chunk_gone", "DELETE", "-")):
        db.execute(
            f"CREATE TRIGGER {trigger} AFTER {event} ON chunks BEGIN "
            f"UPDATE totals SET count = count {change} 1 WHERE name = 'chunks'; END"
        )


def m006_ocr_pages(db: Database) -> None:
    """How many of a document's pages OCR read, and which of them with low confidence
    (page numbers, space-separated; a single picture is page 1)."""
    db.execute("ALTER TABLE documents ADD COLUMN ocr_pages INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE documents ADD COLUMN low_confidence_pages TEXT NOT NULL DEFAULT ''")


def _run_statements(db: Database, script: str) -> None:
    # executescript() would commit mid-migration; single statements stay in one transaction.
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


MIGRATIONS: list[Migration] = [
    m001_create_tables,
    m002_file_type,
    m003_titles,
    m004_page_openings,
    m005_chunk_total,
    m006_ocr_pages,
]


def pending_migrations(db: Database) -> list[Migration]:
    """The migrations not yet recorded in `_migrations` (all of them in a new database)."""
    if not db["_migrations"].exists():
        return list(MIGRATIONS)
    applied = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
    return [migration for migration in MIGRATIONS if migration.__name__ not in applied]


def migrate(db: Database) -> None:
    """Apply every migration not yet recorded in `_migrations`. Call it inside a write
    transaction taken before looking (ChunkStore does): two processes opening a new database
    then migrate it once, in turn."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    for migration in pending_migrations(db):
        migration(db)
        db.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", [migration.__name__])
