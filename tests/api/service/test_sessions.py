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


def test_recent_sessions_are_listed_latest_first_with_their_first_question(tmp_path: Path) -> None:
    sessions = SessionStore(tmp_path / "sessions.db")
    sessions.append("lens", "How often is the lens cleaned?", "Every Tuesday.")
    sessions.append("bell", "What does the bell weigh?", "300 kg.")
    sessions.append("lens", "With what?", "Distilled water.")  # within the same second
    recent = sessions.recent()
    assert [(s.session_id, s.first_question, s.turns) for s in recent] == [
        ("lens", "How often is the lens cleaned?", 2),
        ("bell", "What does the bell weigh?", 1),
    ]
    assert [s.session_id for s in sessions.recent(limit=1)] == ["lens"]
    sessions.close()
