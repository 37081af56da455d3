"""OCR on the dev scans: character error rate and seconds per page, page by page; then the
speed of reading a whole scan, on one thread and on every core.

Run: .venv/bin/python bench/ocr.py [FOLDER]   (default ../shared/scanned; `make ocr` first)

Each picture (a PDF is rendered at 300 dpi in grayscale, as ingestion renders a scanned page)
is read by ingest.ocr.read_page, orientation check included, on one thread. CER is the edit
distance over the ground truth's characters (`NAME.gt.txt`), with NFKC applied, curly quotes
and dashes mapped to ASCII and all whitespace collapsed (the folder's SOURCES.md convention).

The whole-scan figure: a PDF of SCAN_PAGES image-only A4 pages of dense printed text (words of
the ground truths typeset at 10 pt, ~3,400 characters a page, rasterized at 300 dpi by pdfium)
converted by ingest.pdf.convert_pdf as ingestion converts it (render, OCR, paragraphs), with
one OCR thread and with ingest.ocr.OCR_THREADS, and CER of its pages against the typeset text.

The retrieval check: the dev scans ingested as documents by the service, each searched for by
ten words from the middle of its ground truth; found first or not.
"""

import random
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import time

import pypdfium2 as pdfium
from fpdf import FPDF
from PIL import Image

import ingest.ocr
from api.evaluation import character_error_rate as cer
from api.service import Archivist, Settings
from ingest.ocr import OCR_THREADS, ocr_available, read_page
from ingest.pdf import convert_pdf

SCAN_PAGES = 8


def picture(path: Path) -> Image.Image:
    if path.suffix.lower() == ".pdf":
        return pdfium.PdfDocument(path)[0].render(scale=300 / 72, grayscale=True).to_pil()
    return Image.open(path)


def main() -> None:
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("../shared/scanned")
    if not ocr_available():
        sys.exit("Tesseract is not installed: run `make ocr` first")
    scans = sorted(p for p in folder.iterdir() if p.with_suffix(".gt.txt").exists()
                   and not p.name.endswith(".txt"))  # fmt: skip
    print(f"{'page':32} {'pixels':>11} {'seconds':>8} {'CER':>7} {'confident':>9}")
    rates, seconds = [], 0.0
    for path in scans:
        image = picture(path)
        start = time.perf_counter()
        dpi = 300 if path.suffix.lower() == ".pdf" else None  # as ingestion renders a PDF page
        page = read_page(image, "eng", timeout_s=300, dpi=dpi)
        took = time.perf_counter() - start
        rate = cer(page.text, ground_truth(path))
        rates.append(rate)
        seconds += took
        size = f"{image.width}x{image.height}"
        print(f"{path.name:32} {size:>11} {took:8.2f} {rate:7.1%} {page.confidence:9.0%}")
    worst = max(range(len(rates)), key=rates.__getitem__)
    print(f"\nmean CER {sum(rates) / len(rates):.1%}, worst {rates[worst]:.1%} "
          f"({scans[worst].name}); {len(rates) / seconds:.2f} pages/s")  # fmt: skip
    words = " ".join(p.read_text() for p in folder.glob("*.gt.txt")).split()
    whole_scan(words)
    retrieval_check(scans)


def ground_truth(scan: Path) -> str:
    return scan.with_suffix(".gt.txt").read_text()


def retrieval_check(scans: list[Path]) -> None:
    """Ingest the scans as documents (nothing else in the folder but each other) and search
    for ten words from the middle of each one's ground truth: is that scan found first?"""
    with tempfile.TemporaryDirectory() as scratch:
        inbox = Path(scratch) / "inbox"
        inbox.mkdir()
        for scan in scans:
            shutil.copy(scan, inbox / scan.name)
        settings = Settings(data=Path(scratch) / "data", llm="none")
        with Archivist(settings) as service:
            service.ingest([inbox])
            first = 0
            for scan in scans:
                words = ground_truth(scan).split()
                middle = len(words) // 2
                [hit] = service.search(" ".join(words[middle : middle + 10]), k=1)
                # phototest.tif and phototest-rot90.png show the same page: either is right
                first += ground_truth(scan.parent / Path(hit.path).name) == ground_truth(scan)
        print(f"\nretrieval: {first} of {len(scans)} scans (or a scan of the same page) found "
              "first by ten of their words")  # fmt: skip


def dense_scan(words: list[str], folder: Path) -> tuple[Path, list[str]]:
    """An image-only PDF of SCAN_PAGES A4 pages of 10 pt text (300 dpi), and each page's text."""
    rng = random.Random(7)
    texts = [" ".join(rng.choice(words) for _ in range(560)) for _ in range(SCAN_PAGES)]
    typeset = FPDF(format="A4")
    typeset.set_font("Helvetica", size=10)
    for text in texts:
        typeset.add_page()
        typeset.multi_cell(0, 4.6, text.encode("latin-1", "replace").decode("latin-1"))
    (folder / "typeset.pdf").write_bytes(bytes(typeset.output()))
    scan = FPDF(format="A4")
    for page in pdfium.PdfDocument(folder / "typeset.pdf"):
        scan.add_page()
        scan.image(page.render(scale=300 / 72, grayscale=True).to_pil(), x=0, y=0, w=210, h=297)
    (folder / "scan.pdf").write_bytes(bytes(scan.output()))
    return folder / "scan.pdf", texts


def whole_scan(words: list[str]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        scan, texts = dense_scan(words, Path(scratch))
        print(f"\n{SCAN_PAGES}-page dense scan (300 dpi A4, 10 pt):")
        for threads in sorted({1, OCR_THREADS}):
            ingest.ocr.OCR_THREADS = threads
            start = time.perf_counter()
            converted = convert_pdf(scan, "eng", timeout_s=300)
            took = time.perf_counter() - start
            pages = ["" for _ in texts]
            for block in converted.blocks:
                pages[(block.page or 1) - 1] += " " + block.text
            rates = [cer(read, truth) for read, truth in zip(pages, texts, strict=True)]
            rate = sum(rates) / len(rates)
            print(f"  {threads} OCR thread(s): {SCAN_PAGES / took:.2f} pages/s "
                  f"({took / SCAN_PAGES:.2f} s a page), CER {rate:.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
