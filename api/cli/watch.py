"""`archivist watch [DIR]`: the watched folder without HTTP (and `watching`, which the terminal
chat runs too)."""

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import click

from api.service import Archivist, BackgroundIngest, ConfigError, Settings, running_server
from ingest.watch import Changes


def run_watcher(settings: Settings, folder: Path, *, stop: threading.Event | None = None) -> None:
    """Reconcile `folder` with the stores, then apply its changes until Ctrl+C (or `stop`)."""
    other = running_server(settings)
    if other:
        raise ConfigError(f"the server at {other} already watches {settings.inbox} — stop it first")
    folder = folder.resolve()
    stop = stop or threading.Event()

    def echo(changes: Changes) -> None:
        for path in sorted(changes.touched):
            click.echo(f"changed: {path}")
        for path in sorted(changes.gone):
            click.echo(f"gone:    {path}")

    with Archivist(settings) as service, watching(service, folder, report=echo):
        click.echo(f"Watching {folder} (Ctrl+C to stop)")
        with suppress(KeyboardInterrupt):
            stop.wait()


@contextmanager
def watching(
    service: Archivist, folder: Path, *, report: Callable[[Changes], None] | None = None
) -> Iterator[BackgroundIngest]:
    """Keep the stores in line with `folder` (reconciled first) while the block runs; `report`
    hears of each settled change."""
    folder.mkdir(parents=True, exist_ok=True)
    background = BackgroundIngest(service, folder)
    settings = service.settings
    watcher = background.watcher(
        settle_s=settings.watch_settle_s, skip=settings.state_dir.resolve(), report=report
    )
    watcher.start()
    background.start()
    try:
        yield background
    finally:
        watcher.stop()
        background.stop()
