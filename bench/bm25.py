"""Our BM25 leg (Tantivy) against bm25s, on the BEIR-layout dev sets.

Run: .venv/bin/python bench/bm25.py [--max-queries N] [SET ...]
     (default sets: squad-dev cisi amazon under ../shared/eval; default --max-queries 1000,
     the fixed sample the README's `archivist eval` table uses; 0 takes every judged query)

For each set, side by side in one run and on the same sampled queries (`load_dataset`, so the
same seed as `archivist eval --max-queries N`), each engine indexes one entry per corpus
document and returns its top 100 for every query:
- ours: `retrieval.keyword.KeywordIndex` in a temporary folder, title + body as ingestion
  feeds it (chunk_id=_id, title=title, body=text), searched through `KeywordIndex.search`;
- bm25s: the library's standard recipe over title + text (its English stopwords, PyStemmer's
  Snowball English stemmer, `bm25s.BM25()` defaults: Lucene scoring, k1=1.5, b=0.75);
- bm25s k1=1.2: the same with Tantivy's parameters (k1=1.2, b=0.75).
Prints nDCG@10, recall@100 and the p50 time per query (analysis included, one query at a
time on one thread, after a short warm-up), then ours/bm25s nDCG@10 ratios per set.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import api  # noqa: F401  (prepares the environment before numpy loads)

# isort: split
import bm25s  # (loads numpy, so after api)
import Stemmer

from api.evaluation import Dataset, load_dataset
from retrieval.keyword import KeywordDoc, KeywordIndex
from retrieval.metrics import evaluate, percentile

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
SETS = ("squad-dev", "cisi", "amazon")
K = 100
WARM_UP = 20

Search = Callable[[str], list[str]]  # query text -> doc ids, best first


@contextmanager
def ours(dataset: Dataset) -> Iterator[Search]:
    """Our keyword index over the corpus, one KeywordDoc per document."""
    with (
        tempfile.TemporaryDirectory(prefix="archivist-bm25-") as folder,
        KeywordIndex(Path(folder)) as index,
    ):
        index.upsert(
            [
                KeywordDoc(str(d["_id"]), str(d.get("title") or ""), str(d.get("text") or ""))
                for d in dataset.corpus
            ]
        )
        index.commit()
        yield lambda query: [chunk_id for chunk_id, _ in index.search(query, K)]


@contextmanager
def bm25s_engine(dataset: Dataset, **params: float | str) -> Iterator[Search]:
    """bm25s's standard recipe over title + text; `params` go to `bm25s.BM25`."""
    stemmer = Stemmer.Stemmer("english")
    ids = [str(d["_id"]) for d in dataset.corpus]
    texts = [f"{d.get('title') or ''}\n{d.get('text') or ''}" for d in dataset.corpus]
    retriever = bm25s.BM25(**params)
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    retriever.index(tokens, show_progress=False)
    k = min(K, len(ids))

    def search(query: str) -> list[str]:
        terms = bm25s.tokenize(
            [query], stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False
        )
        if not terms[0]:
            return []
        found, scores = retriever.retrieve(terms, k=k, show_progress=False, n_threads=1)
        # Documents without any query term score 0 and fill the tail; ours returns none.
        return [ids[i] for i, s in zip(found[0], scores[0], strict=True) if s > 0]

    yield search


ENGINES: dict[str, Callable[[Dataset], AbstractContextManager[Search]]] = {
    "ours": ours,
    "bm25s": bm25s_engine,
    "bm25s k1=1.2": lambda dataset: bm25s_engine(dataset, k1=1.2, b=0.75),
}


def measure(dataset: Dataset, search: Search) -> dict[str, float]:
    """nDCG@10, recall@100 and p50 ms per query of one engine on one set."""
    for query in list(dataset.queries.values())[:WARM_UP]:
        search(query)
    run, latencies = {}, []
    for query_id, query in dataset.queries.items():
        started = time.perf_counter()
        run[query_id] = search(query)
        latencies.append((time.perf_counter() - started) * 1000)
    scores = evaluate(run, dataset.qrels)
    return {"ndcg": scores["ndcg@10"], "recall": scores["recall@100"],
            "p50": percentile(latencies, 50)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", default=list(SETS))
    parser.add_argument("--max-queries", type=int, default=1000)
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    print(f"{'set':10} | {'engine':13} | nDCG@10 | recall@100 | p50 ms")
    for name in args.sets:
        dataset = load_dataset(EVAL / name, args.max_queries or None)
        print(f"# {name}: {len(dataset.corpus)} documents, {len(dataset.queries)} queries")
        for engine, build in ENGINES.items():
            with build(dataset) as search:
                scores = results.setdefault(name, {})[engine] = measure(dataset, search)
            print(f"{name:10} | {engine:13} | {scores['ndcg']:7.4f} | "
                  f"{scores['recall']:10.4f} | {scores['p50']:6.2f}", flush=True)  # fmt: skip
    print("\nours / bm25s, nDCG@10 (gap = ours - bm25s)")
    for name, engines in results.items():
        mine = engines["ours"]["ndcg"]
        for other in ("bm25s", "bm25s k1=1.2"):
            theirs = engines[other]["ndcg"]
            print(f"{name:10} | vs {other:13} | ratio {mine / theirs:.3f} | "
                  f"gap {mine - theirs:+.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
