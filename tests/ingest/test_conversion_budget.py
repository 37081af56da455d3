"""Conversions share one memory budget; what the hostile corpus found, one behaviour a test."""

import os
import time
from pathlib import Path

import pytest

from ingest.chunker import ChunkOptions, TokenCounter
from ingest.convert import Limits, convert_file
from ingest.document import PageProgress
from ingest.errors import Corrupt, OutOfMemory
from ingest.workers import Chunked, ConversionPool, Failed, Job, WorkerSetup, convert_and_chunk
from retrieval.embedder import tokenizer_file
from tests.conftest import IngestRun, by_name
from tests.ingest import hostile_files as h

CHUNKING = ChunkOptions(target=200, cap=240, overlap=32)
LIMITS = Limits(timeout_s=60, memory_mb=1024, max_file_mb=512, max_expand_mb=1024)


def pool(memory_mb: int, *, workers: int = 1, work=convert_and_chunk) -> ConversionPool:  # type: ignore[no-untyped-def]
    limits = Limits(timeout_s=60, memory_mb=memory_mb, max_file_mb=512, max_expand_mb=1024)
    model = tokenizer_file("all-MiniLM-L6-v2")
    return ConversionPool(model, CHUNKING, limits, workers=workers, work=work)


def outcomes(conversion: ConversionPool, *paths: Path) -> dict[str, Chunked | Failed]:
    return {job.key: outcome for job, outcome in conversion.run(Job(p.name, p) for p in paths)}


def hold_named_mb(
    path: Path, counter: TokenCounter, setup: WorkerSetup, on_page: PageProgress
) -> Chunked | Failed:
    """A ConvertFn that holds the megabytes a file's name begins with while converting it
    (300-big.txt: 300 MB; a.txt: none)."""
    megabytes = path.name.split("-")[0]
    held = bytearray(int(megabytes) * 1024 * 1024 if megabytes.isdigit() else 0)
    try:
        return convert_and_chunk(path, counter, setup, on_page)
    finally:
        del held


def test_a_word_of_megabytes_is_chunked_within_a_worker_cap(tmp_path: Path) -> None:
    # The whole word went to the tokenizer in one call (hundreds of MB at once: the worker
    # aborted, signal 6, when its cap was near) and came back as one 4 MB chunk.
    word = h.make_one_word_text(tmp_path / "blob.md", 4)
    result = outcomes(pool(512), word)["blob.md"]
    assert isinstance(result, Chunked)
    assert sum(len(chunk.text) for chunk in result.chunks) >= 4 * 1024 * 1024  # all of it
    assert max(len(chunk.text) for chunk in result.chunks) <= CHUNKING.cap * 16


def test_a_pdf_that_exhausts_pdfium_is_too_large_not_a_crash(tmp_path: Path) -> None:
    # pdfium aborts the process when its allocation fails under the cap: the worker saw its
    # address space reach the cap, so the parent says why.
    bomb = h.make_content_bomb_pdf(tmp_path / "bomb.pdf")
    assert outcomes(pool(512), bomb)["bomb.pdf"] == Failed(
        "too-large",
        "bomb.pdf: converting it needs more than 512 MB of memory (ARCHIVIST_CONVERT_MEMORY_MB)",
    )


def test_a_file_too_big_for_a_share_converts_alone_with_the_whole_budget(tmp_path: Path) -> None:
    paths = [tmp_path / name for name in ("300-big.txt", "a.txt", "b.txt")]
    for path in paths:
        path.write_text(f"Notes in {path.name}.\n")
    # Two workers share 640 MB (320 each, ~155 MB of it the worker's own before a file):
    # 300-big.txt runs out, then has all 640 MB to itself.
    results = outcomes(pool(640, workers=2, work=hold_named_mb), *paths)
    assert all(isinstance(result, Chunked) for result in results.values()), results


def test_a_worker_may_allocate_its_share_beside_its_program_files(tmp_path: Path) -> None:
    # A worker's address space is ~250 MB before it reads a file, ~100 MB of it program
    # files' pages. Capped at a 256 MB share with them, it could allocate 10 MB: pdfium
    # aborted on its first buffer for a content stream, before the worker had grown, and
    # that read as a converter crash. Its anonymous memory is what the share bounds.
    (tmp_path / "60-notes.txt").write_text("Notes held beside 60 MB.\n")
    (tmp_path / "250-notes.txt").write_text("Notes held beside 250 MB.\n")
    alone = pool(256, work=hold_named_mb)  # one worker: no second try with more
    results = outcomes(alone, tmp_path / "60-notes.txt", tmp_path / "250-notes.txt")
    assert isinstance(results["60-notes.txt"], Chunked), results
    assert results["250-notes.txt"] == Failed(
        "too-large",
        "250-notes.txt: converting it needs more than 256 MB of memory "
        "(ARCHIVIST_CONVERT_MEMORY_MB)",
    )


def test_a_zip_member_bigger_than_its_header_says_is_refused_before_pandoc(tmp_path: Path) -> None:
    bomb = h.make_lying_zip_bomb_docx(tmp_path / "liar.docx")
    started = time.monotonic()
    with pytest.raises(Corrupt, match=r"liar\.docx: damaged, or a zip bomb hiding its size: "):
        convert_file(bomb, LIMITS)
    assert time.monotonic() - started < 10  # pandoc inflated it to its heap cap before


def test_text_far_too_big_for_pandoc_is_refused_at_once(tmp_path: Path) -> None:
    page = h.make_one_line_html(tmp_path / "page.html", 50)
    started = time.monotonic()
    with pytest.raises(OutOfMemory, match=r"page\.html: converting it needs more than 1024 MB"):
        convert_file(page, LIMITS)
    assert time.monotonic() - started < 10  # pandoc held a core for 72 s (2 GB) before


def test_a_name_that_is_not_utf8_fails_alone(docs: Path, run_ingest: IngestRun) -> None:
    (docs / "menu.txt").write_text("Soup of the day.\n")
    (docs / os.fsdecode(b"caf\xe9.txt")).write_text("Latin-1 name.\n")
    results = by_name(run_ingest(docs))
    assert results["menu.txt"].status == "ingested"
    assert (results["caf\\xe9.txt"].status, results["caf\\xe9.txt"].reason) == (
        "failed",
        "bad-name",
    )
    assert (results["caf\\xe9.txt"].error or "").startswith(
        "caf\\xe9.txt: the file name is not valid UTF-8"
    )


def test_the_default_budget_gives_each_worker_a_gigabyte_within_half_the_memory() -> None:
    """A share of 256 MB (16 workers in 2 GB) sent every typeset PDF of the shared corpus to
    be converted again alone: 56 pages/s on 16 cores instead of ~2,000."""
    from api.service import Settings

    half_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20 // 2
    for workers in (1, 2, 8, 16, 256):
        budget = Settings(workers=workers).convert_memory_mb
        assert budget >= 2048
        assert budget >= min(1024 * workers, half_mb)
        assert budget <= max(2048, half_mb)
    assert Settings(workers=16, convert_memory_mb=512).convert_memory_mb == 512
