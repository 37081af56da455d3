"""Text from pictures of pages: Tesseract 5.5 (libtesseract inside the tesserocr wheel) with
Debian's language data (tesseract-ocr-eng, -osd), in the conversion worker's own process.

Measured side by side on the four dev scans (../shared/scanned, one thread each), Tesseract
read them at CER 0-2.7% (whitespace collapsed, quotes and dashes mapped to ASCII; 1.2% on
average); RapidOCR 3.10 (PP-OCRv6 small, ONNX) at 0-0.6% on three of them but 45% on the page
turned on its side, 2-4 times slower, and it needs `opencv-python-headless` and six more
packages: Tesseract is the engine. In process (tesserocr) it read a dense 300 dpi A4 page in
2.1 s where Debian's `tesseract` 5.3 command took 2.8 s (3.5 s with the page sent as an RGB
PNG), and orientation detection takes 0.15 s instead of ~1 s. A page read with low confidence
is checked with OSD and read again upright when it lay on its side (CER 82% -> 0%).
bench/ocr.py measures it.
"""

import csv
import os
import resource
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import tesserocr
from PIL import Image

from ingest.errors import TimedOut

# OSD said "turned 270" at confidence 9.6 for the page on its side, and "180" at 0.57 for an
# upright but aged 1871 page (foxing, italics): below this, the page is left as it is.
_ORIENTATION_CONFIDENCE = 3.0
# A page whose words Tesseract is on average less sure of than this is flagged (and kept). On
# the dev scans and copies of them at 1/2 to 1/5 of their resolution, pages read well (CER
# 0-3%) averaged 0.89-0.96, pages read badly (CER 44-98%) 0.19-0.75.
LOW_CONFIDENCE = 0.8
# Pages of one scan are read side by side, one Tesseract per core: Tesseract's own OpenMP
# threads made a page slower (5.9 s against 2.0 s on one thread). Four at most, and as many
# as the worker's memory share holds: reading dense 300 dpi A4 pages took the worker's
# anonymous address space from 99 MB to 391 MB on one thread, 544 MB on two (each thread
# holds a page, Tesseract's working memory and a malloc arena).
OCR_THREADS = max(1, min(4, os.cpu_count() or 1))
_BASE_MB, _THREAD_MB = 150, 300
# Debian's tesseract-ocr-LANG packages put the data here (TESSDATA_PREFIX overrides).
_TESSDATA = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata",
             "/usr/share/tessdata", "/usr/local/share/tessdata")  # fmt: skip
NO_OCR_HINT = (
    "install Tesseract's data to read scans (make ocr; or apt install tesseract-ocr-eng "
    "tesseract-ocr-osd, and tesseract-ocr-LANG for each other language of "
    "ARCHIVIST_OCR_LANGUAGES), set ARCHIVIST_OCR=auto, then ingest it again"
)
_WORD = "5"  # the TSV level of a word
T = TypeVar("T")


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


# A page Tesseract could not read at all: flagged with the low-confidence pages, never dropped
# without a word.
UNREADABLE = ReadPage("", 0.0)


def tessdata() -> Path | None:
    """The folder of Tesseract's language data, if one is installed."""
    prefix = os.environ.get("TESSDATA_PREFIX")
    for folder in ([prefix] if prefix else []) + list(_TESSDATA):
        if any(Path(folder).glob("*.traineddata")):
            return Path(folder)
    return None


def ocr_available(languages: str = "eng") -> bool:
    """Whether Tesseract's data for every one of `languages` (and its orientation data) is
    installed."""
    return missing_ocr_data(languages) == []


def missing_ocr_data(languages: str) -> list[str]:
    """The Debian packages of Tesseract's data that reading `languages` needs and that are
    not installed (tesseract-ocr-osd for orientation detection)."""
    folder = tessdata()
    names = [*_languages(languages), "osd"]
    return [f"tesseract-ocr-{name}" for name in names
            if folder is None or not (folder / f"{name}.traineddata").is_file()]  # fmt: skip


class PageReader:
    """One Tesseract, loaded for `languages`, that reads pictures of pages one at a time (a
    thread needs its own); `close` frees it."""

    def __init__(self, languages: str, timeout_s: float) -> None:
        self.languages, self.timeout_s = languages, timeout_s
        self._folder = str(tessdata() or _TESSDATA[0])
        self._timeout_ms = max(1, round(timeout_s * 1000))
        self._api = self._load("+".join(_languages(languages)), tesserocr.PSM.AUTO)
        self._osd: tesserocr.PyTessBaseAPI | None = None  # loaded for the first doubtful page

    def _load(self, languages: str, mode: int) -> tesserocr.PyTessBaseAPI:
        try:
            return tesserocr.PyTessBaseAPI(path=self._folder, lang=languages, psm=mode)
        except RuntimeError as error:
            raise OSError(
                f"Tesseract cannot load {languages!r} from {self._folder}: {NO_OCR_HINT}"
            ) from error

    def read(self, image: Image.Image, dpi: int | None = None) -> ReadPage:
        """The text on a picture of a page. A page read with low confidence is checked for its
        orientation and, when OSD is sure it lies on its side or upside down, read again
        upright. `dpi`: the picture's resolution, when known (Tesseract estimates it
        otherwise). Raises TimedOut past the time limit, OSError if Tesseract fails."""
        dpi = dpi or _dpi_of(image)
        page = image.convert("L")
        read = self._read(page, dpi)
        if not read.low_confidence:  # upright: no need to look for the page's orientation
            return read
        turned = self._orientation(page)
        if not turned:
            return read
        upright = self._read(page.rotate(-turned, expand=True, fillcolor=255), dpi)
        return upright if upright.confidence > read.confidence else read

    def close(self) -> None:
        self._api.End()
        if self._osd is not None:
            self._osd.End()

    def _read(self, page: Image.Image, dpi: int | None) -> ReadPage:
        self._api.SetImage(page)
        if dpi:
            self._api.SetSourceResolution(dpi)
        start = time.monotonic()
        if not self._api.Recognize(timeout=self._timeout_ms):
            if time.monotonic() - start >= self.timeout_s:
                raise TimedOut(f"OCR of a page took longer than {self.timeout_s:g} s")
            if resource.getrlimit(resource.RLIMIT_AS)[0] != resource.RLIM_INFINITY:
                # In a worker under its memory cap this is Leptonica failing to allocate a
                # picture ("pixCreateNoInit: pixdata_malloc fail"): the pool tries the file
                # again with the whole budget, or says how much it needed.
                raise MemoryError("Tesseract could not allocate what reading a page needs")
            raise OSError("Tesseract could not read the page")
        return _text_of(self._api.GetTSVText(0))

    def _orientation(self, page: Image.Image) -> int:
        """Degrees to turn the page clockwise (0 when OSD is unsure or cannot tell)."""
        if self._osd is None:
            self._osd = self._load("osd", tesserocr.PSM.OSD_ONLY)
        self._osd.SetImage(page)
        found = self._osd.DetectOrientationScript()  # None: too few letters to tell
        if not found or found["orient_conf"] < _ORIENTATION_CONFIDENCE:
            return 0
        return (360 - int(found["orient_deg"])) % 360  # it says how far the page is turned


# Readers are kept loaded between the files a worker converts: loading English and orientation
# data took 0.18 s a file, and a receipt-sized PNG converted in 0.21-0.23 s, 0.09 s with the
# reader kept (orientation data is now loaded only for a page read with low confidence).
_idle: dict[tuple[str, float], list[PageReader]] = {}
_idle_lock = threading.Lock()


def _borrow(languages: str, timeout_s: float) -> PageReader:
    with _idle_lock:
        idle = _idle.get((languages, timeout_s))
        if idle:
            return idle.pop()
    return PageReader(languages, timeout_s)


def _give_back(reader: PageReader) -> None:
    with _idle_lock:
        idle = _idle.setdefault((reader.languages, reader.timeout_s), [])
        if len(idle) < OCR_THREADS:
            idle.append(reader)
            return
    reader.close()


def read_page(
    image: Image.Image, languages: str, timeout_s: float, dpi: int | None = None
) -> ReadPage:
    """The text on one picture of a page (see `PageReader.read`)."""
    reader = _borrow(languages, timeout_s)
    try:
        return reader.read(image, dpi)
    finally:
        _give_back(reader)


def ocr_threads(memory_mb: int) -> int:
    """How many pages a worker with `memory_mb` reads side by side (see OCR_THREADS)."""
    return max(1, min(OCR_THREADS, (memory_mb - _BASE_MB) // _THREAD_MB))


def read_in_order(
    pages: Iterable[tuple[T, Image.Image | None, int | None]],
    languages: str,
    timeout_s: float,
    threads: int | None = None,
) -> Iterator[tuple[T, ReadPage | None]]:
    """Read (key, picture, dpi) pages on `threads` threads (default OCR_THREADS), each with its
    own Tesseract, and yield (key, what was read) in the order given: None for a page without
    a picture, UNREADABLE for one Tesseract could not read. `pages` is drawn lazily, a page per
    thread ahead of the one yielded (pictures are rendered as the reading moves on, never a
    whole scan at once)."""
    local = threading.local()
    readers: list[PageReader] = []
    lock = threading.Lock()

    def read(image: Image.Image, dpi: int | None) -> ReadPage:
        reader = getattr(local, "reader", None)
        if reader is None:
            reader = local.reader = _borrow(languages, timeout_s)
            with lock:
                readers.append(reader)
        try:
            return reader.read(image, dpi)
        except OSError:  # Tesseract could not read it
            return UNREADABLE

    threads = max(1, threads or OCR_THREADS)
    pending: deque[tuple[T, Future[ReadPage] | None]] = deque()
    pool = ThreadPoolExecutor(threads, thread_name_prefix="ocr")
    try:
        for key, image, dpi in pages:
            pending.append((key, pool.submit(read, image, dpi) if image is not None else None))
            while len(pending) > threads:
                yield _result(pending.popleft())
        while pending:
            yield _result(pending.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        for reader in readers:
            _give_back(reader)


def _result(entry: tuple[T, "Future[ReadPage] | None"]) -> tuple[T, ReadPage | None]:
    key, future = entry
    return key, future.result() if future is not None else None


def _text_of(table: str) -> ReadPage:
    """Tesseract's TSV (one row per word, numbered by block, paragraph and line) as text."""
    lines: dict[tuple[str, str, str], list[str]] = {}
    confidences: list[float] = []
    for row in csv.reader(table.splitlines(), delimiter="\t", quoting=csv.QUOTE_NONE):
        # level, page, block, paragraph, line, word, left, top, width, height, conf, text
        if len(row) < 12 or row[0] != _WORD or not row[11].strip():
            continue
        lines.setdefault((row[2], row[3], row[4]), []).append(row[11].strip())
        confidences.append(float(row[10]) / 100)
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
    return [name for name in languages.replace(",", "+").split("+") if name]
