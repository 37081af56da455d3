"""The keyword leg on a Qdrant server against the Tantivy leg, on every dev set, in one run.

Run: .venv/bin/python bench/keyword.py [--data DIR] [--max-queries N] [SET ...]
     (default sets: squad-dev cisi amazon financebench-dev under ../shared/eval; a Qdrant
     server from `make qdrant` is started on free ports, its storage under DIR)

Each set is ingested once into DIR/SET with both legs on the server (ARCHIVIST_KEYWORD=qdrant:
BM25 as sparse vectors beside the dense ones), and searched in bm25 and hybrid mode; then the
same data folder is opened with the Tantivy leg (refilled from SQLite, nothing embedded
again: the same chunks and the same dense vectors) and searched again. Prints nDCG@10 for
the BEIR sets and page recall@10 (with document recall@1) for page-level sets, each leg's
p50 search latency, and the difference the target bounds (within 0.01 on every set).
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import tempfile
from typing import Any

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.evaluation import evaluate, is_page_dataset, load_dataset, load_page_dataset
from api.service import Archivist, Settings
from tests.qdrant_server import qdrant_installed, running_node

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
SETS = ("squad-dev", "cisi", "amazon", "financebench-dev")
LEGS = ("qdrant", "tantivy")


def measure(name: str, data: Path, url: str, max_queries: int | None) -> dict[str, Any]:
    """bm25 and hybrid scores of one set with each keyword leg, on one store."""
    folder = EVAL / name
    dataset = (
        load_page_dataset(folder, max_queries)
        if is_page_dataset(folder)
        else load_dataset(folder, max_queries)
    )
    base = Settings()
    settings = base.model_copy(update={"data": data / name, "model_dir": base.models,
                                       "qdrant_url": url, "qdrant_collection": name})  # fmt: skip
    results = {}
    for leg in LEGS:

        def say(stage: str, leg: str = leg) -> None:
            print(f"  {name} ({leg}): {stage}", file=sys.stderr, flush=True)

        with Archivist(settings.model_copy(update={"keyword": leg})) as service:
            report = evaluate(service, dataset, modes=["bm25", "hybrid"], on_stage=say)
        results[leg] = report["results"]
    return results


def print_table(name: str, results: dict[str, Any]) -> None:
    paged = "page_recall@10" in results["tantivy"]["hybrid"]
    metrics = ["page_recall@10", "doc_recall@1"] if paged else ["ndcg@10"]
    print(f"\n{name}")
    print(f"  {'mode':<8}{'metric':<16}{'tantivy':>9}{'qdrant':>9}{'diff':>9}"
          f"{'p50 ms T':>10}{'p50 ms Q':>10}")  # fmt: skip
    for mode in ("bm25", "hybrid"):
        tantivy, qdrant = results["tantivy"][mode], results["qdrant"][mode]
        for metric in metrics:
            diff = qdrant[metric] - tantivy[metric]
            p50 = f"{tantivy['latency_ms_p50']:>10.1f}{qdrant['latency_ms_p50']:>10.1f}"
            print(f"  {mode:<8}{metric:<16}{tantivy[metric]:>9.4f}{qdrant[metric]:>9.4f}"
                  f"{diff:>+9.4f}{p50}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sets", nargs="*", default=list(SETS))
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "kw-bench")
    parser.add_argument("--max-queries", type=int, default=1000)
    args = parser.parse_args()
    if not qdrant_installed():
        sys.exit("no Qdrant server: run `make qdrant`")
    with running_node(args.data / "qdrant") as node:
        for name in args.sets:
            print_table(name, measure(name, args.data, node.url, args.max_queries))


if __name__ == "__main__":
    main()
