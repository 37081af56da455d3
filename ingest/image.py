"""Pictures of pages (photos, scans, faxes) read by OCR: one page per image, one per TIFF frame."""

import warnings
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

from ingest.document import Block, Converted
from ingest.errors import Corrupt, NoTextLayer, TooLarge
from ingest.ocr import NO_OCR_HINT, ReadPage, read_page
from ingest.text import page_paragraphs

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})
# A 600-dpi A3 scan is 70 Mpx; a picture claiming more is refused before it is decoded (a
# 50,000 x 50,000 PNG of a few kB would decode to 7.5 GB).
MAX_PIXELS = 100_000_000
_MAX_FRAMES = 2000


def convert_image(path: Path, ocr_languages: str | None, timeout_s: float) -> Converted:
    """The text OCR reads on each frame of the image (a page each), in `ocr_languages`; a
    picture too large or damaged fails as such whether OCR is on or not."""
    blocks: list[Block] = []
    frames = empty = 0
    low: list[int] = []
    with _opened(path) as image:
        many = getattr(image, "n_frames", 1) > 1
        for index, frame in enumerate(ImageSequence.Iterator(image)):
            if index >= _MAX_FRAMES:
                raise TooLarge(f"{path.name}: more than {_MAX_FRAMES} frames")
            _load(path, frame)
            if not ocr_languages:
                raise NoTextLayer(f"{path.name}: a picture, and OCR is off here — {NO_OCR_HINT}")
            read = _read(path, frame, ocr_languages, timeout_s)
            frames += 1
            empty += not read.text.strip()
            if read.low_confidence:
                low.append(index + 1)
            page = index + 1 if many else None
            blocks.extend(Block(p, (), page) for p in page_paragraphs(read.text))
    if not blocks:
        raise NoTextLayer(f"{path.name}: OCR read no text in the picture")
    file_type = path.suffix.lower().lstrip(".")
    page_count = frames if many else None
    return Converted(
        file_type, blocks, page_count=page_count, pages_without_text=empty, ocr_pages=frames,
        low_confidence_pages=tuple(low),
    )  # fmt: skip


def _opened(path: Path) -> Image.Image:
    """The image, its size checked before any pixel is decoded."""
    try:
        with warnings.catch_warnings():
            # Pillow warns past 89 Mpx and refuses past 179 Mpx; MAX_PIXELS is checked below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
    except Image.DecompressionBombError:
        raise _too_large(path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise Corrupt(f"{path.name}: damaged or not an image ({error})") from None
    if image.width * image.height > MAX_PIXELS:
        image.close()
        raise _too_large(path)
    return image


def _load(path: Path, frame: Image.Image) -> None:
    """Decode a frame (each frame's size is checked first: a TIFF's can differ)."""
    if frame.width * frame.height > MAX_PIXELS:
        raise _too_large(path)
    try:
        frame.load()
    except (OSError, SyntaxError, ValueError) as error:  # truncated, or bad compressed data
        raise Corrupt(f"{path.name}: damaged image ({error})") from None


def _read(path: Path, frame: Image.Image, languages: str, timeout_s: float) -> ReadPage:
    try:
        return read_page(frame, languages, timeout_s)
    except OSError as error:
        raise Corrupt(f"{path.name}: OCR could not read it ({error})") from None


def _too_large(path: Path) -> TooLarge:
    return TooLarge(f"{path.name}: over {MAX_PIXELS // 1_000_000} megapixels, more than a scan")
