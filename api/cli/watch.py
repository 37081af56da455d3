"""`archivist watch [DIR]`: the watched folder without HTTP."""

import threading
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
    folder.mkdir(parents=True, exist_ok=True)
    stop = stop or threading.Event()
    with Archivist(settings) as service:
        background = BackgroundIngest(service, folder)

        def echo(changes: Changes) -> None:
            for path in sorted(changes.touched):
                click.echo(f"changed: {path}")
            for path in sorted(changes.gone):
                click.echo(f"gone:    {path}")

        watcher = background.watcher(
            settle_s=settings.watch_settle_s, skip=settings.state_dir.resolve(), report=echo
        )
        click.echo(f"Watching {folder} (Ctrl+C to stop)")
        watcher.start()
        background.start()
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass
        finally:
            watcher.stop()
            background.stop()
