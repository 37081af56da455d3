"""PDF text per page with pdfium; the outline (bookmarks) supplies heading paths."""

import re
from pathlib import Path

import pypdfium2 as pdfium

from ingest.document import Block, Converted
from ingest.errors import Corrupt, Encrypted, NoTextLayer
from ingest.text import split_paragraphs

_PASSWORD_ERROR = 4  # FPDF_ERR_PASSWORD
_HYPHENATED = re.compile(r"(\w)-\n(?=[a-z])")
_LINE_BREAK = re.compile(r"[ \t]*\n[ \t]*")


def convert_pdf(path: Path) -> Converted:
    """Extract each page's text; count pages that have no text layer."""
    pdf = _open(path)
    try:
        headings = _outline(pdf)
        section: tuple[str, ...] = ()
        blocks: list[Block] = []
        empty_pages = damaged_pages = 0
        for index in range(len(pdf)):
            try:
                text = _page_text(pdf, index)
            except pdfium.PdfiumError:
                text = ""
                damaged_pages += 1
            if not text.strip():
                empty_pages += 1
            parts = _sections(text, section, headings.get(index, []))
            for part, heading_path in parts:
                blocks.extend(Block(p, heading_path, index + 1) for p in _paragraphs(part))
            section = parts[-1][1]
        page_count = len(pdf)
        title = pdf.get_metadata_dict().get("Title")
    finally:
        pdf.close()
    if damaged_pages == page_count:
        raise Corrupt(f"{path.name}: damaged PDF: none of its {page_count} pages can be read")
    if not blocks:
        raise NoTextLayer(
            f"{path.name}: no text layer on any of its {page_count} pages (a scan? Archivist "
            "does no OCR) — run it through OCR, e.g. `ocrmypdf in.pdf out.pdf`, and add the result"
        )
    return Converted(
        "pdf", blocks, page_count=page_count, pages_without_text=empty_pages, title=title
    )


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


def _paragraphs(text: str) -> list[str]:
    """Paragraphs of a page, with line breaks and end-of-line hyphenation undone."""
    text = text.replace("\x02", "").replace("\ufffe", "")
    return [_LINE_BREAK.sub(" ", _HYPHENATED.sub(r"\1", p)) for p in split_paragraphs(text)]


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
