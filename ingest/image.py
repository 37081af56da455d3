"""Pictures of pages (photos, scans, faxes) read by OCR: one page per image, one per TIFF frame."""

import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageSequence, UnidentifiedImageError

from ingest.document import Block, Converted, PageProgress
from ingest.errors import Corrupt, NoTextLayer, TooLarge
from ingest.ocr import NO_OCR_HINT, read_in_order
from ingest.text import page_paragraphs

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp"})
# A 600-dpi A3 scan is 70 Mpx; a picture claiming more is refused before it is decoded (a
# 50,000 x 50,000 PNG of a few kB would decode to 7.5 GB).
MAX_PIXELS = 100_000_000
_MAX_FRAMES = 2000


def convert_image(
    path: Path,
    ocr_languages: str | None,
    timeout_s: float,
    on_page: PageProgress | None = None,
    ocr_threads: int | None = None,
) -> Converted:
    """The text OCR reads on each frame of the image (a page each), in `ocr_languages` on
    `ocr_threads`; a picture too large or damaged fails as such whether OCR is on or not.
    `on_page(done, count)` hears of each frame as it is read."""
    blocks: list[Block] = []
    frames = empty = 0
    low: list[int] = []
    with _opened(path) as image:
        count = getattr(image, "n_frames", 1)
        if count > _MAX_FRAMES:
            raise TooLarge(f"{path.name}: more than {_MAX_FRAMES} frames")
        _load(path, image)
        if not ocr_languages:
            raise NoTextLayer(f"{path.name}: a picture, and OCR is off here — {NO_OCR_HINT}")
        frames_read = _frames(path, image, copy=count > 1)
        readings = read_in_order(frames_read, ocr_languages, timeout_s, ocr_threads)
        for index, read in readings:
            frames += 1
            empty += not read or not read.text.strip()
            if read and read.low_confidence:
                low.append(index + 1)
            page = index + 1 if count > 1 else None
            blocks.extend(Block(p, (), page) for p in page_paragraphs(read.text if read else ""))
            if on_page:
                on_page(index + 1, count)
    if not blocks:
        raise NoTextLayer(f"{path.name}: OCR read no text in the picture")
    file_type = path.suffix.lower().lstrip(".")
    page_count = frames if count > 1 else None
    return Converted(
        file_type, blocks, page_count=page_count, pages_without_text=empty, ocr_pages=frames,
        low_confidence_pages=tuple(low),
    )  # fmt: skip


def _frames(path: Path, image: Image.Image, copy: bool) -> Iterator[tuple[int, Image.Image, None]]:
    """Each frame, decoded; `copy`: each on its own (the image moves on to the next frame
    while the last one is read)."""
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        _load(path, frame)
        yield index, frame.copy() if copy else frame, None


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


def _too_large(path: Path) -> TooLarge:
    return TooLarge(f"{path.name}: over {MAX_PIXELS // 1_000_000} megapixels, more than a scan")
