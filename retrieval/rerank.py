"""Optional second-stage reranking of fused candidates (off unless a model is configured)."""

from collections.abc import Sequence
from typing import Any, Protocol

from retrieval.embedder import resolve_model_path


class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant."""

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers cross-encoder, loaded offline from a local folder or cache."""

    def __init__(self, name: str, *, device: str | None = None) -> None:
        from sentence_transformers import CrossEncoder

        self.name = name
        self._model: Any = CrossEncoder(str(resolve_model_path(name)), device=device)

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance score of each passage for the query."""
        if not passages:
            return []
        scores = self._model.predict([(query, p) for p in passages], show_progress_bar=False)
        return [float(s) for s in scores]


def rerank(
    reranker: Reranker, query: str, candidates: Sequence[tuple[str, str]]
) -> list[tuple[str, float]]:
    """Order (id, passage) candidates by the reranker's score, best first (stable on ties)."""
    scores = reranker.score(query, [passage for _, passage in candidates])
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    return [(candidates[i][0], scores[i]) for i in order]
