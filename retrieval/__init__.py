"""Embedding, dense and keyword indexes, fusion and evaluation metrics."""

from retrieval.embedder import Embedder, max_sequence_tokens, resolve_model_path, tokenizer_file
from retrieval.errors import IndexMismatch, ModelNotFound, RetrievalError

__all__ = [
    "Embedder",
    "IndexMismatch",
    "ModelNotFound",
    "RetrievalError",
    "max_sequence_tokens",
    "resolve_model_path",
    "tokenizer_file",
]
