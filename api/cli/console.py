"""What every command shares: progress bars on stderr and one-line JSON on stdout."""

import json
import logging
import sys
import threading
from pathlib import Path
from typing import Any

import click
from tqdm import tqdm

from ingest.ingester import FileResult


def progress(unit: str, quiet: bool, desc: str | None = None, total: int | None = None) -> tqdm:
    """A progress bar on stderr, shown only on a terminal and never with --json."""
    return tqdm(
        unit=unit, desc=desc, total=total, disable=quiet or None, file=sys.stderr,
        dynamic_ncols=True,
    )  # fmt: skip


def counting_bar(bar: tqdm) -> Any:
    """An `on_progress(done, total)` callback that moves a bar."""

    def on_progress(done: int, total: int) -> None:
        if bar.total != total:
            bar.reset(total=total)
        bar.n = done
        bar.refresh()

    return on_progress


class FileTicker:
    """Moves a bar of files as each is done, and shows beside it how far each long PDF or
    picture has come ("scan.pdf page 37/400")."""

    def __init__(self, bar: tqdm) -> None:
        self._bar = bar
        self._pages: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()

    def on_page(self, path: str, done: int, count: int) -> None:
        with self._lock:
            self._pages[Path(path).name] = (done, count)
            self._show()

    def on_file(self, result: FileResult) -> None:
        with self._lock:
            self._pages.pop(Path(result.path).name, None)
            self._bar.update()
            self._show()

    def _show(self) -> None:
        pages = ", ".join(
            f"{name} page {done}/{count}" for name, (done, count) in self._pages.items()
        )
        self._bar.set_postfix_str(pages)


def echo_json(data: Any) -> None:
    """One JSON object on one line of stdout."""
    click.echo(json.dumps(data, ensure_ascii=False))


def echo_missing_legs(missing_legs: dict[str, str]) -> None:
    """Say on stderr which leg a hybrid search went without, and how to rebuild its index."""
    for leg, problem in missing_legs.items():
        click.echo(f"Searched without the {leg} leg: {problem}", err=True)


class _Warning(logging.Handler):
    """A logged warning on stderr, on a line of its own after what stdout has printed (a
    pipe's buffered output could otherwise end up glued to it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stdout.flush()
        click.echo(record.getMessage(), err=True)


def show_warnings() -> None:
    """Print what the service logs for people (a damaged index, a rebuild, a model export)."""
    root = logging.getLogger()
    if not any(isinstance(handler, _Warning) for handler in root.handlers):
        root.addHandler(_Warning(logging.WARNING))
