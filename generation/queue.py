"""A bounded queue in front of the model: a few workers generate, each answer streams back."""

import threading
from collections import deque
from collections.abc import Callable, Iterator
from queue import SimpleQueue
from typing import Any, Generic, TypeVar, cast

from generation.errors import Cancelled, GenerationError, QueueFull

T = TypeVar("T")
Emit = Callable[[str], None]
_END = object()


class Channel(Generic[T]):
    """One job's answer: iterate for the pieces as they arrive, then `result()` for its value."""

    def __init__(self) -> None:
        self._pieces: SimpleQueue[object] = SimpleQueue()
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._ended = False
        self._value: T | None = None
        self._error: BaseException | None = None

    def __iter__(self) -> Iterator[str]:
        """The pieces in order, blocking until each arrives; ends when the job does."""
        while not self._ended:
            piece = self._pieces.get()
            if piece is _END:
                self._ended = True
                return
            assert isinstance(piece, str)
            yield piece

    def result(self, timeout: float | None = None) -> T:
        """The job's return value; re-raises the job's exception here, in the caller's thread."""
        if not self._done.wait(timeout):
            raise TimeoutError(f"the answer was not finished within {timeout} s")
        if self._error is not None:
            raise self._error
        return cast(T, self._value)

    def cancel(self) -> None:
        """Stop the job: a waiting one never starts, a running one fails at its next piece."""
        self._cancelled.set()

    def _emit(self, piece: str) -> None:
        if self._cancelled.is_set():
            # Raised inside the job, so a streaming backend call unwinds and frees the model.
            raise Cancelled("the answer was cancelled by its caller")
        self._pieces.put(piece)

    def _run(self, job: Callable[[Emit], T]) -> None:
        try:
            if self._cancelled.is_set():
                raise Cancelled("the answer was cancelled before it started")
            self._value = job(self._emit)
        except BaseException as error:  # whatever the job raises belongs to its caller
            self._error = error
        self._done.set()
        self._pieces.put(_END)

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()
        self._pieces.put(_END)


class GenerationQueue:
    """`workers` threads run submitted jobs in order; at most `max_waiting` more may wait."""

    def __init__(self, workers: int, max_waiting: int) -> None:
        if workers < 1 or max_waiting < 0:
            raise ValueError(
                f"need workers >= 1 and max_waiting >= 0, got {workers}, {max_waiting}"
            )
        self._workers = workers
        self._max_waiting = max_waiting
        self._lock = threading.Condition()
        self._waiting: deque[tuple[Callable[[Emit], Any], Channel[Any]]] = deque()
        self._running = 0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"generation-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, job: Callable[[Emit], T]) -> Channel[T]:
        """Queue a job that calls emit(piece) for each piece it streams and returns its value."""
        channel: Channel[T] = Channel()
        with self._lock:
            if self._closed:
                raise GenerationError("the generation queue is closed — the server is stopping")
            # Jobs an idle worker is about to take are not waiting for the model.
            idle = self._workers - self._running
            if len(self._waiting) - idle >= self._max_waiting:
                waits = (
                    "1 question is"
                    if self._max_waiting == 1
                    else f"{self._max_waiting} questions are"
                )
                raise QueueFull(
                    f"{waits} already waiting for the model — try again shortly, "
                    "or raise ARCHIVIST_LLM_QUEUE"
                )
            self._waiting.append((job, channel))
            self._lock.notify()
        return channel

    def waiting(self) -> int:
        """Jobs submitted and not yet started."""
        with self._lock:
            return len(self._waiting)

    def running(self) -> int:
        """Jobs being generated now."""
        with self._lock:
            return self._running

    def close(self) -> None:
        """Stop the workers after their current jobs; jobs still waiting fail."""
        with self._lock:
            self._closed = True
            waiting = list(self._waiting)
            self._waiting.clear()
            self._lock.notify_all()
        for _, channel in waiting:
            channel._fail(GenerationError("the generation queue was closed — the server stopped"))

    def _work(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._lock.wait()
                if not self._waiting:
                    return
                job, channel = self._waiting.popleft()
                self._running += 1
            try:
                channel._run(job)
            finally:
                with self._lock:
                    self._running -= 1
