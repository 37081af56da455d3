"""Whether a stronger embedder pays as a second stage over an index that stays on MiniLM.

Run: .venv/bin/python bench/second_stage.py --base DIR --strong DIR [--model NAME] [SET ...]
     (default sets: squad-dev cisi amazon financebench-dev; default model
     nomic-embed-text-v1.5; each DIR holds one store per set, as bench/retrieval.py builds
     them: DIR/SET — --base with the default embedder, --strong with ARCHIVIST_EMBED_MODEL=NAME)

For every question: hybrid's first CANDIDATES hits in the base store, then the stronger
model's cosine of each of those chunks — its vectors from the strong store's dense index, where
the same chunks carry the same ids (candidates without a vector there — a chunk cut
differently, as most of a filing's are: the two models count tokens a little differently — are
counted and embedded on the spot from the same text, led by its document context, as ingest
does). Prints, per set, the base hybrid, the candidates re-ordered by the stronger cosine
alone, reciprocal rank fusion of the two orders (k = 60, no weight fitted), and the strong
store's own hybrid: nDCG@10 on the BEIR sets; page recall@10, document recall@1 and figures@10
on page-level sets. The stronger vectors are computed at ingest, so only the question is
embedded twice at search time.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
from collections.abc import Callable, Sequence
from typing import Any

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.evaluation import (
    is_page_dataset,
    load_dataset,
    load_page_dataset,
    page_scores,
    write_corpus,
)
from api.service import Archivist, SearchHit, Settings, embedding_text
from bench.retrieval import EVAL, SETS
from retrieval.metrics import evaluate

CANDIDATES = 50
RRF_K = 60
ROWS = ("base hybrid", "second stage: cosine", "second stage: rrf", "strong hybrid")

Ranked = dict[str, list[SearchHit]]  # row -> hits, best first
_EMBEDDED: dict[str, Any] = {}  # chunk id -> the stronger model's vector, where ingest made none


def rankings(base: Archivist, strong: Archivist, question: str, missing: list[int]) -> Ranked:
    """Each row's order of the hits for one question."""
    hits = base.search(question, k=CANDIDATES, mode="hybrid")
    vector = strong.indexes.embedder.encode_query(question)
    ids = [hit.chunk_id for hit in hits]
    cosine = dict(strong.indexes.dense.search(vector, len(ids), only_ids=ids))
    absent = [hit for hit in hits if hit.chunk_id not in cosine]
    new = [hit for hit in absent if hit.chunk_id not in _EMBEDDED]
    if new:  # chunked differently (a longer window): embedded here, as ingest would have
        chunks = base.store.chunks([hit.chunk_id for hit in new])
        rows = strong.indexes.embedder.encode([embedding_text(chunk) for chunk in chunks])
        _EMBEDDED.update({chunk.id: row for chunk, row in zip(chunks, rows, strict=True)})
    cosine.update({hit.chunk_id: float(_EMBEDDED[hit.chunk_id] @ vector) for hit in absent})
    missing.append(len(absent))
    by_cosine = sorted(hits, key=lambda hit: -cosine.get(hit.chunk_id, -2.0))
    rank = {hit.chunk_id: n for n, hit in enumerate(by_cosine)}
    fused = sorted(range(len(hits)), key=lambda n: -(1 / (RRF_K + n) + 1 / (RRF_K + rank[ids[n]])))
    return {
        ROWS[0]: hits,
        ROWS[1]: by_cosine,
        ROWS[2]: [hits[n] for n in fused],
        ROWS[3]: strong.search(question, k=CANDIDATES, mode="hybrid"),
    }


def page_set(name: str, base: Archivist, strong: Archivist) -> tuple[dict[str, dict], int]:
    dataset = load_page_dataset(EVAL / name)
    missing: list[int] = []
    totals: dict[str, dict[str, float]] = {row: {} for row in ROWS}
    counts: dict[str, int] = {}
    for question in dataset.questions:
        for row, hits in rankings(base, strong, question.text, missing).items():
            for metric, value in page_scores(hits, question).items():
                totals[row][metric] = totals[row].get(metric, 0.0) + value
                if row == ROWS[0]:
                    counts[metric] = counts.get(metric, 0) + 1
    means = {row: {m: v / counts[m] for m, v in scores.items()} for row, scores in totals.items()}
    return means, sum(missing)


def beir_set(name: str, base: Archivist, strong: Archivist) -> tuple[dict[str, dict], int]:
    dataset = load_dataset(EVAL / name, 1000)
    doc_ids = {
        **write_corpus(dataset, base.settings.data / "corpus"),
        **write_corpus(dataset, strong.settings.data / "corpus"),
    }
    missing: list[int] = []
    runs: dict[str, dict[str, list[str]]] = {row: {} for row in ROWS}
    for query_id, text in dataset.queries.items():
        for row, hits in rankings(base, strong, text, missing).items():
            found = (doc_ids[hit.path] for hit in hits if hit.path in doc_ids)
            runs[row][query_id] = list(dict.fromkeys(found))
    scores = {row: evaluate(run, dataset.qrels, ks=(10,)) for row, run in runs.items()}
    return scores, sum(missing)


def open_service(settings: Settings, folder: Path) -> Archivist:
    if not (folder / "state").is_dir():
        sys.exit(f"no store at {folder}: build it first with bench/retrieval.py --data")
    return Archivist(settings.model_copy(update={"data": folder}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sets", nargs="*", default=list(SETS))
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--strong", type=Path, required=True)
    parser.add_argument("--model", default="nomic-embed-text-v1.5")
    args = parser.parse_args()
    defaults = Settings()
    base_settings = defaults.model_copy(update={"model_dir": defaults.models})
    strong_settings = base_settings.model_copy(update={"embed_model": args.model})
    score_set: Callable[[str, Archivist, Archivist], tuple[dict[str, dict], int]]
    for name in args.sets:
        paged = is_page_dataset(EVAL / name)
        score_set = page_set if paged else beir_set
        with (
            open_service(base_settings, args.base / name) as base,
            open_service(strong_settings, args.strong / name) as strong,
        ):
            scores, missing = score_set(name, base, strong)
        metrics: Sequence[str] = (
            [m for m in ("page_recall@10", "doc_recall@1", "figures@10") if m in scores[ROWS[0]]]
            if paged
            else ["ndcg@10"]
        )
        print(f"\n{name} (candidates without a {args.model} vector: {missing})")
        print(f"| order | {' | '.join(metrics)} |\n|---" + "|---" * len(metrics) + "|")
        for row in ROWS:
            print(f"| {row} |" + "".join(f" {scores[row][m]:.3f} |" for m in metrics))


if __name__ == "__main__":
    main()
