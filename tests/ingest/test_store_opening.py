"""Opening a database waits for another connection's lock at every step instead of failing.

Two first commands on a new data folder open its database at the same moment; the second
`ingest` once failed `make test` with "database is locked". Here a second, real connection holds
the lock each step of opening can meet, and lets go of it from a thread a moment later.
"""

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlite_utils import Database

from ingest.migrations import MIGRATIONS, migrate, pending_migrations
from ingest.store import ChunkStore

HOLD_S = 0.3
Holder = Callable[[Path], sqlite3.Connection]


def _connect(path: Path) -> sqlite3.Connection:
    # Autocommit, so that the BEGINs below are the only transactions, and usable from the
    # thread that lets go.
    return sqlite3.connect(path, isolation_level=None, check_same_thread=False)


def another_opener_switching_to_wal(path: Path) -> sqlite3.Connection:
    """A new file, write-locked as another opener's `PRAGMA journal_mode=WAL` holds it while
    it waits for the exclusive lock that writing the WAL flag takes."""
    holder = _connect(path)
    holder.execute("BEGIN IMMEDIATE")
    return holder


def another_opener_writing_the_wal_flag(path: Path) -> sqlite3.Connection:
    """A new file, exclusively locked as another opener holds it while it writes the flag."""
    holder = _connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


def another_opener_migrating(path: Path) -> sqlite3.Connection:
    """A new WAL database whose tables another opener is creating, in its write transaction."""
    holder = _connect(path)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN IMMEDIATE")
    migrate(Database(holder))
    return holder


def another_process_upgrading(path: Path) -> sqlite3.Connection:
    """A database of an older Archivist that another process is upgrading."""
    older = Database(_connect(path))
    older.execute("PRAGMA journal_mode=WAL")
    older.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for migration in MIGRATIONS[:-1]:
        migration(older)
        older.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", [migration.__name__])
    older.execute("BEGIN IMMEDIATE")
    migrate(older)
    return older.conn


def another_process_closing(path: Path) -> sqlite3.Connection:
    """A current database locked exclusively, as the last connection to close holds it while
    it checkpoints the write-ahead log into the file."""
    ChunkStore(path).close()
    holder = _connect(path)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    return holder


HOLDERS = [
    another_opener_switching_to_wal,
    another_opener_writing_the_wal_flag,
    another_opener_migrating,
    another_process_upgrading,
    another_process_closing,
]


def held_for_a_moment(holder: Holder, path: Path) -> threading.Event:
    """Take the lock now; a thread lets go of it HOLD_S later, setting the event just before."""
    connection = holder(path)
    letting_go = threading.Event()

    def release() -> None:
        letting_go.set()
        connection.commit()
        connection.close()

    threading.Timer(HOLD_S, release).start()
    return letting_go


@pytest.mark.parametrize("holder", HOLDERS, ids=lambda h: h.__name__)
def test_the_store_waits_for_a_lock_held_while_it_opens(holder: Holder, tmp_path: Path) -> None:
    path = tmp_path / "state" / "archivist.db"
    path.parent.mkdir()
    letting_go = held_for_a_moment(holder, path)
    store = ChunkStore(path)  # before: "database is locked" at once, for the first
    assert letting_go.is_set()
    assert pending_migrations(store.db) == []
    assert store.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert store.chunk_count() == 0 and store.pending_count() == 0
    store.close()
