"""Conversion in separate processes: both cores busy, and a file that hangs, crashes or eats
memory costs only its own worker, which is replaced."""

import contextlib
import multiprocessing
import os
import queue
import resource
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from ingest.chunker import Chunk, ChunkOptions, TokenCounter, split_blocks
from ingest.convert import Limits, convert_file
from ingest.errors import IngestError, TimedOut, TooLarge
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


@dataclass(frozen=True)
class Failed:
    """Why a file could not be converted: a reason kind and a message for the user."""

    reason: str
    message: str


@dataclass(frozen=True)
class WorkerSetup:
    """What each worker process needs: the tokenizer, chunk sizes and limits."""

    tokenizer_file: str
    chunking: ChunkOptions
    limits: Limits


ConvertFn = Callable[[Path, TokenCounter, WorkerSetup], "Chunked | Failed"]


def convert_and_chunk(path: Path, counter: TokenCounter, setup: WorkerSetup) -> Chunked | Failed:
    """Convert and chunk one file; every failure comes back as a `Failed`."""
    try:
        document = convert_file(path, setup.limits)
        chunks = split_blocks(document.blocks, counter, setup.chunking)
        title = document_title(document.title, document.blocks)
        return Chunked(
            document.file_type, chunks, document.page_count, document.pages_without_text, title
        )
    except IngestError as error:
        return Failed(error.reason, str(error))
    except OSError as error:
        return Failed("unreadable", f"{path.name}: cannot be read ({error.strerror or error})")
    except MemoryError:
        raise
    except Exception as error:  # a converter bug on odd input must not stop the batch
        return Failed(
            "corrupt", f"{path.name}: could not be read ({type(error).__name__}: {error})"
        )


def _nothing() -> None:
    """A process that only proves the fork server runs."""


def _serve(connection: Connection, setup: WorkerSetup, work: ConvertFn) -> None:
    """Worker process main loop: receive a path, send back its chunks or failure."""
    os.setpgrp()  # so a kill on timeout also reaches pandoc
    # Conversion is background work: searches and answers in the parent process come first
    # (alone on the machine, a lower priority costs a conversion nothing).
    with contextlib.suppress(OSError):
        os.nice(10)
    limit = setup.limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
    counter = TokenCounter(setup.tokenizer_file)
    while True:
        try:
            path = connection.recv()
        except EOFError:
            return
        try:
            outcome = work(path, counter, setup)
        except MemoryError:  # the address-space cap set above was hit
            outcome = Failed(
                TooLarge.reason,
                f"{path.name}: converting it needs more than {setup.limits.memory_mb} MB of "
                "memory (ARCHIVIST_CONVERT_MEMORY_MB)",
            )
        connection.send(outcome)


class _Worker:
    """One worker process, restarted after a timeout or a crash."""

    def __init__(
        self, context: multiprocessing.context.BaseContext, setup: WorkerSetup, work: ConvertFn
    ) -> None:
        self._context = context
        self._setup = setup
        self._work = work
        self._start()

    def _start(self) -> None:
        self._connection, child = self._context.Pipe()
        self._process = self._context.Process(  # type: ignore[attr-defined]
            target=_serve, args=(child, self._setup, self._work), daemon=True
        )
        self._process.start()
        child.close()

    def run(self, path: Path) -> Chunked | Failed:
        timeout = self._setup.limits.timeout_s
        self._connection.send(path)
        if not self._connection.poll(timeout + 5):
            self._restart()
            return Failed(
                TimedOut.reason, f"{path.name}: conversion took longer than {timeout:g} s"
            )
        try:
            return self._connection.recv()  # type: ignore[no-any-return]
        except (EOFError, ConnectionResetError):
            self._process.join(5)
            code = self._process.exitcode
            self._restart()
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            return Failed("crashed", f"{path.name}: the converter crashed on it ({how})")

    def _restart(self) -> None:
        self.stop()
        self._start()

    def stop(self) -> None:
        self._connection.close()
        if self._process.is_alive() and self._process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
        self._process.join(5)


class ConversionPool:
    """Runs conversions on `workers` processes; results arrive in completion order.

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

    def warm(self) -> None:
        """Start the fork server now (it imports every converter: seconds on first use), so
        that a long-running process converts its first file without that wait."""
        process = self._context.Process(target=_nothing)  # type: ignore[attr-defined]
        process.start()
        process.join()

    def run(self, jobs: Iterable[Job]) -> Iterator[tuple[Job, Chunked | Failed]]:
        """Convert every job; yields (job, outcome) as each finishes."""
        todo: queue.Queue[Job | None] = queue.Queue()
        done: queue.Queue[tuple[Job, Chunked | Failed]] = queue.Queue()
        count = 0
        for job in jobs:
            todo.put(job)
            count += 1
        threads = [
            threading.Thread(target=self._drain, args=(todo, done), daemon=True)
            for _ in range(min(self._workers, count))
        ]
        for thread in threads:
            todo.put(None)
            thread.start()
        finished = False
        try:
            for _ in range(count):
                yield done.get()
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
        self, todo: "queue.Queue[Job | None]", done: "queue.Queue[tuple[Job, Chunked | Failed]]"
    ) -> None:
        worker = _Worker(self._context, self._setup, self._work)
        try:
            while (job := todo.get()) is not None:
                try:
                    outcome = worker.run(job.path)
                except Exception as error:  # the result must arrive, or the caller waits forever
                    outcome = Failed("crashed", f"{job.path.name}: {type(error).__name__}: {error}")
                done.put((job, outcome))
        finally:
            worker.stop()
