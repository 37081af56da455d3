"""The prompt's opening evaluated in advance, and kept in a file for the next process: on the
real packaged SmolLM2 through llama.cpp."""

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import llama_cpp
import pytest

from generation.backend import Message, Sampling
from generation.errors import GenerationError
from generation.llamacpp import LlamaCppBackend
from generation.prompt_state import state_file

OPENING: list[Message] = [
    {"role": "system", "content": "Answer in one short sentence, naming a colour."},
    {"role": "user", "content": "What colour is fresh grass?"},
    {"role": "assistant", "content": "Fresh grass is green."},
]
QUESTION: list[Message] = [*OPENING, {"role": "user", "content": "What colour is a clear sky?"}]
GREEDY = Sampling(temperature=0.0, max_tokens=24, seed=7)
CONTEXT = {"n_ctx": 2048, "threads": 2, "flash_attn": True}


@pytest.fixture
def open_backend(smollm2_gguf: Path) -> Iterator[Callable[[], LlamaCppBackend]]:
    """Opens backends on SmolLM2 (each its own llama.cpp context, as a new process would have)
    and closes them after the test."""
    opened: list[LlamaCppBackend] = []

    def open_one() -> LlamaCppBackend:
        backend = LlamaCppBackend(smollm2_gguf, model="smollm2-135m", context_tokens=2048,
                                  threads=2)  # fmt: skip
        opened.append(backend)
        return backend

    yield open_one
    for backend in opened:
        backend.close()


def answer(backend: LlamaCppBackend) -> str:
    return "".join(backend.stream(QUESTION, GREEDY))


def test_an_opening_kept_in_a_file_is_read_back_and_answers_the_same(
    open_backend: Callable[[], LlamaCppBackend], tmp_path: Path
) -> None:
    expected = answer(open_backend())  # the whole prompt evaluated at once
    first = open_backend()
    assert first.prefill(OPENING, tmp_path) == "evaluated"
    assert [p.name for p in tmp_path.iterdir()] == [
        state_file(tmp_path, first.path, CONTEXT, OPENING).name
    ]
    assert answer(first) == expected
    second = open_backend()
    assert second.prefill(OPENING, tmp_path) == "restored"
    assert answer(second) == expected
    assert expected.strip()


def test_without_a_folder_the_opening_is_evaluated_and_nothing_is_kept(
    open_backend: Callable[[], LlamaCppBackend], tmp_path: Path
) -> None:
    expected = answer(open_backend())
    backend = open_backend()
    assert backend.prefill(OPENING) == "evaluated"
    assert answer(backend) == expected
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_file_is_not_trusted_and_is_replaced(
    open_backend: Callable[[], LlamaCppBackend], tmp_path: Path
) -> None:
    open_backend().prefill(OPENING, tmp_path)
    (kept,) = tmp_path.iterdir()
    data = bytearray(kept.read_bytes())
    data[-1000] ^= 0xFF  # one byte of the KV cache
    kept.write_bytes(bytes(data))
    assert open_backend().prefill(OPENING, tmp_path) == "evaluated"
    assert open_backend().prefill(OPENING, tmp_path) == "restored"  # written again, whole


def test_another_opening_gets_its_own_file_and_the_older_one_goes(
    open_backend: Callable[[], LlamaCppBackend], tmp_path: Path
) -> None:
    backend = open_backend()
    backend.prefill(OPENING, tmp_path)
    other = [{"role": "system", "content": "Answer in French."}]
    assert open_backend().prefill(other, tmp_path) == "evaluated"
    assert [p.name for p in tmp_path.iterdir()] == [
        state_file(tmp_path, backend.path, CONTEXT, other).name
    ]


def test_a_folder_that_cannot_be_written_leaves_the_opening_evaluated(
    open_backend: Callable[[], LlamaCppBackend], tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "models"
    not_a_folder.write_text("a file where the folder would go")
    backend = open_backend()
    assert backend.prefill(OPENING, not_a_folder) == "evaluated"
    assert not_a_folder.read_text() == "a file where the folder would go"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]  # no partial file left


def test_the_file_is_named_by_the_model_file_the_context_and_the_messages(
    smollm2_gguf: Path, tmp_path: Path
) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF" + b"\0" * 60)
    name = state_file(tmp_path, model, CONTEXT, OPENING)
    assert name.parent == tmp_path and name.name.startswith("model.gguf.")
    assert state_file(tmp_path, model, CONTEXT, OPENING) == name
    assert state_file(tmp_path, model, CONTEXT, OPENING[:1]) != name
    assert state_file(tmp_path, model, {**CONTEXT, "n_ctx": 4096}, OPENING) != name
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # a new download
    assert state_file(tmp_path, model, CONTEXT, OPENING) != name


def test_an_opening_longer_than_the_context_is_a_generation_error(smollm2_gguf: Path) -> None:
    backend = LlamaCppBackend(smollm2_gguf, model="smollm2-135m", context_tokens=64, threads=1)
    try:
        long_opening: list[Message] = [{"role": "system", "content": "Answer briefly. " * 40}]
        with pytest.raises(GenerationError, match="smollm2-135m"):
            backend.prefill(long_opening)
    finally:
        backend.close()


def prompt_tokens_read(backend: LlamaCppBackend) -> int:
    """Prompt tokens llama.cpp evaluated for one answer to QUESTION (its own counter)."""
    context = backend._llm._ctx.ctx
    llama_cpp.llama_perf_context_reset(context)
    answer(backend)
    return int(llama_cpp.llama_perf_context(context).n_p_eval)


def test_a_prompt_that_opens_otherwise_does_not_cost_the_opening_again(
    open_backend: Callable[[], LlamaCppBackend],
) -> None:
    """A follow-up's rewrite into a search query opens with other instructions: the next
    answer gets the opening back from memory, and answers as if it had evaluated it."""
    cold = open_backend()
    expected = answer(cold)
    rewrite: list[Message] = [
        {"role": "system", "content": "Rewrite the question as a search query."},
        {"role": "user", "content": "And at night?"},
    ]
    prepared = open_backend()
    prepared.prefill(OPENING)
    "".join(prepared.stream(rewrite, GREEDY))
    reads = prompt_tokens_read(prepared)
    assert answer(prepared) == expected
    "".join(cold.stream(rewrite, GREEDY))
    whole = prompt_tokens_read(cold)  # the whole prompt again
    opening_tokens = cold.count_tokens("".join(m["content"] for m in OPENING))
    assert reads <= whole - opening_tokens
    assert reads > 0
