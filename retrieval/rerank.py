"""Optional second-stage reranking of fused candidates (off unless a model is configured)."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from retrieval.embedder import resolve_model_path
from retrieval.errors import ModelNotFound


class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant."""

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers cross-encoder, loaded offline from a local folder or cache."""

    def __init__(self, name: str, *, device: str | None = None) -> None:
        from sentence_transformers import CrossEncoder

        self.name = name
        folder = resolve_model_path(name)
        _require_cross_encoder(folder, name)
        self._model: Any = CrossEncoder(str(folder), device=device)

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Relevance score of each passage for the query."""
        if not passages:
            return []
        scores = self._model.predict([(query, p) for p in passages], show_progress_bar=False)
        return [float(s) for s in scores]


def _require_cross_encoder(folder: Path, name: str) -> None:
    """Refuse a folder whose model has no relevance head: sentence-transformers would give it
    an untrained one, whose scores order results at random (an embedding model, say)."""
    try:
        architectures = json.loads((folder / "config.json").read_text()).get("architectures")
    except (OSError, ValueError, AttributeError):
        architectures = None
    if not any(str(a).endswith("ForSequenceClassification") for a in architectures or []):
        raise ModelNotFound(
            f"ARCHIVIST_RERANK_MODEL '{name}' is not a cross-encoder (its config.json names "
            f"{architectures or 'no architecture'}, not a ...ForSequenceClassification model) "
            "— give the local folder of a cross-encoder, or unset it to rank without one"
        )


def rerank(
    reranker: Reranker, query: str, candidates: Sequence[tuple[str, str]]
) -> list[tuple[str, float]]:
    """Order (id, passage) candidates by the reranker's score, best first (stable on ties)."""
    scores = reranker.score(query, [passage for _, passage in candidates])
    order = sorted(range(len(candidates)), key=lambda i: -scores[i])
    return [(candidates[i][0], scores[i]) for i in order]
