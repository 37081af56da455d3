"""The question path compiled ahead of time: the same vectors, made once per machine, and
nothing changed when compiling fails or is stopped."""

import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from api.service import Archivist, Settings
from retrieval.compiled_queries import CompileStopped, compiled_package, package_name
from retrieval.embedder import DEFAULT_MODEL, Embedder, resolve_model_path
from retrieval.encoders import computes_bf16

QUESTIONS = [
    "How often is the lighthouse lens cleaned?",
    "when should I water the vegetables",
    "What was the company's revenue growth in 2022?",
    "Kelp",
    " ".join(f"word{n}" for n in range(400)),  # longer than the model reads: truncated alike
]
_COMPILE_S = 900  # two busy cores: about a minute for MiniLM, several beside other tests


def _torch_embedder(model_dir: Path) -> Embedder:
    return Embedder(DEFAULT_MODEL, backend="torch", batch_size=4, onnx_cache=model_dir / "onnx")


@pytest.fixture
def embedder(model_dir: Path) -> Iterator[Embedder]:
    opened = _torch_embedder(model_dir)
    yield opened
    opened.close()


def _package(cache: Path) -> Path:
    dtype = "bfloat16" if computes_bf16() else "float32"
    return cache / package_name(resolve_model_path(DEFAULT_MODEL), dtype)


def test_compiled_questions_embed_as_the_model_does(
    embedder: Embedder, model_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = np.stack([embedder.encode_query(q) for q in QUESTIONS])
    cache = model_dir / "compiled"
    assert embedder.compile_queries(cache).result(timeout=_COMPILE_S) is True
    after = np.stack([embedder.encode_query(q) for q in QUESTIONS])
    assert (after * before).sum(axis=1).min() > 0.999
    assert not np.array_equal(after, before)  # the compiled path answered, not the model's
    # A second process of this machine loads the package instead of compiling again, and
    # leaves nothing in the temporary folder (torch unpacks a .pt2 file there at each load).
    unpacked = set(Path(tempfile.gettempdir()).glob("aotinductor_*"))
    caplog.clear()
    again = _torch_embedder(model_dir)
    try:
        assert again.compile_queries(cache).result(timeout=_COMPILE_S) is True
        assert np.array_equal(np.stack([again.encode_query(q) for q in QUESTIONS]), after)
    finally:
        again.close()
    assert "Compiling" not in caplog.text
    assert set(Path(tempfile.gettempdir()).glob("aotinductor_*")) == unpacked
    assert [p.name for p in cache.iterdir() if p.name.startswith(".compile-")] == []


def test_a_damaged_package_leaves_questions_uncompiled(
    embedder: Embedder, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = np.stack([embedder.encode_query(q) for q in QUESTIONS])
    cache = tmp_path / "compiled"
    cache.mkdir()
    _package(cache).mkdir(parents=True)  # a package folder that lost its files
    (_package(cache) / "archive_format").write_text("pt2")
    assert embedder.compile_queries(cache).result(timeout=_COMPILE_S) is False
    assert "questions stay uncompiled" in caplog.text
    assert "ARCHIVIST_EMBED_COMPILE=off" in caplog.text  # the way out
    assert np.array_equal(np.stack([embedder.encode_query(q) for q in QUESTIONS]), before)


def test_closing_the_embedder_stops_its_compile_and_keeps_nothing(
    embedder: Embedder, tmp_path: Path
) -> None:
    cache = tmp_path / "compiled"
    compiled = embedder.compile_queries(cache)
    time.sleep(1)  # the child has started
    embedder.close()
    assert compiled.result(timeout=30) is False
    assert list(cache.iterdir()) == []


def test_a_stopped_compile_says_so_and_clears_what_the_dead_left(tmp_path: Path) -> None:
    """A process killed while compiling leaves its scratch package (hundreds of MB) behind:
    the next compile removes it, and only it."""
    dead = _exited_pid()
    abandoned = tmp_path / f".compile-{dead}-x1y2"
    (abandoned / "package").mkdir(parents=True)
    (abandoned / "package" / "half.so").write_bytes(b"half a package")
    running = tmp_path / f".compile-{os.getpid()}-z3"  # a compile under way here
    running.mkdir()
    with pytest.raises(CompileStopped):
        compiled_package(resolve_model_path(DEFAULT_MODEL), "float32", tmp_path, lambda: True)
    assert [p.name for p in tmp_path.iterdir()] == [running.name]


def _exited_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_status_tells_how_questions_are_embedded(tmp_path: Path) -> None:
    """`on` compiles in any process; `auto` only where the process stays up (serve, watch:
    the warm-up that loads the model), and says nothing where nothing was compiled."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "lens.md").write_text("# Lens\n\nThe lens is cleaned every Tuesday morning.\n")
    base = dict(workers=2, llm="none", embed_backend="torch")  # models: the session's
    with Archivist(Settings(data=tmp_path / "auto", **base)) as service:  # type: ignore[arg-type]
        service.ingest([folder])
        assert "Tuesday" in service.search("lens cleaned", k=1, mode="dense")[0].text
        assert "questions" not in service.status()["embedder"]
        service.indexes.load_embedder(stop=lambda: False)  # as the watcher's warm-up does
        assert service.status()["embedder"]["questions"] in ("compiling", "compiled")
    settings = Settings(data=tmp_path / "on", embed_compile="on", **base)  # type: ignore[arg-type]
    with Archivist(settings) as service:
        service.ingest([folder])
        compiled = service.indexes.embedder.queries_compiled
        assert compiled is not None and compiled.result(timeout=_COMPILE_S) is True
        assert service.status()["embedder"]["questions"] == "compiled"
        assert "Tuesday" in service.search("lens cleaned", k=1, mode="dense")[0].text
