"""The one small interface every LLM backend implements, and the values passed through it."""

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@dataclass(frozen=True)
class Sampling:
    """Per-request generation options; None leaves the backend's own default."""

    temperature: float
    max_tokens: int
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None


class Backend(Protocol):
    """A chat model that streams text; knows its context window and how to count tokens."""

    name: str  # "ollama" | "openai" | "llamacpp"
    model: str  # the model as its backend names it

    def context_window(self) -> int:
        """Tokens the model is given per request (Ollama num_ctx, llama.cpp n_ctx, ...)."""
        ...

    def count_tokens(self, text: str) -> int:
        """Exact with the model's tokenizer where available, a conservative estimate otherwise."""
        ...

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]:
        """The answer as it is generated, one piece (usually one token) at a time."""
        ...

    def memory_plan(self) -> dict[str, Any] | None:
        """Weights + KV cache x context x parallel contexts, in bytes, where it can be known."""
        ...

    def close(self) -> None:
        """Release the model or connection."""
        ...


def estimate_tokens(text: str) -> int:
    """A conservative token count without a tokenizer: one token per 3 bytes of UTF-8, rounded up.

    Llama-family tokenizers average about 4 bytes of English per token; 3 leaves a margin for
    numbers, code and other languages, so a prompt sized with it never overflows the window.
    """
    return -(-len(text.encode()) // 3)
