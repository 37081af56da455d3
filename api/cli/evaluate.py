"""`archivist eval`: search and answer quality on a dataset, in a scratch data folder."""

import contextlib
import tempfile
from pathlib import Path
from typing import Any, cast

import click

from api.cli.console import counting_bar, echo_json, progress
from api.evaluation import (
    Dataset,
    PageDataset,
    evaluate,
    is_page_dataset,
    load_dataset,
    load_page_dataset,
)
from api.service import MODES, Archivist, AskOptions, Mode, Settings


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
@click.option(
    "--answers-out", type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="With --answers: write each question, gold answers, answer and scores (JSON lines).",
)  # fmt: skip
@click.option("--extractive", is_flag=True, help="With --answers: quote instead of the model.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def eval_command(
    settings: Settings,
    dataset_dir: Path,
    max_queries: int | None,
    data_dir: Path | None,
    modes: tuple[str, ...],
    answers: bool,
    answers_out: Path | None,
    extractive: bool,
    as_json: bool,
) -> int:
    """Measure search quality on a BEIR dataset (corpus.jsonl, queries.jsonl, qrels/test.tsv)
    or on documents with page-level questions (pdfs/ and questions.jsonl with "doc", "pages").

    Prints nDCG@10, Recall@10, Recall@100, MRR@10 and query latency for each mode (page-level
    sets: document recall@1/@5, page recall@1/@5/@10, page MRR@10 and, where gold answers hold
    figures, the share whose figures are all in the first 10 hits); with --answers (sets whose
    questions have gold answers) also context recall, citation accuracy, answer recall, the
    shares of degenerate answers, false refusals, extractive and rejected answers, figures
    found (financebench layout) and answer latency.

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
        # The evaluation's own data folder; the models are the machine's, as for every folder.
        eval_settings = settings.model_copy(update={"data": folder})
        say = None if as_json else lambda s: click.echo(f"{dataset.name}: {s}", err=True)
        if (
            answers
            and isinstance(dataset, PageDataset)
            and not any(q.answer for q in dataset.questions)
        ):
            raise click.UsageError(f'{dataset_dir}/questions.jsonl has no "answer"')
        if answers and isinstance(dataset, Dataset) and not dataset.answers:
            raise click.UsageError(f'{dataset_dir}/queries.jsonl has no "answers"')
        if (answers_out or extractive) and not answers:
            raise click.UsageError("--answers-out and --extractive go with --answers")
        with (
            Archivist(eval_settings) as service,
            progress("questions", as_json or not answers, desc="answering") as bar,
            answers_out.open("w") if answers_out else contextlib.nullcontext() as out,
        ):
            report = evaluate(
                service, dataset, modes=[cast(Mode, m) for m in modes or MODES], answers=answers,
                ask=AskOptions(extractive=extractive), answers_out=out, on_stage=say,
                on_answer=counting_bar(bar),
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
        for name, value in answers.items():
            if name not in ("backend", "model", "questions"):
                click.echo(f"  {name:20} {value}")
