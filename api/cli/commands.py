"""The `archivist` command group: ingest, reindex, status, watch, backup and restore, with
search, ask, batch, eval and models from their modules; `run` turns what a command raises into
an exit code."""

import sys
from pathlib import Path
from typing import Any

import click

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.cli.ask import ask_command, batch_command
from api.cli.client import connect
from api.cli.console import FileTicker, counting_bar, echo_json, progress, show_warnings
from api.cli.evaluate import eval_command
from api.cli.models import models_command
from api.cli.search import search_command
from api.service import (
    USER_ERRORS,
    Archivist,
    ConfigError,
    Settings,
    SyncReport,
    check_session_id,
    load_settings,
    make_backup,
    restore_backup,
    running_server,
)
from ingest.ingester import IngestReport

EXIT_OK, EXIT_USAGE, EXIT_SOME_FAILED = 0, 1, 2


@click.group()
@click.version_option(package_name="archivist")
@click.pass_context
def cli(context: click.Context) -> None:
    """Archivist: ask questions of your documents, privately, on this machine."""
    show_warnings()
    context.obj = load_settings()


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
    with (
        connect(settings) as service,
        progress("files", as_json) as files,
        progress("chunks", as_json, desc="indexing") as chunks,
    ):
        ticker = FileTicker(files)
        outcome = service.ingest(
            paths, force=force, index=not no_index, on_start=files.reset,
            on_file=ticker.on_file, on_page=ticker.on_page, on_progress=counting_bar(chunks),
        )  # fmt: skip
    output = outcome.report.to_json()
    if outcome.index is not None:
        output["index"] = _sync_json(outcome.index)
    error = outcome.index_error
    if error is not None:
        reason = getattr(error, "reason", "index")
        output["index"] = {"error": str(error), "reason": reason}
    if as_json:
        echo_json(output)
    else:
        _print_report(outcome.report)
    if error is not None:
        click.echo(
            f"Error: not indexed yet: {error} — the files are stored and the next "
            "`archivist ingest` indexes them",
            err=True,
        )
        return EXIT_USAGE
    return EXIT_SOME_FAILED if outcome.report.summary()["failed"] else EXIT_OK


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def reindex(settings: Settings, as_json: bool) -> int:
    """Rebuild both search indexes from the SQLite store alone.

    Example: archivist reindex
    """
    server = running_server(settings)
    if server:
        raise ConfigError(f"the server at {server} holds the indexes — stop it, then reindex")
    with Archivist(settings) as service, progress("chunks", as_json, desc="indexing") as bar:
        report = service.reindex(on_progress=counting_bar(bar))
    if as_json:
        echo_json({"index": _sync_json(report)})
    else:
        click.echo(f"Indexed {report.upserted} chunks.")
    return EXIT_OK


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.option(
    "--deep",
    is_flag=True,
    help="Also compare the indexes with SQLite chunk by chunk and run its full integrity check.",
)
@click.pass_obj
def status(settings: Settings, as_json: bool, deep: bool) -> int:
    """Show what the assistant holds: documents, chunks, failures, indexes and the model.

    Example: archivist status --deep --json
    """
    with connect(settings) as service:
        summary = service.status(deep=deep)
    if as_json:
        echo_json(summary)
        return EXIT_OK
    documents = summary["documents"]
    click.echo(f"Data folder: {settings.data}")
    if "server" in summary:
        click.echo(f"Server:      {summary['server']}")
    if "replica_of" in summary:
        click.echo(f"Replica of:  {summary['replica_of']} (documents as of its last sync)")
    click.echo(f"Documents:   {documents['ingested']} ingested, {documents['failed']} failed")
    click.echo(f"Chunks:      {summary['chunks']}")
    click.echo(f"Index work:  {summary['pending_index_work']} pending")
    click.echo(f"Stores:      {_stores_line(summary['stores'])}")
    if "database" in summary:
        database = summary["database"]
        found = "; ".join(database["problems"])
        click.echo(f"Database:    {'sound' if database['sound'] else 'DAMAGED: ' + found}")
    if "embedder" in summary:  # (a server older than this client does not say)
        e = summary["embedder"]
        questions = f", questions {e['questions']}" if e.get("questions") else ""
        click.echo(f"Embedder:    {e['model']} ({e['backend']} on {e['device']}{questions})")
    if "fusion" in summary:  # (a server older than this client does not say)
        f = summary["fusion"]
        weights = f"BM25 {f['weights']['bm25']:g}, dense {f['weights']['dense']:g}"
        click.echo(f"Fusion:      {f['method']} ({weights})")
    click.echo(f"Model:       {_llm_line(summary['llm'])}")
    if "models" in summary:  # (a server older than this client does not say)
        click.echo(f"Models:      {summary['models']} (archivist models lists them)")
    ocr = summary.get("ocr") or {}
    if "reads" in ocr:  # (a server older than this client does not say)
        read = (
            f"; {ocr['pages']} pages read, in {ocr['documents']} documents" if ocr["pages"] else ""
        )
        click.echo(f"OCR:         {ocr['reads']}{read}")
    for doubtful in ocr.get("low_confidence", []):
        pages = ", ".join(map(str, doubtful["pages"]))
        click.echo(f"  low-confidence OCR, pages {pages}: {doubtful['path']}")
    if summary["failed"]:
        click.echo("\nFailed files:")
        for failure in summary["failed"]:
            click.echo(f"  {failure['path']}\n    {failure['reason']}: {failure['error']}")
    return EXIT_OK


@cli.command()
@click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def watch(settings: Settings, folder: Path | None) -> int:
    """Keep the stores in line with a folder (default: the inbox), without HTTP.

    Changes made while nothing watched are reconciled first. Stop with Ctrl+C.

    Example: archivist watch ~/Documents/manuals
    """
    from api.cli.watch import run_watcher

    run_watcher(settings, folder or settings.inbox)
    return EXIT_OK


@cli.command()
@click.option("--session", "session_id", help="Take up this conversation (an id from before).")
@click.option(
    "--no-watch", is_flag=True,
    help="Without a running server: leave the inbox alone (by default it is watched).",
)  # fmt: skip
@click.pass_obj
def chat(settings: Settings, session_id: str | None, no_watch: bool) -> int:
    """Talk with your documents in the terminal: answers as they are written, their sources
    beside them, search, the documents and earlier conversations (keys at the bottom).

    While `archivist serve` runs, the chat goes through it; otherwise it opens the data folder
    and watches its inbox, as the server would.

    Example: archivist chat    (Ctrl+Q quits; F2-F5 switch tabs; Ctrl+O opens a source)
    """
    from api.cli.chat_app import run_chat  # Textual loads only for this command

    if session_id:
        check_session_id(session_id)
    run_chat(settings, session_id, watch=not no_watch)
    return EXIT_OK


@cli.command()
@click.option(
    "--http", "port", type=click.IntRange(1, 65535),
    help="Serve streamable HTTP at http://127.0.0.1:PORT/mcp instead of stdio.",
)  # fmt: skip
@click.pass_obj
def mcp(settings: Settings, port: int | None) -> int:
    """Serve the documents to other assistants over MCP (Model Context Protocol), on stdio.

    Tools: search, ask, list_documents, get_passage; resources: archivist://documents and
    archivist://documents/{id}. While `archivist serve` runs, search and ask go through it.

    Example: archivist mcp    (or, for clients that connect over HTTP: archivist mcp --http 8765)
    """
    from api.cli.mcp_server import serve_mcp  # the MCP SDK loads only for this command

    serve_mcp(settings, port)
    return EXIT_OK


@cli.command()
@click.argument("destination", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def backup(settings: Settings, destination: Path, as_json: bool) -> int:
    """Copy the data folder's databases into a new or empty folder, even while a server runs.

    The indexes are rebuilt from the databases on restore; the documents' files stay where
    they are (copy the inbox alongside if it should travel).

    Example: archivist backup ~/backups/archivist-2026-12-04
    """
    report = make_backup(settings, destination)
    if as_json:
        echo_json(report.to_json())
    else:
        sessions = " and the sessions" if len(report.files) > 1 else ""
        click.echo(
            f"Backed up {report.documents} documents ({report.chunks} chunks){sessions} to "
            f"{destination}."
        )
    return EXIT_OK


@cli.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def restore(settings: Settings, source: Path, as_json: bool) -> int:
    """Restore a backup into a data folder that holds no database, then rebuild the indexes.

    Example: ARCHIVIST_DATA=~/archivist-restored archivist restore ~/backups/archivist-2026-12-04
    """
    report = restore_backup(settings, source)
    with Archivist(settings) as service, progress("chunks", as_json, desc="indexing") as bar:
        index = service.reindex(on_progress=counting_bar(bar))
    if as_json:
        echo_json({**report.to_json(), "index": _sync_json(index)})
    else:
        click.echo(
            f"Restored {report.documents} documents ({report.chunks} chunks) into "
            f"{settings.data} and indexed {index.upserted} chunks."
        )
    return EXIT_OK


for _command in (search_command, ask_command, batch_command, eval_command, models_command):
    cli.add_command(_command)


def _stores_line(stores: dict[str, Any]) -> str:
    if "error" in stores:
        return f"cannot be read now: {stores['error']}"
    # (A replica has no SQLite of its own: the collection is all it has.)
    sqlite = f"SQLite {stores['sqlite']}" if "sqlite" in stores else "replica"
    if stores.get("stale"):
        return f"{sqlite} chunks; {stores['stale']}"
    keyword = _keyword_count(stores)
    if problem := stores.get("busy") or stores.get("unavailable"):
        return f"{sqlite}, {keyword} chunks; {problem}"
    if stores.get("damaged"):
        problems = "; ".join(stores["damaged"].values())
        return (
            f"{sqlite} chunks; {problems} — `archivist reindex` rebuilds "
            "(ingest and serve do it on their own)"
        )
    if "sqlite" not in stores:
        return f"{keyword}, Qdrant {stores['qdrant']} chunks"
    agreement = "in sync" if stores["in_sync"] else "NOT in sync: run `archivist reindex`"
    return f"{sqlite}, {keyword}, Qdrant {stores['qdrant']} chunks ({agreement})"


def _keyword_count(stores: dict[str, Any]) -> str:
    """The BM25 leg's store and count: Tantivy's, or the sparse vectors on a Qdrant server."""
    if "qdrant_bm25" in stores:
        return f"Qdrant BM25 {stores['qdrant_bm25']}"
    return f"Tantivy {stores['tantivy']}"


def _llm_line(llm: dict[str, Any]) -> str:
    line = f"ARCHIVIST_LLM={llm['configured']}"
    plan = llm.get("memory_plan")
    if plan:
        line += (
            f"; embedded model needs ~{plan['total_bytes'] / 2**20:,.0f} MiB "
            f"({plan['weights_bytes'] / 2**20:,.0f} weights + {plan['kv_cache_bytes'] / 2**20:,.0f}"
            f" KV cache for {plan['context_tokens']} tokens x {plan['parallel']})"
        )
    return line


def _sync_json(report: SyncReport) -> dict[str, int]:
    return {"upserted": report.upserted, "deleted": report.deleted}


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


def run(group: click.Group) -> None:
    """Run the command line: exit 0 on success, 1 on usage or configuration errors, 2 if
    inputs failed; a user error is one line on stderr (and a JSON object with --json)."""
    try:
        code = group.main(standalone_mode=False)
    except click.exceptions.Exit as done:
        code = done.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = EXIT_USAGE
    except click.ClickException as error:
        error.show()
        code = EXIT_USAGE
    except USER_ERRORS as error:
        click.echo(f"Error: {error}", err=True)
        if "--json" in sys.argv[1:]:  # scripts get an object on stdout either way
            echo_json({"error": str(error), "reason": getattr(error, "reason", "error")})
        code = EXIT_USAGE
    sys.exit(code if isinstance(code, int) else EXIT_OK)
