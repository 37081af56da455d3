"""OpenAIBackend against llama-cpp-python's real OpenAI-compatible server, and Ollama's /v1."""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from generation.backend import Sampling
from generation.errors import BackendTimeout, BackendUnavailable, GenerationError, ModelMissing
from generation.openai_compat import OpenAIBackend
from tests.llm_servers import free_port, llama_cpp_server, serve_app
from tests.ollama_server import OllamaServer

QUESTION = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
GREEDY = Sampling(temperature=0.0, max_tokens=24)
KEY = "test-key"


@pytest.fixture(scope="module")
def llama_server_url(smollm2_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` on SmolLM2 that wants an API key, for the whole module."""
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with llama_cpp_server(smollm2_gguf, log, alias="smollm2", api_key=KEY) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def ollama(smollm2_gguf: Path) -> Iterator[tuple[OllamaServer, str]]:
    """The Ollama-protocol test server, whose /v1 knows which models exist, as Ollama's does."""
    server = OllamaServer(smollm2_gguf, "smollm2:latest")
    with serve_app(server.app) as url:
        yield server, f"{url}/v1"
    server.close()


@pytest.fixture
def backend(llama_server_url: str) -> Iterator[OpenAIBackend]:
    """A backend on the llama.cpp server with a generous time limit."""
    opened = OpenAIBackend(
        llama_server_url, "smollm2", api_key=KEY, context_tokens=2048, timeout=60.0
    )
    yield opened
    opened.close()


def test_stream_gives_an_answer(backend: OpenAIBackend) -> None:
    pieces = list(backend.stream(QUESTION, GREEDY))
    assert len(pieces) > 1
    assert "".join(pieces).strip()


def test_all_sampling_options_are_accepted_and_the_seed_repeats(backend: OpenAIBackend) -> None:
    sampling = Sampling(temperature=0.9, max_tokens=24, top_p=0.9, top_k=20, seed=11)
    # The server keeps the last prompt evaluated, and for a repeat evaluates only its last token
    # again: logits that differ in their last bits from the prompt's read whole, which at
    # temperature 0.9 can pick another token. So the answers compared both come from a repeat
    # (run alone, this test's first answer came from the whole prompt, and differed).
    "".join(backend.stream(QUESTION, sampling))
    first = "".join(backend.stream(QUESTION, sampling))
    second = "".join(backend.stream(QUESTION, sampling))
    assert first.strip()
    assert first == second


def test_max_tokens_limits_the_answer(backend: OpenAIBackend) -> None:
    pieces = list(backend.stream(QUESTION, Sampling(temperature=0.0, max_tokens=3)))
    assert 1 <= len(pieces) <= 3


def test_context_window_is_the_configured_size(backend: OpenAIBackend) -> None:
    assert backend.context_window() == 2048
    assert backend.memory_plan() is None


def test_wrong_api_key_is_refused(llama_server_url: str) -> None:
    backend = OpenAIBackend(
        llama_server_url, "smollm2", api_key="wrong", context_tokens=2048, timeout=30
    )
    with pytest.raises(GenerationError) as caught:
        list(backend.stream(QUESTION, GREEDY))
    backend.close()
    assert str(caught.value) == (
        f"the server at {llama_server_url} refused the API key (HTTP 401): Invalid API key "
        "— set ARCHIVIST_OPENAI_API_KEY"
    )


def test_server_down_is_unavailable_within_the_timeout() -> None:
    down = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend(down, "smollm2", api_key=None, context_tokens=2048, timeout=3.0)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        list(backend.stream(QUESTION, GREEDY))
    backend.close()
    assert time.monotonic() - started < 3.0
    assert str(caught.value) == (
        f"no OpenAI-compatible server is reachable at {down} — start it "
        "(e.g. `llama-server -m MODEL.gguf --port 8080`) or set ARCHIVIST_OPENAI_URL"
    )


def test_unknown_model_is_missing(ollama: tuple[OllamaServer, str]) -> None:
    base_url = ollama[1]
    backend = OpenAIBackend(base_url, "qwen2.5:3b", api_key=None, context_tokens=2048, timeout=30)
    with pytest.raises(ModelMissing) as caught:
        list(backend.stream(QUESTION, GREEDY))
    backend.close()
    assert str(caught.value) == (
        f"model 'qwen2.5:3b' is not served at {base_url} (model \"qwen2.5:3b\" not found, try "
        f"pulling it first) — load it on the server or set ARCHIVIST_OPENAI_MODEL to one listed at "
        f"{base_url}/models"
    )


def test_stall_times_out(ollama: tuple[OllamaServer, str]) -> None:
    server, base_url = ollama
    backend = OpenAIBackend(base_url, "smollm2", api_key=None, context_tokens=2048, timeout=1.0)
    server.stall_s = 6.0  # far past the timeout: a slow runner cannot blur the two
    started = time.monotonic()
    try:
        with pytest.raises(BackendTimeout) as caught:
            list(backend.stream(QUESTION, GREEDY))
    finally:
        server.reset()
        backend.close()
    assert time.monotonic() - started < 5.0
    assert str(caught.value) == (
        f"the server at {base_url} did not answer within 1 s (model 'smollm2') — "
        "raise ARCHIVIST_LLM_TIMEOUT_S or use a smaller model"
    )


def test_ollama_v1_streams_an_answer_too(ollama: tuple[OllamaServer, str]) -> None:
    server, base_url = ollama
    backend = OpenAIBackend(base_url, "smollm2", api_key=None, context_tokens=2048, timeout=60)
    answer = "".join(backend.stream(QUESTION, GREEDY))
    backend.close()
    assert answer.strip()
    assert server.seen[-1].body["max_tokens"] == 24
