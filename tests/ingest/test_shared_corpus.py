"""The shared corpus of real and hostile documents (skipped when ../shared is absent)."""

import re
from pathlib import Path

import pytest

from api.service import Archivist, Settings
from ingest.ingester import IngestReport
from ingest.store import ChunkStore
from tests.conftest import SHARED

CORPUS = SHARED / "corpus"
REASONS = {
    "unsupported",
    "encrypted",
    "no-text",
    "corrupt",
    "too-large",
    "too-deep",
    "timeout",
    "crashed",
}
READABLE = {
    ".docx",
    ".odt",
    ".epub",
    ".pptx",
    ".html",
    ".htm",
    ".md",
    ".rst",
    ".org",
    ".rtf",
    ".csv",
}

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is not present")


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, IngestReport]:
    settings = Settings(
        data=tmp_path_factory.mktemp("corpus") / "data", convert_timeout_s=60, llm="none"
    )
    folders = [CORPUS / name for name in ("mixed", "bad", "pdfs", "same-content")]
    with Archivist(settings) as service:
        return settings, service.ingest(folders, index=False).report


def test_every_file_is_ingested_or_failed_with_a_specific_reason(
    ingested: tuple[Settings, IngestReport],
) -> None:
    _, report = ingested
    on_disk = {
        str(p.resolve()) for p in CORPUS.rglob("*") if p.is_file() and p.name != "SOURCES.md"
    }
    assert on_disk <= {r.path for r in report.files}
    for result in report.files:
        assert result.status == "ingested" or result.reason in REASONS, result
        if result.status == "failed":
            assert result.error and result.error.startswith(Path(result.path).name + ": ")


def test_readable_formats_all_go_in(ingested: tuple[Settings, IngestReport]) -> None:
    _, report = ingested
    for result in report.files:
        if Path(result.path).suffix.lower() in READABLE and "/bad/" not in result.path:
            assert result.status == "ingested" or result.reason in {"encrypted", "no-text"}, result


def test_typeset_pdfs_go_in_with_their_pages(ingested: tuple[Settings, IngestReport]) -> None:
    settings, report = ingested
    pdfs = [r for r in report.files if "/pdfs/" in r.path]
    assert len(pdfs) == len(list((CORPUS / "pdfs").glob("*.pdf")))
    assert sum(r.status == "ingested" for r in pdfs) >= len(pdfs) - 2  # two are image-only
    store = ChunkStore(settings.database)
    try:
        rintro = store.document(str((CORPUS / "pdfs" / "R-intro.pdf").resolve()))
        assert rintro is not None and rintro.page_count == 113 and rintro.chunk_count > 100
    finally:
        store.close()


def test_the_same_text_in_five_formats_yields_the_same_words(
    ingested: tuple[Settings, IngestReport],
) -> None:
    settings, report = ingested
    # The PDF draws its letters as vector outlines: pdfium finds text on few pages, and the
    # report says so instead of pretending.
    pdf = next(r for r in report.files if r.path.endswith("same-content/live-manual.en.pdf"))
    assert pdf.status == "ingested" and pdf.pages_without_text >= 20
    store = ChunkStore(settings.database)
    try:
        words = {}
        for path in sorted((CORPUS / "same-content").iterdir()):
            if path.suffix == ".pdf":
                continue
            record = store.document(str(path.resolve()))
            assert record is not None and record.status == "ingested", path.name
            rows = store.db.execute("SELECT text FROM chunks WHERE sha256 = ?", [record.sha256])
            words[path.suffix] = {
                w.lower() for (text,) in rows for w in re.findall(r"[A-Za-z]{4,}", text)
            }
    finally:
        store.close()
    reference = words[".txt"]
    for suffix, found in words.items():
        overlap = len(found & reference) / len(found | reference)
        assert overlap > 0.8, (suffix, overlap)
