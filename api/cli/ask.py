"""`archivist ask` and `archivist batch`: cited answers on the command line and in bulk."""

import sys
from pathlib import Path
from typing import Any

import click

from api.cli.client import connect
from api.cli.console import echo_json, echo_missing_legs, progress
from api.service import (
    MODES,
    Answer,
    AskOptions,
    BadRequest,
    Settings,
    answered_ids,
    read_questions,
    run_batch,
)


def _sampling_options(command: Any) -> Any:
    """The per-question options `ask` and `batch` share."""
    options = [
        click.option("--model", help="Another model of the configured backend (name or GGUF)."),
        click.option("--top-k", "sources", type=click.IntRange(1, 50),
                     help="Passages to retrieve [ARCHIVIST_ASK_SOURCES]."),
        click.option("--mode", type=click.Choice(MODES), default="hybrid", show_default=True,
                     help="How passages are found."),
        click.option("--temperature", type=click.FloatRange(0, 2),
                     help="0: always the likeliest words [ARCHIVIST_TEMPERATURE]."),
        click.option("--top-p", type=click.FloatRange(0, 1), help="Nucleus sampling."),
        click.option("--top-k-sampling", type=click.IntRange(1),
                     help="Sample among the k likeliest tokens."),
        click.option("--seed", type=int, help="Sampling seed, for repeatable answers."),
        click.option("--max-tokens", type=click.IntRange(1), help="Longest answer, in tokens."),
        click.option("--extractive", is_flag=True,
                     help="Quote the sentences that answer best instead of asking the model."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def _ask_options(session_id: str | None, start_session: bool, **values: Any) -> AskOptions:
    return AskOptions(session_id=session_id, start_session=start_session, **values)


@click.command("ask")
@click.argument("question")
@click.option("--session", "session_id", help="Continue this conversation (an id from before).")
@_sampling_options
@click.option("--no-stream", is_flag=True, help="Print the answer when it is complete.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def ask_command(
    settings: Settings,
    question: str,
    session_id: str | None,
    no_stream: bool,
    as_json: bool,
    **values: Any,
) -> int:
    """Answer QUESTION from your documents, citing file and page.

    The answer streams as it is written, then the sources it cites are listed. A session id
    is printed: pass it with --session to ask a follow-up question.

    Example: archivist ask "How often is the lighthouse lens cleaned?"
    """
    options = _ask_options(session_id, start_session=True, **values)
    stream = not (as_json or no_stream)

    streamed = []

    def on_token(piece: str) -> None:
        streamed.append(piece)
        click.echo(piece, nl=False)
        sys.stdout.flush()

    with connect(settings) as service:
        answer = service.ask(question, options, on_token=on_token if stream else None)
    if as_json:
        echo_json(answer.to_json())
        return 0
    if not streamed:
        click.echo(answer.answer, nl=False)
    click.echo("\n")
    if answer.note:
        click.echo(f"({answer.note})", err=True)
    echo_missing_legs(answer.missing_legs)
    _print_sources(answer)
    return 0


def _print_sources(answer: Answer) -> None:
    if answer.citations:
        click.echo("Sources:")
    for citation in answer.citations:
        click.echo(f"  [{citation.n}] {citation.place()}")
    if answer.unknown_citations:
        numbers = ", ".join(f"[{n}]" for n in answer.unknown_citations)
        click.echo(f"  (the answer cites {numbers}, which match no source)", err=True)
    speed = f", {answer.tokens_per_s:.1f} tokens/s" if answer.tokens_per_s else ""
    first = f", first token {answer.first_token_ms / 1000:.1f} s" if answer.first_token_ms else ""
    who = " ".join(name for name in (answer.backend, answer.model) if name)
    click.echo(f"\n{who}{first}{speed}; session {answer.session_id}", err=True)


@click.command("batch")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Answers file (JSON lines) [FILE's name + .answers.jsonl].")  # fmt: skip
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
    help="Questions in flight (the model answers ARCHIVIST_LLM_PARALLEL at once).",
)  # fmt: skip
@click.option("--retry-errors", is_flag=True, help="Ask again the questions that failed before.")
@_sampling_options
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary for scripts.")
@click.pass_obj
def batch_command(
    settings: Settings,
    file: Path,
    out: Path | None,
    concurrency: int,
    retry_errors: bool,
    as_json: bool,
    **values: Any,
) -> int:
    """Answer every question in FILE: .jsonl ({"id", "question"}), .csv (id,question) or .txt.

    Writes one JSON line per question as it finishes (answer, citations, timings, or its
    error). Safe to stop at any time: run it again and it skips the ids already answered.

    Example: archivist batch questions.csv -o answers.jsonl --concurrency 2
    """
    out = out or file.with_name(file.stem + ".answers.jsonl")
    questions = read_questions(file)
    answered_ids(out, retry_errors=retry_errors)  # drop torn (and, if asked, failed) lines
    options = _ask_options(None, start_session=False, **values)
    with connect(settings) as service, progress("questions", as_json) as bar:
        if service.status()["chunks"] == 0:  # every answer would say so, and count as done
            raise BadRequest(
                "no documents have been added yet — put files in the inbox folder "
                f"({settings.inbox}) or run `archivist ingest PATH`, then run the batch"
            )
        bar.reset(total=len(questions))
        bar.update(len(answered_ids(out)))
        counts = run_batch(service, questions, out, concurrency=concurrency, options=options,
                           on_answer=lambda _: bar.update())  # fmt: skip
    summary = {**counts, "questions": len(questions), "output": str(out)}
    if as_json:
        echo_json(summary)
    else:
        click.echo(
            f"{counts['answered']} answered, {counts['failed']} failed, {counts['skipped']} "
            f"already done — {out}"
        )
    return 2 if counts["failed"] else 0
