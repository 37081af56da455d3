"""The conversation store."""

from pathlib import Path

from api.service.sessions import SessionStore
from tests.ingest.test_store_opening import another_opener_switching_to_wal, held_for_a_moment


def test_opening_waits_for_another_opener_switching_to_wal(tmp_path: Path) -> None:
    """Two first questions on a new data folder open the session database at once."""
    path = tmp_path / "sessions.db"
    letting_go = held_for_a_moment(another_opener_switching_to_wal, path)
    sessions = SessionStore(path)  # before: "database is locked" at once
    assert letting_go.is_set()
    sessions.append("s1", "How often is the lens cleaned?", "Every Tuesday.")
    assert [turn.question for turn in sessions.history("s1")] == ["How often is the lens cleaned?"]
    sessions.close()
