"""Batch Q&A: question files, one line per answer, resume after a crash."""

import json
from pathlib import Path

import pytest

from api.service import (
    Archivist,
    AskOptions,
    BadRequest,
    Question,
    answered_ids,
    read_questions,
    run_batch,
)


def test_questions_come_from_jsonl_csv_and_txt(tmp_path: Path) -> None:
    (tmp_path / "q.jsonl").write_text(
        '{"id": "a", "question": "Where?"}\n\n{"id": 7, "question": " When? "}\n'
    )
    (tmp_path / "q.csv").write_text('id,question\nx1,What is it?\nx2,"Who, then?"\n')
    (tmp_path / "q.txt").write_text("First question\n\nSecond question\n")
    assert read_questions(tmp_path / "q.jsonl") == [Question("a", "Where?"), Question("7", "When?")]
    assert read_questions(tmp_path / "q.csv") == [
        Question("x1", "What is it?"),
        Question("x2", "Who, then?"),
    ]
    assert read_questions(tmp_path / "q.txt") == [
        Question("1", "First question"),
        Question("3", "Second question"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("q.jsonl", '{"id": 1, "question": "a"}\n{"id": 1, "question": "b"}\n', "appears twice"),
        ("q.jsonl", '{"id": 1}\n', "line 1: expected"),
        ("q.csv", "number,text\n1,a\n", "must name the columns id,question"),
        ("q.xlsx", "", "questions must be in .jsonl, .csv, .txt"),
    ],
)
def test_bad_question_files_say_what_is_wrong(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    (tmp_path / name).write_text(content)
    with pytest.raises(BadRequest, match=message):
        read_questions(tmp_path / name)


def test_a_line_torn_by_a_crash_is_removed_and_redone(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    out.write_text('{"id": "1", "answer": "a"}\n{"id": "2", "answer": "b"}\n{"id": "3", "ans')
    assert answered_ids(out) == {"1", "2"}
    assert out.read_text() == '{"id": "1", "answer": "a"}\n{"id": "2", "answer": "b"}\n'


def test_failed_questions_are_asked_again_only_on_request(tmp_path: Path) -> None:
    out = tmp_path / "answers.jsonl"
    out.write_text('{"id": "1", "answer": "a"}\n{"id": "2", "error": {"reason": "timeout"}}\n')
    assert answered_ids(out) == {"1", "2"}
    assert answered_ids(out, retry_errors=True) == {"1"}
    assert out.read_text() == '{"id": "1", "answer": "a"}\n'


def test_every_question_is_answered_once_and_a_rerun_skips_them(
    service: Archivist, docs: Path, tmp_path: Path
) -> None:
    (docs / "tides.md").write_text("# Tides\n\nHigh tide at the harbour is at 06:10 on Mondays.\n")
    service.ingest([docs])
    questions = [Question(str(n), f"When is high tide, question {n}?") for n in range(50)]
    questions.append(Question("empty", "   "))
    out = tmp_path / "out" / "answers.jsonl"
    counts = run_batch(service, questions, out, concurrency=2, options=AskOptions())
    assert counts == {"answered": 50, "failed": 1, "skipped": 0}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(q.id for q in questions)
    failed = next(line for line in lines if line["id"] == "empty")
    assert failed["error"]["reason"] == "bad-request"
    answered = next(line for line in lines if line["id"] == "7")
    assert answered["backend"] == "none"
    assert Path(answered["citations"][0]["path"]).name == "tides.md"
    again = run_batch(service, questions, out, concurrency=2, options=AskOptions())
    assert again == {"answered": 0, "failed": 0, "skipped": 51}


def test_an_answers_file_of_other_questions_under_the_same_ids_is_refused(
    service: Archivist, docs: Path, tmp_path: Path
) -> None:
    (docs / "tides.md").write_text("# Tides\n\nHigh tide at the harbour is at 06:10 on Mondays.\n")
    service.ingest([docs])
    out = tmp_path / "q.answers.jsonl"
    first = [Question("1", "When is high tide?"), Question("2", "Where is the harbour?")]
    assert run_batch(service, first, out, concurrency=1, options=AskOptions())["answered"] == 2
    recorded = out.read_bytes()
    # q.txt after q.jsonl: the same ids (line numbers), other questions, the same answers file
    other = [Question("1", "When is low tide?"), Question("3", "Who keeps the light?")]
    with pytest.raises(BadRequest, match=r"other questions under the same ids \(id '1'"):
        run_batch(service, other, out, concurrency=1, options=AskOptions())
    assert out.read_bytes() == recorded  # nothing asked, nothing written
    same = [Question("1", " When is  high tide? "), Question("3", "Who keeps the light?")]
    counts = run_batch(service, same, out, concurrency=1, options=AskOptions())
    assert counts == {"answered": 1, "failed": 0, "skipped": 1}
