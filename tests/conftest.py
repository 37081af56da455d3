"""Shared fixtures: settings under tmp_path, the packaged tokenizer, a ready ingest call."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from api import pipeline  # noqa: E402
from api.settings import Settings  # noqa: E402
from ingest.chunker import TokenCounter  # noqa: E402
from ingest.ingester import FileResult, IngestReport  # noqa: E402
from ingest.store import ChunkStore  # noqa: E402
from retrieval.embedder import tokenizer_file  # noqa: E402

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def counter() -> TokenCounter:
    """Token counter over the packaged embedding model's tokenizer."""
    return TokenCounter(tokenizer_file("all-MiniLM-L6-v2"))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with the data folder under tmp_path and short time limits."""
    return Settings(data=tmp_path / "data", workers=2, convert_timeout_s=30)


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """An empty folder to put documents in."""
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


IngestRun = Callable[..., IngestReport]


@pytest.fixture
def run_ingest(settings: Settings) -> IngestRun:
    """Call the one ingestion path with these settings."""

    def run(*paths: Path, force: bool = False) -> IngestReport:
        return pipeline.ingest(settings, list(paths), force=force)

    return run


@pytest.fixture
def store(settings: Settings) -> Iterator[ChunkStore]:
    """The store that `run_ingest` writes to (opened fresh)."""
    opened = pipeline.open_store(settings)
    yield opened
    opened.close()


def by_name(report: IngestReport) -> dict[str, FileResult]:
    """File results keyed by file name."""
    return {Path(result.path).name: result for result in report.files}
