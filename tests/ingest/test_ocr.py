"""OCR with the real Tesseract (`make ocr` installs it): scanned PDF pages and pictures of pages
are read, upright, and cited by page; hostile pictures fail with their reason; with OCR off a
scan says how to read it."""

import os
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from PIL import Image

from api.service import Archivist, Settings
from ingest.convert import Limits, convert_file
from ingest.errors import Corrupt, IngestError, NoTextLayer, TooLarge
from ingest.ocr import ocr_available
from tests.api.cli.test_ask_cli import ARCHIVIST
from tests.fixtures import make_pdf
from tests.ingest.hostile_files import make_pixel_bomb_png

pytestmark = pytest.mark.skipif(not ocr_available(), reason="Tesseract is not installed (make ocr)")

SCANNED = "The keeper logs the Vellmar weather twice a day at the signal station."
OCR = Limits(timeout_s=60, memory_mb=1024, max_file_mb=64, max_expand_mb=64, ocr_languages="eng")
NO_OCR = Limits(timeout_s=60, memory_mb=1024, max_file_mb=64, max_expand_mb=64)


def picture_of(text: str, scratch: Path) -> Image.Image:
    """A picture of a page that shows `text` (a PDF page, made in `scratch`, at 144 dpi)."""
    pdf = make_pdf(scratch / f"source-{zlib.crc32(text.encode())}.pdf", [text])
    return pdfium.PdfDocument(pdf)[0].render(scale=2).to_pil()


def texts(path: Path, limits: Limits = OCR) -> list[tuple[int | None, str]]:
    return [(block.page, block.text) for block in convert_file(path, limits).blocks]


def test_a_scanned_pdf_page_is_read_and_keeps_its_page_number(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "log.pdf", ["Typed page about the harbor.", SCANNED],
                   image_only_pages={1})  # fmt: skip
    converted = convert_file(pdf, OCR)
    assert [(b.page, b.text) for b in converted.blocks] == [
        (1, "Typed page about the harbor."),
        (2, SCANNED),
    ]
    assert (converted.ocr_pages, converted.pages_without_text) == (1, 0)


def test_without_ocr_a_scan_is_refused_with_the_way_to_read_it(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "scan.pdf", [SCANNED], image_only_pages={0})
    with pytest.raises(NoTextLayer, match="install Tesseract to read scans"):
        convert_file(pdf, NO_OCR)
    picture = tmp_path / "page.png"
    picture_of(SCANNED, tmp_path).save(picture)
    with pytest.raises(NoTextLayer, match="a picture, and OCR is off here"):
        convert_file(picture, NO_OCR)


PAGE = (
    "Harbor Point signal station. " + SCANNED + " The readings go to the harbor master by noon. "
    "In fog the bell is rung every thirty seconds, and the lamp is lit at dusk. The lens is "
    "cleaned every fourteen days with a soft cloth and alcohol, from the top prisms down."
)


@pytest.mark.parametrize("name,turn", [("page.png", 0), ("page.jpg", 90), ("page.webp", 180)])
def test_a_picture_of_a_page_is_read_upright(tmp_path: Path, name: str, turn: int) -> None:
    """Orientation detection needs a page's worth of lines (a single line it may read wrong)."""
    picture = tmp_path / name
    picture_of(PAGE, tmp_path).rotate(turn, expand=True).save(picture)
    [(page, text)] = texts(picture)  # one page: cited by file alone
    assert page is None and SCANNED in text


def test_each_frame_of_a_tiff_is_a_page(tmp_path: Path) -> None:
    frames = [picture_of(text, tmp_path).convert("L")
              for text in ["First page of the fax.", SCANNED]]  # fmt: skip
    tiff = tmp_path / "fax.tiff"
    frames[0].save(tiff, save_all=True, append_images=frames[1:])
    assert texts(tiff) == [(1, "First page of the fax."), (2, SCANNED)]


@pytest.mark.parametrize(
    "name,make,error",
    [
        ("bomb.png", make_pixel_bomb_png, TooLarge),
        ("wide.png", lambda p: make_pixel_bomb_png(p, 200_000, 600), TooLarge),  # Pillow warns
        ("words.jpg", lambda p: p.write_text("Just some words, not a JPEG."), Corrupt),
    ],
)
@pytest.mark.parametrize("limits", [OCR, NO_OCR], ids=["ocr", "no-ocr"])
def test_a_hostile_picture_fails_with_its_reason(
    tmp_path: Path,
    name: str,
    make: Callable[[Path], object],
    error: type[IngestError],
    limits: Limits,
) -> None:
    make(tmp_path / name)
    with pytest.raises(error):
        convert_file(tmp_path / name, limits)


def test_a_truncated_picture_is_corrupt(tmp_path: Path) -> None:
    whole = tmp_path / "whole.png"
    picture_of(SCANNED, tmp_path).save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(Corrupt, match="cut.png: damaged image"):
        convert_file(cut, OCR)


def test_a_question_answered_only_on_a_scanned_page_finds_that_page_first(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "station.pdf", ["Harbor Point signal station. Contents: duties, weather.",
                                    SCANNED, "The fog bell is rung by hand in a power cut."],
             image_only_pages={1})  # fmt: skip
    picture_of("Lamp oil is ordered from Dunmore every spring.", tmp_path).save(docs / "note.png")
    (docs / "other.md").write_text("# Weather\n\nThe harbor's weather is mild in summer.\n")
    with Archivist(Settings(data=tmp_path / "data", workers=1, llm="none")) as service:
        outcome = service.ingest([docs])
        assert outcome.report.summary()["ingested"] == 3
        hits = service.search("How often is the Vellmar weather logged?", k=3)
        assert (Path(hits[0].path).name, hits[0].page_start) == ("station.pdf", 2)
        hits = service.search("Where is lamp oil ordered from?", k=3)
        assert (Path(hits[0].path).name, hits[0].page_start) == ("note.png", None)


def test_ocr_off_leaves_scans_to_fail_with_their_reason(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "scan.pdf", [SCANNED], image_only_pages={0})
    picture_of(SCANNED, tmp_path).save(docs / "page.png")
    settings = Settings(data=tmp_path / "data", workers=1, llm="none", ocr="off")
    with Archivist(settings) as service:
        files = {Path(f.path).name: f for f in service.ingest([docs]).report.files}
    assert {name: (f.status, f.reason) for name, f in files.items()} == {
        "scan.pdf": ("failed", "no-text"),
        "page.png": ("failed", "no-text"),
    }


def test_pages_read_with_low_confidence_are_flagged_and_kept(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    make_pdf(docs / "station.pdf", ["Harbor Point signal station.", PAGE], image_only_pages={1})
    sharp = picture_of(PAGE, tmp_path)
    # At 55 dpi Tesseract reads a few words, half of them wrong (mean confidence 0.54).
    blurred = sharp.resize((int(sharp.width / 2.6), int(sharp.height / 2.6)))
    blurred.save(docs / "blurred.png")
    settings = Settings(data=tmp_path / "data", workers=1, llm="none")
    with Archivist(settings) as service:
        outcome = service.ingest([docs])
        assert outcome.report.summary()["ingested"] == 2
        records = {Path(d.path).name: d for d in service.store.documents()}
        ocr = service.status()["ocr"]
    assert (records["station.pdf"].ocr_pages, records["station.pdf"].low_confidence_pages) == (
        1,
        "",
    )
    assert (records["blurred.png"].ocr_pages, records["blurred.png"].low_confidence_pages) == (
        1,
        "1",
    )
    assert ocr == {
        "documents": 2,
        "pages": 2,
        "low_confidence": [{"path": str(docs / "blurred.png"), "pages": [1]}],
    }
    shown = subprocess.run(
        [ARCHIVIST, "status"], capture_output=True, text=True, check=True,
        env={**os.environ, "ARCHIVIST_DATA": str(settings.data), "ARCHIVIST_LLM": "none"},
    ).stdout  # fmt: skip
    assert "OCR:         2 pages read, in 2 documents" in shown
    assert f"low-confidence OCR, pages 1: {docs / 'blurred.png'}" in shown
