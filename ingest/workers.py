"""Conversion in separate processes: both cores busy, and a file that hangs, crashes or eats
memory costs only its own worker, which is replaced."""

import contextlib
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ingest.budget import (
    MemoryBudget,
    address_space,
    cap_address_space,
    ran_out,
    watch_address_space,
)
from ingest.chunker import Chunk, ChunkOptions, TokenCounter, split_blocks
from ingest.convert import Limits, convert_file
from ingest.document import PageProgress
from ingest.errors import IngestError, OutOfMemory, TimedOut, TooLarge, WorkersFailed
from ingest.titles import document_title


@dataclass(frozen=True)
class Job:
    """One file to convert; `key` identifies its content (the sha256)."""

    key: str
    path: Path


@dataclass(frozen=True)
class Chunked:
    """A converted file's chunks and what the converter counted."""

    file_type: str
    chunks: list[Chunk]
    page_count: int | None
    pages_without_text: int
    title: str = ""  # readable metadata title or first heading (ingest.titles)
    ocr_pages: int = 0
    low_confidence_pages: tuple[int, ...] = ()


@dataclass(frozen=True)
class Failed:
    """Why a file could not be converted: a reason kind and a message for the user;
    `out_of_memory` when it ran out of the memory it was given (more may do)."""

    reason: str
    message: str
    out_of_memory: bool = field(default=False, compare=False)


@dataclass(frozen=True)
class PageDone:
    """A worker's word that a long file moves on: `done` of its `count` pages are converted."""

    done: int
    count: int


@dataclass(frozen=True)
class WorkerSetup:
    """What each worker process needs: the tokenizer, chunk sizes and limits."""

    tokenizer_file: str
    chunking: ChunkOptions
    limits: Limits


ConvertFn = Callable[[Path, TokenCounter, WorkerSetup, PageProgress], "Chunked | Failed"]


def convert_and_chunk(
    path: Path, counter: TokenCounter, setup: WorkerSetup, on_page: PageProgress
) -> Chunked | Failed:
    """Convert and chunk one file, telling `on_page` of each page done; every failure comes
    back as a `Failed`."""
    try:
        document = convert_file(path, setup.limits, on_page)
        chunks = split_blocks(document.blocks, counter, setup.chunking)
        title = document_title(document.title, document.blocks)
        return Chunked(
            document.file_type, chunks, document.page_count, document.pages_without_text, title,
            document.ocr_pages, document.low_confidence_pages,
        )  # fmt: skip
    except IngestError as error:
        return Failed(error.reason, str(error), isinstance(error, OutOfMemory))
    except OSError as error:
        return Failed("unreadable", f"{path.name}: cannot be read ({error.strerror or error})")
    except MemoryError:
        raise
    except Exception as error:  # a converter bug on odd input must not stop the batch
        return Failed(
            "corrupt", f"{path.name}: could not be read ({type(error).__name__}: {error})"
        )


_READY = "ready"
# A file's time limit (ARCHIVIST_CONVERT_TIMEOUT_S) runs from its last page done: a 400-page
# scan read at ~1 page/s must not fail at 120 s. Still, no file holds a worker longer than
# this (a hostile PDF of 10,000 pictures would take hours): ~3,600 dense scanned pages.
_LONGEST_S = 3600.0
# A worker reports pages at most this often (a file done sooner reports none).
_REPORT_EVERY_S = 0.25
# A worker starts in well under a second (forked from the fork server, then the tokenizer
# loaded); the first start also waits for the fork server to import the converters.
_START_S = 60.0
# Python's multiprocessing imports the main script again in every worker it starts: a script
# that uses Archivist at its top level, not under `if __name__ == "__main__":`, makes each
# worker run it instead of converting (and wait on a pool of its own that cannot start).
MAIN_GUARD_HINT = (
    "a script that uses Archivist must keep its top-level code under "
    '`if __name__ == "__main__":` (each conversion worker process imports the script again)'
)


def starting_a_worker() -> bool:
    """Whether this process is a worker still importing its parent's main script (the check
    multiprocessing itself makes before refusing to start a process from there)."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


def _nothing() -> None:
    """A process that only proves the fork server runs."""


def _serve(connection: Connection, setup: WorkerSetup, work: ConvertFn, memory: Any) -> None:
    """Worker process main loop: receive a path and the memory it may use (MB), send back its
    chunks or failure. `memory` is shared with the parent: [address space at the start of
    this file, the largest since, the cap] (bytes), which tells it why this process died, if
    it does."""
    os.setpgrp()  # so a kill on timeout also reaches pandoc
    # Conversion is background work: searches and answers in the parent process come first
    # (alone on the machine, a lower priority costs a conversion nothing).
    with contextlib.suppress(OSError):
        os.nice(10)
    counter = TokenCounter(setup.tokenizer_file)
    threading.Thread(target=watch_address_space, args=(memory,), daemon=True).start()
    connection.send(_READY)
    while True:
        try:
            path, memory_mb = connection.recv()
        except EOFError:
            return
        # The cap covers this process and the pandoc it starts (which gets what is left).
        memory[0] = memory[1] = address_space()
        memory[2] = cap_address_space(memory_mb)
        limits = replace(setup.limits, memory_mb=memory_mb)
        try:
            outcome = work(path, counter, replace(setup, limits=limits), _reporter(connection))
        except MemoryError:  # the address-space cap set above was hit
            outcome = _out_of_memory(path, memory_mb)
        connection.send(outcome)


def _reporter(connection: Connection) -> PageProgress:
    """An `on_page` that tells the parent of pages done, at most every _REPORT_EVERY_S."""
    last = time.monotonic()

    def on_page(done: int, count: int) -> None:
        nonlocal last
        if time.monotonic() - last >= _REPORT_EVERY_S:
            connection.send(PageDone(done, count))
            last = time.monotonic()

    return on_page


def _out_of_memory(path: Path, memory_mb: int) -> Failed:
    message = (
        f"{path.name}: converting it needs more than {memory_mb} MB of memory "
        "(ARCHIVIST_CONVERT_MEMORY_MB)"
    )
    return Failed(TooLarge.reason, message, out_of_memory=True)


class _Worker:
    """One worker process; after a timeout, a crash or running out of memory it is stopped,
    and the next file starts a new one."""

    def __init__(
        self, context: multiprocessing.context.BaseContext, setup: WorkerSetup, work: ConvertFn
    ) -> None:
        self._context = context
        self._setup = setup
        self._work = work
        self._start()

    def _start(self) -> None:
        self._connection, child = self._context.Pipe()
        self._memory = self._context.RawArray("q", 3)  # type: ignore[attr-defined]
        self._process = self._context.Process(  # type: ignore[attr-defined]
            target=_serve, args=(child, self._setup, self._work, self._memory), daemon=True
        )
        self._process.start()
        child.close()
        # A worker that dies as it starts says so before a file is lost to it.
        ready = self._connection.poll(_START_S)
        try:
            if ready and self._connection.recv() == _READY:
                return
        except (EOFError, ConnectionResetError):
            pass
        self.stop()
        if not ready:
            raise WorkersFailed(
                f"a conversion worker did not start within {_START_S:g} s — is the machine out "
                "of memory or processes?"
            )
        raise WorkersFailed(f"a conversion worker exited as it started ({self._exit()}): "
                            f"{MAIN_GUARD_HINT}")  # fmt: skip

    def _exit(self) -> str:
        code = self._process.exitcode
        return f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"

    def run(
        self, path: Path, memory_mb: int, on_page: PageProgress | None = None
    ) -> Chunked | Failed:
        """Convert one file within `memory_mb` (this process and the pandoc it starts), and
        within the time limit from its start or its last page done (`on_page` hears of them)."""
        if self._connection.closed:
            self._start()
        timeout = self._setup.limits.timeout_s
        longest = max(_LONGEST_S, timeout)
        self._connection.send((path, memory_mb))
        started, page = time.monotonic(), None
        while True:
            if not self._connection.poll(min(timeout + 5, longest - (time.monotonic() - started))):
                self.stop()
                over = time.monotonic() - started >= longest
                return _timed_out(path, page, timeout, longest if over else None)
            try:
                message: Chunked | Failed | PageDone = self._connection.recv()
            except (EOFError, ConnectionResetError):
                return self._crashed(path, memory_mb)
            if not isinstance(message, PageDone):
                break
            page = message
            if on_page:
                on_page(page.done, page.count)
        if _ran_out(message):
            self.stop()  # what it took from the system may not shrink back under a cap
        return message

    def _crashed(self, path: Path, memory_mb: int) -> Failed:
        self._process.join(5)
        out_of_memory = ran_out(self._memory)
        how = self._exit()
        self.stop()
        if out_of_memory:
            return _out_of_memory(path, memory_mb)
        return Failed("crashed", f"{path.name}: the converter crashed on it ({how})")

    def stop(self) -> None:
        """End the process (and the pandoc it runs); `run` starts a new one."""
        self._connection.close()
        if self._process.is_alive() and self._process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
        self._process.join(5)


def _timed_out(path: Path, page: PageDone | None, timeout: float, longest: float | None) -> Failed:
    """No page done within `timeout`, or (`longest` given) the file ran past it in all."""
    if longest is not None:
        at = f" (at page {page.done} of {page.count})" if page else ""
        message = f"{path.name}: still converting after {longest:g} s{at}"
    elif page:
        message = (
            f"{path.name}: no page done for {timeout:g} s, after page {page.done} of "
            f"{page.count} (ARCHIVIST_CONVERT_TIMEOUT_S)"
        )
    else:
        message = f"{path.name}: conversion took longer than {timeout:g} s"
    return Failed(TimedOut.reason, message)


class ConversionPool:
    """Runs conversions on `workers` processes, all within one memory budget (`limits.memory_mb`,
    see ingest.budget: fewer processes if it cannot give each a share); results arrive in
    completion order.

    `work` is what a worker does with each path (a module-level function, so that it can be
    sent to the worker process); the default converts and chunks.
    """

    def __init__(
        self,
        tokenizer_file: Path,
        chunking: ChunkOptions,
        limits: Limits,
        *,
        workers: int,
        work: ConvertFn = convert_and_chunk,
    ) -> None:
        self._setup = WorkerSetup(str(tokenizer_file), chunking, limits)
        self._work = work
        self._workers = max(1, workers)
        # Workers fork from a server process that has already imported the converters, so
        # starting one costs milliseconds, and none inherits the parent's threads or models.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([__name__])

    def start_server(self) -> None:
        """Start the fork server (and multiprocessing's resource tracker) now, without waiting
        for its imports. Both hand this process's stderr to their child: a caller about to give
        stderr to something without a file descriptor (the terminal chat's screen, whose
        stand-in says -1) starts them first — started after, every conversion failed with
        "bad value(s) in fds_to_keep"."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def warm(self) -> None:
        """Start the fork server now (it imports every converter: seconds on first use), so
        that a long-running process converts its first file without that wait."""
        process = self._context.Process(target=_nothing)  # type: ignore[attr-defined]
        process.start()
        process.join()

    def run(
        self, jobs: Iterable[Job], on_page: Callable[[Job, int, int], None] | None = None
    ) -> Iterator[tuple[Job, Chunked | Failed]]:
        """Convert every job; yields (job, outcome) as each finishes. `on_page(job, done,
        count)` hears, from the pool's threads, how far a long PDF or picture has come."""
        todo: queue.Queue[Job | None] = queue.Queue()
        done: queue.Queue[tuple[Job, Chunked | Failed] | Exception] = queue.Queue()
        count = 0
        for job in jobs:
            todo.put(job)
            count += 1
        memory_mb = self._setup.limits.memory_mb
        conversions = min(count, MemoryBudget.conversions(memory_mb, self._workers))
        budget = MemoryBudget(memory_mb, max(1, conversions))
        threads = [
            threading.Thread(target=self._drain, args=(todo, done, budget, on_page), daemon=True)
            for _ in range(conversions)
        ]
        for thread in threads:
            todo.put(None)
            thread.start()
        finished = False
        try:
            for _ in range(count):
                outcome = done.get()
                if isinstance(outcome, Exception):
                    raise outcome
                yield outcome
            finished = True
        finally:
            if not finished:  # the caller stopped early: no new files; the busy ones finish
                with contextlib.suppress(queue.Empty):
                    while True:
                        todo.get_nowait()
                for _ in threads:
                    todo.put(None)
        if finished:
            for thread in threads:
                thread.join()

    def _drain(
        self,
        todo: "queue.Queue[Job | None]",
        done: "queue.Queue[tuple[Job, Chunked | Failed] | Exception]",
        budget: MemoryBudget,
        on_page: Callable[[Job, int, int], None] | None,
    ) -> None:
        try:
            worker = _Worker(self._context, self._setup, self._work)
        except Exception as error:  # e.g. WorkersFailed: `run` raises it to the caller
            done.put(error)
            return
        try:
            while (job := todo.get()) is not None:
                try:
                    pages = partial(on_page, job) if on_page else None
                    outcome = _convert(worker, job.path, budget, pages)
                except Exception as error:  # the result must arrive, or the caller waits forever
                    outcome = Failed("crashed", f"{job.path.name}: {type(error).__name__}: {error}")
                done.put((job, outcome))
        finally:
            worker.stop()


def _convert(
    worker: _Worker, path: Path, budget: MemoryBudget, on_page: PageProgress | None
) -> Chunked | Failed:
    """Convert within a share of the budget; if that is too little, again with all of it."""
    with budget.share(idle=worker.stop) as memory_mb:
        outcome = worker.run(path, memory_mb, on_page)
    if _ran_out(outcome) and memory_mb < budget.total_mb:
        with budget.whole(idle=worker.stop) as memory_mb:
            outcome = worker.run(path, memory_mb, on_page)
            worker.stop()  # it may hold more than a share now
    return outcome


def _ran_out(outcome: Chunked | Failed) -> bool:
    return isinstance(outcome, Failed) and outcome.out_of_memory
