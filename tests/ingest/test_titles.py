"""Document identity: readable titles from metadata or headings, file names as words, and the
line that leads each chunk in the indexes."""

from pathlib import Path

import pytest

from api.service.indexes import chunk_context, embedding_text
from ingest.convert import Limits, convert_file
from ingest.document import Block
from ingest.store import StoredChunk
from ingest.titles import context_parts, document_title, identity, name_words, readable
from tests.fixtures import make_pdf, make_with_pandoc


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("10-K - 02/07/2019 - 3M Company", "10-K - 02/07/2019 - 3M Company"),
        ("  Annual\n  report  ", "Annual report"),
        ("Microsoft Word - Budget 2024.docx", "Budget 2024.docx"),
        ("0001018724-18-000005", ""),  # an EDGAR accession number, not a title
        ("Q1 22", ""),
        ("", ""),
        (None, ""),
    ],
)
def test_readable_keeps_titles_a_person_would_read(raw: str | None, expected: str) -> None:
    assert readable(raw) == expected


def test_document_title_prefers_metadata_then_first_heading() -> None:
    blocks = [Block("Intro text"), Block("Body", ("Pump Manual", "Safety"))]
    assert document_title("Pump X200 Service Guide", blocks) == "Pump X200 Service Guide"
    assert document_title("0001018724-18-000005", blocks) == "Pump Manual"
    assert document_title(None, [Block("no headings at all")]) == ""


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("/docs/AMCOR_2023_10K.pdf", "AMCOR 2023 10K"),
        ("/docs/PEPSICO_2023_8K_dated-2023-05-30.pdf", "PEPSICO 2023 8K dated 2023 05 30"),
        ("/docs/best.buy+q3.report.docx", "best buy q3 report"),
        ("/corpus/0000123.md", ""),  # digits name nothing
    ],
)
def test_name_words_turn_separators_into_spaces(path: str, words: str) -> None:
    assert name_words(path) == words


def test_identity_adds_the_file_name_only_when_it_says_more() -> None:
    assert identity("10-K - 3M Company", "3M 2018 10K") == "10-K - 3M Company (3M 2018 10K)"
    assert identity("Employee Handbook", "handbook") == "Employee Handbook"
    assert identity("", "ADOBE 2022 10K") == "ADOBE 2022 10K"
    assert identity("Notes", "") == "Notes"
    assert identity("", "") == ""


def test_context_does_not_repeat_a_title_that_is_also_the_first_heading() -> None:
    assert context_parts("Employee Handbook", ("Employee Handbook", "Leave")) == [
        "Employee Handbook",
        "Leave",
    ]
    assert context_parts("Pump (pump manual)", ("Pump", "Safety")) == [
        "Pump (pump manual)",
        "Safety",
    ]
    assert context_parts("", ()) == []


def chunk(text: str, heading_path: tuple[str, ...], title: str) -> StoredChunk:
    return StoredChunk("id", "sha", 0, text, heading_path, 1, 1, title)


def test_indexed_text_leads_with_document_and_section_but_never_repeats_the_heading() -> None:
    body = chunk("Leave is booked in the portal.", ("Handbook", "Leave"), "Handbook (HR 2024)")
    assert embedding_text(body) == "Handbook (HR 2024) > Leave\nLeave is booked in the portal."
    assert chunk_context(body) == "Handbook (HR 2024) > Leave"
    heading_first = chunk("Leave\n\nLeave is booked.", ("Handbook", "Leave"), "Handbook")
    assert embedding_text(heading_first) == "Handbook\nLeave\n\nLeave is booked."
    # A BEIR-style file: "# Title" then the text; its identity is the heading itself.
    beir = chunk("Super Bowl 50\n\nThe game was played", ("Super Bowl 50",), "Super Bowl 50")
    assert embedding_text(beir) == beir.text
    assert embedding_text(chunk("plain", (), "")) == "plain"


def test_converters_report_the_files_own_title(tmp_path: Path) -> None:
    limits = Limits(timeout_s=60, memory_mb=2048, max_file_mb=100, max_expand_mb=500)
    pdf = make_pdf(tmp_path / "a.pdf", ["Page one."], title="Pump X200 Service Guide")
    assert convert_file(pdf, limits).title == "Pump X200 Service Guide"
    html = tmp_path / "b.html"
    html.write_text("<html><head><title>Ferry Timetable</title></head><body><p>x</p></body>")
    assert convert_file(html, limits).title == "Ferry Timetable"
    docx = make_with_pandoc(tmp_path / "c.docx", "Some text.", title="Allotment Rules")
    assert convert_file(docx, limits).title == "Allotment Rules"
    untitled = make_pdf(tmp_path / "d.pdf", ["Page one."])
    assert not readable(convert_file(untitled, limits).title)


def test_later_chunks_of_a_page_are_indexed_with_its_opening_words() -> None:
    opening = "Consolidated Statement of Cash Flows Years ended December 31"
    first = StoredChunk(
        "1", "sha", 0, f"{opening}\n\nNet income 5,363", (), 60, 60, "3M 2018 10K", opening
    )
    later = StoredChunk(
        "2", "sha", 1, "Purchases of PP&E (1,577)", (), 60, 60, "3M 2018 10K", opening
    )
    assert embedding_text(first) == f"3M 2018 10K\n{first.text}"
    assert embedding_text(later) == f"3M 2018 10K > {opening}\nPurchases of PP&E (1,577)"
    assert chunk_context(later) == f"3M 2018 10K > {opening}"
    assert chunk_context(first) == "3M 2018 10K"
