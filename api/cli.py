"""The `archivist` command line."""

import os

# Before numpy loads: OpenBLAS's idle worker spins on 2-core machines and doubles query latency;
# the tokenizer's own threads would fight the conversion workers; no hub may be contacted.
for _name, _value in (
    ("OPENBLAS_NUM_THREADS", "1"),
    ("TOKENIZERS_PARALLELISM", "false"),
    ("HF_HUB_OFFLINE", "1"),
):
    os.environ.setdefault(_name, _value)

import json  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import click  # noqa: E402
from tqdm import tqdm  # noqa: E402

from api import pipeline  # noqa: E402
from api.settings import Settings  # noqa: E402
from ingest.errors import IngestError, StoreError  # noqa: E402
from ingest.ingester import IngestReport  # noqa: E402
from retrieval.errors import RetrievalError  # noqa: E402

EXIT_OK, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2


@click.group()
@click.version_option(package_name="archivist")
@click.pass_context
def cli(context: click.Context) -> None:
    """Archivist: ask questions of your documents, privately, on this machine."""
    context.obj = Settings()


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--force", is_flag=True, help="Convert every file again, even if unchanged.")
@click.option("--no-index", is_flag=True, help="Only convert and store; index on a later run.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def ingest(
    settings: Settings, paths: tuple[Path, ...], force: bool, no_index: bool, as_json: bool
) -> int:
    """Add files and folders (recursively) to the assistant, then index them for search.

    Unchanged files are skipped; changed files are converted again; files that were removed
    from an ingested folder are forgotten.

    Example: archivist ingest data/inbox ~/Documents/manuals report.pdf
    """
    with _progress("files", as_json) as bar:
        report = pipeline.ingest(
            settings, paths, force=force, on_start=bar.reset, on_file=lambda _: bar.update()
        )
    output = _report_json(report)
    if not no_index:
        output["index"] = _sync(settings, as_json)
    if as_json:
        click.echo(json.dumps(output, ensure_ascii=False))
    else:
        _print_report(report)
    return EXIT_SOME_FAILED if report.summary()["failed"] else EXIT_OK


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def reindex(settings: Settings, as_json: bool) -> int:
    """Rebuild both search indexes from the SQLite store alone.

    Example: archivist reindex
    """
    pipeline.rebuild(settings)
    counts = _sync(settings, as_json)
    if as_json:
        click.echo(json.dumps({"index": counts}))
    else:
        click.echo(f"Indexed {counts['upserted']} chunks.")
    return EXIT_OK


def _sync(settings: Settings, quiet: bool) -> dict[str, int]:
    """Drain the index queue with a progress bar; returns what was done."""
    with _progress("chunks", quiet, desc="indexing") as bar:

        def on_progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.reset(total=total)
            bar.n = done
            bar.refresh()

        report = pipeline.sync(settings, on_progress=on_progress)
    return {"upserted": report.upserted, "deleted": report.deleted}


def _progress(unit: str, quiet: bool, desc: str | None = None) -> tqdm:
    """A progress bar on stderr, shown only on a terminal and never with --json."""
    return tqdm(unit=unit, desc=desc, disable=quiet or None, file=sys.stderr, dynamic_ncols=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> int:
    """Show what the assistant holds: documents by status, chunks, failures with reasons.

    Example: archivist status --json
    """
    summary = pipeline.status(settings)
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return EXIT_OK
    documents = summary["documents"]
    click.echo(f"Data folder: {settings.data}")
    click.echo(f"Documents:   {documents['ingested']} ingested, {documents['failed']} failed")
    click.echo(f"Chunks:      {summary['chunks']}")
    click.echo(f"Index work:  {summary['pending_index_work']} pending")
    stores = summary["stores"]
    if "error" in stores:
        click.echo(f"Stores:      cannot be read now: {stores['error']}")
    else:
        agreement = "in sync" if stores["in_sync"] else "NOT in sync: run `archivist reindex`"
        click.echo(
            f"Stores:      SQLite {stores['sqlite']}, Tantivy {stores['tantivy']}, "
            f"Qdrant {stores['qdrant']} chunks ({agreement})"
        )
    if summary["failed"]:
        click.echo("\nFailed files:")
        for failure in summary["failed"]:
            click.echo(f"  {failure['path']}\n    {failure['reason']}: {failure['error']}")
    return EXIT_OK


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.pass_obj
def serve(settings: Settings, host: str, port: int) -> int:
    """Serve the status page and /health over HTTP (the full API comes later).

    Example: archivist serve --port 8000
    """
    from api.server import run_server

    run_server(settings, host, port)
    return EXIT_OK


from api.cli_search import eval_command, search_command  # noqa: E402

cli.add_command(search_command)
cli.add_command(eval_command)


def _report_json(report: IngestReport) -> dict[str, Any]:
    files = []
    for result in report.files:
        item: dict[str, Any] = {
            "path": result.path,
            "status": result.status,
            "chunks": result.chunks,
        }
        if result.status == "failed":
            item["reason"] = result.reason
            item["error"] = result.error
        if result.pages_without_text:
            item["pages_without_text"] = result.pages_without_text
        files.append(item)
    return {"summary": report.summary(), "files": files, "removed": report.removed}


def _print_report(report: IngestReport) -> None:
    summary = report.summary()
    click.echo(
        f"{summary['ingested']} ingested, {summary['unchanged']} unchanged, "
        f"{summary['failed']} failed, {summary['removed']} removed"
    )
    for result in report.files:
        if result.status == "failed":
            click.echo(f"  failed: {result.error}", err=True)
        elif result.pages_without_text:
            click.echo(
                f"  note: {Path(result.path).name}: {result.pages_without_text} pages have no "
                "text layer (scanned?) and were skipped",
                err=True,
            )


def main() -> None:
    """Entry point: exit 0 on success, 1 on usage or configuration errors, 2 if inputs failed."""
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        code = done.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = EXIT_USAGE
    except click.ClickException as error:
        error.show()
        code = EXIT_USAGE
    except (pipeline.ConfigError, StoreError, RetrievalError, IngestError) as error:
        click.echo(f"Error: {error}", err=True)
        code = EXIT_USAGE
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":
    main()
