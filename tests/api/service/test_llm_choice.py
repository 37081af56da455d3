"""Which model answers: ARCHIVIST_LLM=auto|ollama|openai|llamacpp|none, through the service."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.service import Archivist, Settings
from generation.errors import BackendUnavailable
from tests.llm_servers import free_port, llama_cpp_server, serve_app
from tests.ollama_server import OllamaServer

QUESTION = "How often is the lens cleaned?"


@pytest.fixture(scope="module")
def ollama(smollm2_gguf: Path) -> Iterator[str]:
    """A running Ollama-protocol server with one model, `smollm2:latest`."""
    server = OllamaServer(smollm2_gguf, "smollm2:latest")
    with serve_app(server.app) as url:
        yield url
    server.close()


@pytest.fixture
def library(docs: Path) -> Path:
    (docs / "lens.md").write_text("# Lens\n\nThe lens is cleaned every Tuesday with a cloth.\n")
    return docs


def answer_with(settings: Settings, library: Path, **changes: object) -> dict[str, object]:
    with Archivist(settings.model_copy(update={"answer_tokens": 16, **changes})) as service:
        service.ingest([library])
        return service.ask(QUESTION).to_json()


def test_auto_asks_ollama_when_it_runs_with_the_model(
    settings: Settings, library: Path, ollama: str
) -> None:
    answer = answer_with(settings, library, llm="auto", ollama_url=ollama,
                         ollama_model="smollm2")  # fmt: skip
    assert (answer["backend"], answer["model"]) == ("ollama", "smollm2")
    assert answer["answer"] and answer["tokens"] > 0


def test_auto_loads_the_embedded_model_when_ollama_lacks_the_model(
    settings: Settings, library: Path, ollama: str
) -> None:
    answer = answer_with(settings, library, llm="auto", ollama_url=ollama,
                         ollama_model="qwen2.5:72b", gguf="smollm2-135m")  # fmt: skip
    assert (answer["backend"], answer["model"]) == ("llamacpp", "smollm2-135m")


def test_auto_answers_with_passages_when_no_model_is_available(
    settings: Settings, library: Path, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    answer = answer_with(settings, library, llm="auto", ollama_url=down,
                         gguf=str(tmp_path / "missing.gguf"))  # fmt: skip
    assert answer["backend"] == "none"
    assert f"Ollama at {down} is not running or has no model" in str(answer["note"])
    assert "missing.gguf" in str(answer["note"])
    assert answer["citations"]


def test_ollama_chosen_explicitly_but_down_is_a_clear_error(
    settings: Settings, library: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailable, match="start it with `ollama serve`"):
        answer_with(settings, library, llm="ollama", ollama_url=down)


def test_an_openai_compatible_server_answers(
    settings: Settings, library: Path, smollm2_gguf: Path, tmp_path: Path
) -> None:
    with llama_cpp_server(smollm2_gguf, tmp_path / "server.log", alias="smollm2") as url:
        answer = answer_with(settings, library, llm="openai", openai_url=url,
                             openai_model="smollm2", llm_context_tokens=2048)  # fmt: skip
    assert (answer["backend"], answer["model"]) == ("openai", "smollm2")
    assert answer["answer"] and answer["tokens"] > 0


def test_status_shows_the_loaded_model_and_its_memory_plan(
    settings: Settings, library: Path
) -> None:
    embedded = settings.model_copy(
        update={"llm": "llamacpp", "gguf": "smollm2-135m", "llm_context_tokens": 2048}
    )
    with Archivist(embedded) as service:
        before = service.status()["llm"]
        service.ingest([library])
        service.ask(QUESTION)
        after = service.status()["llm"]
    assert before["configured"] == "llamacpp" and "backend" not in before
    assert (after["backend"], after["model"], after["context_tokens"]) == (
        "llamacpp", "smollm2-135m", 2048,
    )  # fmt: skip
    plan = after["memory_plan"]
    # SmolLM2-135M: 30 layers, 3 KV heads of 64 dimensions, f16 keys and values.
    assert plan["kv_cache_bytes"] == 2 * 30 * 3 * 64 * 2048 * 2
    assert plan["total_bytes"] == plan["weights_bytes"] + plan["kv_cache_bytes"]


def test_warming_opens_the_model_and_keeps_its_prompt_opening_for_the_next_process(
    settings: Settings, library: Path, smollm2_gguf: Path, tmp_path: Path
) -> None:
    embedded = settings.model_copy(update={
        "llm": "llamacpp", "gguf": str(smollm2_gguf), "llm_context_tokens": 2048,
        "answer_tokens": 16, "model_dir": tmp_path / "models",
    })  # fmt: skip
    with Archivist(embedded) as service:
        service.ingest([library])
        service.llm.warm()
        assert service.status()["llm"]["backend"] == "llamacpp"  # before any question
        first = service.ask(QUESTION).to_json()
    (kept,) = (tmp_path / "models" / "prompts").iterdir()
    assert kept.name.startswith(f"{smollm2_gguf.name}.") and kept.suffix == ".kv"
    with Archivist(embedded) as service:  # reads the opening's state instead of evaluating it
        again = service.ask(QUESTION).to_json()
    assert again["answer"] == first["answer"] and again["citations"] == first["citations"]
    assert list((tmp_path / "models" / "prompts").iterdir()) == [kept]


def test_a_closed_service_opens_no_model(
    settings: Settings, smollm2_gguf: Path, tmp_path: Path
) -> None:
    embedded = settings.model_copy(update={"llm": "llamacpp", "gguf": str(smollm2_gguf)})
    service = Archivist(embedded)
    service.close()
    service.llm.warm()  # a server's warming thread that starts late
    assert service.llm.backend() is None
    assert service.llm.why_none() == "the service is closing"
