"""OllamaBackend against an Ollama-protocol server running the real SmolLM2 model."""

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import ollama
import pytest

from generation.backend import Sampling
from generation.errors import BackendTimeout, BackendUnavailable, ModelMissing
from generation.ollama import OllamaBackend, ollama_has_model
from tests.llm_servers import free_port, serve_app
from tests.ollama_server import OllamaServer

QUESTION = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What is the capital of France?"},
]
SAMPLING = Sampling(temperature=0.0, max_tokens=24, top_p=0.9, top_k=20, seed=7)

Connect = Callable[..., OllamaBackend]


@pytest.fixture(scope="module")
def running(smollm2_gguf: Path) -> Iterator[tuple[OllamaServer, str]]:
    """One server for the module: the model loads once."""
    server = OllamaServer(smollm2_gguf, "smollm2:latest")
    with serve_app(server.app) as url:
        yield server, url
    server.close()


@pytest.fixture
def server(running: tuple[OllamaServer, str]) -> Iterator[OllamaServer]:
    """The running server with nothing recorded and no stall."""
    running[0].reset()
    yield running[0]
    running[0].reset()


@pytest.fixture
def url(running: tuple[OllamaServer, str], server: OllamaServer) -> str:
    """The base URL of a freshly reset server."""
    return running[1]


@pytest.fixture
def connect() -> Iterator[Connect]:
    """Open backends with test defaults; all are closed after the test."""
    opened: list[OllamaBackend] = []

    def open_backend(url: str, model: str = "smollm2", **overrides: Any) -> OllamaBackend:
        options: dict[str, Any] = {"context_tokens": 1024, "keep_alive": "5m", "timeout": 60.0}
        options |= overrides
        opened.append(OllamaBackend(url, model, **options))
        return opened[-1]

    yield open_backend
    for backend in opened:
        backend.close()


def test_stream_gives_an_answer(url: str, connect: Connect) -> None:
    pieces = list(connect(url).stream(QUESTION, SAMPLING))
    assert len(pieces) > 1
    assert "".join(pieces).strip()


def test_context_window_is_the_configured_size_capped_by_the_trained_one(
    url: str, server: OllamaServer, connect: Connect
) -> None:
    assert server.trained_context == 8192  # SmolLM2's GGUF, as /api/show reports it
    assert connect(url, context_tokens=1024).context_window() == 1024
    assert connect(url, context_tokens=100_000).context_window() == 8192


def test_num_ctx_and_sampling_are_sent_with_every_request(
    url: str, server: OllamaServer, connect: Connect
) -> None:
    backend = connect(url, context_tokens=1536)
    for _ in range(2):
        "".join(backend.stream(QUESTION, SAMPLING))
    assert [seen.body["options"]["num_ctx"] for seen in server.seen] == [1536, 1536]
    assert server.last_options == {
        "num_ctx": 1536,
        "temperature": 0.0,
        "num_predict": 24,
        "top_p": 0.9,
        "top_k": 20,
        "seed": 7,
    }
    assert server.seen[-1].body["keep_alive"] == "5m"


def test_num_predict_limits_the_answer(url: str, connect: Connect) -> None:
    pieces = list(connect(url).stream(QUESTION, Sampling(temperature=0.0, max_tokens=3)))
    assert 1 <= len(pieces) <= 3


def test_memory_plan_reports_the_loaded_model(url: str, connect: Connect) -> None:
    backend = connect(url, context_tokens=1024)
    "".join(backend.stream(QUESTION, SAMPLING))
    plan = backend.memory_plan()
    assert plan is not None
    assert plan["context_tokens"] == 1024
    assert plan["total_bytes"] > 50_000_000


def test_has_model_accepts_the_name_with_or_without_latest(url: str) -> None:
    assert ollama_has_model(url, "smollm2", timeout=5)
    assert ollama_has_model(url, "smollm2:latest", timeout=5)
    assert not ollama_has_model(url, "qwen2.5:3b", timeout=5)


def test_has_model_is_false_when_nothing_listens() -> None:
    assert not ollama_has_model(f"http://127.0.0.1:{free_port()}", "smollm2", timeout=2)


def test_missing_model_says_how_to_pull_it(url: str, connect: Connect) -> None:
    with pytest.raises(ModelMissing) as caught:
        connect(url, "qwen2.5:3b")
    assert str(caught.value) == "model 'qwen2.5:3b' is not pulled — run `ollama pull qwen2.5:3b`"


def test_server_down_is_unavailable_within_the_timeout(connect: Connect) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        connect(down, timeout=3.0)
    assert time.monotonic() - started < 3.0
    assert str(caught.value) == (
        f"Ollama is not reachable at {down} — start it with `ollama serve` "
        "or set ARCHIVIST_OLLAMA_URL"
    )


def test_stall_before_the_first_byte_times_out(
    url: str, server: OllamaServer, connect: Connect
) -> None:
    backend = connect(url, timeout=1.0)
    server.stall_s = 6.0  # far past the timeout: a slow runner cannot blur the two
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        list(backend.stream(QUESTION, SAMPLING))
    assert time.monotonic() - started < 5.0
    assert str(caught.value) == (
        f"Ollama at {url} did not answer within 1 s (model 'smollm2') — "
        "raise ARCHIVIST_LLM_TIMEOUT_S or use a smaller model"
    )


def test_stall_in_the_middle_of_the_stream_times_out(
    url: str, server: OllamaServer, connect: Connect
) -> None:
    backend = connect(url, timeout=2.0)
    "".join(backend.stream(QUESTION, SAMPLING))  # loads the window, caches the prompt
    server.stall_s, server.stall_after = 6.0, 2
    pieces: list[str] = []
    started = time.monotonic()
    with pytest.raises(BackendTimeout):  # noqa: SIM117 - keep the pieces that came before
        for piece in backend.stream(QUESTION, SAMPLING):
            pieces.append(piece)
    assert len(pieces) == 2
    assert time.monotonic() - started < 5.0


def test_server_speaks_the_rest_of_the_protocol(url: str) -> None:
    """Other tests rely on this server: the official client's non-streamed calls work too."""
    with ollama.Client(host=url, timeout=60) as client:
        options = {"num_predict": 8, "temperature": 0.0}
        reply = client.chat("smollm2", messages=QUESTION, options=options)
        generated = client.generate("smollm2", "The capital of France is", options=options)
        shown = client.show("smollm2")
        with pytest.raises(ollama.ResponseError) as caught:
            client.chat("qwen2.5:3b", messages=QUESTION)
    assert reply.message.content and reply.done and reply.eval_count
    assert generated.response and generated.done
    assert shown.modelinfo is not None and shown.modelinfo["llama.context_length"] == 8192
    assert caught.value.status_code == 404
