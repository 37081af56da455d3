"""Page furniture: running headers, footers and page numbers go; the pages' own lines stay."""

from pathlib import Path

import pytest

from ingest.furniture import without_furniture
from ingest.pdf import convert_pdf
from tests.fixtures import make_pdf

SHARED_PDFS = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "pdfs"


def _page(n: int, body: str, header: str = "", footer: str = "") -> str:
    lines = (header, f"{body} on page {n}.", "More text.", footer)
    return "\n".join(line for line in lines if line)


def test_a_running_header_and_page_numbers_go_and_the_text_stays() -> None:
    pages = [
        _page(n, "The keeper logs the weather", f"Chapter 2: Routine Duties {n + 4}", str(n + 3))
        for n in range(6)
    ]
    cleaned = without_furniture(pages)
    assert all("Chapter 2" not in page for page in cleaned)
    assert all(page.split("\n") == [f"The keeper logs the weather on page {n}.", "More text."]
               for n, page in enumerate(cleaned))  # fmt: skip


def test_a_line_on_most_pages_goes_and_one_on_a_few_stays() -> None:
    pages = [_page(n, "Revenue grew", "Table of Contents") for n in range(8)]
    pages += [_page(n, "Costs fell", "For example,") for n in range(8, 11)]  # 3 of 11 pages
    cleaned = without_furniture(pages)
    assert not any("Table of Contents" in page for page in cleaned)
    assert sum(page.startswith("For example,") for page in cleaned) == 3


def test_numbers_that_do_not_follow_the_pages_stay() -> None:
    """A statement's last row closes three pages, its figures not counting the pages."""
    totals = ["Total assets 1,204 1,187", "Total assets 998 1,004", "Total assets 2,310 2,150"]
    pages = [_page(n, "The balance sheet", footer=total) for n, total in enumerate(totals)]
    assert without_furniture(pages) == pages


def test_a_header_line_inside_a_page_stays() -> None:
    """Only the first and last lines of a page can be furniture."""
    bodies = [f"Intro {n}.\nSecond line.\nTable of Contents\nThird.\nFourth {n}." for n in "abcd"]
    assert without_furniture(["Table of Contents\n" + body for body in bodies]) == bodies


def test_a_pdf_loses_its_running_header_before_it_is_cut_into_paragraphs(tmp_path: Path) -> None:
    pages = [
        f"Harbor Handbook - Chapter 1 {n + 1}\n\nThe lens is cleaned on Tuesdays, section {n}."
        for n in range(4)
    ]
    blocks = convert_pdf(make_pdf(tmp_path / "h.pdf", pages)).blocks
    assert [b.text for b in blocks] == [f"The lens is cleaned on Tuesdays, section {n}."
                                        for n in range(4)]  # fmt: skip
    assert [b.page for b in blocks] == [1, 2, 3, 4]


@pytest.mark.skipif(not SHARED_PDFS.is_dir(), reason="../shared/corpus is absent")
def test_a_manuals_running_headers_leave_its_paragraphs() -> None:
    """R's manual heads each page "Chapter 1: Introduction and preliminaries 4": the paragraph
    below it opened with that line, and so did a quote of its first sentence."""
    text = "\n".join(b.text for b in convert_pdf(SHARED_PDFS / "R-intro.pdf").blocks)
    assert "Chapter 1: Introduction and preliminaries" not in text
    assert "At this point you will be asked whether you want to save the data" in text
