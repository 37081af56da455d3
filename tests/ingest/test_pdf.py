"""PDF conversion with pdfium: pages, outline headings, and broken or protected files."""

from pathlib import Path

import pytest
from fpdf import FPDF

from ingest.errors import Corrupt, Encrypted, NoTextLayer
from ingest.pdf import convert_pdf, garbled
from tests.fixtures import make_pdf, make_random_bytes, make_truncated_pdf


def test_text_keeps_its_page_number(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "a.pdf", ["Alpha page text.", "Bravo page text.", "Charlie page."])
    converted = convert_pdf(pdf)
    pages = {b.page for b in converted.blocks if "Bravo" in b.text}
    assert pages == {2}
    assert converted.page_count == 3


def test_a_list_keeps_its_items_on_their_own_lines(tmp_path: Path) -> None:
    # The page's other line breaks are undone (a wrapped sentence is one sentence again, and so
    # is a wrapped item), but each item of a list begins its own line, so that an answer can
    # quote one item alone.
    page = (
        "The outgoing keeper walks the incoming keeper through the log book, the fuel level\n"
        "and any open repair notes - (not the old ones) - before handing over the keys.\n"
        "Handover Checklist\n- Log book up to date and signed\n- Fuel level recorded\n"
        "- Keys handed over: tower, engine house,\ncottage"
    )
    text = "\n\n".join(b.text for b in convert_pdf(make_pdf(tmp_path / "list.pdf", [page])).blocks)
    assert "the fuel level and any open repair notes - (not the old ones) - before" in text
    assert (
        "Checklist\n- Log book up to date and signed\n- Fuel level recorded\n"
        "- Keys handed over: tower, engine house, cottage"
    ) in text


def test_pages_without_text_are_counted(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "s.pdf", ["Typed page.", "Scanned page.", "Typed again."],
                   image_only_pages={1})  # fmt: skip
    converted = convert_pdf(pdf)
    assert converted.pages_without_text == 1
    assert {b.page for b in converted.blocks} == {1, 3}


def test_a_pdf_with_no_text_layer_is_reported(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "scan.pdf", ["One.", "Two."], image_only_pages={0, 1})
    with pytest.raises(NoTextLayer, match=r"scan\.pdf: no text layer on any of its 2 pages"):
        convert_pdf(pdf)


def test_bookmarks_become_heading_paths(tmp_path: Path) -> None:
    pdf = make_pdf(
        tmp_path / "b.pdf",
        ["Intro words.", "Setup words.", "More setup words.", "Usage words."],
        bookmarks=[(0, 0, "Introduction"), (0, 1, "Setup"), (1, 2, "Details"), (0, 3, "Usage")],
    )
    paths = {b.text.split()[0]: b.heading_path for b in convert_pdf(pdf).blocks}
    assert paths["Intro"] == ("Introduction",)
    assert paths["More"] == ("Setup", "Details")
    assert paths["Usage"] == ("Usage",)


def test_password_protected_pdf_is_reported_as_encrypted(tmp_path: Path) -> None:
    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=12)
    document.cell(text="Secret minutes.")
    document.set_encryption(owner_password="owner", user_password="user")
    path = tmp_path / "locked.pdf"
    document.output(str(path))
    with pytest.raises(Encrypted, match=r"locked\.pdf: the PDF is password-protected"):
        convert_pdf(path)


def test_truncated_pdf_is_reported_as_damaged(tmp_path: Path) -> None:
    path = make_truncated_pdf(tmp_path / "cut.pdf")
    with pytest.raises(Corrupt, match=r"cut\.pdf: damaged or not a PDF"):
        convert_pdf(path)


def test_binary_junk_named_pdf_is_reported_as_damaged(tmp_path: Path) -> None:
    path = make_random_bytes(tmp_path / "junk.pdf")
    with pytest.raises(Corrupt, match=r"junk\.pdf: damaged or not a PDF"):
        convert_pdf(path)


def test_a_page_is_cut_where_a_bookmarked_heading_starts(tmp_path: Path) -> None:
    page = "Overview of the station. Lens Care The lens is cleaned every Tuesday."
    pdf = make_pdf(tmp_path / "m.pdf", [page], bookmarks=[(0, 0, "Overview"), (0, 0, "Lens Care")])
    blocks = [(b.heading_path, b.text) for b in convert_pdf(pdf).blocks]
    assert blocks == [
        (("Overview",), "Overview of the station."),
        (("Lens Care",), "Lens Care The lens is cleaned every Tuesday."),
    ]


@pytest.mark.parametrize(
    "text",
    [
        "1.1 How to compile a .tex file . . . . . . . . . . . . 5\n1.1.1 Tools . . . . . . 5",
        "本人声明所呈交的学位论文是我个人在导师指导下进行的研究工作及取得的研究成果。尽我所知，除了"
        "文中特别加以标注和致谢的地方外， 论文中 不包含 其他人 已经发表",
        "\\RequirePackage{doc}\n\\RequirePackage{keyval}\n\\newif\\ifbachelordegree x y z",
        "Net revenue 2023 $ 91,471 $ 86,392 5.9 % Article’s Title F. Last5 and 2cm",
    ],
    ids=["dot-leaders", "chinese", "latex", "figures"],
)
def test_a_text_layer_of_real_text_is_not_garbage(text: str) -> None:
    assert not garbled(text)


@pytest.mark.parametrize(
    "text",
    ["xqzz kf¤ ¦¦¦ þÿ zzkq qqrt ¤¤ ¬¬", "\ue000\ue001 \ue002\ue003 \ue004 \ue005 \ufffd\ufffd x"],
    ids=["consonants-and-symbols", "private-use"],
)
def test_a_garbage_text_layer_is_told_from_text(text: str) -> None:
    assert garbled(text)
