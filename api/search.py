"""Hybrid search: BM25 and dense legs, fused, resolved to files, pages and sections."""

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from api.indexes import Indexes
from api.settings import Settings
from ingest.store import ChunkStore, StoredChunk
from retrieval.fusion import focus_weights, fuse_rankings, worth_scoring
from retrieval.rerank import Reranker, rerank

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "bm25", "dense")
_SNIPPET_CHARS = 240
_Ranked = tuple[str, float, dict[str, tuple[int, float]]]


@dataclass(frozen=True)
class Filters:
    """Restrict a search to documents by path glob, file type or document id."""

    path_glob: str | None = None
    file_type: str | None = None
    document: int | None = None

    def __bool__(self) -> bool:
        return any(v is not None for v in (self.path_glob, self.file_type, self.document))


@dataclass(frozen=True)
class SearchHit:
    """One result: the chunk, where it comes from, its score and each leg's (rank, score)."""

    chunk_id: str
    path: str
    page_start: int | None
    page_end: int | None
    section: tuple[str, ...]
    score: float
    text: str
    snippet: str
    legs: dict[str, tuple[int, float]] = field(default_factory=dict, hash=False)


def search(
    store: ChunkStore,
    indexes: Indexes,
    settings: Settings,
    query: str,
    *,
    k: int = 10,
    mode: Mode = "hybrid",
    filters: Filters | None = None,
    reranker: Reranker | None = None,
) -> list[SearchHit]:
    """The `k` best chunks for a query, best first; a reranker re-scores the top candidates."""
    only = (
        store.chunk_ids_where(
            path_glob=filters.path_glob, file_type=filters.file_type, document=filters.document
        )
        if filters
        else None
    )
    keep = max(k, settings.rerank_candidates) if reranker else k
    limit = max(keep, settings.search_candidates)
    legs: dict[str, list[tuple[str, float]]] = {}
    embedding = indexes.embed_query(query) if mode in ("hybrid", "dense") else None
    if mode in ("hybrid", "bm25"):
        legs["bm25"] = indexes.keyword.search(query, limit, only_ids=only)
    vector = embedding.result() if embedding is not None else None
    if vector is not None:
        legs["dense"] = indexes.dense.search(vector, limit, only_ids=only)
    if mode == "hybrid":
        weights = {"bm25": settings.bm25_weight, "dense": settings.dense_weight}
        if settings.fusion == "blend":
            depth = settings.focus_depth
            documents = _documents_of(store, legs, depth)
            weights = focus_weights(legs, documents, weights, depth=depth)
            legs = _scored_by_both(indexes, query, vector, legs, weights, keep, limit)
        fused = fuse_rankings(
            legs,
            method=settings.fusion,
            k=settings.rrf_k,
            weights=weights,
            limit=keep,
            relative={"bm25"},
        )
        ranked = [(hit.id, hit.score, hit.legs) for hit in fused]
    else:
        ((leg, ranking),) = legs.items()
        ranked = [(cid, score, {leg: (n, score)}) for n, (cid, score) in enumerate(ranking, 1)]
    if reranker:
        ranked = _reranked(store, reranker, query, ranked[:keep])
    return _resolve(store, query, ranked[:k], filters)


def _documents_of(
    store: ChunkStore, legs: dict[str, list[tuple[str, float]]], depth: int
) -> dict[str, str]:
    """The content hash (the document) of each leg's first `depth` chunks."""
    ids = {cid for ranking in legs.values() for cid, _ in ranking[:depth]}
    return store.contents_of(sorted(ids))


def _scored_by_both(
    indexes: Indexes,
    query: str,
    vector: Any,
    legs: dict[str, list[tuple[str, float]]],
    weights: Mapping[str, float],
    keep: int,
    limit: int,
) -> dict[str, list[tuple[str, float]]]:
    """Each leg also scores the other leg's candidates, so fusion weighs every candidate on
    both scores rather than treating a near miss as a zero (nDCG@10 +0.003 on cisi, +0.002 on
    squad-dev). The added scores rank below the leg's own candidates, so ranks stay in order.
    BM25 scores only the dense candidates that could still make the first `keep` with it
    (`worth_scoring`: BM25's top-n is exact, so its last score bounds the rest) — the same
    hits, for a fraction of the lookups."""
    bm25, dense = legs["bm25"], legs["dense"]
    in_bm25, in_dense = {cid for cid, _ in bm25}, {cid for cid, _ in dense}
    if need := sorted(in_bm25 - in_dense):
        dense = dense + indexes.dense.search(vector, len(need), only_ids=need)
    scored = {"bm25": bm25, "dense": dense}
    complete = len(bm25) < limit
    need = worth_scoring(
        scored, "bm25", complete=complete, weights=weights, keep=keep, relative={"bm25"}
    )
    if need:
        scored["bm25"] = bm25 + indexes.keyword.search(query, len(need), only_ids=sorted(need))
    return scored


def _reranked(
    store: ChunkStore, reranker: Reranker, query: str, ranked: list[_Ranked]
) -> list[_Ranked]:
    texts = {c.id: c.text for c in store.chunks([cid for cid, _, _ in ranked])}
    legs = {cid: leg_ranks for cid, _, leg_ranks in ranked}
    order = rerank(reranker, query, [(cid, texts[cid]) for cid, _, _ in ranked if cid in texts])
    return [
        (cid, score, {**legs[cid], "rerank": (n, score)}) for n, (cid, score) in enumerate(order, 1)
    ]


def _resolve(
    store: ChunkStore,
    query: str,
    ranked: list[_Ranked],
    filters: Filters | None,
) -> list[SearchHit]:
    """Attach file, page, section and snippet to ranked chunk ids (skipping vanished ones)."""
    chunks = {c.id: c for c in store.chunks([cid for cid, _, _ in ranked])}
    paths = store.paths_of(c.sha256 for c in chunks.values())
    hits = []
    for chunk_id, score, legs in ranked:
        chunk = chunks.get(chunk_id)
        if chunk is None or not paths.get(chunk.sha256):
            continue  # deleted since the index was last synced
        path = _pick_path(paths[chunk.sha256], filters)
        hits.append(
            SearchHit(
                chunk_id, path, chunk.page_start, chunk.page_end, chunk.heading_path, score,
                chunk.text, snippet(chunk, query), legs,
            )
        )  # fmt: skip
    return hits


def _pick_path(paths: list[str], filters: Filters | None) -> str:
    if filters and filters.path_glob:
        matching = [p for p in paths if fnmatch.fnmatchcase(p, filters.path_glob)]
        return (matching or paths)[0]
    return paths[0]


def snippet(chunk: StoredChunk, query: str) -> str:
    """About 240 characters of the chunk, from the sentence holding the first query word."""
    text = " ".join(chunk.text.split())
    lowered = text.lower()
    found = [i for i in (lowered.find(w) for w in re.findall(r"\w{4,}", query.lower())) if i >= 0]
    start = text.rfind(". ", 0, min(found)) + 2 if found else 0
    start = 0 if start < 40 else start
    end = start + _SNIPPET_CHARS
    return ("…" if start else "") + text[start:end].rstrip() + ("…" if end < len(text) else "")
