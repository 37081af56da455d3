"""A Backend that runs a GGUF model in this process through llama-cpp-python."""

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import llama_cpp

from generation import gguf, prompt_state
from generation.backend import Message, Sampling
from generation.errors import GenerationError, ModelMissing

# Two prompts that differ only in their question share exactly what every prompt shares.
_ANY_QUESTION: Message = {"role": "user", "content": "?"}
# Flash attention reads a prompt ~9% faster on two AVX2 cores (300 tokens of the Q8_0 0.5B
# after a cached 191: 1.77 s against 1.95 s) and decodes as fast.
_FLASH_ATTENTION = True


class LlamaCppBackend:
    """One llama.cpp model and context; requests take turns on it (contexts are not thread-safe).

    llama-cpp-python keeps the previous prompt's evaluated tokens and evaluates only what follows
    the longest common prefix, so a fixed system prompt at the start is paid for once.
    """

    name = "llamacpp"

    def __init__(
        self, path: Path, *, model: str, context_tokens: int, threads: int, parallel: int = 1
    ) -> None:
        self.model = model
        self.path = path
        self.parallel = parallel
        if not path.is_file():
            raise ModelMissing(
                f"{path}: no such GGUF file — check the path, or give a catalogue model name "
                "(see generation.models.CATALOGUE)"
            )
        shape = gguf.model_shape(gguf.read_metadata(path))
        # Past the trained context a model's answers degrade, so a larger request is capped.
        n_ctx = min(context_tokens, shape.trained_context)
        self._lock = threading.Lock()
        self._threads = threads
        self._llm = _load(path, n_ctx=n_ctx, threads=threads)
        self._opening: tuple[list[Message], list[int], bytes] | None = None  # see prefill
        self._plan = gguf.plan_memory(shape, path.stat().st_size, n_ctx, parallel)

    def context_window(self) -> int:
        """The context llama.cpp was created with: the requested size capped at the trained one."""
        return int(self._llm.n_ctx())

    def count_tokens(self, text: str) -> int:
        """Tokens of `text` by the model's own tokenizer, as it appears inside a chat prompt."""
        # special=True because the chat handler tokenizes the rendered prompt that way: text that
        # spells a control token ("<|im_end|>") is one token there, and must count as one here.
        # add_bos=False: the template adds BOS once per prompt, not once per piece counted.
        return len(self._llm.tokenize(text.encode(), add_bos=False, special=True))

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]:
        """The answer piece by piece; waits for any other request on this model to finish."""
        options: dict[str, Any] = {
            "temperature": sampling.temperature,
            "max_tokens": sampling.max_tokens,
        }
        for key in ("top_p", "top_k", "seed"):
            value = getattr(sampling, key)
            if value is not None:
                options[key] = value
        with self._lock:
            self._put_back_opening(messages)
            try:
                chunks = self._llm.create_chat_completion(messages=messages, stream=True, **options)
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        yield piece
            except ValueError as error:  # llama-cpp-python's "Requested tokens exceed context"
                raise GenerationError(f"{self.model}: {error}") from error

    def prefill(self, opening: list[Message], saved: Path | None = None) -> str:
        """Evaluate the messages every prompt opens with, so that a question pays only for its
        own part; "evaluated", or "restored" when `saved` (a folder) held their evaluated state
        for this model, this llama.cpp and these messages. An evaluated state is kept there."""
        context = {"n_ctx": self.context_window(), "threads": self._threads}
        context["flash_attn"] = _FLASH_ATTENTION
        file = (
            None if saved is None else prompt_state.state_file(saved, self.path, context, opening)
        )
        with self._lock:
            found = None if file is None else prompt_state.read(file)
            if found is not None and prompt_state.restore(self._llm, *found):
                self._opening = (opening, *found)
                return "restored"
            # The opening with two questions, through the chat template every prompt takes: the
            # tokens both prompts start with are those every prompt opening so starts with.
            shared = self._evaluate([*opening, {"role": "user", "content": ""}])
            shared = prompt_state.common_start(shared, self._evaluate([*opening, _ANY_QUESTION]))
            prompt_state.keep_first(self._llm, len(shared))
            evaluated = prompt_state.capture(self._llm)
            self._opening = (opening, *evaluated)
            if file is not None:
                prompt_state.write(file, *evaluated)
            return "evaluated"

    def _put_back_opening(self, messages: list[Message]) -> None:
        """A prompt that opens otherwise (a follow-up's rewrite into a search query) takes the
        opening out of llama.cpp's cache; a prompt that opens with it again gets it back from
        memory (~5 ms) instead of evaluating it anew."""
        if self._opening is None:
            return
        opening, tokens, state = self._opening
        if messages[: len(opening)] != opening:
            return
        if prompt_state.evaluated_tokens(self._llm)[: len(tokens)] != tokens:
            prompt_state.restore(self._llm, tokens, state)

    def _evaluate(self, messages: list[Message]) -> list[int]:
        """Evaluate a prompt (and one token of its answer); the prompt's tokens."""
        try:
            self._llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0.0)
        except ValueError as error:  # the prompt does not fit this context
            raise GenerationError(f"{self.model}: {error}") from error
        return prompt_state.evaluated_tokens(self._llm)

    def memory_plan(self) -> dict[str, Any]:
        """Weights + f16 KV cache for this context size and parallel count, in bytes."""
        return dict(self._plan)

    def close(self) -> None:
        """Free the model and context (waits for a request in progress)."""
        with self._lock:
            self._llm.close()


def _load(path: Path, *, n_ctx: int, threads: int) -> Any:
    """A llama_cpp.Llama on `path`; ModelMissing when the file cannot be loaded."""
    try:
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_threads=threads, flash_attn=_FLASH_ATTENTION,
            verbose=False,
        )  # fmt: skip
    except (ValueError, RuntimeError) as error:
        raise ModelMissing(
            f"{path}: llama.cpp cannot load this model ({error}) — the file may be damaged or "
            "of an architecture this llama-cpp-python does not know; re-download or reinstall it"
        ) from error
