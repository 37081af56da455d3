"""Ingestion off the request path: the watcher's changes, uploads and deletions, in order.

One thread applies every change to the stores through the service, so the HTTP server only
queues work and stays responsive during a large import. Changes that arrive while it works
are merged and applied next: a file touched three times is ingested once.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.service.errors import USER_ERRORS
from ingest.ingester import FileResult
from ingest.watch import Changes, FolderWatcher

if TYPE_CHECKING:
    from api.service.archivist import Archivist

log = logging.getLogger("archivist.background")
_INDEX_EVERY_S = 1.0
_RETRY_S = 10.0


class BackgroundIngest:
    """A worker thread that keeps the stores in line with the watched folder."""

    def __init__(self, service: "Archivist", folder: Path) -> None:
        self.service = service
        self.folder = folder.resolve()
        self._wake = threading.Condition()
        self._touched: dict[Path, None] = {}  # insertion-ordered set
        self._gone: dict[Path, None] = {}
        self._forget: dict[Path, None] = {}
        self._scan = False
        self._busy = False
        self._stopping = False
        self._current: str | None = None
        self._done = self._total = 0
        self._pages: dict[str, tuple[int, int]] = {}  # long files under way: pages done, count
        self._last_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        # Indexes catch up while later files convert, so a long import is searchable as it goes.
        self._converted = threading.Event()
        self._indexer = threading.Thread(target=self._index_as_we_go, name="index", daemon=True)

    def start(self) -> None:
        """Start the worker; the first job is a full scan of the folder (see `reconcile`)."""
        self.reconcile()
        self._thread.start()
        self._indexer.start()

    def stop(self) -> None:
        """Stop after the file or index batch at hand, and interrupt the service for good (what
        is left is redone by the next start's scan: the folder, not this queue, is the record
        of what should be stored)."""
        self.service.interrupt()
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        self._converted.set()
        for thread in (self._thread, self._indexer):
            if thread.is_alive():
                thread.join()

    def watcher(
        self, *, settle_s: float, skip: Path, report: Callable[[Changes], None] | None = None
    ) -> FolderWatcher:
        """A watcher of this folder whose settled changes are queued here (`report` hears of
        them first)."""

        def queue(changes: Changes) -> None:
            if report:
                report(changes)
            self.submit(changes.touched, changes.gone)

        return FolderWatcher(self.folder, queue, settle_s=settle_s, skip=skip)

    def reconcile(self) -> None:
        """Queue a full scan: files added, changed, moved or removed while nobody watched."""
        with self._wake:
            self._scan = True
            self._wake.notify_all()

    def submit(
        self, touched: Iterable[Path] = (), gone: Iterable[Path] = (), forget: Iterable[Path] = ()
    ) -> None:
        """Queue files to ingest (created, changed, moved here), paths that disappeared (forgotten
        if they are still gone when their turn comes) and paths to forget even if they exist."""
        with self._wake:
            for path in touched:
                self._touched[path.resolve()] = None
            for path in gone:
                self._gone[path.resolve()] = None
            for path in forget:
                self._forget[path.resolve()] = None
            self._wake.notify_all()

    def idle(self) -> bool:
        """Nothing queued and nothing running."""
        with self._wake:
            return not self._queued()

    def _queued(self) -> bool:
        return bool(self._busy or self._scan or self._touched or self._gone or self._forget)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until everything queued so far is applied; False if `timeout` passed first."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._queued(), timeout)

    def progress(self) -> dict[str, Any]:
        """For `/status`: what runs, what waits, how far along, and the last failure."""
        with self._wake:
            pending = [display_name(str(p), self.folder) for p in self._touched]
            return {
                "state": "working" if self._busy else "idle",
                "scan_pending": self._scan,
                "pending": pending,
                "pending_removals": len(self._gone) + len(self._forget),
                "current": self._current,
                "done": self._done,
                "total": self._total,
                "converting": [
                    {"path": path, "page": done, "pages": count}
                    for path, (done, count) in self._pages.items()
                ],
                "last_error": self._last_error,
            }

    def _run(self) -> None:
        self._warm_up()
        while True:
            with self._wake:
                self._wake.wait_for(lambda: self._stopping or self._queued())
                if self._stopping:
                    return
                scan, touched = self._scan, list(self._touched)
                forget = [p for p in self._gone if not p.exists()] + list(self._forget)
                self._scan, self._busy = False, True
                self._touched.clear()
                self._gone.clear()
                self._forget.clear()
            failed = False
            try:
                self._apply(scan, touched, forget)
            except USER_ERRORS as error:  # e.g. another process holds the index for a while
                failed, self._last_error = True, str(error)
                log.warning("ingestion failed (a full scan retries in %g s): %s", _RETRY_S, error)
            except Exception as error:  # keep serving: a full scan retries
                failed, self._last_error = True, f"{type(error).__name__}: {error}"
                log.exception("ingestion failed (a full scan retries in %g s)", _RETRY_S)
            with self._wake:
                self._busy, self._current = False, None
                self._pages.clear()
                self._wake.notify_all()
                if failed:  # the folder is the record of what to store: scan it again later
                    self._wake.wait_for(lambda: self._stopping, _RETRY_S)
                    self._scan = True

    def _warm_up(self) -> None:
        """Load the models and start the converters before the first change arrives: measured
        13.4 s from a dropped file to a search hit on a cold server, 1.5 s once warm. A stop
        ends the model's first export early (it took over a minute on a busy machine, and
        Ctrl+C waited for it)."""
        try:
            self.service.pool.warm()
            self.service.indexes.load_embedder(stop=lambda: self._stopping)
        except Exception as error:  # the scan that follows reports what is wrong
            if not self._stopping:
                log.warning("warming up failed: %s", error)

    def _apply(self, scan: bool, touched: list[Path], forget: list[Path]) -> None:
        """Scan or ingest first, forget second: a renamed file's new path takes over the
        stored chunks of its old one before the old path lets go of them (no re-embedding)."""
        # The HNSW build holds the interpreter for minutes at 100k chunks, so the server never
        # runs it here; below EXACT_SEARCH_LIMIT chunks searches scan exactly anyway.
        self.folder.mkdir(parents=True, exist_ok=True)
        to_ingest = [self.folder] if scan else [p for p in touched if p.exists()]
        if to_ingest:
            self.service.ingest(
                to_ingest, optimize=False, on_start=self._started, on_file=self._finished,
                on_page=self._page, within=[self.folder],
            )  # fmt: skip
        if forget:
            self.service.remove(forget, optimize=False)

    def _index_as_we_go(self) -> None:
        while True:
            self._converted.wait()
            if self._stopping:
                return
            time.sleep(_INDEX_EVERY_S)  # a few files per sync, not one sync per file
            self._converted.clear()
            if self._stopping:
                return
            try:
                self.service.sync(optimize=False)
            except Exception as error:  # the ingestion's own sync retries and reports it
                log.warning("indexing during ingestion failed: %s", error)

    def _started(self, total: int) -> None:
        with self._wake:
            self._done, self._total = 0, total

    def _page(self, path: str, done: int, count: int) -> None:
        with self._wake:
            self._pages[display_name(path, self.folder)] = (done, count)

    def _finished(self, result: FileResult) -> None:
        with self._wake:
            self._pages.pop(display_name(result.path, self.folder), None)
            self._done += 1
            self._current = display_name(result.path, self.folder)
            if result.status == "failed":
                self._last_error = result.error
        if result.status == "ingested":
            self._converted.set()


def display_name(path: str, inbox: Path) -> str:
    """A stored path as the user knows it: relative to the inbox when it lies there."""
    candidate = Path(path)
    return str(candidate.relative_to(inbox)) if candidate.is_relative_to(inbox) else path
