"""A data folder this user cannot write: status, search and ask still read it; commands that
write say in one line that the folder is read-only."""

import os
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.service import Archivist, Settings
from tests.api.cli.test_cli import ARCHIVIST

# Root writes through `chmod a-w`; without these capabilities it obeys the modes like anyone.
AS_ROOT_WITHOUT_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def _obeys_modes() -> list[str]:
    """The command prefix under which this process's children obey `chmod a-w`."""
    if os.geteuid() != 0:
        return []
    probe = subprocess.run([*AS_ROOT_WITHOUT_OVERRIDE, "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip("running as root without setpriv/CAP_SETPCAP: chmod cannot stop root writing")
    return AS_ROOT_WITHOUT_OVERRIDE


def _set_writable(folder: Path, writable: bool) -> None:
    for path in [folder, *folder.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IWUSR if writable else mode & ~0o222)


@pytest.fixture
def ingested(settings: Settings, docs: Path) -> Iterator[Path]:
    """A data folder with one ingested note (made writable again afterwards)."""
    (docs / "lens.md").write_text("# Lens\n\nThe lens is cleaned every fourteen days.\n")
    with Archivist(settings) as service:
        service.ingest([docs])
    yield settings.data
    _set_writable(settings.data, True)


@pytest.fixture
def read_only(ingested: Path) -> Path:
    """That data folder made read-only (chmod -R a-w)."""
    _set_writable(ingested, False)
    return ingested


def archivist(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARCHIVIST_DATA": str(data), "ARCHIVIST_LLM": "none"}
    return subprocess.run(
        [*_obeys_modes(), ARCHIVIST, *args],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip


def test_status_reads_a_read_only_data_folder(read_only: Path) -> None:
    done = archivist(read_only, "status")
    assert done.returncode == 0, done.stderr
    assert "1 ingested, 0 failed" in done.stdout
    assert "SQLite 1, Tantivy 1, Qdrant 1 chunks (in sync)" in done.stdout


def test_search_reads_a_read_only_data_folder(read_only: Path) -> None:
    done = archivist(read_only, "search", "how often is the lens cleaned", "-k", "1")
    assert done.returncode == 0, done.stderr
    assert "lens.md — Lens" in done.stdout


def test_ask_reads_a_read_only_data_folder(read_only: Path) -> None:
    done = archivist(read_only, "ask", "how often is the lens cleaned")
    assert done.returncode == 0, done.stderr
    assert "lens.md" in done.stdout


@pytest.mark.parametrize(("command", "doing"), [("ingest", "ingesting"), ("reindex", "reindexing")])
def test_writing_to_a_read_only_data_folder_is_one_line_naming_it(
    read_only: Path, docs: Path, command: str, doing: str
) -> None:
    done = archivist(read_only, command, *([str(docs)] if command == "ingest" else []))
    assert done.returncode == 1
    assert done.stderr.startswith(
        f"Error: the data folder {read_only} is read-only, and {doing} writes to it — make it "
        "writable"
    )
    assert len(done.stderr.splitlines()) == 1


def test_a_read_only_folder_without_a_database_says_so(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    _set_writable(data, False)
    try:
        done = archivist(data, "status")
    finally:
        _set_writable(data, True)
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: cannot create the database at {data}/state/archivist.db: {data} is read-only "
        "— make it writable, or set ARCHIVIST_DATA to a writable folder\n"
    )


def test_a_read_only_database_of_an_older_version_says_it_needs_an_upgrade(
    ingested: Path,
) -> None:
    database = ingested / "state" / "archivist.db"
    with sqlite3.connect(database) as older:
        older.execute("DELETE FROM _migrations WHERE name = 'm004_page_openings'")
    older.close()
    _set_writable(ingested, False)
    done = archivist(ingested, "status")
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: the database at {database} was made by an older Archivist and needs an "
        f"upgrade, which writes to it — make {database.parent} writable and run "
        "`archivist status` once\n"
    )
