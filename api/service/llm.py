"""Which language model answers: Ollama, an OpenAI-compatible server, the embedded GGUF, or none.

`ARCHIVIST_LLM=auto` asks Ollama if it runs and has the model, else loads the embedded model,
else answers retrieval-only (the passages, cited) and says why. Backends open on first use
and are kept per model name; every answer goes through one bounded generation queue.
"""

import logging
import threading
import time
from typing import Any

from api.service.errors import ConfigError
from api.service.settings import Settings
from generation.backend import Backend
from generation.errors import GenerationError, ModelMissing
from generation.prompt import opening
from generation.queue import GenerationQueue

log = logging.getLogger(__name__)

# With ARCHIVIST_LLM=auto and no model found, look again this often: Ollama may start later.
RECHECK_S = 10.0


class LLM:
    """The configured backends, opened lazily, and the generation queue in front of them."""

    def __init__(self, settings: Settings, backend: Backend | None = None) -> None:
        self.settings = settings
        self._given = (
            backend  # answers every request when given (any Backend: a server's, a test's)
        )
        self._backends: dict[str | None, Backend | None] = {}
        self._why_none: dict[str | None, str] = {}
        self._opened_at: dict[str | None, float] = {}
        self._queue: GenerationQueue | None = None
        self._lock = threading.Lock()
        self._closed = False

    def backend(self, model: str | None = None) -> Backend | None:
        """The backend for `model` (default: the configured one); None when none is available."""
        if self._given is not None:
            return self._given
        with self._lock:
            if self._closed:
                self._why_none[model] = "the service is closing"
                return None
            if model not in self._backends or self._look_again(model):
                self._backends[model] = self._open(model)
                self._opened_at[model] = time.monotonic()
            return self._backends[model]

    def _look_again(self, model: str | None) -> bool:
        """Auto found no model a while ago: time to ask Ollama again. (A loaded embedded model
        is kept: it may be answering.)"""
        return (
            self.settings.llm == "auto"
            and self._backends[model] is None
            and time.monotonic() - self._opened_at[model] >= RECHECK_S
        )

    def warm(self) -> None:
        """Open the configured model now, so the first question does not wait for it (the server
        does this as it starts: its first answer's first token came 4.7-5.2 s after the question,
        later ones 2.6-2.9 s, on two AVX2 cores). Never raises: a question reports what is wrong."""
        try:
            self.backend()
        except Exception as error:
            log.warning("the language model could not be opened in advance: %s", error)

    def why_none(self, model: str | None = None) -> str:
        """Why `backend(model)` is None, in words for the user."""
        return self._why_none.get(model, "no language model is configured")

    @property
    def queue(self) -> GenerationQueue:
        """The bounded queue every generation goes through."""
        with self._lock:
            if self._queue is None:
                self._queue = GenerationQueue(
                    max(1, self.settings.llm_parallel), max(0, self.settings.llm_queue)
                )
            return self._queue

    def describe(self) -> dict[str, Any]:
        """For `status`: what is configured, what is loaded, and its memory plan. Loads nothing."""
        loaded = [b for b in (self._given, *self._backends.values()) if b is not None]
        info: dict[str, Any] = {"configured": self.settings.llm}
        if loaded:
            backend = loaded[0]
            info.update(backend=backend.name, model=backend.model)
            info["context_tokens"] = backend.context_window()
            info["memory_plan"] = backend.memory_plan()
        elif self.settings.llm in ("auto", "llamacpp"):
            info["memory_plan"] = _embedded_plan(self.settings)
        if self._queue is not None:
            info["queue"] = {"running": self._queue.running(), "waiting": self._queue.waiting()}
        return info

    def close(self) -> None:
        """Stop the queue and release every backend."""
        with self._lock:
            self._closed = True
            if self._queue is not None:
                self._queue.close()
                self._queue = None
            for backend in self._backends.values():
                if backend is not None:
                    backend.close()
            self._backends.clear()

    def _open(self, model: str | None) -> Backend | None:
        settings, choice = self.settings, self.settings.llm
        if choice == "none":
            self._why_none[model] = "ARCHIVIST_LLM=none"
            return None
        if choice == "openai":
            return _openai(settings, model)
        if choice == "ollama":
            return _ollama(settings, model)
        if choice == "auto":
            from generation.ollama import ollama_has_model

            name = model or settings.ollama_model
            if ollama_has_model(settings.ollama_url, name, timeout=2.0):
                return _ollama(settings, model)
        try:
            return _embedded(settings, model)
        except ModelMissing as missing:
            if choice == "llamacpp":
                raise
            self._why_none[model] = (
                f"Ollama at {settings.ollama_url} is not running or has no model "
                f"'{model or settings.ollama_model}', and {missing}"
            )
            return None


def _ollama(settings: Settings, model: str | None) -> Backend:
    from generation.ollama import OllamaBackend

    return OllamaBackend(
        settings.ollama_url,
        model or settings.ollama_model,
        context_tokens=settings.llm_context_tokens,
        keep_alive=settings.ollama_keep_alive,
        timeout=settings.llm_timeout_s,
    )


def _openai(settings: Settings, model: str | None) -> Backend:
    if not settings.openai_url:
        raise ConfigError(
            "ARCHIVIST_LLM=openai needs the server's address: set ARCHIVIST_OPENAI_URL "
            "(e.g. http://127.0.0.1:8080/v1)"
        )
    from generation.openai_compat import OpenAIBackend

    return OpenAIBackend(
        settings.openai_url,
        model or settings.openai_model,
        api_key=settings.openai_api_key,
        context_tokens=settings.llm_context_tokens,
        timeout=settings.llm_timeout_s,
    )


def _embedded(settings: Settings, model: str | None) -> Backend:
    from api.service.models import PROMPT_STATES, gguf_file
    from generation.llamacpp import LlamaCppBackend

    name = model or settings.gguf
    backend = LlamaCppBackend(
        gguf_file(settings, name),
        model=name,
        context_tokens=settings.llm_context_tokens,
        threads=settings.llm_threads,
        parallel=max(1, settings.llm_parallel),
    )
    # Every prompt opens with the same instructions and example: evaluated once per machine and
    # kept in the models folder, a new process reads them (~5 ms) instead (1.4 s of a cold ask).
    try:
        backend.prefill(opening(), settings.models / PROMPT_STATES)
    except GenerationError as error:  # too small a context: each question evaluates it all
        log.info("the prompt's opening was not evaluated in advance: %s", error)
    return backend


def _embedded_plan(settings: Settings) -> dict[str, Any] | None:
    """The embedded model's memory plan from its GGUF header, if the file is already at hand."""
    from api.service.models import find_gguf_file
    from generation.gguf import memory_plan

    path = find_gguf_file(settings, settings.gguf)
    if path is None:
        return None
    return memory_plan(path, settings.llm_context_tokens, max(1, settings.llm_parallel))
