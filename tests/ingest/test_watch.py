"""The folder watcher: a real watchdog observer on folders under tmp_path."""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ingest.watch import Changes, FolderWatcher, is_ignored

# watchdog warns when a nested folder's own create event repeats a watch its parent's walk added
# (mkdir -p a/b): it reuses that watch, nothing is lost.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

SETTLE_S = 0.2
TIMEOUT_S = 10.0  # generous: the test machine has two cores and may be busy


def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT_S) -> bool:
    """Poll `predicate` until it holds or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@dataclass(frozen=True)
class Report:
    """One on_changes call: when it came, what it said, each touched file's size on disk then."""

    at: float
    changes: Changes
    sizes: dict[Path, int]


class Recorder:
    """An on_changes consumer that keeps every call, safe to read from the test's thread."""

    def __init__(self, before: Callable[[Changes], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._reports: list[Report] = []
        self._before = before

    def __call__(self, changes: Changes) -> None:
        sizes = {path: path.stat().st_size for path in changes.touched if path.is_file()}
        with self._lock:
            self._reports.append(Report(time.monotonic(), changes, sizes))
        if self._before is not None:
            self._before(changes)

    @property
    def reports(self) -> list[Report]:
        with self._lock:
            return list(self._reports)

    def touched(self) -> set[Path]:
        return {path for report in self.reports for path in report.changes.touched}

    def gone(self) -> set[Path]:
        return {path for report in self.reports for path in report.changes.gone}

    def reports_touching(self, path: Path) -> list[Report]:
        return [report for report in self.reports if path in report.changes.touched]


Start = Callable[..., Recorder]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return (tmp_path / "docs").resolve()


@pytest.fixture
def watch(root: Path) -> Iterator[Start]:
    """Start a watcher on `root` that records into a Recorder; every watcher stops at teardown."""
    watchers: list[FolderWatcher] = []

    def start(
        recorder: Recorder | None = None, *, skip: Path | None = None, settle_s: float = SETTLE_S
    ) -> Recorder:
        recorder = recorder or Recorder()
        watcher = FolderWatcher(root, recorder, settle_s=settle_s, skip=skip)
        watchers.append(watcher)
        watcher.start()
        return recorder

    yield start
    for watcher in watchers:
        watcher.stop()


def settle_twice() -> None:
    """Long enough for anything still pending to have been reported."""
    time.sleep(4 * SETTLE_S)


def test_a_new_file_is_reported_touched_once(root: Path, watch: Start) -> None:
    recorder = watch()
    path = root / "notes.md"
    path.write_text("# Notes\n")
    assert wait_for(lambda: path in recorder.touched())
    settle_twice()
    assert len(recorder.reports_touching(path)) == 1
    assert recorder.gone() == set()


def test_a_modified_file_is_reported_touched(root: Path, watch: Start) -> None:
    root.mkdir()
    path = root / "notes.md"
    path.write_text("first\n")
    recorder = watch()
    with path.open("a") as file:
        file.write("second\n")
    assert wait_for(lambda: path in recorder.touched())


def test_a_deleted_file_is_reported_gone(root: Path, watch: Start) -> None:
    root.mkdir()
    path = root / "notes.md"
    path.write_text("soon gone\n")
    recorder = watch()
    path.unlink()
    assert wait_for(lambda: path in recorder.gone())
    assert recorder.touched() == set()


def test_a_renamed_file_reports_both_names_in_one_change(root: Path, watch: Start) -> None:
    root.mkdir()
    (root / "a.txt").write_text("moving\n")
    recorder = watch()
    (root / "a.txt").rename(root / "b.txt")
    assert wait_for(lambda: root / "b.txt" in recorder.touched())
    [report] = recorder.reports_touching(root / "b.txt")
    assert report.changes.gone == {root / "a.txt"}


def test_a_file_written_slowly_is_reported_once_when_whole(root: Path, watch: Start) -> None:
    recorder = watch()
    path = root / "slow.txt"
    chunk = b"x" * 4096
    with path.open("wb") as file:
        for _ in range(12):  # 12 x 0.05 s = 3 x settle_s, never quiet for settle_s
            file.write(chunk)
            file.flush()
            time.sleep(SETTLE_S / 4)
        last_write = time.monotonic()
    assert wait_for(lambda: path in recorder.touched())
    settle_twice()
    [report] = recorder.reports_touching(path)
    assert report.at > last_write
    assert report.sizes[path] == 12 * len(chunk)


def test_temporary_and_hidden_files_are_never_reported(root: Path, watch: Start) -> None:
    recorder = watch()
    names = ["~$x.docx", ".~lock.x#", "x.part", "x.crdownload", "X.TMP", ".hidden", "x.swp", "x~"]
    for name in names:
        (root / name).write_text("temporary\n")
    (root / ".git" / "objects").mkdir(parents=True)
    (root / ".git" / "objects" / "ab12").write_text("object\n")
    (root / ".git" / "objects" / "ab12").unlink()
    (root / "sentinel.txt").write_text("written after the rest\n")
    assert wait_for(lambda: root / "sentinel.txt" in recorder.touched())
    settle_twice()
    assert recorder.touched() == {root / "sentinel.txt"}
    assert recorder.gone() == set()


def test_a_finished_download_is_reported_under_its_real_name(root: Path, watch: Start) -> None:
    recorder = watch()
    partial = root / "x.pdf.crdownload"
    partial.write_bytes(b"%PDF-1.4 ...")
    partial.rename(root / "x.pdf")
    assert wait_for(lambda: root / "x.pdf" in recorder.touched())
    settle_twice()
    assert recorder.touched() == {root / "x.pdf"}
    assert recorder.gone() == set()


def test_a_file_in_new_nested_folders_is_reported(root: Path, watch: Start) -> None:
    recorder = watch()
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c.md").write_text("# Deep\n")
    assert wait_for(lambda: root / "a" / "b" / "c.md" in recorder.touched())
    settle_twice()
    assert recorder.touched() == {root / "a" / "b" / "c.md"}  # folders made in place: files only


def test_a_moved_folder_is_reported_touched_and_its_old_name_gone(root: Path, watch: Start) -> None:
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "b" / "c.md").write_text("# Deep\n")
    recorder = watch()
    (root / "a").rename(root / "z")
    assert wait_for(lambda: root / "z" in recorder.touched() and root / "a" in recorder.gone())
    reports = recorder.reports
    touched_at = next(n for n, r in enumerate(reports) if root / "z" in r.changes.touched)
    gone_at = next(n for n, r in enumerate(reports) if root / "a" in r.changes.gone)
    # Normally one report; when watchdog cannot pair the two halves of the move in time (a
    # busy machine), the old name comes after the new one — never before, so a consumer
    # that ingests the new name first never embeds the content again.
    assert gone_at >= touched_at
    assert recorder.gone() == {root / "a"}


def test_a_folder_moved_in_is_reported_touched(root: Path, tmp_path: Path, watch: Start) -> None:
    outside = tmp_path / "elsewhere" / "papers"
    outside.mkdir(parents=True)
    (outside / "one.txt").write_text("one\n")
    recorder = watch()
    outside.rename(root / "papers")
    assert wait_for(lambda: root / "papers" in recorder.touched())
    settle_twice()
    assert recorder.touched() == {root / "papers"}  # not its files one by one


def test_a_file_moved_out_is_reported_gone(root: Path, tmp_path: Path, watch: Start) -> None:
    root.mkdir()
    (root / "leaving.txt").write_text("bye\n")
    recorder = watch()
    (root / "leaving.txt").rename(tmp_path / "leaving.txt")
    assert wait_for(lambda: root / "leaving.txt" in recorder.gone())


def test_a_file_created_and_deleted_before_settling_is_only_gone(root: Path, watch: Start) -> None:
    recorder = watch()
    path = root / "brief.txt"
    path.write_text("here and gone\n")
    path.unlink()
    assert wait_for(lambda: path in recorder.gone())
    settle_twice()
    assert recorder.touched() == set()


def test_a_file_deleted_and_recreated_is_touched(root: Path, watch: Start) -> None:
    root.mkdir()
    path = root / "again.txt"
    path.write_text("old\n")
    recorder = watch()
    path.unlink()
    path.write_text("new\n")
    assert wait_for(lambda: path in recorder.touched())
    settle_twice()
    assert path not in recorder.gone()


def test_a_burst_of_files_is_reported_in_few_calls(root: Path, watch: Start) -> None:
    recorder = watch()
    paths = {root / f"file{index:02}.txt" for index in range(50)}
    for path in paths:
        path.write_text(f"{path.name}\n")
    assert wait_for(lambda: paths <= recorder.touched())
    assert len(recorder.reports) <= 5


def test_watching_goes_on_after_on_changes_raises(
    root: Path, watch: Start, caplog: pytest.LogCaptureFixture
) -> None:
    calls = []

    def fail_first(changes: Changes) -> None:
        calls.append(changes)
        if len(calls) == 1:
            raise RuntimeError("consumer failed")

    recorder = watch(Recorder(before=fail_first))
    (root / "first.txt").write_text("first\n")
    assert wait_for(lambda: len(calls) == 1)
    (root / "second.txt").write_text("second\n")
    assert wait_for(lambda: root / "second.txt" in recorder.touched())
    assert [r.name for r in caplog.records if r.levelno == logging.ERROR] == ["archivist.watch"]


def test_events_during_a_slow_on_changes_are_kept(root: Path, watch: Start) -> None:
    busy = threading.Event()

    def work_slowly(changes: Changes) -> None:
        busy.set()
        time.sleep(1.0)

    recorder = watch(Recorder(before=work_slowly))
    (root / "first.txt").write_text("first\n")
    assert wait_for(busy.is_set)
    (root / "during.txt").write_text("written while the consumer works\n")
    assert wait_for(lambda: root / "during.txt" in recorder.touched())


def test_the_skipped_folder_is_never_reported(root: Path, watch: Start) -> None:
    state = root / "state"
    state.mkdir(parents=True)
    recorder = watch(skip=state)
    (state / "index.db").write_text("state\n")
    (state / "nested").mkdir()
    (state / "nested" / "log.txt").write_text("log\n")
    (root / "sentinel.txt").write_text("written after the rest\n")
    assert wait_for(lambda: root / "sentinel.txt" in recorder.touched())
    settle_twice()
    assert recorder.touched() == {root / "sentinel.txt"}


def test_stop_is_idempotent(root: Path) -> None:
    watcher = FolderWatcher(root, Recorder(), settle_s=SETTLE_S)
    with watcher:
        assert root.is_dir()
    watcher.stop()


@pytest.mark.parametrize(
    ("relative", "ignored"),
    [
        ("report.pdf", False),
        ("sub/notes.md", False),
        ("archive.tar", False),
        ("~$report.docx", True),
        (".~lock.report.odt#", True),
        ("movie.part", True),
        ("report.pdf.crdownload", True),
        ("report.pdf.CRDOWNLOAD", True),
        ("scratch.tmp", True),
        ("scratch.TMP", True),
        (".notes.md.swp", True),
        ("notes.swp", True),
        ("notes.md~", True),
        (".hidden", True),
        (".git/objects/ab12", True),
        ("sub/.cache/x.pdf", True),
        ("sub~dir/x.pdf", False),
        ("temp/x.pdf", False),
    ],
)
def test_is_ignored(relative: str, ignored: bool, tmp_path: Path) -> None:
    assert is_ignored(tmp_path / relative, tmp_path) is ignored


def test_paths_outside_root_are_ignored(tmp_path: Path) -> None:
    assert is_ignored(tmp_path / "x.pdf", tmp_path / "docs")
