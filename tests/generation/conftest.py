"""Generation fixtures: a llama.cpp backend on the packaged SmolLM2 (see tests/conftest.py)."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from generation.llamacpp import LlamaCppBackend


@pytest.fixture(scope="session")
def smollm2_backend(smollm2_gguf: Path) -> Iterator[LlamaCppBackend]:
    """One llama.cpp backend on SmolLM2 for the whole session (loading takes about a second)."""
    backend = LlamaCppBackend(smollm2_gguf, model="smollm2-135m", context_tokens=2048, threads=2)
    yield backend
    backend.close()
