"""OCR on the dev scans: character error rate and seconds per page, page by page.

Run: .venv/bin/python bench/ocr.py [FOLDER]   (default ../shared/scanned; `make ocr` first)

Each picture (a PDF is rendered at 300 dpi, as ingestion renders a scanned page) is read by
ingest.ocr.read_page, orientation check included, on one thread. CER is the edit distance
over the ground truth's characters (`NAME.gt.txt`), with NFKC applied, curly quotes and dashes
mapped to ASCII and all whitespace collapsed (the folder's SOURCES.md convention).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import time
import unicodedata

import pypdfium2 as pdfium
from PIL import Image

from ingest.ocr import ocr_available, read_page

_ASCII = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'",
                        "—": "-", "–": "-"})  # fmt: skip


def normalized(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).translate(_ASCII).split())


def cer(read: str, truth: str) -> float:
    """Edit distance between the normalized texts over the ground truth's length."""
    a, b = normalized(read), normalized(truth)
    previous = list(range(len(b) + 1))
    for i, char in enumerate(a, 1):
        current = [i] + [0] * len(b)
        for j, other in enumerate(b, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char != other))
        previous = current
    return previous[-1] / max(1, len(b))


def picture(path: Path) -> Image.Image:
    if path.suffix.lower() == ".pdf":
        return pdfium.PdfDocument(path)[0].render(scale=300 / 72).to_pil()
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
        rate = cer(page.text, path.with_suffix(".gt.txt").read_text())
        rates.append(rate)
        seconds += took
        size = f"{image.width}x{image.height}"
        print(f"{path.name:32} {size:>11} {took:8.2f} {rate:7.1%} {page.confidence:9.0%}")
    worst = max(range(len(rates)), key=rates.__getitem__)
    print(f"\nmean CER {sum(rates) / len(rates):.1%}, worst {rates[worst]:.1%} "
          f"({scans[worst].name}); {len(rates) / seconds:.2f} pages/s")  # fmt: skip


if __name__ == "__main__":
    main()
