"""The llama.cpp backend on the real packaged SmolLM2."""

import threading
from pathlib import Path

import llama_cpp
import pytest

from generation.backend import Backend, Message, Sampling
from generation.errors import ModelMissing
from generation.llamacpp import LlamaCppBackend

QUESTION: list[Message] = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "What colour is the sky on a clear day?"},
]
GREEDY = Sampling(temperature=0.0, max_tokens=24, seed=7)


def test_it_is_a_backend(smollm2_backend: LlamaCppBackend) -> None:
    backend: Backend = smollm2_backend
    assert (backend.name, backend.model) == ("llamacpp", "smollm2-135m")


def test_stream_yields_pieces_of_an_answer(smollm2_backend: LlamaCppBackend) -> None:
    pieces = list(smollm2_backend.stream(QUESTION, GREEDY))
    assert len(pieces) > 1
    assert all(isinstance(piece, str) and piece for piece in pieces)
    assert "".join(pieces).strip()


def test_fixed_seed_at_temperature_zero_repeats(smollm2_backend: LlamaCppBackend) -> None:
    first = "".join(smollm2_backend.stream(QUESTION, GREEDY))
    second = "".join(smollm2_backend.stream(QUESTION, GREEDY))
    assert first == second


def test_concurrent_streams_take_turns(smollm2_backend: LlamaCppBackend) -> None:
    expected = "".join(smollm2_backend.stream(QUESTION, GREEDY))
    answers: list[str] = []

    def ask() -> None:
        answers.append("".join(smollm2_backend.stream(QUESTION, GREEDY)))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [expected] * 3


def test_count_tokens_uses_the_model_tokenizer(
    smollm2_gguf: Path, smollm2_backend: LlamaCppBackend
) -> None:
    text = "Archivist cites file and page: report_2024.pdf, p. 17 — see §3.2."
    vocab = llama_cpp.Llama(model_path=str(smollm2_gguf), vocab_only=True, verbose=False)
    try:
        expected = len(vocab.tokenize(text.encode(), add_bos=False, special=True))
    finally:
        vocab.close()
    assert smollm2_backend.count_tokens(text) == expected


def test_count_tokens_counts_a_control_token_as_the_chat_prompt_does(
    smollm2_backend: LlamaCppBackend,
) -> None:
    assert smollm2_backend.count_tokens("<|im_end|>") == 1


def test_context_window_is_the_requested_n_ctx(smollm2_backend: LlamaCppBackend) -> None:
    assert smollm2_backend.context_window() == 2048


def test_context_window_is_capped_at_the_trained_context(smollm2_gguf: Path) -> None:
    backend = LlamaCppBackend(smollm2_gguf, model="smollm2-135m", context_tokens=100_000, threads=2)
    try:
        assert backend.context_window() == 8192
        assert backend.memory_plan()["context_tokens"] == 8192
    finally:
        backend.close()


def test_memory_plan_matches_the_context(smollm2_backend: LlamaCppBackend) -> None:
    plan = smollm2_backend.memory_plan()
    assert plan["context_tokens"] == 2048
    assert plan["kv_cache_bytes"] == 2 * 30 * 3 * 64 * 2048 * 2


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "gone.gguf"
    with pytest.raises(ModelMissing) as caught:
        LlamaCppBackend(path, model="gone", context_tokens=512, threads=1)
    assert str(caught.value).startswith(f"{path}: no such GGUF file — check the path")


def test_unloadable_file_is_model_missing(smollm2_gguf: Path, tmp_path: Path) -> None:
    # A real header with the tensors cut off: metadata reads, llama.cpp cannot load it.
    path = tmp_path / "truncated.gguf"
    with smollm2_gguf.open("rb") as source:
        path.write_bytes(source.read(4_000_000))
    with pytest.raises(ModelMissing, match=r"truncated\.gguf: llama\.cpp cannot load this model"):
        LlamaCppBackend(path, model="truncated", context_tokens=512, threads=1)
