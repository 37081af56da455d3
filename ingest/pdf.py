"""PDF text per page with pdfium; the outline (bookmarks) supplies heading paths."""

import re
from collections.abc import Iterator
from pathlib import Path

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
from PIL import Image

from ingest.document import Block, Converted, PageProgress
from ingest.errors import Corrupt, Encrypted, NoTextLayer
from ingest.furniture import without_furniture
from ingest.ocr import NO_OCR_HINT, UNREADABLE, read_in_order
from ingest.text import page_paragraphs

_PASSWORD_ERROR = 4  # FPDF_ERR_PASSWORD
# A page with fewer characters than this in its text layer is read by OCR (a scan with a page
# number or a stamp typed over it); 300 dpi suits Tesseract, and an A4 page is 8.7 Mpx there.
_FEW_CHARACTERS = 20
_MAX_PIXELS = 25_000_000
# A text layer is garbage (a scanner's failed OCR hidden under its picture, a font without a
# Unicode map) when fewer than this share of its words look like words: on the 4,945 pages of
# the real PDFs in ../shared (corpus and filings) one page was judged so, a chart whose
# labels extract one letter per line.
_WORDLIKE_SHARE = 0.5
_PUNCTUATION = "\"'()[]{}<>.,;:!?*+-=_/\\|&#@%$€£§°«»“”‘’„–—…•·"
_NUMBER = re.compile(r"[\d.,:/%$€£+-]*\d[\d.,:/%$€£+-]*")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")


def convert_pdf(
    path: Path,
    ocr_languages: str | None = None,
    timeout_s: float = 60,
    on_page: PageProgress | None = None,
    ocr_threads: int | None = None,
) -> Converted:
    """Extract each page's text, reading pages without a text layer by OCR in
    `ocr_languages` (None: no OCR) on `ocr_threads`; count the pages read by OCR and those left
    without text. `on_page(done, count)` hears of each page as it is done."""
    pdf = _open(path)
    try:
        headings = _outline(pdf)
        page_count = len(pdf)
        section: tuple[str, ...] = ()
        blocks: list[Block] = []
        empty_pages = damaged_pages = ocr_pages = 0
        low: list[int] = []
        texts: list[str] = []
        pages = _pages(pdf, bool(ocr_languages))
        readings = (
            read_in_order(pages, ocr_languages, timeout_s, ocr_threads)
            if ocr_languages
            else ((key, None) for key, _, _ in pages)
        )
        for (index, text), read in readings:
            if text is None:
                damaged_pages += 1
                text = ""
            if read is not None and (read is UNREADABLE or _words(read.text) > _words(text)):
                text = read.text or text  # a short text layer may be all there is
                ocr_pages += 1
                if read.low_confidence:
                    low.append(index + 1)
            if not text.strip():
                empty_pages += 1
            texts.append(text)
            if on_page:
                on_page(index + 1, page_count)
        for index, text in enumerate(without_furniture(texts)):
            parts = _sections(text, section, headings.get(index, []))
            for part, heading_path in parts:
                blocks.extend(Block(p, heading_path, index + 1) for p in page_paragraphs(part))
            section = parts[-1][1]
        title = pdf.get_metadata_dict().get("Title")
    finally:
        pdf.close()
    if damaged_pages == page_count:
        raise Corrupt(f"{path.name}: damaged PDF: none of its {page_count} pages can be read")
    if not blocks:
        raise NoTextLayer(
            f"{path.name}: OCR read no text on any of its {page_count} pages"
            if ocr_languages
            else f"{path.name}: no text layer on any of its {page_count} pages (a scan?) — "
            f"{NO_OCR_HINT}"
        )
    return Converted(
        "pdf", blocks, page_count=page_count, pages_without_text=empty_pages, title=title,
        ocr_pages=ocr_pages,
        low_confidence_pages=tuple(low),
    )  # fmt: skip


def _pages(
    pdf: pdfium.PdfDocument, ocr: bool
) -> Iterator[tuple[tuple[int, str | None], Image.Image | None, int | None]]:
    """Each page's ((index, text layer or None if damaged), picture to read by OCR or None,
    its dpi): a page with (almost) no text layer that shows a picture, or whose text layer is
    garbage, is rendered for OCR."""
    for index in range(len(pdf)):
        try:
            text = _page_text(pdf, index)
            short = len(text.strip()) < _FEW_CHARACTERS
            picture = (
                _picture(pdf, index, scans_only=short) if ocr and (short or garbled(text)) else None
            )
        except pdfium.PdfiumError:
            yield (index, None), None, None
            continue
        yield (index, text), *(picture or (None, None))


def _picture(
    pdf: pdfium.PdfDocument, index: int, scans_only: bool
) -> tuple[Image.Image, int] | None:
    """A page rendered for OCR (300 dpi, at most _MAX_PIXELS), with its resolution; with
    `scans_only`, None for a page that shows no picture (the hostile corpus's 10,000 blank
    pages took over 60 s before blank pages were passed over)."""
    page = pdf[index]
    try:
        images = page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=4)
        if scans_only and next(images, None) is None:
            return None  # nothing scanned on it: a blank page is not worth 1-2 s of OCR
        width, height = page.get_size()  # points
        scale = min(300 / 72, (_MAX_PIXELS / max(1.0, width * height)) ** 0.5)
        return page.render(scale=scale, grayscale=True).to_pil(), round(72 * scale)
    finally:
        page.close()


def wordlike(core: str) -> bool:
    """Whether a token (stripped of punctuation) looks like a word or a number: mostly letters,
    with a vowel among Latin ones, or digits; not symbols, private-use or control characters,
    nor "xq3zzkf"."""
    if _NUMBER.fullmatch(core):
        return True
    if 2 * sum(char.isalpha() for char in core) < len(core):  # mostly letters ("Last5", 2cm)
        return False
    return not core.isascii() or bool(_VOWEL.search(core))


def _tokens(text: str) -> list[str]:
    """The whitespace-separated tokens that are not punctuation alone (dot leaders, bullets)."""
    return [core for token in text.split() if (core := token.strip(_PUNCTUATION))]


def _words(text: str) -> int:
    return sum(map(wordlike, _tokens(text)))


def garbled(text: str) -> bool:
    """Whether a page's text layer is garbage rather than text (judged on 5 tokens or more)."""
    tokens = _tokens(text)
    return len(tokens) >= 5 and sum(map(wordlike, tokens)) < _WORDLIKE_SHARE * len(tokens)


def _open(path: Path) -> pdfium.PdfDocument:
    try:
        return pdfium.PdfDocument(path)
    except pdfium.PdfiumError as error:
        if getattr(error, "err_code", None) == _PASSWORD_ERROR:
            raise Encrypted(
                f"{path.name}: the PDF is password-protected — save an unprotected copy "
                "and add that instead"
            ) from None
        raise Corrupt(f"{path.name}: damaged or not a PDF ({error})") from None


def _page_text(pdf: pdfium.PdfDocument, index: int) -> str:
    page = pdf[index]
    try:
        textpage = page.get_textpage()
        try:
            return str(textpage.get_text_range()).replace("\r\n", "\n")
        finally:
            textpage.close()
    finally:
        page.close()


def _sections(
    text: str, current: tuple[str, ...], starting_here: list[tuple[str, ...]]
) -> list[tuple[str, tuple[str, ...]]]:
    """Cut a page where its outline entries' titles appear; each part gets its heading path."""
    parts: list[tuple[str, tuple[str, ...]]] = []
    position = 0
    for heading_path in starting_here:
        words = heading_path[-1].split()
        pattern = r"\s*".join(re.escape(word) for word in words)
        found = re.compile(pattern, re.IGNORECASE).search(text, position)
        if found:
            parts.append((text[position : found.start()], current))
            position = found.start()
        current = heading_path
    parts.append((text[position:], current))
    return [(part, path) for part, path in parts if part.strip()] or [("", current)]


def _outline(pdf: pdfium.PdfDocument) -> dict[int, list[tuple[str, ...]]]:
    """Heading paths of the outline entries that start on each page, in outline order."""
    entries: dict[int, list[tuple[str, ...]]] = {}
    path: list[str] = []
    try:
        for item in pdf.get_toc(max_depth=8):
            title = " ".join(item.get_title().split())
            path[:] = path[: item.level] + [title]
            dest = item.get_dest()
            page_index = dest.get_index() if dest else None
            if page_index is not None and title:
                entries.setdefault(page_index, []).append(tuple(path))
    except Exception:  # a damaged outline must not cost us the text
        return {}
    return entries
