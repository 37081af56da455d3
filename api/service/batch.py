"""Batch Q&A: questions from a file, one JSON line per answer, resumable after a crash."""

import csv
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from api.service.answers import Answer, AskOptions
from api.service.errors import USER_ERRORS, BadRequest
from generation.errors import QueueFull


class Answerer(Protocol):
    """What a batch needs: the service, or a client of a running server."""

    def ask(
        self,
        question: str,
        options: AskOptions | None = None,
        *,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer: ...


FORMATS = (".jsonl", ".csv", ".txt")
_QUEUE_FULL_PAUSE_S = 0.5


@dataclass(frozen=True)
class Question:
    """One question of a batch, with the id its answer line carries."""

    id: str
    text: str


def read_questions(path: Path) -> list[Question]:
    """Questions from .jsonl ({"id", "question"}), .csv (id,question) or .txt (one per line)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise BadRequest(f"{path.name}: questions must be in {', '.join(FORMATS)} — not {suffix}")
    rows = list(_rows(path, suffix))
    seen: set[str] = set()
    for question in rows:
        if question.id in seen:
            raise BadRequest(
                f"{path.name}: the id {question.id!r} appears twice — ids must be unique"
            )
        seen.add(question.id)
    return rows


def _rows(path: Path, suffix: str) -> Iterator[Question]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        if suffix == ".txt":
            numbered = ((str(n), line.strip()) for n, line in enumerate(handle, 1))
            yield from (Question(n, text) for n, text in numbered if text)
        elif suffix == ".csv":
            reader = csv.DictReader(handle)
            if not reader.fieldnames or "question" not in reader.fieldnames:
                raise BadRequest(f"{path.name}: the first row must name the columns id,question")
            for n, row in enumerate(reader, 1):
                yield Question(str(row.get("id") or n), (row["question"] or "").strip())
        else:
            for n, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    yield Question(str(item.get("id", n)), str(item["question"]).strip())
                except (ValueError, KeyError, TypeError, AttributeError):
                    raise BadRequest(
                        f'{path.name}, line {n}: expected {{"id": ..., "question": ...}}'
                    ) from None


def answered_ids(out: Path, *, retry_errors: bool = False) -> set[str]:
    """Ids already answered in OUT; a last line cut short by a crash is removed so it is redone.

    With `retry_errors`, lines that recorded an error are dropped too, so they are asked again.
    """
    kept, done, dropped = [], set(), False
    for line, item in _lines(out):
        if item is None or (retry_errors and "error" in item):
            dropped = True
            continue
        kept.append(line)
        done.add(str(item["id"]))
    if dropped:
        temporary = out.with_name(out.name + ".tmp")
        temporary.write_bytes(b"".join(kept))
        os.replace(temporary, out)
    return done


def _check_same_questions(questions: list[Question], out: Path) -> None:
    """Refuse an answers file whose ids were asked other questions: their answers would be
    taken as done (two question files of one name, `q.txt` and `q.jsonl`, share
    `q.answers.jsonl`, and a .txt file's ids are its line numbers)."""
    asked = {question.id: question.text for question in questions}
    for _, item in _lines(out):
        if item is None or str(item["id"]) not in asked:
            continue
        was, now = item.get("question"), asked[str(item["id"])]
        if was is not None and " ".join(str(was).split()) != " ".join(now.split()):
            raise BadRequest(
                f"{out.name} holds answers to other questions under the same ids (id "
                f"{item['id']!r}: {str(was)[:60]!r} there, {now[:60]!r} now) — write the "
                f"answers to another file (-o), or remove {out}"
            )


def _lines(out: Path) -> list[tuple[bytes, dict[str, Any] | None]]:
    """OUT's lines, each with its answer (None: torn or damaged); none when OUT is missing."""
    if not out.exists():
        return []
    return [(line, _parse(line)) for line in out.read_bytes().splitlines(keepends=True)]


def _parse(line: bytes) -> dict[str, Any] | None:
    """A complete answer line, or None for a torn or damaged one."""
    if not line.endswith(b"\n"):
        return None
    try:
        item = json.loads(line)
    except ValueError:
        return None
    return item if isinstance(item, dict) and "id" in item else None


def run_batch(
    service: Answerer,
    questions: list[Question],
    out: Path,
    *,
    concurrency: int,
    options: AskOptions,
    on_answer: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, int]:
    """Answer every question not yet in OUT, appending one line each as it finishes."""
    _check_same_questions(questions, out)
    todo = [q for q in questions if q.id not in answered_ids(out)]
    lock = threading.Lock()
    counts = {"answered": 0, "failed": 0, "skipped": len(questions) - len(todo)}
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("ab") as handle:

        def answer(question: Question) -> None:
            line = _answer_line(service, question, options)
            data = (json.dumps(line, ensure_ascii=False) + "\n").encode()
            with lock:
                handle.write(data)  # one write per line: a crash tears at most the last one
                handle.flush()
                os.fsync(handle.fileno())
                counts["failed" if "error" in line else "answered"] += 1
            if on_answer:
                on_answer(line)

        with ThreadPoolExecutor(max(1, concurrency), thread_name_prefix="batch") as pool:
            for future in [pool.submit(answer, q) for q in todo]:
                future.result()
    return counts


def _answer_line(service: Answerer, question: Question, options: AskOptions) -> dict[str, Any]:
    while True:
        try:
            answer = service.ask(question.text, options)
            return {"id": question.id, "question": question.text, **answer.to_json()}
        except QueueFull:
            time.sleep(_QUEUE_FULL_PAUSE_S)  # more threads than the queue holds: wait a turn
        except USER_ERRORS as error:
            reason = getattr(error, "reason", "error")
            return {"id": question.id, "question": question.text,
                    "error": {"reason": reason, "message": str(error)}}  # fmt: skip
