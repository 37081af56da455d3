"""How far page recall on a page-level dev set can go with better ranking, and where it is lost.

Run: .venv/bin/python bench/page_headroom.py [--data DIR] [SET]
     (default set: financebench-dev under ../shared/eval; DIR as in bench/retrieval.py, whose
     stores it reuses)

Prints page recall@10 of each mode as it searches, of each mode searching only the right
document (the document known in advance: what is left is ranking pages inside it), and of a
perfect reranker over hybrid's first n hits (every hit on an evidence page moved to the front,
the rest in order) for each n in CANDIDATES — the most a reranker of that many candidates can
give. When the right-document rows are no higher than the plain ones, choosing the document is
not what loses the pages; the reranker rows say how many candidates one would have to read.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import tempfile

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.evaluation import PageQuestion, is_page_dataset, load_page_dataset, page_scores
from api.service import Archivist, Filters, SearchHit, Settings

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
MODES = ("bm25", "dense", "hybrid")
CANDIDATES = (10, 20, 30, 50, 100)


def recall(hits: list[SearchHit], question: PageQuestion) -> float:
    return page_scores(hits, question)["page_recall@10"]


def perfect_rerank(hits: list[SearchHit], question: PageQuestion, n: int) -> list[SearchHit]:
    """The first `n` hits with those on an evidence page moved to the front."""
    found = [hit for hit in hits[:n] if recall([hit], question) > 0]
    return found + [hit for hit in hits if hit not in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("set", nargs="?", default="financebench-dev")
    parser.add_argument(
        "--data", type=Path, default=Path(tempfile.gettempdir()) / "archivist-bench"
    )
    args = parser.parse_args()
    folder = EVAL / args.set
    if not is_page_dataset(folder):
        sys.exit(f"no page-level dev set (pdfs/ and questions.jsonl) at {folder}")
    dataset = load_page_dataset(folder)
    base = Settings()
    settings = base.model_copy(update={"data": args.data / args.set, "model_dir": base.models})
    totals: dict[str, float] = {}

    def add(row: str, value: float) -> None:
        totals[row] = totals.get(row, 0.0) + value / len(dataset.questions)

    with Archivist(settings) as service:
        service.ingest([dataset.documents])
        for question in dataset.questions:
            inside = Filters(path_glob=f"*/{question.doc}")
            for mode in MODES:
                add(mode, recall(service.search(question.text, k=10, mode=mode), question))
                hits = service.search(question.text, k=10, mode=mode, filters=inside)
                add(f"{mode}, inside the right document", recall(hits, question))
            hits = service.search(question.text, k=max(CANDIDATES), mode="hybrid")
            for n in CANDIDATES:
                add(
                    f"perfect reranker over hybrid's first {n}",
                    recall(perfect_rerank(hits, question, n), question),
                )
    print(f"\n{args.set} ({len(dataset.questions)} questions)")
    print("| ranking | page recall@10 |\n|---|---|")
    for row, value in totals.items():
        print(f"| {row} | {value:.3f} |")


if __name__ == "__main__":
    main()
