"""OCR with the real Tesseract (`make ocr` installs it): scanned PDF pages and pictures of pages
are read, upright, and cited by page; hostile pictures fail with their reason; with OCR off a
scan says how to read it."""

import io
import os
import random
import subprocess
import zlib
from collections.abc import Callable
from pathlib import Path

import pypdfium2 as pdfium
import pytest
from fpdf import FPDF
from PIL import Image
from tqdm import tqdm

from api.cli.console import FileTicker
from api.evaluation import character_error_rate
from api.service import Archivist, Settings
from ingest.chunker import ChunkOptions
from ingest.convert import Limits, convert_file
from ingest.errors import Corrupt, IngestError, NoTextLayer, TooLarge
from ingest.ocr import ocr_available
from ingest.workers import ConversionPool, Failed, Job
from retrieval.embedder import tokenizer_file
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


def test_a_garbage_text_layer_over_a_scan_is_read_again_by_ocr(tmp_path: Path) -> None:
    garbage = "xqzz kf¤ ¦¦¦ þÿ zzkq qqrt ¤¤ ¬¬ vvkr ¦¤þ " * 4  # a scanner's failed OCR, hidden
    pdf = make_pdf(tmp_path / "log.pdf", [SCANNED], image_only_pages={0}, hidden_text={0: garbage})
    converted = convert_file(pdf, OCR)
    assert [(b.page, b.text) for b in converted.blocks] == [(1, SCANNED)]
    assert converted.ocr_pages == 1


def test_a_good_hidden_text_layer_is_kept_without_ocr(tmp_path: Path) -> None:
    layer = "The keeper logs the Vellmar weather twice a day, as the scanner read it."
    pdf = make_pdf(tmp_path / "log.pdf", [SCANNED], image_only_pages={0}, hidden_text={0: layer})
    converted = convert_file(pdf, OCR)
    assert [(b.page, b.text) for b in converted.blocks] == [(1, layer)]
    assert converted.ocr_pages == 0


def test_without_ocr_a_scan_is_refused_with_the_way_to_read_it(tmp_path: Path) -> None:
    pdf = make_pdf(tmp_path / "scan.pdf", [SCANNED], image_only_pages={0})
    with pytest.raises(NoTextLayer, match="install Tesseract's data to read scans"):
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


LEFT = (
    "The harbor master opens the east gate at six each morning. Fishing boats unload at "
    "the north quay before eight. Ice is sold by the crate from the cold store. "
) * 2
RIGHT = (
    "The ferry to Dunmore leaves from pier three on the hour. Tickets are sold on board "
    "and cost four pounds. Bicycles travel free except on the last crossing. "
) * 2
ROWS = [("Item", "Quantity", "Price"), ("Lamp oil", "12 cans", "48.00"), ("Wick", "30", "7.50"),
        ("Fog horn reed", "2", "19.20")]  # fmt: skip


def two_columns() -> FPDF:
    """An A4 page of two columns of 12 pt text, each of several lines."""
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    for x, text in ((15, LEFT), (110, RIGHT)):
        pdf.set_xy(x, 20)
        pdf.multi_cell(85, 6, text)
    return pdf


def table() -> FPDF:
    """An A4 page with a ruled table."""
    pdf = FPDF(format="A4")
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    with pdf.table() as rows:
        for cells in ROWS:
            row = rows.row()
            for cell in cells:
                row.cell(cell)
    return pdf


def rasterized(page: FPDF, dpi: int) -> Image.Image:
    """The page as a scanner at `dpi` would see it (grayscale)."""
    return (
        pdfium.PdfDocument(bytes(page.output()))[0].render(scale=dpi / 72, grayscale=True).to_pil()
    )


def scanned_pdf(path: Path, pictures: list[Image.Image]) -> Path:
    """An image-only PDF: each picture fills an A4 page, as a scanner writes one."""
    pdf = FPDF(format="A4")
    for picture in pictures:
        pdf.add_page()
        pdf.image(picture, x=0, y=0, w=210, h=297)
    path.write_bytes(bytes(pdf.output()))
    return path


def fax_of(page: Image.Image, seed: int = 3) -> Image.Image:
    """A fax of a page scanned at 200 dpi: turned 1.5 degrees, specks, one bit per pixel."""
    skewed = page.rotate(1.5, expand=True, fillcolor=255, resample=Image.Resampling.BICUBIC)
    pixels, rng = skewed.load(), random.Random(seed)
    for _ in range(skewed.width * skewed.height // 150):
        pixels[rng.randrange(skewed.width), rng.randrange(skewed.height)] = 0
    return skewed.point(lambda value: 255 if value > 150 else 0).convert("1")


def page_text(path: Path) -> str:
    return "\n".join(text for _, text in texts(path))


def test_two_columns_are_read_one_after_the_other(tmp_path: Path) -> None:
    # Read across, line by line, the columns' lines would interleave (CER near 100%).
    scan = scanned_pdf(tmp_path / "columns.pdf", [rasterized(two_columns(), 300)])
    assert character_error_rate(page_text(scan), LEFT + RIGHT) <= 0.02


def test_a_table_is_read_row_by_row(tmp_path: Path) -> None:
    scan = scanned_pdf(tmp_path / "stores.pdf", [rasterized(table(), 300)])
    # Read column by column it would say "Item Lamp oil Wick ...".
    assert page_text(scan).split() == [word for cells in ROWS for cell in cells
                                       for word in cell.split()]  # fmt: skip


def test_a_low_resolution_photo_is_read(tmp_path: Path) -> None:
    photo = tmp_path / "columns.jpg"
    rasterized(two_columns(), 100).save(photo, quality=80, dpi=(100, 100))
    assert character_error_rate(page_text(photo), LEFT + RIGHT) <= 0.02


def test_a_noisy_skewed_fax_is_read(tmp_path: Path) -> None:
    fax = tmp_path / "columns.tif"
    fax_of(rasterized(two_columns(), 200)).save(fax, compression="group4", dpi=(204, 196))
    # Measured 3.5% (specks read as punctuation, a few words run together).
    assert character_error_rate(page_text(fax), LEFT + RIGHT) <= 0.08


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


def test_a_long_scan_tells_how_far_it_has_come(tmp_path: Path) -> None:
    pages = [f"Tide table, page {n}: high water at {n} in the morning." for n in range(1, 9)]
    scan = make_pdf(tmp_path / "tides.pdf", pages, image_only_pages=set(range(8)))
    heard: list[tuple[str, int, int]] = []
    shown = io.StringIO()
    ticker = FileTicker(tqdm(file=shown, disable=False, mininterval=0))

    def on_page(path: str, done: int, count: int) -> None:
        heard.append((Path(path).name, done, count))
        ticker.on_page(path, done, count)

    with Archivist(Settings(data=tmp_path / "data", workers=1, llm="none")) as service:
        outcome = service.ingest([scan], index=False, on_file=ticker.on_file, on_page=on_page)
    assert outcome.report.files[0].chunks > 0
    assert heard and {(name, count) for name, _, count in heard} == {("tides.pdf", 8)}
    done = [page for _, page, _ in heard]
    assert done == sorted(set(done)) and done[-1] <= 8
    assert f"tides.pdf page {done[0]}/8" in shown.getvalue()
    assert "page" not in shown.getvalue().rsplit("\r", 1)[-1]  # gone once the file is done


def test_a_scan_too_large_for_its_memory_share_fails_saying_so(tmp_path: Path) -> None:
    # A 300 dpi page needs ~170 MB beside a worker's own 100-150 MB: at 200 MB Tesseract's
    # allocations fail. The file fails as too large, never stored with its pages missing.
    scan = make_pdf(tmp_path / "scan.pdf", [SCANNED, SCANNED], image_only_pages={0, 1})
    limits = Limits(timeout_s=60, memory_mb=200, max_file_mb=64, max_expand_mb=64,
                    ocr_languages="eng")  # fmt: skip
    pool = ConversionPool(tokenizer_file("all-MiniLM-L6-v2"), ChunkOptions(200, 240, 32),
                          limits, workers=1)  # fmt: skip
    [(_, outcome)] = pool.run([Job("scan", scan)])
    assert outcome == Failed(
        "too-large",
        "scan.pdf: converting it needs more than 200 MB of memory (ARCHIVIST_CONVERT_MEMORY_MB)",
    )


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
        "reads": "eng",
        "documents": 2,
        "pages": 2,
        "low_confidence": [{"path": str(docs / "blurred.png"), "pages": [1]}],
    }
    shown = subprocess.run(
        [ARCHIVIST, "status"], capture_output=True, text=True, check=True,
        env={**os.environ, "ARCHIVIST_DATA": str(settings.data), "ARCHIVIST_LLM": "none"},
    ).stdout  # fmt: skip
    assert "OCR:         eng; 2 pages read, in 2 documents" in shown
    assert f"low-confidence OCR, pages 1: {docs / 'blurred.png'}" in shown
