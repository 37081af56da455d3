"""Plain text and Markdown: encoding detection and heading paths."""

import pytest

from ingest.errors import Corrupt, NoTextLayer
from ingest.text import convert_markdown, convert_plain, decode_text, page_paragraphs

SAMPLE = "Café crème — naïve façade.\n\nSecond paragraph."


@pytest.mark.parametrize(
    "encoded",
    [
        SAMPLE.encode("utf-8"),
        b"\xef\xbb\xbf" + SAMPLE.encode("utf-8"),
        b"\xff\xfe" + SAMPLE.encode("utf-16-le"),
        b"\xfe\xff" + SAMPLE.encode("utf-16-be"),
        b"\xff\xfe\x00\x00" + SAMPLE.encode("utf-32-le"),
        b"\x00\x00\xfe\xff" + SAMPLE.encode("utf-32-be"),
        SAMPLE.encode("utf-16-le"),  # no BOM: recognised by its NUL bytes
        SAMPLE.encode("cp1252"),
    ],
    ids=[
        "utf8",
        "utf8-bom",
        "utf16le-bom",
        "utf16be-bom",
        "utf32le",
        "utf32be",
        "utf16le",
        "cp1252",
    ],
)
def test_decode_text_recovers_the_text(encoded: bytes) -> None:
    assert decode_text(encoded, "note.txt") == SAMPLE


def test_decode_text_normalizes_line_endings() -> None:
    assert decode_text(b"one\r\ntwo\rthree", "n.txt") == "one\ntwo\nthree"


def test_undecodable_binary_is_refused_with_the_file_name() -> None:
    junk = bytes(range(256)) * 8
    with pytest.raises(Corrupt, match=r"junk\.txt: not readable as text"):
        decode_text(junk, "junk.txt")


def test_plain_text_splits_paragraphs() -> None:
    converted = convert_plain(SAMPLE.encode(), "note.txt")
    assert [b.text for b in converted.blocks] == ["Café crème — naïve façade.", "Second paragraph."]


def test_whitespace_only_text_has_no_text() -> None:
    with pytest.raises(NoTextLayer, match="empty or only whitespace"):
        convert_plain(b" \n\t\n  ", "blank.txt")


def test_markdown_blocks_carry_their_heading_path() -> None:
    source = (
        "# Guide\n\nIntro.\n\n## Setup\n\nInstall it.\n\n### Linux\n\nUse apt.\n\n"
        "## Use\n\nRun it.\n"
    )
    converted = convert_markdown(source.encode(), "guide.md")
    paths = {b.text: b.heading_path for b in converted.blocks}
    assert paths["Use apt."] == ("Guide", "Setup", "Linux")
    assert paths["Run it."] == ("Guide", "Use")
    assert paths["Intro."] == ("Guide",)


def test_a_heading_that_skips_levels_closes_its_siblings() -> None:
    # An EPUB's contents page went <h1>, <h4>, <h5>, <h5>: each <h5> was made a child of the
    # one before ("1.1 For the impatient > 1.2 Terms").
    source = (
        "# Manual\n\n#### 1. About\n\n##### 1.1 Impatient\n\nRead on.\n\n"
        "##### 1.2 Terms\n\nWords.\n"
    )
    converted = convert_markdown(source.encode(), "manual.md")
    paths = {b.text: b.heading_path for b in converted.blocks}
    assert paths["Read on."] == ("Manual", "1. About", "1.1 Impatient")
    assert paths["Words."] == ("Manual", "1. About", "1.2 Terms")


def test_markdown_hash_lines_inside_code_fences_are_not_headings() -> None:
    source = "# Real\n\n```sh\n# just a comment\necho hi\n```\n"
    converted = convert_markdown(source.encode(), "code.md")
    assert all(b.heading_path == ("Real",) for b in converted.blocks)
    assert any("# just a comment" in b.text for b in converted.blocks)


def test_a_printed_page_is_unwrapped_except_before_list_items() -> None:
    page = (
        "Segments include:\n• Abrasives\n• industrial adhesives and tapes\n* Roofing granules\n"
        "– 2019 figures\nsee the Supplemental Financial Information\n- (non-GAAP measures) sec-\n"
        "tion for details.\n\nA second paragraph\nwrapped once."
    )
    assert page_paragraphs(page) == [
        "Segments include:\n• Abrasives\n• industrial adhesives and tapes\n* Roofing granules\n"
        "– 2019 figures see the Supplemental Financial Information - (non-GAAP measures) "
        "section for details.",
        "A second paragraph wrapped once.",
    ]
