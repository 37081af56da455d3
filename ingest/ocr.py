"""Text from pictures of pages: Tesseract (Debian's tesseract-ocr), one page image at a time.

Measured side by side on the four dev scans (../shared/scanned, one thread each, other work
running), Tesseract 5.3 read them at CER 0-1.9% (whitespace collapsed, quotes and dashes mapped
to ASCII) in 0.3-2.4 s a page; RapidOCR 3.10 (PP-OCRv6 small, ONNX) at 0-0.6% on three of them
but 45% on the page turned on its side, in 1.3-9.1 s a page, and it needs
`opencv-python-headless` and six more packages: Tesseract is the engine. A page it reads with
low confidence is checked with Tesseract's orientation detection (OSD, ~1 s) and read again
upright when it lay on its side (CER 82% -> 0%). bench/ocr.py measures it.
"""

import csv
import io
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from PIL import Image

from ingest.errors import TimedOut

# OSD said "Rotate: 90" at confidence 9.6 for the page on its side, and "Rotate: 180" at 0.57
# for an upright but aged 1871 page (foxing, italics): below this, the page is left as it is.
_ORIENTATION_CONFIDENCE = 3.0
# A page whose words Tesseract is on average less sure of than this is flagged (and kept). On
# the dev scans and copies of them at 1/2 to 1/5 of their resolution, pages read well (CER
# 0-3%) averaged 0.89-0.96, pages read badly (CER 44-98%) 0.19-0.75.
LOW_CONFIDENCE = 0.8
NO_OCR_HINT = (
    "install Tesseract to read scans (make ocr, or apt install tesseract-ocr) and set "
    "ARCHIVIST_OCR=auto, then ingest it again"
)
_ROTATE = re.compile(r"Rotate:\s*(\d+)")
_CONFIDENCE = re.compile(r"Orientation confidence:\s*([\d.]+)")


@dataclass(frozen=True)
class ReadPage:
    """What OCR read on one page: its text (paragraphs apart by blank lines), and Tesseract's
    mean confidence in its words, 0-1 (1.0 for a page without words)."""

    text: str
    confidence: float

    @property
    def low_confidence(self) -> bool:
        """Whether Tesseract was unsure of its words (the page is flagged, and still kept)."""
        return self.confidence < LOW_CONFIDENCE


def ocr_available() -> bool:
    """Whether the `tesseract` program is installed."""
    return shutil.which("tesseract") is not None


def read_page(
    image: Image.Image, languages: str, timeout_s: float, dpi: int | None = None
) -> ReadPage:
    """The text on a picture of a page. A page read with low confidence is checked for its
    orientation and, when OSD is sure it lies on its side or upside down, read again upright.
    `dpi`: the picture's resolution, when known (Tesseract estimates it otherwise). Raises
    TimedOut past `timeout_s`, OSError if Tesseract fails."""
    dpi = dpi or _dpi_of(image)
    page = image.convert("RGB")
    picture = _picture(page)
    read = _read(picture, languages, timeout_s, dpi)
    if not read.low_confidence:  # upright: the orientation check would cost ~1 s a page
        return read
    turned = _orientation(picture, timeout_s)
    if not turned:
        return read
    upright = _read(_picture(page.rotate(-turned, expand=True, fillcolor=(255, 255, 255))),
                    languages, timeout_s, dpi)  # fmt: skip
    return upright if upright.confidence > read.confidence else read


def _read(picture: bytes, languages: str, timeout_s: float, dpi: int | None) -> ReadPage:
    resolution = ["--dpi", str(dpi)] if dpi else []
    return _text_of(_tesseract([*_languages(languages), "--psm", "3", *resolution, "tsv"],
                               picture, timeout_s))  # fmt: skip


def _orientation(picture: bytes, timeout_s: float) -> int:
    """Degrees to turn the page clockwise (0 when OSD is unsure or cannot tell)."""
    try:
        found = _tesseract(["--psm", "0"], picture, timeout_s)
    except OSError:  # too few letters to tell ("Too few characters"), or no osd data
        return 0
    rotate, confidence = _ROTATE.search(found), _CONFIDENCE.search(found)
    if not rotate or not confidence or float(confidence.group(1)) < _ORIENTATION_CONFIDENCE:
        return 0
    return int(rotate.group(1)) % 360


def _text_of(table: str) -> ReadPage:
    """Tesseract's TSV (one row per word, numbered by block, paragraph and line) as text."""
    lines: dict[tuple[str, str, str], list[str]] = {}
    confidences: list[float] = []
    for row in csv.DictReader(io.StringIO(table), delimiter="\t", quoting=csv.QUOTE_NONE):
        word = (row.get("text") or "").strip()
        if row.get("level") != "5" or not word:
            continue
        lines.setdefault((row["block_num"], row["par_num"], row["line_num"]), []).append(word)
        confidences.append(float(row["conf"]) / 100)
    paragraphs: dict[tuple[str, str], list[str]] = {}
    for (block, paragraph, _), words in lines.items():
        paragraphs.setdefault((block, paragraph), []).append(" ".join(words))
    text = "\n\n".join("\n".join(lines_) for lines_ in paragraphs.values())
    return ReadPage(text, sum(confidences) / len(confidences) if confidences else 1.0)


def _dpi_of(image: Image.Image) -> int | None:
    """The resolution a picture's file records, if it is a plausible one."""
    recorded = image.info.get("dpi")
    try:
        dpi = round(float(recorded[0])) if recorded else 0
    except (TypeError, ValueError, IndexError):
        return None
    return dpi if 50 <= dpi <= 1200 else None


def _languages(languages: str) -> list[str]:
    return ["-l", languages.replace(",", "+")]


def _tesseract(args: list[str], picture: bytes, timeout_s: float) -> str:
    # One thread: the conversion workers already keep every core busy.
    environment = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    try:
        done = subprocess.run(
            ["tesseract", "stdin", "stdout", *args],
            input=picture, capture_output=True, timeout=timeout_s, env=environment,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise TimedOut(f"OCR of a page took longer than {timeout_s:g} s") from None
    if done.returncode != 0:
        message = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise OSError(f"tesseract failed: {message[-1] if message else done.returncode}")
    return done.stdout.decode("utf-8", "replace")


def _picture(image: Image.Image) -> bytes:
    """The page as Tesseract reads it from stdin: a PNG, quickly compressed (0.27 s for a 300
    dpi page instead of 0.74 s; Tesseract read a PPM ~0.3 s slower, from memory)."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()
