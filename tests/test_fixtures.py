"""The document generators write what they claim, as read back by pdfium, pandoc and zipfile."""

import json
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pypandoc
import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c
import pytest

from tests.fixtures import (
    HANDBOOK_MD,
    make_pdf,
    make_random_bytes,
    make_truncated_pdf,
    make_with_pandoc,
    make_zip_bomb,
)

_HEADING = re.compile(r"^(#{1,6}) (.+)$", re.MULTILINE)
HANDBOOK_HEADINGS = [(len(hashes), title) for hashes, title in _HEADING.findall(HANDBOOK_MD)]


def page_texts(path: Path) -> list[str]:
    """Each page's text layer, whitespace collapsed."""
    pdf = pdfium.PdfDocument(path)
    try:
        texts = []
        for page in pdf:
            textpage = page.get_textpage()
            texts.append(" ".join(textpage.get_text_bounded().split()))
            textpage.close()
            page.close()
        return texts
    finally:
        pdf.close()


def pandoc_headings(path: Path) -> list[tuple[int, str]]:
    """(level, title) of each heading pandoc reads from the file, in order."""
    ast = json.loads(pypandoc.convert_file(str(path), "json"))
    return [
        (block["c"][0], _plain(block["c"][2]))
        for block in _all_blocks(ast["blocks"])
        if block["t"] == "Header"
    ]


def _all_blocks(blocks: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for block in blocks:
        yield block
        if block["t"] == "Div":  # readers wrap sections or slides in Divs
            yield from _all_blocks(block["c"][1])


def _plain(inlines: list[dict[str, Any]]) -> str:
    words = (
        inline["c"] if inline["t"] == "Str" else " " if inline["t"] == "Space" else ""
        for inline in inlines
    )
    return "".join(words)


def test_handbook_sample_has_two_heading_levels_and_paragraphs() -> None:
    levels = {level for level, _ in HANDBOOK_HEADINGS}
    paragraphs = [p for p in HANDBOOK_MD.split("\n\n") if not p.startswith("#")]
    assert {1, 2} <= levels
    assert len(paragraphs) >= 5


def test_make_pdf_puts_each_text_on_its_own_page(tmp_path: Path) -> None:
    pages = ["The lamp is lit at sunset.", "The lens is cleaned on Tuesdays.", "Logbook rules."]
    path = make_pdf(tmp_path / "three.pdf", pages)
    assert page_texts(path) == pages


def test_make_pdf_fits_a_long_text_on_one_page(tmp_path: Path) -> None:
    long_text = " ".join(f"word{n}" for n in range(900))
    path = make_pdf(tmp_path / "long.pdf", [long_text, "next"])
    assert page_texts(path) == [long_text, "next"]


def test_make_pdf_replaces_characters_outside_latin1(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "quotes.pdf", ["\u201cCaf\u00e9\u201d \u2014 it\u2019s \u4e2d"])
    assert page_texts(path) == ['"Caf\u00e9" - it\'s ?']


def test_make_pdf_image_only_pages_have_no_text_but_an_image(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "scan.pdf", ["typed", "scanned", "typed"], image_only_pages={1})
    assert page_texts(path) == ["typed", "", "typed"]
    pdf = pdfium.PdfDocument(path)
    images = list(pdf[1].get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE]))
    pdf.close()
    assert len(images) == 1


def test_make_pdf_writes_bookmarks_as_outline(tmp_path: Path) -> None:
    bookmarks = [(0, 0, "Duties"), (1, 0, "Lens care"), (1, 1, "Fog signal"), (0, 2, "Visitors")]
    path = make_pdf(tmp_path / "outline.pdf", ["a", "b", "c"], bookmarks=bookmarks)
    pdf = pdfium.PdfDocument(path)
    toc = [(item.level, item.get_dest().get_index(), item.get_title()) for item in pdf.get_toc()]
    pdf.close()
    assert toc == bookmarks


def test_make_pdf_rejects_a_bookmark_past_the_last_page(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="points at page 2 of 2"):
        make_pdf(tmp_path / "bad.pdf", ["a", "b"], bookmarks=[(0, 2, "Missing")])


@pytest.mark.parametrize("suffix", [".docx", ".odt", ".epub", ".html", ".rtf", ".rst", ".org"])
def test_make_with_pandoc_keeps_heading_levels(tmp_path: Path, suffix: str) -> None:
    path = make_with_pandoc(tmp_path / f"handbook{suffix}", HANDBOOK_MD)
    assert pandoc_headings(path) == HANDBOOK_HEADINGS


def test_make_with_pandoc_keeps_heading_levels_in_latex(tmp_path: Path) -> None:
    path = make_with_pandoc(tmp_path / "handbook.tex", HANDBOOK_MD)
    assert "\\begin{document}" in path.read_text()
    assert pandoc_headings(path) == HANDBOOK_HEADINGS


def test_make_with_pandoc_gives_each_heading_a_slide_in_pptx(tmp_path: Path) -> None:
    path = make_with_pandoc(tmp_path / "handbook.pptx", HANDBOOK_MD)
    slide_titles = [title for _, title in pandoc_headings(path)]
    assert [title for _, title in HANDBOOK_HEADINGS] == [
        title for title in slide_titles if not title.startswith("Slide ")
    ]


def test_make_with_pandoc_gives_epub_its_title(tmp_path: Path) -> None:
    path = make_with_pandoc(tmp_path / "book.epub", HANDBOOK_MD, title="Quillfield Handbook")
    with zipfile.ZipFile(path) as book:
        opf = next(book.read(name) for name in book.namelist() if name.endswith(".opf"))
    assert b"<dc:title" in opf and b"Quillfield Handbook" in opf


def test_make_with_pandoc_rejects_an_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"notes\.xyz: no pandoc writer for \.xyz"):
        make_with_pandoc(tmp_path / "notes.xyz", HANDBOOK_MD)


def test_make_zip_bomb_declares_a_huge_member_in_a_small_file(tmp_path: Path) -> None:
    path = make_zip_bomb(tmp_path / "bomb.docx")
    with zipfile.ZipFile(path) as archive:
        declared = sum(info.file_size for info in archive.infolist())
        with archive.open(archive.infolist()[0]) as member:
            start = member.read(1024 * 1024)
    assert declared >= 600 * 1024 * 1024
    assert path.stat().st_size < 1024 * 1024
    assert start == bytes(1024 * 1024)


def test_make_zip_bomb_expands_to_exactly_its_size(tmp_path: Path) -> None:
    path = make_zip_bomb(tmp_path / "small-bomb.epub", expanded_mb=3)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None  # every CRC checks out
        assert archive.read("word/document.xml") == bytes(3 * 1024 * 1024)


def test_make_truncated_pdf_is_half_a_pdf_that_pdfium_rejects(tmp_path: Path) -> None:
    path = make_truncated_pdf(tmp_path / "cut.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF-")
    assert b"%%EOF" not in data
    with pytest.raises(pdfium.PdfiumError):
        pdfium.PdfDocument(path)


def test_make_random_bytes_is_reproducible_by_seed(tmp_path: Path) -> None:
    first = make_random_bytes(tmp_path / "a.pdf").read_bytes()
    again = make_random_bytes(tmp_path / "b.pdf").read_bytes()
    other = make_random_bytes(tmp_path / "c.pdf", size=100, seed=1).read_bytes()
    assert len(first) == 4096 and first == again
    assert len(other) == 100 and other != first[:100]
