"""Generators that write real documents (PDF, pandoc formats, broken files) for tests."""

import random
import re
import struct
import textwrap
import zlib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import cast

import pypandoc
from fpdf import FPDF
from fpdf.enums import MethodReturnValue, TextMode
from PIL import Image, ImageDraw, ImageFont

PANDOC_FORMATS = {
    ".docx": "docx", ".odt": "odt", ".epub": "epub3", ".pptx": "pptx", ".html": "html",
    ".htm": "html", ".rtf": "rtf", ".rst": "rst", ".org": "org", ".tex": "latex",
    ".latex": "latex",
}  # fmt: skip
_STANDALONE = {"html", "rtf", "latex"}  # without -s pandoc writes a fragment, not a file
_ATX_HEADING = re.compile(r"^(#{1,6})\s", re.MULTILINE)
_FONT_SIZES = (11, 10, 9, 8, 7, 6)
_TYPOGRAPHY = str.maketrans(
    {"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
     "\u2026": "...", "\u2022": "*", "\u00a0": " ", "\u2212": "-"}
)  # fmt: skip

HANDBOOK_MD = """\
# Staff Handbook

Welcome to the Quillfield Public Library. This handbook covers the opening routine, the
lending rules and what to do when something goes wrong. Read it before your first shift.

## Opening the Building

The first person in unlocks the staff door at 08:30 and switches off the alarm within
45 seconds. The public doors open at 09:00 on weekdays and at 10:00 on Saturdays.

### Returns Box

Empty the returns box before opening. Items found there are checked in with the date of the
previous working day so that no late fee is charged.

## Lending Rules

Adults may borrow up to 15 items at a time for three weeks. Children's cards allow 8 items.
Each item can be renewed twice unless someone else has reserved it.

### Late Fees

Late fees are 20 cents per item per day, capped at 5 dollars per item. Fees are waived for
anyone under 16.

## Emergencies

In a fire alarm, staff lead visitors out through the nearest exit and meet at the flagpole
on Mercer Street. The duty manager takes the visitor count from the entry gate.
"""


def make_pdf(
    path: Path,
    pages: list[str],
    *,
    image_only_pages: Collection[int] = (),
    bookmarks: Sequence[tuple[int, int, str]] = (),
    title: str | None = None,
    hidden_text: Mapping[int, str] = MappingProxyType({}),
) -> Path:
    """Write a PDF with one page per string; image-only pages carry no text layer.

    Args:
        pages: the text of each page; it is shrunk (down to 6 pt) to fit on its page.
        image_only_pages: 0-based indexes of pages drawn as a picture of their text (a "scan").
        hidden_text: for image-only pages, a text layer drawn invisibly over the picture, as a
            scanner's OCR lays one (right or garbage).
        bookmarks: (level, page_index, title) outline entries; level 0 is top-level, as in
            pypdfium2's `get_toc()`. Entries are written in page order.
        title: the document's metadata title.
    """
    path.write_bytes(_build_pdf(pages, image_only_pages, bookmarks, title, hidden_text))
    return path


def _build_pdf(
    pages: list[str],
    image_only_pages: Collection[int],
    bookmarks: Sequence[tuple[int, int, str]],
    title: str | None = None,
    hidden_text: Mapping[int, str] = MappingProxyType({}),
) -> bytes:
    for _, page_index, title in bookmarks:
        if not 0 <= page_index < len(pages):
            raise ValueError(f"bookmark {title!r} points at page {page_index} of {len(pages)}")
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_creator("Archivist")
    if title:
        pdf.set_title(title)
    ordered = sorted(bookmarks, key=lambda bookmark: bookmark[1])
    for index, text in enumerate(pages):
        pdf.add_page()
        for level, _, title in (b for b in ordered if b[1] == index):
            pdf.start_section(title, level=level)
        if index in image_only_pages:
            _draw_scan(pdf, text)
            if index in hidden_text:
                pdf.set_font("Helvetica", size=10)
                pdf.text_mode = TextMode.INVISIBLE
                pdf.set_xy(pdf.l_margin + 4, pdf.t_margin + 4)
                pdf.multi_cell(pdf.epw - 8, 5, _latin1(hidden_text[index]))
                pdf.text_mode = TextMode.FILL
        else:
            _write_text(pdf, _latin1(text), index)
    return bytes(pdf.output())


def _latin1(text: str) -> str:
    # fpdf2's core fonts only cover latin-1.
    return text.translate(_TYPOGRAPHY).encode("latin-1", "replace").decode("latin-1")


def _write_text(pdf: FPDF, text: str, index: int) -> None:
    for size in _FONT_SIZES:
        pdf.set_font("Helvetica", size=size)
        line_height = size * 0.45
        height = pdf.multi_cell(0, line_height, text, dry_run=True, output=MethodReturnValue.HEIGHT)
        if cast(float, height) <= pdf.eph:
            pdf.multi_cell(0, line_height, text)
            return
    raise ValueError(f"page {index}: text does not fit on one page even at 6 pt")


def _draw_scan(pdf: FPDF, text: str) -> None:
    """A picture of the text (no text layer) inside a frame, like a scanned page."""
    image = Image.new("L", (1240, 1700), color=255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=28)
    lines = [line for para in text.split("\n") for line in textwrap.wrap(para, 70) or [""]]
    draw.multiline_text((60, 60), "\n".join(lines[:45]), fill=0, font=font, spacing=8)
    pdf.rect(pdf.l_margin, pdf.t_margin, pdf.epw, pdf.eph)
    pdf.image(image, x=pdf.l_margin + 2, y=pdf.t_margin + 2, w=pdf.epw - 4)


def make_with_pandoc(path: Path, markdown: str, *, title: str | None = None) -> Path:
    """Write Markdown as the format of `path`'s suffix (docx, odt, epub, html, rtf, …) via pandoc.

    Args:
        title: title metadata. EPUB and HTML always get one (the file's stem by default); other
            formats only when it is given, since e.g. a PPTX title slide reads back as a heading.
    """
    to = PANDOC_FORMATS.get(path.suffix.lower())
    if to is None:
        supported = " ".join(sorted(PANDOC_FORMATS))
        raise ValueError(f"{path.name}: no pandoc writer for {path.suffix} ({supported})")
    extra_args = ["-s"] if to in _STANDALONE else []
    if to == "pptx":
        # Every heading level gets its own slide title; otherwise deeper headings become bold text.
        levels = [len(hashes) for hashes in _ATX_HEADING.findall(markdown)]
        extra_args.append(f"--slide-level={max(levels, default=1)}")
    if title or to in ("epub3", "html"):
        # "pagetitle" fills <title> without adding a visible <h1> that would shift the headings.
        key = "pagetitle" if to == "html" else "title"
        extra_args += ["--metadata", f"{key}={title or path.stem}"]
    pypandoc.convert_text(markdown, to, format="md", outputfile=str(path), extra_args=extra_args)
    return path


def make_zip_bomb(path: Path, expanded_mb: int = 600) -> Path:
    """Write a ~1 KB-per-MB zip (name it .docx, .epub, …) of one member that expands hugely."""
    if not 0 < expanded_mb < 4096:
        raise ValueError(f"expanded_mb={expanded_mb}: must be 1-4095 (no zip64 here)")
    # A full flush resets the compressor, so every megabyte of zeros deflates to the same
    # bytes: compress one and repeat it instead of spending seconds deflating them all.
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    megabyte = bytes(1024 * 1024)
    block = compressor.compress(megabyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    tail = compressor.flush()
    crc = 0
    for _ in range(expanded_mb):
        crc = zlib.crc32(megabyte, crc)
    name = b"word/document.xml"
    size, packed = expanded_mb * len(megabyte), len(block) * expanded_mb + len(tail)
    fields = (20, 0, 8, 0, 0x21, crc, packed, size, len(name))  # 0x21: 1980-01-01
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, *fields, 0) + name
    made_by_unix = 0x0314  # so the external attributes below read as a Unix file mode
    central = struct.pack("<IH", 0x02014B50, made_by_unix) + struct.pack("<HHHHHIIIH", *fields)
    central += struct.pack("<HHHHII", 0, 0, 0, 0, 0o100644 << 16, 0) + name
    offset = len(local) + packed
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0)
    with path.open("wb") as handle:
        handle.write(local)
        for _ in range(expanded_mb):
            handle.write(block)
        handle.write(tail + central + end)
    return path


def make_truncated_pdf(path: Path, pages: list[str] | None = None) -> Path:
    """Write the first half of a real PDF (its page tree, xref table and trailer are lost)."""
    pages = pages or [f"Page {n} of a PDF that was cut short in transfer." for n in range(1, 5)]
    data = _build_pdf(pages, (), ())
    path.write_bytes(data[: len(data) // 2])
    return path


def make_random_bytes(path: Path, size: int = 4096, seed: int = 0) -> Path:
    """Write `size` reproducible random bytes (binary junk under whatever name `path` has)."""
    path.write_bytes(random.Random(seed).randbytes(size))
    return path
