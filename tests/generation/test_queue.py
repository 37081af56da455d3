import threading

import pytest

from generation.errors import Cancelled, GenerationError, QueueFull
from generation.queue import GenerationQueue

WAIT = 10  # seconds; only reached when something is broken


@pytest.fixture
def queue():
    generation_queue = GenerationQueue(workers=1, max_waiting=1)
    yield generation_queue
    generation_queue.close()


def blocked(release: threading.Event, started: threading.Event | None = None):
    def job(emit):
        if started is not None:
            started.set()
        assert release.wait(WAIT)
        return "done"

    return job


def test_pieces_stream_in_order_then_the_result(queue):
    def job(emit):
        for piece in ["The ", "fee ", "is ", "2 euros."]:
            emit(piece)
        return 42

    channel = queue.submit(job)
    assert list(channel) == ["The ", "fee ", "is ", "2 euros."]
    assert channel.result(WAIT) == 42
    assert list(channel) == []


def test_pieces_arrive_before_the_job_ends(queue):
    release = threading.Event()

    def job(emit):
        emit("first")
        assert release.wait(WAIT)
        emit("second")

    channel = queue.submit(job)
    pieces = iter(channel)
    assert next(pieces) == "first"
    release.set()
    assert list(pieces) == ["second"]
    assert channel.result(WAIT) is None


def test_a_failing_job_raises_in_the_caller_and_the_worker_lives_on(queue):
    def job(emit):
        emit("partial")
        raise ValueError("the model crashed")

    channel = queue.submit(job)
    assert list(channel) == ["partial"]
    with pytest.raises(ValueError, match="the model crashed"):
        channel.result(WAIT)
    assert queue.submit(lambda emit: "still working").result(WAIT) == "still working"


def test_queue_full_when_max_waiting_jobs_wait(queue):
    release, started = threading.Event(), threading.Event()
    running = queue.submit(blocked(release, started))
    assert started.wait(WAIT)
    waiting = queue.submit(blocked(release))
    assert (queue.running(), queue.waiting()) == (1, 1)
    with pytest.raises(QueueFull) as raised:
        queue.submit(blocked(release))
    assert str(raised.value) == (
        "1 question is already waiting for the model — try again shortly, "
        "or raise ARCHIVIST_LLM_QUEUE"
    )
    release.set()
    assert (running.result(WAIT), waiting.result(WAIT)) == ("done", "done")


def test_no_waiting_room_still_takes_a_job_for_an_idle_worker():
    queue = GenerationQueue(workers=1, max_waiting=0)
    try:
        assert queue.submit(lambda emit: "ok").result(WAIT) == "ok"
    finally:
        queue.close()


def test_workers_run_concurrently_but_never_more():
    workers = 3
    queue = GenerationQueue(workers=workers, max_waiting=10)
    together = threading.Barrier(workers, timeout=WAIT)
    lock = threading.Lock()
    now, most = [0], [0]

    def job(emit):
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        together.wait()  # breaks (and the job fails) unless `workers` jobs run at once
        with lock:
            now[0] -= 1

    try:
        channels = [queue.submit(job) for _ in range(2 * workers)]
        for channel in channels:
            channel.result(WAIT)
    finally:
        queue.close()
    assert most[0] == workers


def test_close_fails_waiting_jobs_and_refuses_new_ones(queue):
    release, started = threading.Event(), threading.Event()
    running = queue.submit(blocked(release, started))
    assert started.wait(WAIT)
    waiting = queue.submit(blocked(release))
    queue.close()
    with pytest.raises(GenerationError, match="the generation queue was closed"):
        waiting.result(WAIT)
    with pytest.raises(GenerationError, match="the generation queue is closed"):
        queue.submit(blocked(release))
    release.set()
    assert running.result(WAIT) == "done"


def test_cancel_stops_a_running_job_at_its_next_piece(queue):
    release, started = threading.Event(), threading.Event()
    stopped = []

    def job(emit):
        emit("one")
        started.set()
        assert release.wait(WAIT)
        try:
            emit("two")
        except Cancelled:
            stopped.append(True)
            raise

    channel = queue.submit(job)
    assert started.wait(WAIT)
    channel.cancel()
    release.set()
    with pytest.raises(Cancelled):
        channel.result(WAIT)
    assert list(channel) == ["one"]
    assert stopped == [True]


def test_a_cancelled_waiting_job_never_starts(queue):
    release, started = threading.Event(), threading.Event()
    running = queue.submit(blocked(release, started))
    assert started.wait(WAIT)
    ran = threading.Event()
    waiting = queue.submit(lambda emit: ran.set())
    waiting.cancel()
    release.set()
    with pytest.raises(Cancelled, match="before it started"):
        waiting.result(WAIT)
    assert running.result(WAIT) == "done"
    assert not ran.is_set()
