"""A 400-page scan read by OCR within the conversion limits, through the real command: its time
limit runs from the last page done, so it reads to the end although the whole file takes far
longer than the limit; every page is read, cited by its number, and found."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from ingest.ocr import ocr_available
from tests.api.cli.test_ask_cli import ARCHIVIST
from tests.fixtures import make_pdf

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(not ocr_available(), reason="Tesseract's data is not installed (make ocr)"),
]
PAGES = 400
COLOURS = ("amber", "black", "copper", "crimson", "golden", "green", "grey", "indigo", "ivory",
           "lemon", "maroon", "olive", "orange", "purple", "scarlet", "silver", "tawny", "violet",
           "white", "yellow")  # fmt: skip
BIRDS = ("falcon", "heron", "osprey", "plover", "raven", "robin", "swallow", "thrush", "wren",
         "curlew", "gannet", "kestrel", "magpie", "merlin", "petrel", "puffin", "sparrow",
         "starling", "tern", "woodcock")  # fmt: skip


def survey_page(number: int) -> str:
    """A page that its words alone find: each page names its own colour and bird."""
    colour, bird = COLOURS[(number - 1) // 20], BIRDS[(number - 1) % 20]
    return (f"Survey log, page {number}. The {colour} buoy at the north quay carries the "
            f"{bird} mark, and the keeper checks its lamp at noon.")  # fmt: skip


def test_a_400_page_scan_reads_to_the_end_within_a_time_limit_per_page(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    make_pdf(inbox / "survey.pdf", [survey_page(n) for n in range(1, PAGES + 1)],
             image_only_pages=set(range(PAGES)))  # fmt: skip
    # A page takes 0.1-0.5 s; the file ~50 s here, and no machine reads 400 pages within the
    # 3 s limit and the 5 s a worker is given to report: a limit per file would fail it.
    env = {**os.environ, "ARCHIVIST_DATA": str(tmp_path / "data"), "ARCHIVIST_LLM": "none",
           "ARCHIVIST_CONVERT_TIMEOUT_S": "3"}  # fmt: skip
    done = subprocess.run([ARCHIVIST, "ingest", "--json", str(inbox)], env=env,
                          capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)["files"]
    assert (result["status"], result["ocr_pages"], result["chunks"]) == ("ingested", PAGES, PAGES)
    for page in (1, 237, PAGES):
        colour, bird = COLOURS[(page - 1) // 20], BIRDS[(page - 1) % 20]
        query = f"Which buoy is {colour} with the {bird} mark?"
        found = subprocess.run([ARCHIVIST, "search", "--json", "-k", "1", query], env=env,
                               capture_output=True, text=True, check=True)  # fmt: skip
        [hit] = json.loads(found.stdout)["hits"]
        assert (Path(hit["path"]).name, hit["page"]) == ("survey.pdf", page)
        assert hit["snippet"] == survey_page(page)
