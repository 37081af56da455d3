"""`archivist eval` on real documents with page-level questions (the financebench-dev layout).

A dataset folder holds `pdfs/` (or any documents) and `questions.jsonl`, one question per line
with the file it is about (`doc`, its path inside `pdfs/`) and its evidence pages (`pages`,
1-based). The documents are ingested through the normal path; each mode's hits are then scored
on finding the right file and the right page.
"""

import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.evaluation.beir import latency_scores, rounded, timed_searches
from api.service import MODES, Archivist, BadRequest, Mode, SearchHit
from generation.answer_check import figures

SAMPLE_SEED = 0
DEPTH = 10  # hits scored per question


@dataclass(frozen=True)
class PageQuestion:
    """A question, the file that answers it and the pages that hold the evidence."""

    id: str
    text: str
    doc: str
    pages: frozenset[int]
    answer: str | None = None  # the gold answer, where the set has one


@dataclass(frozen=True)
class PageDataset:
    """Documents in a folder, and questions about their pages."""

    name: str
    documents: Path
    questions: list[PageQuestion]


def is_page_dataset(folder: Path) -> bool:
    """Whether `folder` has the page-level layout (questions.jsonl next to pdfs/)."""
    return (folder / "questions.jsonl").is_file() and (folder / "pdfs").is_dir()


def load_page_dataset(folder: Path, max_queries: int | None = None) -> PageDataset:
    """Read questions.jsonl ({"id", "question", "doc", "pages"}); sample with a fixed seed."""
    questions = []
    for number, line in enumerate((folder / "questions.jsonl").open(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            pages = frozenset(int(p) for p in item["pages"])
            answer = str(item["answer"]) if item.get("answer") else None
            question = PageQuestion(
                str(item["id"]), str(item["question"]), str(item["doc"]), pages, answer
            )
        except (ValueError, KeyError, TypeError):
            raise BadRequest(
                f"{folder.name}/questions.jsonl, line {number}: expected "
                '{"id", "question", "doc", "pages": [1-based page numbers]}'
            ) from None
        questions.append(question)
    missing = sorted({q.doc for q in questions if not (folder / "pdfs" / q.doc).is_file()})
    if missing:
        raise BadRequest(f"{folder.name}/pdfs has no {', '.join(missing)}")
    if max_queries is not None and max_queries < len(questions):
        questions = sorted(
            random.Random(SAMPLE_SEED).sample(questions, max_queries), key=lambda q: q.id
        )
    return PageDataset(folder.name, folder / "pdfs", questions)


def page_scores(hits: Sequence[SearchHit], question: PageQuestion) -> dict[str, float]:
    """Document recall@1/@5 (over distinct files, best first), page recall@1/@5/@10 (share of
    the evidence pages that the first k hits cover) and page MRR@10 for one question; where
    its gold answer holds figures ("$1,577"), figures@10: whether the first k hits' text holds
    every one of them (pages can be found without the figure an answer needs, or the figure
    on another page)."""
    doc = Path(question.doc).parts  # relative to the documents folder: may name a subfolder

    def is_doc(path: str) -> bool:
        return Path(path).parts[-len(doc) :] == doc

    files = list(dict.fromkeys(hit.path for hit in hits))
    covered: list[set[int]] = []
    for hit in hits[:DEPTH]:
        pages: set[int] = set()
        if is_doc(hit.path) and hit.page_start is not None:
            last = hit.page_end if hit.page_end is not None else hit.page_start
            pages = set(range(hit.page_start, last + 1)) & question.pages
        covered.append(pages)

    def page_recall(k: int) -> float:
        found = set().union(*covered[:k]) if covered[:k] else set()
        return len(found) / len(question.pages) if question.pages else 0.0

    first = next((rank for rank, pages in enumerate(covered, 1) if pages), None)
    gold = figures(question.answer or "")
    found = figures("\n".join(hit.text for hit in hits[:DEPTH]))
    figure_scores = {"figures@10": float(gold <= found)} if gold else {}
    return {
        **figure_scores,
        "doc_recall@1": float(any(map(is_doc, files[:1]))),
        "doc_recall@5": float(any(map(is_doc, files[:5]))),
        "page_recall@1": page_recall(1),
        "page_recall@5": page_recall(5),
        "page_recall@10": page_recall(10),
        "page_mrr@10": 1.0 / first if first else 0.0,
    }


def run_page_eval(
    service: Archivist,
    dataset: PageDataset,
    *,
    modes: Sequence[Mode] = MODES,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest and index the documents, then score every mode on every question."""
    say = on_stage or (lambda _: None)
    say(f"ingesting and indexing {dataset.documents}")
    started = time.perf_counter()
    outcome = service.ingest([dataset.documents])
    index_seconds = time.perf_counter() - started
    service.indexes.embedder.encode_query("warm up")
    results = {}
    for mode in modes:
        say(f"searching: {mode}")
        latencies: list[float] = []
        texts = (q.text for q in dataset.questions)
        found = timed_searches(service, texts, k=DEPTH, mode=mode, latencies=latencies)
        totals: dict[str, float] = {}
        counts: dict[str, int] = {}  # figures@10 counts only the questions with gold figures
        for question, hits in zip(dataset.questions, found, strict=True):
            for name, value in page_scores(hits, question).items():
                totals[name] = totals.get(name, 0.0) + value
                counts[name] = counts.get(name, 0) + 1
        means = {name: total / counts[name] for name, total in totals.items()}
        results[mode] = rounded({**means, **latency_scores(latencies)})
    summary = outcome.report.summary()
    return {
        "dataset": dataset.name,
        "queries": len(dataset.questions),
        "documents": summary["ingested"] + summary["unchanged"],
        "failed_documents": summary["failed"],
        "index_seconds": round(index_seconds, 1),
        "results": results,
    }
