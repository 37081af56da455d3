"""Settings from the environment: a bad value is reported by its variable, and only it; settings
that cannot work together are refused by the service."""

import os
import re
from pathlib import Path
from typing import Any

import pytest

from api.service import Archivist, ConfigError, Settings, load_settings

WAY_OUT = " — fix or unset it (see `api/service/settings.py` for every setting)"
NOT_AN_INTEGER = "Input should be a valid integer, unable to parse string as an integer"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The environment without the ARCHIVIST_* variables of whoever runs the tests."""
    for name in os.environ:
        if name.startswith("ARCHIVIST_"):
            monkeypatch.delenv(name)
    return monkeypatch


@pytest.mark.parametrize(
    "bad",
    [
        {"ARCHIVIST_CHUNK_TOKENS": "abc"},
        {"ARCHIVIST_WORKERS": "abc"},  # the value the memory limit's default is made from
        {"ARCHIVIST_CHUNK_TOKENS": "abc", "ARCHIVIST_WORKERS": "two"},
    ],
    ids=lambda bad: "+".join(bad),
)
def test_only_the_bad_values_are_reported(environment: pytest.MonkeyPatch, bad: dict) -> None:
    for name, value in bad.items():
        environment.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    # Before: each also said "ARCHIVIST_CONVERT_MEMORY_MB='': The default factory uses
    # validated data, but at least one validation error occurred", a setting never given.
    expected = "; ".join(f"{name}={value!r}: {NOT_AN_INTEGER}" for name, value in bad.items())
    assert str(raised.value) == expected + WAY_OUT


def test_a_bad_value_given_for_the_memory_limit_is_still_reported(
    environment: pytest.MonkeyPatch,
) -> None:
    environment.setenv("ARCHIVIST_WORKERS", "abc")
    environment.setenv("ARCHIVIST_CONVERT_MEMORY_MB", "1")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value) == (
        f"ARCHIVIST_WORKERS='abc': {NOT_AN_INTEGER}; ARCHIVIST_CONVERT_MEMORY_MB='1': Input "
        "should be greater than or equal to 256" + WAY_OUT
    )


@pytest.mark.parametrize(
    ("qdrant", "said"),
    [
        ({"keyword": "qdrant"}, "ARCHIVIST_KEYWORD=qdrant keeps the BM25 leg on a Qdrant server"),
        ({"replica": True}, "ARCHIVIST_REPLICA=true answers from a collection"),
        (
            {"replica": True, "qdrant_url": "http://127.0.0.1:9"},
            "set ARCHIVIST_QDRANT_URL and ARCHIVIST_KEYWORD=qdrant",
        ),  # fmt: skip
    ],
)
def test_qdrant_settings_that_cannot_work_together_are_refused(
    tmp_path: Path, qdrant: dict[str, Any], said: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(said)):
        Archivist(Settings(data=tmp_path, llm="none", **qdrant))


@pytest.mark.parametrize(
    ("variables", "method", "weights"),
    [
        ({}, "blend", {"bm25": 0.45, "dense": 0.55}),  # measured with the default MiniLM
        ({"ARCHIVIST_EMBED_MODEL": "embeddinggemma-300m"}, "score", {"bm25": 1.0, "dense": 1.0}),
        ({"ARCHIVIST_EMBED_MODEL": "nomic-embed-text-v1.5", "ARCHIVIST_FUSION": "blend"},
         "blend", {"bm25": 0.45, "dense": 0.55}),
        ({"ARCHIVIST_EMBED_MODEL": "/models/other", "ARCHIVIST_DENSE_WEIGHT": "2"},
         "score", {"bm25": 1.0, "dense": 2.0}),
        ({"ARCHIVIST_FUSION": "rrf", "ARCHIVIST_BM25_WEIGHT": "0.3"},
         "rrf", {"bm25": 0.3, "dense": 1.0}),
        # MiniLM-L6 by other names: through Ollama, as a folder, as a GGUF file
        ({"ARCHIVIST_EMBED_MODEL": "all-minilm", "ARCHIVIST_EMBED_BACKEND": "ollama"},
         "blend", {"bm25": 0.45, "dense": 0.55}),
        ({"ARCHIVIST_EMBED_MODEL": "/models/all-MiniLM-L6-v2"},
         "blend", {"bm25": 0.45, "dense": 0.55}),
        ({"ARCHIVIST_EMBED_MODEL": "/m/all-MiniLM-L6-v2-f16.gguf"},
         "blend", {"bm25": 0.45, "dense": 0.55}),
        ({"ARCHIVIST_EMBED_MODEL": "all-minilm:l12-v2", "ARCHIVIST_EMBED_BACKEND": "ollama"},
         "score", {"bm25": 1.0, "dense": 1.0}),
    ],
)  # fmt: skip
def test_the_fusion_is_the_embedding_models_unless_set(
    environment: pytest.MonkeyPatch, variables: dict[str, str], method: str, weights: dict
) -> None:
    for name, value in variables.items():
        environment.setenv(name, value)
    settings = load_settings()
    assert (settings.fusion_method, settings.fusion_weights) == (method, weights)
