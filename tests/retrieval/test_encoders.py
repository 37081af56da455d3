"""The embedding runtimes: every backend gives torch's vectors, on both of the embedder's paths."""

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from retrieval.embedder import DEFAULT_MODEL, Embedder, resolve_model_path
from retrieval.encoders import (
    FOLDER_BACKENDS,
    Backend,
    TorchEncoder,
    _cuda_available,
    computes_bf16,
    resolve_backend,
    resolve_device,
)
from retrieval.errors import EmbedderUnavailable
from retrieval.onnx_export import (
    FP32_FILE,
    INT8_FILE,
    ExportStopped,
    export_name,
    exported_model,
)

TEXTS = [
    "The tower is 21 metres tall, built of granite blocks, with 112 steps to the lantern room.",
    "Water the tomatoes every morning before eight, and the beans at dusk.",
    "Net revenue for fiscal 2022 was $4.2 billion, up 8% from the prior year, driven by "
    "growth in the services segment and partly offset by lower hardware sales in Europe.",
    "How do I reset the router?",
    "Kelp",
    " ".join(f"word{n}" for n in range(400)),  # longer than the model reads: truncated alike
]


@pytest.fixture(scope="module")
def embedders(model_dir: Path) -> Iterator[dict[str, Embedder]]:
    loaded = {
        backend: Embedder(
            DEFAULT_MODEL,
            backend=backend,  # type: ignore[arg-type]
            device="cpu",
            batch_size=4,
            onnx_cache=model_dir / "onnx",
        )
        for backend in FOLDER_BACKENDS
    }
    yield loaded
    for embedder in loaded.values():
        embedder.close()


@pytest.mark.parametrize("backend", FOLDER_BACKENDS)
def test_each_backend_gives_unit_vectors_close_to_torch(
    embedders: dict[str, Embedder], backend: Backend
) -> None:
    vectors = embedders[backend].encode(TEXTS)
    reference = embedders["torch"].encode(TEXTS)
    assert vectors.shape == (len(TEXTS), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = (vectors * reference).sum(axis=1)
    assert cosines.min() >= 0.99, cosines


@pytest.mark.parametrize("backend", FOLDER_BACKENDS)
def test_a_query_embeds_as_it_would_in_a_batch(
    embedders: dict[str, Embedder], backend: Backend
) -> None:
    """The query thread's one-thread runtime, and batching texts of different lengths
    together (sorted by length, padded), change nothing beyond float rounding."""
    embedder = embedders[backend]
    batch = embedder.encode(TEXTS)
    for text, row in zip(TEXTS, batch, strict=True):
        assert float(embedder.encode_query(text) @ row) > 0.9999


def test_torch_gives_sentence_transformers_own_vectors(embedders: dict[str, Embedder]) -> None:
    """The torch backend tokenizes and runs the model's modules itself (faster on a GPU):
    in fp32 its vectors are those of sentence-transformers' `encode`, the reference for the
    others; in the precision it chooses (bf16 on a CPU that computes it), within 0.9995."""
    import torch
    from sentence_transformers import SentenceTransformer

    folder = resolve_model_path(DEFAULT_MODEL)
    reference = SentenceTransformer(str(folder), device="cpu").encode(
        TEXTS, batch_size=4, normalize_embeddings=True
    )
    full = TorchEncoder(folder, "cpu", half=False)
    assert full.dtype == torch.float32
    assert ((full.encode(TEXTS, 4) * reference).sum(axis=1)).min() > 0.99999
    cosines = (embedders["torch"].encode(TEXTS) * reference).sum(axis=1)
    assert cosines.min() > 0.9995, cosines


def test_on_a_cpu_torch_runs_in_bf16_where_the_cpu_computes_it() -> None:
    """bf16 on a CPU with bf16 arithmetic of its own (about twice fp32's speed there),
    fp32 on one that would emulate it; `half=False` keeps fp32 anywhere."""
    import torch

    folder = resolve_model_path(DEFAULT_MODEL)
    chosen = TorchEncoder(folder, "cpu")
    assert chosen.dtype == (torch.bfloat16 if computes_bf16() else torch.float32)
    assert TorchEncoder(folder, "cpu", half=False).dtype == torch.float32


def test_the_export_is_made_once_and_reused(model_dir: Path, tmp_path: Path) -> None:
    folder = resolve_model_path(DEFAULT_MODEL)
    int8 = exported_model(folder, quantized=True, cache=model_dir / "onnx")
    fp32 = exported_model(folder, quantized=False, cache=model_dir / "onnx")
    assert (int8.name, fp32.name) == (INT8_FILE, FP32_FILE) and int8.parent == fp32.parent
    made = int8.stat().st_mtime_ns
    assert (
        exported_model(folder, quantized=True, cache=model_dir / "onnx").stat().st_mtime_ns == made
    )
    operators = {node.op_type for node in onnx.load(str(int8), load_external_data=False).graph.node}
    assert {"MatMulInteger", "QAttention", "DynamicQuantizeLinear"} <= operators
    assert not [p for p in (model_dir / "onnx").iterdir() if p.name.startswith(".export-")]


def test_a_model_changed_in_place_never_reuses_the_old_export(tmp_path: Path) -> None:
    """The export's folder is named after the model's path and weights: a copy elsewhere is
    another model, and so is the copy once its weights are rewritten in place (same size)."""
    import shutil

    copy = tmp_path / "minilm"
    shutil.copytree(resolve_model_path(DEFAULT_MODEL), copy)
    copied = export_name(copy)
    assert copied != export_name(resolve_model_path(DEFAULT_MODEL))
    weights = copy / "model.safetensors"
    changed = bytearray(weights.read_bytes())
    changed[-1] ^= 1
    weights.write_bytes(changed)
    assert export_name(copy) != copied


def test_an_export_stops_when_asked_and_keeps_nothing(tmp_path: Path) -> None:
    folder, cache = resolve_model_path(DEFAULT_MODEL), tmp_path / "onnx"
    with pytest.raises(ExportStopped, match="export was stopped"):
        exported_model(folder, quantized=True, cache=cache, stop=lambda: True)
    assert not list(cache.iterdir())


def test_a_failed_export_says_why(tmp_path: Path) -> None:
    import shutil

    broken = tmp_path / "minilm"
    shutil.copytree(resolve_model_path(DEFAULT_MODEL), broken)
    (broken / "config.json").write_text("{}")
    with pytest.raises(EmbedderUnavailable, match=r"could not export .*Unrecognized model"):
        exported_model(broken, quantized=True, cache=tmp_path / "onnx")
    assert not list((tmp_path / "onnx").iterdir())


def test_half_precision_is_fp16_where_the_model_fits_in_it() -> None:
    """On a GPU the torch backend runs in half precision; the same choice is made here on the
    CPU, which runs fp16 too (slowly)."""
    import torch

    folder = resolve_model_path(DEFAULT_MODEL)
    full = TorchEncoder(folder, "cpu", half=False).encode(TEXTS, 4)
    half = TorchEncoder(folder, "cpu", half=True)
    assert half.dtype == torch.float16
    assert ((half.encode(TEXTS, 4) * full).sum(axis=1)).min() > 0.999


def test_a_model_that_overflows_fp16_runs_in_bf16(tmp_path: Path) -> None:
    """EmbeddingGemma-300M's activations overflow fp16 (every vector NaN). Here MiniLM with one
    layer's output made 10^5 times larger overflows the same way — in fp32 and bf16 the layer
    norm after it takes the scale away again."""
    import shutil

    import torch
    from safetensors.torch import load_file, save_file
    from sentence_transformers import SentenceTransformer

    folder = tmp_path / "loud-minilm"
    shutil.copytree(resolve_model_path(DEFAULT_MODEL), folder)
    weights = load_file(str(folder / "model.safetensors"))
    for name in ("encoder.layer.0.output.dense.weight", "encoder.layer.0.output.dense.bias"):
        weights[name] = weights[name] * 1e5
    save_file(weights, str(folder / "model.safetensors"))
    full = TorchEncoder(folder, "cpu", half=False).encode(TEXTS, 4)
    assert np.isfinite(full).all()
    in_fp16 = SentenceTransformer(str(folder), device="cpu").half()
    assert np.isnan(in_fp16.encode(TEXTS, batch_size=4)).all()  # the overflow is real
    half = TorchEncoder(folder, "cpu", half=True)
    assert half.dtype == torch.bfloat16
    assert ((half.encode(TEXTS, 4) * full).sum(axis=1)).min() > 0.99


def test_cuda_asked_for_without_a_gpu_is_a_clear_error() -> None:
    if _cuda_available():
        pytest.skip("this machine has a CUDA GPU")
    with pytest.raises(EmbedderUnavailable, match="ARCHIVIST_DEVICE=cuda, but torch sees no"):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"


def test_the_onnx_backends_refuse_a_gpu_and_auto_picks_per_device() -> None:
    with pytest.raises(EmbedderUnavailable, match="runs on the CPU only"):
        resolve_backend("onnx-int8", "cuda")
    assert resolve_backend("auto", "cpu") == "onnx-int8"
    assert resolve_backend("auto", "cuda") == "torch"
    assert resolve_backend("onnx", "cpu") == "onnx"


def test_cuda_from_the_command_line_fails_with_one_line(tmp_path: Path) -> None:
    if _cuda_available():
        pytest.skip("this machine has a CUDA GPU")
    import subprocess
    import sys

    env = {**os.environ, "ARCHIVIST_DATA": str(tmp_path / "data"), "ARCHIVIST_DEVICE": "cuda"}
    done = subprocess.run(
        [sys.executable, "-m", "api.main", "search", "tomatoes"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "Error: ARCHIVIST_DEVICE=cuda, but torch sees no CUDA GPU" in done.stderr
    assert "Traceback" not in done.stderr
