"""Conversations: the turns of each session, kept in their own SQLite file."""

import re
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from api.service.errors import BadRequest
from generation.prompt import Turn
from ingest.database import open_database
from ingest.errors import StoreError

_VALID_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS turns (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
)
"""


@dataclass(frozen=True)
class SessionSummary:
    """A conversation as a list of them shows it."""

    session_id: str
    first_question: str
    turns: int
    last_at: str  # ISO 8601, UTC


def new_session_id() -> str:
    """A fresh, short, unguessable session id."""
    return uuid.uuid4().hex[:16]


def check_session_id(session_id: str) -> str:
    """The id itself, or BadRequest: ids are 1-64 letters, digits, '.', '_' or '-'."""
    if not _VALID_ID.fullmatch(session_id):
        raise BadRequest(
            f"session id {session_id[:80]!r} is not valid — use 1-64 letters, digits, '.', '_' "
            "or '-'"
        )
    return session_id


class SessionStore:
    """Append-only conversation turns by session id; safe to share between threads."""

    def __init__(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = open_database(path)
            self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as error:
            raise StoreError(f"cannot open the session database at {path}: {error}") from None
        self._lock = threading.Lock()

    def history(self, session_id: str, limit: int = 20) -> list[Turn]:
        """The session's last `limit` turns, oldest first (none for a new id)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT question, answer FROM turns WHERE session_id = ? ORDER BY seq DESC LIMIT ?",
                [check_session_id(session_id), limit],
            ).fetchall()
        return [Turn(question, answer) for question, answer in reversed(rows)]

    def recent(self, limit: int = 20) -> list[SessionSummary]:
        """The sessions last added to, latest first: id, first question, turns, last time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT session_id, count(*), max(created_at), "
                "(SELECT question FROM turns first WHERE first.session_id = turns.session_id "
                "ORDER BY seq LIMIT 1) FROM turns GROUP BY session_id "
                "ORDER BY max(created_at) DESC, max(rowid) DESC LIMIT ?",
                [limit],
            ).fetchall()
        return [SessionSummary(i, question, turns, last) for i, turns, last, question in rows]

    def append(self, session_id: str, question: str, answer: str) -> None:
        """Record one exchange at the end of the session."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO turns SELECT ?, coalesce(max(seq), 0) + 1, ?, ?, ? FROM turns "
                "WHERE session_id = ?",
                [check_session_id(session_id), question, answer, now, session_id],
            )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
