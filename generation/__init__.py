"""Prompts, context packing, LLM backends (Ollama, OpenAI-compatible, embedded llama.cpp) and
citations. Backends load their client libraries only when used."""

from generation.backend import Backend, Message, Sampling, estimate_tokens
from generation.citations import Citations, parse_citations
from generation.errors import (
    BackendTimeout,
    BackendUnavailable,
    GenerationError,
    ModelMissing,
    PromptTooLong,
    QueueFull,
)
from generation.models import CATALOGUE, find_gguf, resolve_gguf
from generation.prompt import (
    NO_ANSWER,
    Prompt,
    Source,
    Turn,
    opening,
    pack_prompt,
    source_label,
)
from generation.queue import Channel, GenerationQueue

__all__ = [
    "CATALOGUE",
    "NO_ANSWER",
    "Backend",
    "BackendTimeout",
    "BackendUnavailable",
    "Channel",
    "Citations",
    "GenerationError",
    "GenerationQueue",
    "Message",
    "ModelMissing",
    "Prompt",
    "PromptTooLong",
    "QueueFull",
    "Sampling",
    "Source",
    "Turn",
    "estimate_tokens",
    "find_gguf",
    "opening",
    "pack_prompt",
    "parse_citations",
    "resolve_gguf",
    "source_label",
]
