"""Ingestion throughput on the shared corpus: pages/s and chunks/s into SQLite.

Run: .venv/bin/python bench/ingest.py [FOLDER ...]   (default: ../shared/corpus/pdfs and mixed)

For each folder it ingests into a fresh data folder (conversion, chunking and SQLite writes,
on all cores) and, in the same run, times pdfium alone extracting the same PDFs on one core,
so the figures can be read side by side.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

import pypdfium2 as pdfium

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api import pipeline  # noqa: E402
from api.settings import Settings  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def pdfium_pages_per_second(folder: Path) -> tuple[int, float]:
    """Raw text extraction with pdfium on one core: (pages, seconds)."""
    pages, started = 0, time.perf_counter()
    for path in sorted(folder.rglob("*.pdf")):
        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError:
            continue
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            textpage.get_text_range()
            textpage.close()
            page.close()
        pages += len(pdf)
        pdf.close()
    return pages, time.perf_counter() - started


def ingest_folder(folder: Path) -> dict[str, float]:
    """Ingest a folder into a fresh data folder; time it and count what went in."""
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data=Path(data))
        started = time.perf_counter()
        report = pipeline.ingest(settings, [folder])
        seconds = time.perf_counter() - started
        store = pipeline.open_store(settings)
        pages = sum(d.page_count or 0 for d in store.documents() if d.type == "pdf")
        chunks = store.chunk_count()
        store.close()
    summary = report.summary()
    return {"seconds": seconds, "pages": pages, "chunks": chunks, **summary}


def main() -> None:
    folders = [Path(a) for a in sys.argv[1:]] or [SHARED / "pdfs", SHARED / "mixed"]
    print(f"cores: {os.cpu_count()}")
    for folder in folders:
        if not folder.is_dir():
            print(f"{folder}: not found, skipped")
            continue
        raw_pages, raw_seconds = pdfium_pages_per_second(folder)
        result = ingest_folder(folder)
        seconds = result["seconds"]
        print(
            f"\n{folder.name}: {result['ingested']} ingested, {result['failed']} failed, "
            f"{result['pages']} PDF pages, {result['chunks']} chunks in {seconds:.2f} s"
        )
        print(
            f"  pipeline      {result['pages'] / seconds:8.0f} PDF pages/s"
            f"  {result['chunks'] / seconds:8.0f} chunks/s  (all cores, into SQLite)"
        )
        if raw_seconds:
            raw = raw_pages / raw_seconds
            print(
                f"  pdfium alone  {raw:8.0f} pages/s on one core"
                f"  (pipeline/pdfium = {result['pages'] / seconds / raw:.2f})"
            )


if __name__ == "__main__":
    main()
