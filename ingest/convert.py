"""Pick the converter for a file by its extension, within size limits."""

from dataclasses import dataclass
from pathlib import Path

from ingest.document import Converted, PageProgress
from ingest.email import convert_email
from ingest.errors import NoTextLayer, TooDeep, TooLarge, UnsupportedType
from ingest.image import IMAGE_SUFFIXES, convert_image
from ingest.ocr import ocr_threads
from ingest.pandoc import TEXT_FORMATS, ZIP_FORMATS, convert_with_pandoc
from ingest.pdf import convert_pdf
from ingest.text import convert_markdown, convert_plain

PLAIN_SUFFIXES = {".txt", ".text", ".log"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
SUPPORTED_SUFFIXES = frozenset(
    {".pdf", ".eml"}
    | PLAIN_SUFFIXES
    | MARKDOWN_SUFFIXES
    | set(ZIP_FORMATS)
    | set(TEXT_FORMATS)
    | IMAGE_SUFFIXES
)


@dataclass(frozen=True)
class Limits:
    """Bounds on one conversion, so a hostile file cannot hang or exhaust the machine."""

    timeout_s: float
    memory_mb: int  # (a ConversionPool shares it among its workers: see ingest.budget)
    max_file_mb: int
    max_expand_mb: int
    ocr_languages: str | None = None  # Tesseract's languages ("eng", "eng+deu"); None: no OCR


def is_supported(path: Path) -> bool:
    """Whether Archivist has a converter for this file's extension."""
    return path.suffix.lower() in SUPPORTED_SUFFIXES


_LEGACY = {".doc": ".docx", ".xls": ".xlsx", ".ppt": ".pptx", ".msg": ".eml", ".wps": ".docx"}


def unsupported(path: Path) -> UnsupportedType:
    """The error for a file no converter reads, with the way out."""
    suffix = path.suffix.lower()
    if suffix in _LEGACY:
        hint = f"an old binary format: save it as {_LEGACY[suffix]} and add that"
    else:
        hint = f"Archivist reads {' '.join(sorted(SUPPORTED_SUFFIXES))}"
    return UnsupportedType(
        f"{path.name}: unsupported file type {suffix or '(no extension)'} — {hint}"
    )


def convert_file(path: Path, limits: Limits, on_page: PageProgress | None = None) -> Converted:
    """Convert one file to text blocks, or raise an IngestError that says why not;
    `on_page(done, count)` hears of each page of a PDF or picture as it is done."""
    try:
        return _convert(path, limits, on_page)
    except RecursionError:
        # A valid file nested deeper than a converter follows (the pandoc walk has no limit
        # of its own, but nested tables and notes still recurse): say so, not "corrupt".
        raise TooDeep(
            f"{path.name}: nested too deeply for the converter to follow (e.g. tables inside "
            "tables hundreds of levels deep); the file itself may be fine — save a flatter copy "
            "(e.g. as plain text or Markdown) and add that"
        ) from None


def _convert(path: Path, limits: Limits, on_page: PageProgress | None) -> Converted:
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise unsupported(path)
    threads = ocr_threads(limits.memory_mb)
    size = path.stat().st_size
    if size == 0:
        raise NoTextLayer(f"{path.name}: the file is empty (0 bytes)")
    if size > limits.max_file_mb * 1024 * 1024:
        raise TooLarge(
            f"{path.name}: {size // (1024 * 1024)} MB is over the {limits.max_file_mb} MB limit "
            "(ARCHIVIST_MAX_FILE_MB)"
        )
    if suffix == ".pdf":
        return convert_pdf(path, limits.ocr_languages, limits.timeout_s, on_page, threads)
    if suffix in IMAGE_SUFFIXES:
        return convert_image(path, limits.ocr_languages, limits.timeout_s, on_page, threads)
    if suffix in PLAIN_SUFFIXES:
        return convert_plain(path.read_bytes(), path.name)
    if suffix in MARKDOWN_SUFFIXES:
        return convert_markdown(path.read_bytes(), path.name)
    if suffix == ".eml":
        return convert_email(
            path.read_bytes(), path.name, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb
        )
    return convert_with_pandoc(
        path,
        timeout_s=limits.timeout_s,
        memory_mb=limits.memory_mb,
        max_expand_mb=limits.max_expand_mb,
    )
