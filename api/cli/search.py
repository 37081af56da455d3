"""`archivist search`."""

from typing import Any, cast

import click

from api.cli.client import connect
from api.cli.console import echo_json, echo_missing_legs
from api.service import MODES, NO_DOCUMENTS, Filters, Mode, SearchHit, Settings


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
        empty = not hits and service.status()["chunks"] == 0
    if as_json:
        echo_json(
            {"hits": [_hit_json(h, explain) for h in hits], "missing_legs": hits.missing_legs}
        )
        return 0
    echo_missing_legs(hits.missing_legs)
    if empty:
        click.echo(NO_DOCUMENTS.format(inbox=settings.inbox))
    elif not hits:
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
