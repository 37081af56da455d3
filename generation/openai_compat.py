"""OpenAI-compatible backend: llama.cpp's llama-server, vLLM, LM Studio, LocalAI and the like."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

import openai
from openai.types.chat import ChatCompletionMessageParam

from generation.backend import Message, Sampling, estimate_tokens
from generation.errors import BackendTimeout, BackendUnavailable, GenerationError, ModelMissing

T = TypeVar("T")

# Local servers ignore the key, but the client refuses to start without one.
_NO_KEY = "sk-no-key-required"


class OpenAIBackend:
    """A model behind an OpenAI-style /v1/chat/completions endpoint, streamed."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None,
        context_tokens: int,
        timeout: float,
    ) -> None:
        self.base_url = base_url
        self.model = model
        self._context_tokens = context_tokens
        self._timeout = timeout
        # No retries: each would wait the full timeout again, and the caller owns the time limit.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key or _NO_KEY, timeout=timeout, max_retries=0
        )

    def context_window(self) -> int:
        """The configured context size: the OpenAI API does not report the server's."""
        return self._context_tokens

    def count_tokens(self, text: str) -> int:
        """A conservative estimate: the API has no portable tokenize endpoint."""
        return estimate_tokens(text)

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]:
        """Stream the chat completion piece by piece."""
        with self._errors():
            chunks = self._client.chat.completions.create(
                model=self.model,
                messages=cast(list[ChatCompletionMessageParam], messages),
                stream=True,
                temperature=sampling.temperature,
                max_tokens=sampling.max_tokens,
                top_p=_or_omit(sampling.top_p),
                seed=_or_omit(sampling.seed),
                # Not in OpenAI's schema; llama.cpp, vLLM and LM Studio read them from the body.
                extra_body=_extra(sampling),
            )
            finished = False
            try:
                for chunk in chunks:
                    if chunk.choices and chunk.choices[0].delta.content:
                        yield chunk.choices[0].delta.content
                    finished = finished or bool(chunk.choices and chunk.choices[0].finish_reason)
            finally:
                # Closing the response when the caller stops early lets the server stop generating.
                chunks.close()
            if not finished:  # the body ended properly, but no choice said why it stopped
                raise BackendUnavailable(
                    f"the answer from the server at {self.base_url} stopped before it was "
                    "finished (no finish_reason) — check that the server is still running"
                )

    def memory_plan(self) -> dict[str, Any] | None:
        """Unknown: the OpenAI API says nothing about the server's memory."""
        return None

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate client errors into generation errors that say what to do."""
        try:
            yield
        except openai.APITimeoutError:  # before APIConnectionError, its base class
            raise BackendTimeout(
                f"the server at {self.base_url} did not answer within {self._timeout:g} s "
                f"(model '{self.model}') — raise ARCHIVIST_LLM_TIMEOUT_S or use a smaller model"
            ) from None
        except openai.APIConnectionError:
            raise BackendUnavailable(
                f"no OpenAI-compatible server is reachable at {self.base_url} — start it "
                "(e.g. `llama-server -m MODEL.gguf --port 8080`) or set ARCHIVIST_OPENAI_URL"
            ) from None
        except openai.NotFoundError as exc:
            raise _not_found(exc, self.base_url, self.model) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise GenerationError(
                f"the server at {self.base_url} refused the API key (HTTP {exc.status_code}): "
                f"{_server_message(exc)} — set ARCHIVIST_OPENAI_API_KEY"
            ) from None
        except openai.APIStatusError as exc:
            raise GenerationError(
                f"the server at {self.base_url} refused model '{self.model}' "
                f"(HTTP {exc.status_code}): {_server_message(exc)}"
            ) from None
        except openai.APIError as exc:  # an error event in the middle of a stream
            raise GenerationError(
                f"the server at {self.base_url} failed on model '{self.model}': "
                f"{_server_message(exc)}"
            ) from None


def _or_omit(value: T | None) -> T | openai.Omit:
    """Leave unset options out of the request, so servers keep their own defaults."""
    return openai.omit if value is None else value


def _not_found(exc: openai.NotFoundError, base_url: str, model: str) -> GenerationError:
    """A 404 about the model means it is not served; any other means the URL is wrong."""
    message = _server_message(exc)
    if "model" in message.lower():
        return ModelMissing(
            f"model '{model}' is not served at {base_url} ({message}) — load it on the server "
            f"or set ARCHIVIST_OPENAI_MODEL to one listed at {base_url.rstrip('/')}/models"
        )
    return GenerationError(
        f"{base_url} has no chat completions endpoint ({message}) — ARCHIVIST_OPENAI_URL "
        "usually ends in /v1"
    )


def _server_message(exc: openai.APIError) -> str:
    """The server's own words: OpenAI-style {"message": ...} bodies, else the client's text."""
    body = exc.body
    if isinstance(body, dict):
        body = body.get("message") or body.get("error") or body.get("detail") or body
    return str(body) if body else exc.message


def _extra(sampling: Sampling) -> dict[str, Any] | None:
    """Sampling options outside OpenAI's schema (llama.cpp's server reads top_k)."""
    return {"top_k": sampling.top_k} if sampling.top_k is not None else None
