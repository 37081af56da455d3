"""`archivist models`: what the machine's models folder holds, and `archivist models prune`."""

import click

from api.cli.console import echo_json
from api.service import InstalledModel, Settings, installed_models, prune_models


@click.group("models", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_context
def models_command(context: click.Context, as_json: bool) -> int:
    """List the models every data folder of this machine shares: where, sizes, SHA-256, and
    which the current settings use (ARCHIVIST_MODELS sets the folder).

    Example: archivist models --json
    """
    if context.invoked_subcommand is not None:
        return 0
    settings: Settings = context.obj
    found = installed_models(settings)
    if as_json:
        echo_json(
            {
                "folder": str(settings.models),
                "models": [model.to_json() for model in found],
                "total_bytes": sum(model.bytes for model in found),
            }
        )
        return 0
    click.echo(f"Models folder: {settings.models}")
    for model in found:
        click.echo(_line(model))
    if not found:
        click.echo("  (empty: models are made here on first use)")
    total = sum(model.bytes for model in found)
    click.echo(f"{len(found)} files, {_megabytes(total)}; * = named by the current settings")
    return 0


@models_command.command("prune")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object for scripts.")
@click.pass_obj
def prune_command(settings: Settings, dry_run: bool, as_json: bool) -> int:
    """Remove the models no current setting names from the machine's models folder (a data
    folder's own models/ is never touched; delete it yourself once the machine's has them).

    Example: archivist models prune --dry-run
    """
    removed = prune_models(settings, dry_run=dry_run)
    freed = sum(model.bytes for model in removed)
    if as_json:
        echo_json(
            {
                "dry_run": dry_run,
                "removed": [model.to_json() for model in removed],
                "freed_bytes": freed,
            }
        )
        return 0
    verb = "Would remove" if dry_run else "Removed"
    for model in removed:
        click.echo(f"{verb} {model.path} ({_megabytes(model.bytes)})")
    click.echo(f"{verb} {len(removed)} files, {_megabytes(freed)}.")
    return 0


def _line(model: InstalledModel) -> str:
    mark = "*" if model.named else " "
    where = "" if model.location == "machine" else f"  [{model.location}]"
    digest = f"sha256 {model.sha256[:16]}" if model.sha256 else "sha256 not recorded"
    return f"{mark} {model.kind:4}  {_megabytes(model.bytes):>10}  {digest}  {model.path}{where}"


def _megabytes(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"
