"""Search quality on every dev set, each mode and both fusions, in one run.

Run: .venv/bin/python bench/retrieval.py [--data DIR] [--max-queries N] [SET ...]
     (default sets: squad-dev cisi amazon financebench-dev under ../shared/eval;
     default --max-queries 1000, the fixed sample `archivist eval --max-queries 1000` takes)

Each set is ingested through the normal pipeline into DIR/SET (default: a folder under the
system's temporary directory, kept, so a rerun only searches), then every query is searched
in each mode: bm25, dense, hybrid (the embedding model's fusion: blend for MiniLM, min-max
scores with equal weights for any other model) and hybrid under the other of the two. Prints
nDCG@10 for the BEIR sets and page recall@10 (with document recall@1 and figures@10) for
page-level sets, the p50 search latency, and hybrid's margin over its better leg — the number
the default is chosen by.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import tempfile
from typing import Any

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.evaluation import (
    Dataset,
    PageDataset,
    evaluate,
    is_page_dataset,
    load_dataset,
    load_page_dataset,
)
from api.service import Archivist, Settings

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
SETS = ("squad-dev", "cisi", "amazon", "financebench-dev")


def measure(name: str, data: Path, max_queries: int | None) -> dict[str, dict[str, float]]:
    """Each mode's scores on one set, and hybrid's under the fusion the model does not get."""
    folder = EVAL / name
    dataset: Dataset | PageDataset = (
        load_page_dataset(folder, max_queries)
        if is_page_dataset(folder)
        else load_dataset(folder, max_queries)
    )
    base = Settings()
    settings = base.model_copy(update={"data": data / name, "model_dir": base.models})
    say = lambda stage: print(f"  {name}: {stage}", file=sys.stderr, flush=True)  # noqa: E731
    with Archivist(settings) as service:
        report = evaluate(service, dataset, modes=["bm25", "dense", "hybrid"], on_stage=say)
    other = "score" if settings.fusion_method == "blend" else "blend"
    with Archivist(settings.model_copy(update={"fusion": other})) as service:
        fused = evaluate(service, dataset, modes=["hybrid"], on_stage=say)
    return {**report["results"], f"hybrid, {other}": fused["results"]["hybrid"]}


def print_table(name: str, results: dict[str, dict[str, float]]) -> None:
    paged = "page_recall@10" in results["hybrid"]
    metric = "page_recall@10" if paged else "ndcg@10"
    extra = [m for m in ("doc_recall@1", "figures@10") if m in results["hybrid"]]
    print(f"\n{name}\n| mode | {' | '.join([metric, *extra])} | p50 ms |")
    print("|---" * (len(extra) + 3) + "|")
    for mode, scores in results.items():
        cells = "".join(f" {scores[m]:.3f} |" for m in [metric, *extra])
        print(f"| {mode} |{cells} {scores['latency_ms_p50']:.1f} |")
    best_leg = max(results["bm25"][metric], results["dense"][metric])
    print(f"hybrid - better leg: {results['hybrid'][metric] - best_leg:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sets", nargs="*", default=list(SETS))
    scratch = Path(tempfile.gettempdir()) / "archivist-bench"
    parser.add_argument("--data", type=Path, default=scratch)
    parser.add_argument("--max-queries", type=int, default=1000)
    args = parser.parse_args()
    missing = [name for name in args.sets if not (EVAL / name).is_dir()]
    if missing:
        sys.exit(f"no dev set {', '.join(missing)} under {EVAL}")
    everything: dict[str, Any] = {}
    for name in args.sets:
        everything[name] = measure(name, args.data, args.max_queries or None)
        print_table(name, everything[name])


if __name__ == "__main__":
    main()
