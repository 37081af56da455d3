"""Ollama backend: chat through the official client, the context window sent with every request."""

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any, cast

import httpx
import ollama

from generation.backend import Message, Sampling, estimate_tokens
from generation.errors import BackendTimeout, BackendUnavailable, GenerationError, ModelMissing


class OllamaBackend:
    """A model served by Ollama; on open, `show` caps the window at the model's trained length."""

    name = "ollama"

    def __init__(
        self,
        url: str,
        model: str,
        *,
        context_tokens: int,
        keep_alive: str | None,
        timeout: float,
    ) -> None:
        self.url = url
        self.model = model
        self._keep_alive = keep_alive
        self._timeout = timeout
        self._client = ollama.Client(host=url, timeout=timeout)
        try:
            with self._errors():
                trained = _trained_context(self._client.show(model))
        except GenerationError:
            self._client.close()
            raise
        self._num_ctx = min(context_tokens, trained) if trained else context_tokens

    def context_window(self) -> int:
        """The num_ctx sent with every request: the configured size, capped by the trained one."""
        return self._num_ctx

    def count_tokens(self, text: str) -> int:
        """A conservative estimate: Ollama has no tokenize endpoint."""
        return estimate_tokens(text)

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]:
        """Stream the chat answer piece by piece."""
        with self._errors():
            # A generator, though the client types it as an Iterator.
            parts = cast(
                Generator[ollama.ChatResponse, None, None],
                self._client.chat(
                    model=self.model,
                    messages=messages,
                    stream=True,
                    options=self._options(sampling),
                    keep_alive=self._keep_alive,
                ),
            )
            done = False
            try:
                for part in parts:
                    if part.message.content:
                        yield part.message.content
                    done = bool(part.done)
            finally:
                # Closing the response when the caller stops early makes Ollama stop generating.
                parts.close()
            if not done:  # the body ended properly, but before Ollama's final done=true line
                raise BackendUnavailable(
                    f"the answer from Ollama at {self.url} stopped before it was finished — check "
                    "that `ollama serve` is still running (and any proxy in between)"
                )

    def memory_plan(self) -> dict[str, Any] | None:
        """What `ollama ps` reports for this model once it is loaded, else None; never raises."""
        try:
            with self._errors():
                loaded = self._client.ps().models
        except GenerationError:
            return None
        for entry in loaded:
            if _same_model(entry.model or entry.name or "", self.model):
                return {
                    "total_bytes": entry.size,
                    "gpu_bytes": entry.size_vram,
                    "context_tokens": entry.context_length,
                }
        return None

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def _options(self, sampling: Sampling) -> dict[str, Any]:
        # num_ctx goes out every time: without it Ollama uses its own small default window and
        # silently cuts the front of longer prompts, which is where the sources are.
        options = {
            "num_ctx": self._num_ctx,
            "temperature": sampling.temperature,
            "num_predict": sampling.max_tokens,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "seed": sampling.seed,
        }
        return {key: value for key, value in options.items() if value is not None}

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate client and transport errors into generation errors that say what to do."""
        try:
            yield
        # A streamed request lets httpx.ConnectError through; a plain one turns it into
        # the builtin ConnectionError.
        except (ConnectionError, httpx.ConnectError):
            raise BackendUnavailable(
                f"Ollama is not reachable at {self.url} — start it with `ollama serve` "
                "or set ARCHIVIST_OLLAMA_URL"
            ) from None
        except httpx.TimeoutException:
            raise BackendTimeout(
                f"Ollama at {self.url} did not answer within {self._timeout:g} s "
                f"(model '{self.model}') — raise ARCHIVIST_LLM_TIMEOUT_S or use a smaller model"
            ) from None
        except ollama.ResponseError as exc:
            raise _response_error(exc, self.url, self.model) from None
        except httpx.HTTPError as exc:
            raise BackendUnavailable(
                f"lost the connection to Ollama at {self.url} ({exc}) — check that `ollama serve` "
                "is still running"
            ) from None


def ollama_has_model(url: str, model: str, timeout: float) -> bool:
    """True when Ollama answers at `url` and has `model` pulled; never raises."""
    try:
        with ollama.Client(host=url, timeout=timeout) as client:
            listed = client.list().models
    except (ConnectionError, httpx.HTTPError, httpx.InvalidURL, ollama.ResponseError, ValueError):
        return False
    return any(_same_model(entry.model or "", model) for entry in listed)


def _trained_context(shown: ollama.ShowResponse) -> int | None:
    """The "<arch>.context_length" from the model's GGUF metadata, or None if not reported."""
    info = shown.modelinfo or {}
    arch = info.get("general.architecture")
    length = info.get(f"{arch}.context_length")
    if length is None:  # an architecture key we do not know: any *.context_length will do
        length = next((v for k, v in info.items() if k.endswith(".context_length")), None)
    return int(length) if length else None


def _same_model(listed: str, wanted: str) -> bool:
    """Ollama names without a tag mean ":latest": "qwen2.5" and "qwen2.5:latest" are one model."""
    return _with_tag(listed) == _with_tag(wanted)


def _with_tag(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def _response_error(exc: ollama.ResponseError, url: str, model: str) -> GenerationError:
    """A server error as the right generation error; a 404 about a model means it is not pulled."""
    if exc.status_code == 404 and "model" in exc.error.lower():
        return ModelMissing(f"model '{model}' is not pulled — run `ollama pull {model}`")
    if exc.status_code == 404:
        return GenerationError(
            f"{url} answered 404 to an Ollama request ({exc.error}) — does ARCHIVIST_OLLAMA_URL "
            "point at an Ollama server?"
        )
    return GenerationError(f"Ollama at {url} failed on model '{model}': {exc.error}")
