"""What every command shares: progress bars on stderr and one-line JSON on stdout."""

import json
import sys
from typing import Any

import click
from tqdm import tqdm


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


def echo_json(data: Any) -> None:
    """One JSON object on one line of stdout."""
    click.echo(json.dumps(data, ensure_ascii=False))
