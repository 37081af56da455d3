"""The `archivist` command line."""

import json
import sys
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from api import pipeline
from api.settings import Settings
from ingest.errors import IngestError, StoreError
from ingest.ingester import FileResult, IngestReport
from retrieval.errors import RetrievalError

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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def ingest(settings: Settings, paths: tuple[Path, ...], force: bool, as_json: bool) -> int:
    """Add files and folders (recursively) to the assistant.

    Unchanged files are skipped; changed files are converted again; files that were removed
    from an ingested folder are forgotten.

    Example: archivist ingest data/inbox ~/Documents/manuals report.pdf
    """
    bar = tqdm(unit="file", disable=as_json or None, file=sys.stderr, dynamic_ncols=True)

    def on_start(total: int) -> None:
        bar.reset(total=total)

    def on_file(result: FileResult) -> None:
        bar.update()

    try:
        report = pipeline.ingest(settings, paths, force=force, on_start=on_start, on_file=on_file)
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps(_report_json(report), ensure_ascii=False))
    else:
        _print_report(report)
    return EXIT_SOME_FAILED if report.summary()["failed"] else EXIT_OK


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def status(settings: Settings, as_json: bool) -> int:
    """Show what the assistant holds: documents by status, chunks, failures with reasons.

    Example: archivist status --json
    """
    store = pipeline.open_store(settings)
    try:
        summary = store.summary()
    finally:
        store.close()
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return EXIT_OK
    documents = summary["documents"]
    click.echo(f"Data folder: {settings.data}")
    click.echo(f"Documents:   {documents['ingested']} ingested, {documents['failed']} failed")
    click.echo(f"Chunks:      {summary['chunks']}")
    click.echo(f"Index work:  {summary['pending_index_work']} pending")
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
