"""The runtimes that turn texts into unit vectors: PyTorch, ONNX Runtime in fp32 or int8, and
llama.cpp.

The first three run a sentence-transformers model from its local folder; the ONNX files are
exported from that folder on this machine (`retrieval/onnx_export.py`), never downloaded.
ONNX Runtime needs neither torch nor sentence-transformers at run time: a command that only
searches starts in a fraction of a second instead of ~4.5 s of imports. llama.cpp runs GGUF
embedding models (nomic-embed-text-v1.5), and a running Ollama serves its own embedding models.
"""

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np

from retrieval.embedding_models import EmbeddingModel, Runtime, max_tokens
from retrieval.errors import EmbedderUnavailable

Backend = Literal["torch", "onnx", "onnx-int8", "llamacpp", "ollama"]
BACKENDS: tuple[str, ...] = get_args(Backend)
FOLDER_BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8")  # sentence-transformers
Device = Literal["cpu", "cuda"]
_OLLAMA_TIMEOUT_S = 120.0  # a first call waits for Ollama to load the model


class Encoder(Protocol):
    """One loaded model runtime."""

    def encode(self, texts: list[str], batch_size: int) -> Any:
        """float32 array, one unit-length row per text."""
        ...

    def for_queries(self) -> "Encoder":
        """A runtime for one short text at a time, on one thread; called on the thread that
        will use it."""
        ...


def resolve_device(setting: str) -> Device:
    """`auto`, `cpu` or `cuda` to the device that will run the model.

    `auto` looks for an NVIDIA driver before importing torch, so machines without one never
    pay for torch's import just to learn that.
    """
    if setting == "cpu":
        return "cpu"
    if setting == "cuda":
        if not _cuda_available():
            raise EmbedderUnavailable(
                "ARCHIVIST_DEVICE=cuda, but torch sees no CUDA GPU on this machine (no NVIDIA "
                "driver, or a CPU-only torch build) — set ARCHIVIST_DEVICE=cpu or auto"
            )
        return "cuda"
    return "cuda" if _nvidia_driver_present() and _cuda_available() else "cpu"


def resolve_backend(
    setting: str,
    device: Device,
    runtime: Runtime = "sentence-transformers",
    *,
    exports: bool = True,
) -> Backend:
    """`auto` is llama.cpp for a GGUF model; for a sentence-transformers folder, torch in fp16
    on a GPU and ONNX Runtime int8 on CPUs: the measured winner on CPUs (README, "Embedding
    speed") — torch there too for a model known not to export to ONNX (`exports` False)."""
    if setting not in (*BACKENDS, "auto"):
        raise EmbedderUnavailable(f"unknown embedding backend '{setting}' — one of {BACKENDS}")
    if setting == "ollama":  # the model is whatever Ollama serves under that name
        return "ollama"
    if runtime == "gguf":
        if setting not in ("auto", "llamacpp"):
            raise EmbedderUnavailable(
                f"a GGUF embedding model runs on llama.cpp, not {setting} — set "
                "ARCHIVIST_EMBED_BACKEND=auto (or llamacpp), or name a sentence-transformers model"
            )
        return "llamacpp"
    if setting == "llamacpp":
        raise EmbedderUnavailable(
            "ARCHIVIST_EMBED_BACKEND=llamacpp runs GGUF embedding models — name one in "
            "ARCHIVIST_EMBED_MODEL (nomic-embed-text-v1.5, or a .gguf file), or set auto"
        )
    if setting == "auto":
        return "torch" if device == "cuda" or not exports else "onnx-int8"
    if device == "cuda" and setting != "torch":
        raise EmbedderUnavailable(
            f"the {setting} backend runs on the CPU only — use ARCHIVIST_EMBED_BACKEND=torch "
            "(or auto) with ARCHIVIST_DEVICE=cuda, or ARCHIVIST_DEVICE=cpu"
        )
    return setting  # type: ignore[return-value]


def load_encoder(
    model: EmbeddingModel,
    backend: Backend,
    device: Device,
    onnx_cache: Path,
    *,
    half: bool | None = None,
) -> Encoder:
    """The model on the chosen runtime (ONNX files exported once into the cache); `half` is
    torch's precision (`TorchEncoder`)."""
    if backend == "ollama":
        assert model.url is not None
        return OllamaEncoder(model.url, model.name, timeout=_OLLAMA_TIMEOUT_S)
    assert model.path is not None
    if backend == "llamacpp":
        return LlamaEncoder(model.path, context=model.max_tokens, threads=_cores())
    if backend == "torch":
        return TorchEncoder(model.path, device, half=half)
    file = onnx_model_file(model.path, backend, onnx_cache)
    return OnnxEncoder(file, model.path, threads=_cores())


def onnx_model_file(
    folder: Path, backend: Backend, onnx_cache: Path, stop: Callable[[], bool] = lambda: False
) -> Path:
    """The ONNX file an ONNX backend runs, exported into the cache on first use (an export
    under way ends with ExportStopped once `stop()` is true)."""
    from retrieval.onnx_export import exported_model

    return exported_model(folder, quantized=backend == "onnx-int8", cache=onnx_cache, stop=stop)


# A text to find out whether a model's activations fit in fp16.
_PROBE = "The lighthouse lens is cleaned every Tuesday morning with distilled water."


class TorchEncoder:
    """sentence-transformers on PyTorch, in half precision where the hardware computes in it
    (`half`; `None` decides by the device):
    - on a GPU, fp16, the measured winner for MiniLM on an H100 — unless the model's
      activations overflow it. EmbeddingGemma-300M's do (every vector NaN in fp16); in bf16
      its vectors keep a cosine of 0.99994 to fp32. A probe text decides, so any folder gets
      the half precision it can run in.
    - on a CPU that computes bf16 itself (AVX-512 BF16 or AMX), bf16. On two such cores (AMD
      EPYC, `bench/embed.py`) EmbeddingGemma embedded a question in 41 ms against 84 in fp32
      (p50, squad-dev's questions) with the same dense nDCG@10 (squad-dev 0.8756 / 0.8753, cisi
      0.4596 / 0.4577) and 3.5 chunks/s against 1.3 in batches of 16; MiniLM 44 against 32.
      Vectors keep a mean cosine of 0.9999 to fp32's; bf16 keeps fp32's range, so nothing
      overflows. Other CPUs emulate bf16 (slower than fp32) and stay in fp32.

    Texts are tokenized by the model's own fast tokenizer and fed to the model's modules
    directly: sentence-transformers' `encode` built its tensors from Python lists, holding the
    interpreter for as long as the H100 took to embed them, so the threads that read SQLite
    and write the indexes beside it waited (pipeline 0.51-0.63 of the raw model). The vectors
    are the same: padding is masked out of attention and of the mean.
    """

    def __init__(self, folder: Path, device: Device, *, half: bool | None = None) -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.logging.disable_progress_bar()

        def load(dtype: torch.dtype) -> Any:
            return SentenceTransformer(str(folder), device=device).to(dtype).eval()

        self._device, self._folder = device, folder
        self._compiled: Any = None  # the compiled transformer, once `compile` has run
        self._tokenizer = _tokenizer(folder)
        self.dtype = _precision(device, half)
        self._model: Any = load(self.dtype)
        if self.dtype == torch.float16 and not np.isfinite(self.encode([_PROBE], 1)).all():
            self.dtype = torch.bfloat16  # from the stored weights: fp16 may have lost some
            self._model = load(self.dtype)

    def encode(self, texts: list[str], batch_size: int) -> Any:
        import torch

        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))  # little padding
        vectors = np.empty((len(texts), 0), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            features = self._features([texts[i] for i in rows])
            with torch.inference_mode():
                pooled = self._forward(features)["sentence_embedding"]
                unit = torch.nn.functional.normalize(pooled.float(), dim=1).cpu().numpy()
            if vectors.shape[1] == 0:
                vectors = np.empty((len(texts), unit.shape[1]), dtype=np.float32)
            vectors[rows] = unit
        return vectors

    def for_queries(self) -> "TorchEncoder":
        """The same weights, and a forward of its own that `compile` can replace; torch keeps
        a thread pool per calling thread, so one torch thread here leaves the bulk thread's
        pool as it was."""
        import torch

        torch.set_num_threads(1)
        return copy.copy(self)

    def compile(self, cache: Path, stop: Callable[[], bool] = lambda: False) -> None:
        """Embed single texts through the model's transformer compiled ahead of time
        (`retrieval/compiled_queries.py`: compiled into `cache` once for this machine, in a
        child process, about a minute; loaded in about a second): EmbeddingGemma's questions
        in less than half the time on a CPU. Blocks while it compiles: call it on a thread of
        its own. A batch of several texts runs as before. Refuses (EmbedderUnavailable) a
        package whose vectors differ from the model's."""
        import torch

        from retrieval.compiled_queries import compiled_package, load_package

        if self._device != "cpu" or not hasattr(self._model[0], "model"):
            raise EmbedderUnavailable("only a transformer on a CPU is compiled")
        dtype = str(self.dtype).removeprefix("torch.")
        package = compiled_package(self._folder, dtype, cache, stop)
        compiled = load_package(package)
        probe = self._features([_PROBE])
        with torch.inference_mode():
            expected = self._model(dict(probe))["sentence_embedding"].float()
            found = self._through(compiled, probe)["sentence_embedding"].float()
        if torch.nn.functional.cosine_similarity(expected, found).item() < 0.999:
            raise EmbedderUnavailable(
                f"the compiled question path {package} embeds differently from the model — "
                "delete it to compile it again"
            )
        self._compiled = compiled

    def _features(self, texts: list[str]) -> dict[str, Any]:
        import torch

        ids, mask = _padded(self._tokenizer.encode_batch(texts))
        return {
            "input_ids": torch.from_numpy(ids).to(self._device, non_blocking=True),
            "attention_mask": torch.from_numpy(mask).to(self._device, non_blocking=True),
            "token_type_ids": torch.zeros(ids.shape, dtype=torch.int64, device=self._device),
        }

    def _forward(self, features: dict[str, Any]) -> dict[str, Any]:
        compiled = self._compiled
        if compiled is None or len(features["input_ids"]) != 1:
            return self._model(features)
        return self._through(compiled, features)

    def _through(self, compiled: Any, features: dict[str, Any]) -> dict[str, Any]:
        """The model's modules with the compiled transformer in place of the first."""
        features["token_embeddings"] = compiled(features["input_ids"], features["attention_mask"])
        for module in list(self._model)[1:]:
            features = module(features)
        return features


class OnnxEncoder:
    """A transformer exported to ONNX, with the model's own tokenizer, pooling and
    normalization done here exactly as sentence-transformers does them."""

    def __init__(self, model_file: Path, folder: Path, *, threads: int) -> None:
        import onnxruntime

        self._model_file, self._folder = model_file, folder
        self._pooling = _pooling_mode(folder)
        self._tokenizer = _tokenizer(folder)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Idle pool threads would otherwise spin for a while after each batch, taking the
        # cores from the conversion workers and the query thread beside them.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3
        self._session = onnxruntime.InferenceSession(
            str(model_file), options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    def encode(self, texts: list[str], batch_size: int) -> Any:
        """One text per model run, whatever `batch_size`: nothing is padded, and a text's
        vector never depends on the texts beside it (int8 activations are scaled per run, so
        in a batch a short text took its scale from its neighbours' padding). On 300 corpus
        chunks, 2 cores: int8 35 chunks/s one at a time against 28 in batches of 16; fp32 25
        against 18."""
        vectors = np.empty((len(texts), 0), dtype=np.float32)
        for row, encoding in enumerate(self._tokenizer.encode_batch(texts)):
            vector = self._run(encoding.ids)
            if vectors.shape[1] == 0:
                vectors = np.empty((len(texts), vector.shape[0]), dtype=np.float32)
            vectors[row] = vector
        return vectors

    def for_queries(self) -> "OnnxEncoder":
        return OnnxEncoder(self._model_file, self._folder, threads=1)

    def _run(self, ids: list[int]) -> Any:
        tokens = np.array([ids], dtype=np.int64)
        feeds = {"input_ids": tokens, "attention_mask": np.ones_like(tokens)}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(tokens)
        hidden = self._session.run(None, feeds)[0][0]
        pooled = hidden[0] if self._pooling == "cls" else hidden.mean(axis=0)
        return (pooled / max(float(np.linalg.norm(pooled)), 1e-12)).astype(np.float32)


class OllamaEncoder:
    """An embedding model served by Ollama, through the official client's `embed` call (texts
    are sent `batch_size` at a time; Ollama truncates what the model cannot read)."""

    def __init__(self, url: str, model: str, *, timeout: float) -> None:
        import ollama

        self._url, self._model, self._timeout = url, model, timeout
        self._client = ollama.Client(host=url, timeout=timeout)

    def encode(self, texts: list[str], batch_size: int) -> Any:
        import httpx
        import ollama

        rows: list[Any] = []
        for start in range(0, len(texts), batch_size):
            try:
                answer = self._client.embed(self._model, texts[start : start + batch_size])
            except (ollama.ResponseError, OSError, httpx.HTTPError) as error:
                raise EmbedderUnavailable(
                    f"Ollama at {self._url} could not embed with '{self._model}' ({error}) — "
                    f"check `ollama serve` is running and `ollama pull {self._model}`"
                ) from error
            rows.extend(answer.embeddings)
        vectors = np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)
        norms = np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors / norms

    def for_queries(self) -> "OllamaEncoder":
        return OllamaEncoder(self._url, self._model, timeout=self._timeout)


class LlamaEncoder:
    """A GGUF embedding model on llama.cpp (CPU), pooled as its header says, then normalized.

    One text per model run: on two cores nomic-embed-text-v1.5 f16 embedded 60 CISI chunks
    (~155 tokens) at 3.4 chunks/s one by one, against 2.6 in batches of 512 tokens and 1.3 in
    batches of 2,048 (attention spans the whole batch); its Q8_0 quantization was slower than
    f16 (2.8 chunks/s: the f16 matrix kernels win on these AVX2 cores). A query: 27 ms.
    """

    def __init__(self, path: Path, *, context: int, threads: int) -> None:
        from llama_cpp import Llama

        self._path, self._context = path, context
        self._llm = Llama(
            model_path=str(path), embedding=True, n_ctx=context, n_batch=context,
            n_ubatch=context, n_threads=threads, n_threads_batch=threads, verbose=False,
        )  # fmt: skip

    def encode(self, texts: list[str], batch_size: int) -> Any:
        vectors = [self._llm.embed(text, normalize=True, truncate=True) for text in texts]
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)

    def for_queries(self) -> "LlamaEncoder":
        """A context of its own with two threads: nomic's query p50 on two cores, one thread
        against two (the same vectors; bench/query_threads.py, 2026-12-06): amazon's
        questions 87-92 / 62-64 ms, the filings' longer ones 200-203 / 114-124 ms, and beside
        a bulk encode at the bulk thread's lower priority 88-91 / 78-88 ms and 198-203 /
        143-186 ms."""
        return LlamaEncoder(self._path, context=self._context, threads=min(2, _cores()))


def _padded(encodings: list[Any]) -> tuple[Any, Any]:
    """Token ids padded with zeros to the longest text, and the attention mask, as int64
    arrays. The mask comes from the lengths rather than from the tokenizer's padding: a
    Python list per text fewer, 4 ms instead of 10 for 512 chunks, time the interpreter is
    held from the threads that read SQLite and write the indexes."""
    lengths = [len(e) for e in encodings]  # without building the list of ids
    width = max(lengths, default=0)
    ids = np.zeros((len(encodings), width), dtype=np.int64)
    for row, (encoding, length) in enumerate(zip(encodings, lengths, strict=True)):
        ids[row, :length] = encoding.ids
    mask = (np.arange(width) < np.array(lengths)[:, None]).astype(np.int64)
    return ids, mask


def _pooling_mode(folder: Path) -> str:
    """mean or cls, from the model's pooling module; other poolings are not reproduced."""
    modules_file = folder / "modules.json"
    modules = json.loads(modules_file.read_text()) if modules_file.is_file() else []
    for module in modules:
        if module.get("type", "").endswith("Pooling"):
            config = json.loads((folder / module["path"] / "config.json").read_text())
            if config.get("pooling_mode_mean_tokens"):
                return "mean"
            if config.get("pooling_mode_cls_token"):
                return "cls"
            raise EmbedderUnavailable(
                f"the model in {folder} pools its tokens in a way the ONNX backends do not "
                "reproduce — use ARCHIVIST_EMBED_BACKEND=torch"
            )
    return "mean"


def _tokenizer(folder: Path) -> Any:
    """The model's fast tokenizer, truncating where the model stops reading, unpadded."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(max_tokens(folder))
    tokenizer.no_padding()  # tokenizer.json may ask for it
    return tokenizer


def _precision(device: Device, half: bool | None) -> Any:
    """The torch dtype a model starts in (`half=True`: fp16, the GPU's choice, on any device)."""
    import torch

    if half is None and device == "cpu":
        return torch.bfloat16 if computes_bf16() else torch.float32
    return torch.float32 if half is False else torch.float16


def computes_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic of its own (AVX-512 BF16 or AMX), as oneDNN sees it."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _nvidia_driver_present() -> bool:
    return Path("/proc/driver/nvidia").exists() or Path("/dev/nvidia0").exists()


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
