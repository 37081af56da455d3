"""A Backend that answers from a script: for protocol edges the real models cannot be steered to."""

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from generation.backend import Message, Sampling, estimate_tokens


class ScriptedBackend:
    """Implements the Backend protocol: streams a fixed reply word by word, records each request.

    Args:
        reply: the answer text, or a function of the messages that returns it.
        window: the context window it reports.
        gate: when given, every answer waits until it is set (to hold the generation queue).
        word_s: seconds between words (a slow model); `words_sent` counts the words streamed.
    """

    name = "scripted"
    model = "scripted-1"

    def __init__(
        self,
        reply: str | Callable[[list[Message]], str],
        *,
        window: int = 4096,
        gate: threading.Event | None = None,
        word_s: float = 0.0,
    ) -> None:
        self._reply = reply
        self._window = window
        self._gate = gate
        self.requests: list[tuple[list[Message], Sampling]] = []
        self.started = threading.Semaphore(0)
        self._word_s = word_s
        self.words_sent = 0

    def context_window(self) -> int:
        return self._window

    def count_tokens(self, text: str) -> int:
        return estimate_tokens(text)

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]:
        self.requests.append((messages, sampling))
        self.started.release()
        if self._gate is not None:
            self._gate.wait(30)
        text = self._reply(messages) if callable(self._reply) else self._reply
        for index, word in enumerate(text.split(" ")):
            if self._word_s:
                time.sleep(self._word_s)
            self.words_sent += 1
            yield word if index == 0 else " " + word

    def memory_plan(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        pass
