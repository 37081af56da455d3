"""`archivist search` and `archivist eval`."""

import tempfile
from pathlib import Path
from typing import Any, cast

import click

from api.client import connect
from api.console import counting_bar, echo_json, progress
from api.evaluation import Dataset, load_dataset
from api.page_evaluation import PageDataset, is_page_dataset, load_page_dataset
from api.search import MODES, Filters, Mode, SearchHit
from api.service import Archivist
from api.settings import Settings


@click.command("search")
@click.argument("query")
@click.option("-k", "k", type=click.IntRange(1, 1000), help="Results to show [ARCHIVIST_SEARCH_K].")
@click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True)
@click.option("--path", "path_glob", help="Only files whose path matches this glob.")
@click.option("--type", "file_type", help="Only files of this type (pdf, docx, md, ...).")
@click.option("--document", type=int, help="Only the document with this id.")
@click.option(
    "--explain",
    is_flag=True,
    help="Show each leg's rank and score, and the document's rank and score factor.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def search_command(
    settings: Settings,
    query: str,
    k: int | None,
    mode: str,
    path_glob: str | None,
    file_type: str | None,
    document: int | None,
    explain: bool,
    as_json: bool,
) -> int:
    """Find the passages that best match QUERY (BM25 and embeddings, fused).

    Example: archivist search "how often is the lens cleaned" -k 5 --explain
    """
    filters = Filters(
        path_glob=path_glob,
        file_type=file_type and file_type.lstrip(".").lower(),
        document=document,
    )
    with connect(settings) as service:
        hits = service.search(query, k=k or settings.search_k, mode=_mode(mode), filters=filters)
    if as_json:
        echo_json({"hits": [_hit_json(h, explain) for h in hits]})
        return 0
    if not hits:
        click.echo("No matches.")
    for number, hit in enumerate(hits, 1):
        click.echo(f"{number}. {_where(hit)}  (score {hit.score:.4f})")
        if explain:
            legs = ", ".join(
                f"{leg} #{rank} ({score:.4f})" for leg, (rank, score) in hit.legs.items()
            )
            click.echo(f"   {legs}")
        click.echo(f"   {hit.snippet}\n")
    return 0


@click.command("eval")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--max-queries", type=click.IntRange(1), help="Evaluate a fixed sample of queries.")
@click.option(
    "--data", "data_dir", type=click.Path(file_okay=False, path_type=Path),
    help="Keep the evaluation's data folder here (reused, so reruns skip ingestion).",
)  # fmt: skip
@click.option("--mode", "modes", multiple=True, type=click.Choice(MODES), help="Only these modes.")
@click.option(
    "--answers", is_flag=True,
    help="Also answer every question that has gold answers, and score the answers.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def eval_command(
    settings: Settings,
    dataset_dir: Path,
    max_queries: int | None,
    data_dir: Path | None,
    modes: tuple[str, ...],
    answers: bool,
    as_json: bool,
) -> int:
    """Measure search quality on a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv)
    or on documents with page-level questions (pdfs/ and questions.jsonl with "doc", "pages").

    Prints nDCG@10, Recall@10, Recall@100, MRR@10 and query latency for each mode (page-level
    sets: document recall@1/@5, page recall@1/@5/@10, page MRR@10); with --answers also context
    recall, citation accuracy, answer recall and answer latency.

    Example: archivist eval ../shared/eval/squad-dev --max-queries 200 --answers
    """
    dataset: Dataset | PageDataset
    if is_page_dataset(dataset_dir):
        dataset = load_page_dataset(dataset_dir, max_queries)
    else:
        for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
            if not (dataset_dir / name).is_file():
                raise click.UsageError(
                    f"{dataset_dir} has no {name}: expected the BEIR layout, or pdfs/ and "
                    "questions.jsonl"
                )
        dataset = load_dataset(dataset_dir, max_queries)
    with tempfile.TemporaryDirectory(prefix="archivist-eval-") as scratch:
        folder = data_dir or Path(scratch)
        # The evaluation's own data folder; joined models stay where the user's are.
        eval_settings = settings.model_copy(update={"data": folder, "model_dir": settings.models})
        say = None if as_json else lambda s: click.echo(f"{dataset.name}: {s}", err=True)
        if answers and isinstance(dataset, PageDataset):
            raise click.UsageError("--answers scores BEIR sets (queries with answers) only")
        if answers and isinstance(dataset, Dataset) and not dataset.answers:
            raise click.UsageError(f'{dataset_dir}/queries.jsonl has no "answers"')
        with (
            Archivist(eval_settings) as service,
            progress("questions", as_json or not answers, desc="answering") as bar,
        ):
            report = service.evaluate(
                dataset, modes=[_mode(m) for m in modes or MODES], answers=answers,
                on_stage=say, on_answer=counting_bar(bar),
            )  # fmt: skip
    if as_json:
        echo_json(report)
    else:
        _print_eval(report)
    return 0


def _print_eval(report: dict[str, Any]) -> None:
    click.echo(
        f"\n{report['dataset']}: {report['queries']} queries, "
        f"index built in {report['index_seconds']} s\n"
    )
    first: dict[str, float] = next(iter(report["results"].values()), {})
    columns = [c for c in first if not c.startswith("latency")] + [
        "latency_ms_p50", "latency_ms_p95",
    ]  # fmt: skip
    click.echo(f"{'mode':8}" + "".join(f"{c:>16}" for c in columns))
    for mode, scores in report["results"].items():
        click.echo(f"{mode:8}" + "".join(f"{scores[c]:>16.3f}" for c in columns))
    if "answers" in report:
        answers = report["answers"]
        click.echo(
            f"\nanswers by {answers['backend']} {answers['model'] or ''} on "
            f"{answers['questions']} questions:"
        )
        for name in ("context_recall", "citation_accuracy", "answer_recall", "first_token_ms_p50",
                     "total_ms_p50"):  # fmt: skip
            click.echo(f"  {name:20} {answers[name]}")


def _mode(name: str) -> Mode:
    """A --mode value (click has checked it is one of MODES)."""
    return cast(Mode, name)


def _where(hit: SearchHit) -> str:
    place = hit.path
    if hit.page_start is not None:
        pages = (
            hit.page_start if hit.page_start == hit.page_end else f"{hit.page_start}-{hit.page_end}"
        )
        place += f", page {pages}"
    if hit.section:
        place += f" — {' > '.join(hit.section)}"
    return place


def _hit_json(hit: SearchHit, explain: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "chunk_id": hit.chunk_id,
        "path": hit.path,
        "page": hit.page_start,
        "page_end": hit.page_end,
        "section": " > ".join(hit.section) or None,
        "score": hit.score,
        "snippet": hit.snippet,
    }
    if explain:
        item["legs"] = {leg: {"rank": r, "score": s} for leg, (r, s) in hit.legs.items()}
    return item
