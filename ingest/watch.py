"""Watching the documents folder: raw filesystem events in, settled change sets out."""

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from ingest.ingester import is_temporary

logger = logging.getLogger("archivist.watch")

# Events that say nothing about content: reads (ours included) open and close files too.
_NOISE = frozenset({"opened", "closed_no_write"})
_Stat = tuple[int, int]  # (size, mtime_ns)
_UNREADABLE: _Stat = (-1, -1)  # stat refused: reported once quiet, the consumer records why


@dataclass(frozen=True)
class Changes:
    """Paths that settled since the last report."""

    touched: frozenset[Path]  # created, modified or moved-to; they exist and are stable now
    gone: frozenset[Path]  # deleted or moved-from: files or folders that no longer exist


def is_ignored(path: Path, root: Path) -> bool:
    """Temporary and hidden files the watcher never reports (paths outside `root` included).

    Hidden: any component below `root` starting with "." (.git, .~lock.x#, an editor's .x.tmp).
    Temporary: Office's ~$x.docx, downloads (*.part, *.crdownload), *.tmp, *.swp, backups (x~).
    """
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        return True
    return not parts or any(part.startswith(".") for part in parts) or is_temporary(parts[-1])


def _stat(path: Path) -> _Stat | None:
    """(size, mtime_ns) of `path`, None when it does not exist."""
    try:
        status = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return _UNREADABLE
    return status.st_size, status.st_mtime_ns


@dataclass(slots=True)
class _Pending:
    """What the latest event said about one path, and what the settling checks saw since."""

    gone: bool
    seen_at: float  # monotonic time of the latest event
    version: int  # bumped by every event, so a check that raced an event is discarded
    stat: _Stat | None = None
    stat_at: float = 0.0
    is_dir: bool = False
    report: bool = True  # False for a folder made in place: its files report themselves
    partner: Path | None = None  # a move's destination, reported in the same Changes as its source


class _Handler(FileSystemEventHandler):
    """Forwards every watchdog event to a callback."""

    def __init__(self, forward: Callable[[FileSystemEvent], None]) -> None:
        super().__init__()
        self._forward = forward

    def on_any_event(self, event: FileSystemEvent) -> None:
        """Hand the event on."""
        self._forward(event)


class FolderWatcher:
    """Watches `root` recursively and calls `on_changes` with paths whose changes have settled.

    A path settles once no event touched it for `settle_s` and its (size, mtime_ns) were equal
    at two checks `settle_s` apart, so a copy or a download in progress is reported once, whole.
    `on_changes` runs on the watcher's own thread, one call at a time; events keep being
    collected while it runs. Changes not settled when `stop()` is called are dropped: a scan
    at start-up covers them.
    """

    def __init__(
        self,
        root: Path,
        on_changes: Callable[[Changes], None],
        *,
        settle_s: float,
        skip: Path | None = None,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve()
        self._skip = skip.resolve() if skip is not None else None
        self._on_changes = on_changes
        self._settle_s = settle_s
        self._pending: dict[Path, _Pending] = {}
        self._version = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the observer and the settling thread."""
        if self._thread is not None:
            raise RuntimeError(f"the watcher of {self.root} is already running")
        self._stopping.clear()
        self._observer = Observer()
        self._observer.schedule(_Handler(self._record), str(self.root), recursive=True)
        self._observer.start()
        self._thread = threading.Thread(target=self._run, name="archivist-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching and wait for both threads; calling it again does nothing."""
        self._stopping.set()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
            self._observer = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> "FolderWatcher":
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()

    def _wanted(self, path: Path) -> bool:
        """Whether changes to `path` are reported at all."""
        if self._skip is not None and path.is_relative_to(self._skip):
            return False
        return not is_ignored(path, self.root)

    def _record(self, event: FileSystemEvent) -> None:
        """Turn one watchdog event into pending state (on the observer's thread)."""
        kind, is_dir = event.event_type, event.is_directory
        if kind in _NOISE or (is_dir and kind not in ("created", "deleted", "moved")):
            return  # a folder's own mtime changes with every file added: noise
        if kind == "moved" and event.is_synthetic:
            return  # the files inside a moved folder: the folder's own move covers them
        source = Path(os.fsdecode(event.src_path))
        if kind == "moved":
            self._note_move(source, Path(os.fsdecode(event.dest_path)), is_dir)
        elif kind == "deleted":
            self._note(source, gone=True, is_dir=is_dir)
        elif kind == "created" and event.is_synthetic:
            self._note_moved_in(source, is_dir)
        elif self._wanted(source):
            self._note(source, gone=False, is_dir=is_dir, made_here=kind == "created" and is_dir)

    def _note(
        self,
        path: Path,
        *,
        gone: bool,
        is_dir: bool,
        made_here: bool = False,
        partner: Path | None = None,
    ) -> None:
        """Record the latest event about `path`, replacing what an earlier one said."""
        if not self._wanted(path):
            return
        stat = None if gone else _stat(path)  # the first of the two stability checks
        now = time.monotonic()
        with self._lock:
            self._version += 1
            before = self._pending.get(path)
            # A folder made in place is reported only if it replaces one that just went away.
            report = not made_here or (before is not None and (before.gone or before.report))
            self._pending[path] = _Pending(
                gone=gone,
                seen_at=now,
                version=self._version,
                stat=stat,
                stat_at=now,
                is_dir=is_dir,
                report=report,
                partner=partner,
            )

    def _note_move(self, source: Path, dest: Path, is_dir: bool) -> None:
        """A rename inside root: the source is gone and reported together with the destination."""
        keep_dest = self._wanted(dest)
        self._note(dest, gone=False, is_dir=is_dir)
        self._note(source, gone=True, is_dir=is_dir, partner=dest if keep_dest else None)

    def _note_moved_in(self, path: Path, is_dir: bool) -> None:
        """watchdog lists what a folder moved in holds: report that folder instead of each item."""
        if not self._wanted(path):
            return
        with self._lock:
            for folder in path.parents:
                entry = self._pending.get(folder)
                if entry is not None and entry.is_dir and not entry.gone:
                    entry.report = True
                    return
                if folder == self.root:
                    break
        self._note(path, gone=False, is_dir=is_dir)

    def _run(self) -> None:
        """The settling loop: every settle_s/4, report all paths that have settled in one call."""
        while not self._stopping.wait(self._settle_s / 4):
            changes = self._settle()
            if not (changes.touched or changes.gone):
                continue
            try:
                self._on_changes(changes)
            except Exception:  # the consumer's failure must not end the watching
                logger.exception("handling changes under %s failed", self.root)

    def _settle(self) -> Changes:
        """Take the settled paths out of the pending state."""
        now = time.monotonic()
        with self._lock:
            quiet = [
                (path, entry.version)
                for path, entry in self._pending.items()
                if now - entry.seen_at >= self._settle_s
            ]
        # stat outside the lock: a slow disk must not hold up the observer's thread
        stats = [(path, version, _stat(path)) for path, version in quiet]
        with self._lock:
            ready: dict[Path, _Pending] = {}
            for path, version, stat in stats:
                entry = self._pending.get(path)
                if entry is not None and entry.version == version and self._check(entry, stat, now):
                    ready[path] = entry
            self._hold_back(ready)
            for path in ready:
                del self._pending[path]
        return Changes(
            touched=frozenset(p for p, e in ready.items() if not e.gone and e.report),
            gone=frozenset(p for p, e in ready.items() if e.gone),
        )

    def _check(self, entry: _Pending, stat: _Stat | None, now: float) -> bool:
        """Second stability check of a quiet path; updates `entry` when it is not yet stable."""
        if stat is None:
            entry.gone = True  # touched, then removed before it settled: gone only
            return True
        if entry.gone:  # back without an event we saw: treat as new
            entry.gone, entry.partner = False, None
        if entry.stat != stat:
            entry.stat, entry.stat_at = stat, now
            return False
        return now - entry.stat_at >= self._settle_s

    def _hold_back(self, ready: dict[Path, _Pending]) -> None:
        """Keep back folders with unsettled paths inside, and moves whose other end waits."""
        if any(entry.is_dir and not entry.gone for entry in ready.values()):
            busy = {
                folder for path in self._pending.keys() - ready.keys() for folder in path.parents
            }
            for path in [p for p, e in ready.items() if e.is_dir and not e.gone and p in busy]:
                del ready[path]
        waiting = True
        while waiting:  # a chain of renames settles all at once
            waiting = False
            for path, entry in list(ready.items()):
                if entry.partner in self._pending and entry.partner not in ready:
                    del ready[path]
                    waiting = True
