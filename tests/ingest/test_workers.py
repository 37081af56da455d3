"""Conversion workers: a file that hangs, crashes or eats memory costs only itself."""

import os
import signal
import time
from pathlib import Path

from ingest.chunker import ChunkOptions, TokenCounter
from ingest.convert import Limits
from ingest.document import PageProgress
from ingest.workers import Chunked, ConversionPool, Failed, Job, WorkerSetup, convert_and_chunk
from retrieval.embedder import tokenizer_file


def hang_on_slow_files(
    path: Path, counter: TokenCounter, setup: WorkerSetup, on_page: PageProgress
) -> Chunked | Failed:
    """A ConvertFn that never finishes for files named slow*, and converts the rest."""
    if path.name.startswith("slow"):
        time.sleep(3600)
    return convert_and_chunk(path, counter, setup, on_page)


def crash_on_bad_files(
    path: Path, counter: TokenCounter, setup: WorkerSetup, on_page: PageProgress
) -> Chunked | Failed:
    """A ConvertFn that dies by segfault on files named bad*, and converts the rest."""
    if path.name.startswith("bad"):
        os.kill(os.getpid(), signal.SIGSEGV)
    return convert_and_chunk(path, counter, setup, on_page)


def hog_memory(
    path: Path, counter: TokenCounter, setup: WorkerSetup, on_page: PageProgress
) -> Chunked | Failed:
    """A ConvertFn that tries to hold 4 GB for files named big*, and converts the rest."""
    if path.name.startswith("big"):
        hoard = bytearray(4 * 1024**3)
        return Failed("impossible", str(len(hoard)))
    return convert_and_chunk(path, counter, setup, on_page)


def pages_then_stall(
    path: Path, counter: TokenCounter, setup: WorkerSetup, on_page: PageProgress
) -> Chunked | Failed:
    """A ConvertFn that takes 1.2 s a page over a 5-page file, and stalls after page 2 of
    files named stall*."""
    for page in range(1, 6):
        time.sleep(1.2)
        on_page(page, 5)
        if page == 2 and path.name.startswith("stall"):
            time.sleep(3600)
    return convert_and_chunk(path, counter, setup, on_page)


def pool(work, timeout_s: float = 30, memory_mb: int = 1024) -> ConversionPool:  # type: ignore[no-untyped-def]
    limits = Limits(timeout_s=timeout_s, memory_mb=memory_mb, max_file_mb=512, max_expand_mb=1024)
    return ConversionPool(
        tokenizer_file("all-MiniLM-L6-v2"),
        ChunkOptions(target=200, cap=240, overlap=32),
        limits,
        workers=2,
        work=work,
    )


def outcomes(conversion: ConversionPool, paths: list[Path]) -> dict[str, Chunked | Failed]:
    jobs = [Job(path.name, path) for path in paths]
    return {job.key: outcome for job, outcome in conversion.run(jobs)}


def notes(folder: Path, *names: str) -> list[Path]:
    paths = [folder / name for name in names]
    for path in paths:
        path.write_text(f"Notes in {path.name}.\n")
    return paths


def test_a_hanging_file_times_out_and_the_rest_convert(tmp_path: Path) -> None:
    paths = notes(tmp_path, "slow.txt", "a.txt", "b.txt", "c.txt")
    started = time.monotonic()
    results = outcomes(pool(hang_on_slow_files, timeout_s=0.5), paths)
    assert time.monotonic() - started < 30
    assert results["slow.txt"] == Failed("timeout", "slow.txt: conversion took longer than 0.5 s")
    assert all(isinstance(results[n], Chunked) for n in ("a.txt", "b.txt", "c.txt"))


def test_the_time_limit_runs_from_the_last_page_done(tmp_path: Path) -> None:
    # The limit is 0.5 s (a worker is given 5 s more to say it timed out itself): each page
    # within 5.5 s, the whole file in 6 s. A long scan reading steadily finishes; one that
    # stops moving fails, saying after which page.
    paths = notes(tmp_path, "steady.txt", "stall.txt")
    heard: list[tuple[str, int, int]] = []
    conversion = pool(pages_then_stall, timeout_s=0.5)
    jobs = [Job(path.name, path) for path in paths]
    results = dict(conversion.run(jobs, on_page=lambda job, done, count: heard.append(
        (job.key, done, count))))  # fmt: skip
    by_key = {job.key: outcome for job, outcome in results.items()}
    assert isinstance(by_key["steady.txt"], Chunked)
    assert by_key["stall.txt"] == Failed(
        "timeout",
        "stall.txt: no page done for 0.5 s, after page 2 of 5 (ARCHIVIST_CONVERT_TIMEOUT_S)",
    )
    steady = [done for key, done, count in heard if key == "steady.txt" and count == 5]
    assert steady == [1, 2, 3, 4, 5]


def test_a_crashing_converter_is_reported_and_replaced(tmp_path: Path) -> None:
    paths = notes(tmp_path, "bad1.txt", "ok1.txt", "bad2.txt", "ok2.txt", "ok3.txt")
    results = outcomes(pool(crash_on_bad_files), paths)
    assert results["bad1.txt"] == Failed(
        "crashed", "bad1.txt: the converter crashed on it (signal 11)"
    )
    assert isinstance(results["bad2.txt"], Failed)
    assert all(isinstance(results[n], Chunked) for n in ("ok1.txt", "ok2.txt", "ok3.txt"))


def test_memory_is_capped_per_conversion(tmp_path: Path) -> None:
    paths = notes(tmp_path, "big.txt", "small.txt")
    results = outcomes(pool(hog_memory, memory_mb=512), paths)
    assert results["big.txt"] == Failed(
        "too-large",
        "big.txt: converting it needs more than 512 MB of memory (ARCHIVIST_CONVERT_MEMORY_MB)",
    )
    assert isinstance(results["small.txt"], Chunked)


def test_real_conversion_returns_chunks_with_counts(tmp_path: Path) -> None:
    (tmp_path / "n.md").write_text("# Title\n\nSome words in a note.\n")
    result = outcomes(pool(convert_and_chunk), [tmp_path / "n.md"])["n.md"]
    assert isinstance(result, Chunked)
    assert [(c.heading_path, c.text) for c in result.chunks] == [
        (("Title",), "Title\n\nSome words in a note.")
    ]


_CONVERT_WITHOUT_STDERR = """
import sys
from pathlib import Path
from tests.ingest.test_workers import notes, outcomes, pool
from ingest.workers import convert_and_chunk

class NoDescriptor:  # what a full-screen terminal program puts in stderr's place
    def write(self, text): return len(text)
    def flush(self): pass
    def fileno(self): return -1

conversion = pool(convert_and_chunk)
if sys.argv[1] == "started":
    conversion.start_server()
sys.stderr = NoDescriptor()
try:
    (outcome,) = outcomes(conversion, notes(Path(sys.argv[2]), "a.txt")).values()
    print(type(outcome).__name__)
except ValueError as error:
    print(f"ValueError: {error}")
"""


def test_the_fork_server_started_first_converts_after_stderr_is_taken_over(
    tmp_path: Path,
) -> None:
    """The terminal chat's screen replaces stderr with a stand-in whose descriptor is -1;
    multiprocessing hands stderr to the fork server it starts, so started after, every
    conversion failed. Started first (ConversionPool.start_server), it converts."""
    import subprocess
    import sys

    def convert(order: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", _CONVERT_WITHOUT_STDERR, order, str(tmp_path)],
            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
        )  # fmt: skip
        return done.stdout.strip()

    assert convert("late") == "ValueError: bad value(s) in fds_to_keep"
    assert convert("started") == "Chunked"
