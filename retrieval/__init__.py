"""Embedding, dense and keyword indexes, fusion, reranking and evaluation metrics."""

from retrieval.dense import EdgeDenseIndex, open_dense_index
from retrieval.dense_base import DenseIndex
from retrieval.embedder import (
    Embedder,
    resolve_model_path,
    shared_embedder,
    tokenizer_file,
)
from retrieval.errors import EmbedderUnavailable, IndexMismatch, ModelNotFound, RetrievalError
from retrieval.fusion import FusedHit, fuse_rankings
from retrieval.keyword import KeywordDoc, KeywordIndex
from retrieval.metrics import evaluate, mrr_at_k, ndcg_at_k, percentile, recall_at_k
from retrieval.rerank import CrossEncoderReranker, Reranker, rerank

__all__ = [
    "CrossEncoderReranker",
    "DenseIndex",
    "EdgeDenseIndex",
    "Embedder",
    "EmbedderUnavailable",
    "FusedHit",
    "IndexMismatch",
    "KeywordDoc",
    "KeywordIndex",
    "ModelNotFound",
    "Reranker",
    "RetrievalError",
    "evaluate",
    "fuse_rankings",
    "mrr_at_k",
    "ndcg_at_k",
    "open_dense_index",
    "percentile",
    "recall_at_k",
    "rerank",
    "resolve_model_path",
    "shared_embedder",
    "tokenizer_file",
]
