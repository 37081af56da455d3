"""`archivist eval`: retrieval quality and latency on a BEIR-layout dataset, per search mode."""

import json
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.service import MODES, Archivist, Mode, SearchHit
from retrieval.metrics import evaluate, percentile

SAMPLE_SEED = 0


@dataclass(frozen=True)
class Dataset:
    """A BEIR dataset: corpus documents, queries and graded relevance judgments."""

    name: str
    corpus: list[dict[str, str]]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    answers: dict[str, list[str]]  # gold answer strings, for sets that have them


def load_dataset(folder: Path, max_queries: int | None = None) -> Dataset:
    """Read corpus.jsonl, queries.jsonl and qrels/test.tsv; sample queries with a fixed seed."""
    corpus = [json.loads(line) for line in (folder / "corpus.jsonl").open() if line.strip()]
    queries, answers = {}, {}
    for line in (folder / "queries.jsonl").open():
        if line.strip():
            query = json.loads(line)
            queries[str(query["_id"])] = query["text"]
            if query.get("answers"):
                answers[str(query["_id"])] = [str(a) for a in query["answers"]]
    qrels: dict[str, dict[str, int]] = {}
    for row in (folder / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        query_id, doc_id, score = row.split("\t")
        qrels.setdefault(query_id, {})[doc_id] = int(score)
    judged = sorted(q for q in qrels if q in queries)
    if max_queries is not None and max_queries < len(judged):
        judged = sorted(random.Random(SAMPLE_SEED).sample(judged, max_queries))
    return Dataset(
        folder.name,
        corpus,
        {q: queries[q] for q in judged},
        {q: qrels[q] for q in judged},
        {q: answers[q] for q in judged if q in answers},
    )


def write_corpus(dataset: Dataset, folder: Path) -> dict[str, str]:
    """One Markdown file per corpus document (title as heading); returns file path -> doc id."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for number, document in enumerate(dataset.corpus):
        path = folder / f"{number:07d}.md"
        title = " ".join(str(document.get("title") or "").split())
        body = str(document.get("text") or "")
        text = f"# {title}\n\n{body}\n" if title else f"{body}\n"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        paths[str(path.resolve())] = str(document["_id"])
    return paths


def timed_searches(
    service: Archivist, queries: Iterable[str], *, k: int, mode: Mode, latencies: list[float]
) -> Iterator[list[SearchHit]]:
    """Each query's hits in turn (one search at a time); each search's time in ms is appended
    to `latencies`."""
    for text in queries:
        begun = time.perf_counter()
        hits = service.search(text, k=k, mode=mode)
        latencies.append((time.perf_counter() - begun) * 1000)
        yield hits


def latency_scores(latencies: Sequence[float]) -> dict[str, float]:
    """The p50 and p95 of search times, as reports name them."""
    return {"latency_ms_p50": percentile(latencies, 50),
            "latency_ms_p95": percentile(latencies, 95)}  # fmt: skip


def rounded(scores: dict[str, float]) -> dict[str, float]:
    """Scores as reports print them."""
    return {name: round(value, 4) for name, value in scores.items()}


def run_eval(
    service: Archivist,
    dataset: Dataset,
    *,
    modes: Sequence[Mode] = MODES,
    on_stage: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Ingest and index the corpus, then score every mode's ranking of every query."""
    say = on_stage or (lambda _: None)
    say(f"writing {len(dataset.corpus)} documents")
    corpus = service.settings.data / "corpus"
    doc_ids = write_corpus(dataset, corpus)
    started = time.perf_counter()
    say("ingesting and indexing")
    service.ingest([corpus])
    index_seconds = time.perf_counter() - started
    results = {}
    service.indexes.embedder.encode_query("warm up")
    for mode in modes:
        say(f"searching: {mode}")
        latencies: list[float] = []
        found = timed_searches(
            service, dataset.queries.values(), k=100, mode=mode, latencies=latencies
        )
        run = {
            query_id: list(dict.fromkeys(doc_ids[h.path] for h in hits if h.path in doc_ids))
            for query_id, hits in zip(dataset.queries, found, strict=True)
        }
        results[mode] = rounded({**evaluate(run, dataset.qrels), **latency_scores(latencies)})
    return {
        "dataset": dataset.name,
        "queries": len(dataset.queries),
        "index_seconds": round(index_seconds, 1),
        "results": results,
    }
