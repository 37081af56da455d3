"""Hybrid search: BM25 and dense legs, fused, resolved to files, pages and sections."""

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from api.service.indexes import Indexes
from api.service.settings import Settings
from ingest.store import ChunkStore, StoredChunk
from retrieval.errors import IndexUnavailable
from retrieval.fusion import focus_weights, fuse_rankings, with_document_evidence, worth_scoring
from retrieval.rerank import Reranker, rerank

Mode = Literal["hybrid", "bm25", "dense"]
MODES: tuple[Mode, ...] = ("hybrid", "bm25", "dense")
_SNIPPET_CHARS = 240
# BM25's first hits whose rows are read while the query is embedded: at 100k chunks of real
# text, 2.4 of the 10 results are then still to be read, and the wait for the vector does not
# grow (20 rows from SQLite 2.3 ms, beside an embedding of 7-8 ms).
_PREFETCH = 20
# The first fused hits, re-ordered by their documents' evidence (Settings.document_weight);
# the hits after them keep their places (their scores are below every re-scored one), so a
# search's first 10 hits are the same whatever k. 20 put the same filings first on
# financebench-dev at weights 0.1 to 1.0 (10: 0.1 to 0.5) but cost 0.4 ms a search at 100k
# chunks (3.5%): BM25 then scores more of the dense leg's candidates.
_EVIDENCE_DEPTH = 10
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


class SearchHits(list[SearchHit]):
    """A search's hits, best first, and the legs a hybrid search went without because their
    index cannot be used: {"bm25" or "dense": what is wrong and how to rebuild it}."""

    def __init__(self, hits: Iterable[SearchHit] = (), missing_legs: dict[str, str] | None = None):
        super().__init__(hits)
        self.missing_legs = missing_legs or {}


def search_passages(
    store: ChunkStore,
    indexes: Indexes,
    settings: Settings,
    query: str,
    *,
    k: int = 10,
    mode: Mode = "hybrid",
    filters: Filters | None = None,
    reranker: Reranker | None = None,
    one_per_page: bool = True,
) -> SearchHits:
    """The `k` best chunks for a query, best first; a reranker re-scores the top candidates.
    With `one_per_page`, a page's best chunk stands for the page, else no two chunks of a
    document have the same words (`_first_distinct`); an answer reads chunks, and a page's
    second chunk often holds the rest of what its first began.

    A hybrid search whose keyword or dense index cannot be used (damaged, built by another
    embedding model, or on a Qdrant server that does not answer) searches the other and says
    so: a reader cannot rebuild an index (the next writer does), but it can still answer. A
    search of that leg alone, or with both unusable, raises the index's error."""
    missing = indexes.unusable_legs() if mode == "hybrid" else {}
    if len(missing) == 1:
        mode = "dense" if "bm25" in missing else "bm25"
    search = partial(_search, store, indexes, settings, query, k=k, filters=filters,
                     reranker=reranker, one_per_page=one_per_page)  # fmt: skip
    try:
        hits = search(mode=mode)
    except IndexUnavailable as error:  # a Qdrant node stopped answering mid-search
        if mode != "hybrid":
            raise
        missing, hits = {"dense": str(error)}, search(mode="bm25")
    return SearchHits(hits, missing if len(missing) == 1 else {})


def _search(
    store: ChunkStore,
    indexes: Indexes,
    settings: Settings,
    query: str,
    *,
    k: int,
    mode: Mode,
    filters: Filters | None,
    reranker: Reranker | None,
    one_per_page: bool,
) -> list[SearchHit]:
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
    rows = _Rows(store)
    # Both legs' indexes first: a damaged one raises before a query is embedded, so that a
    # command ending on the error never leaves the model running (ONNX Runtime aborts the
    # process when the interpreter exits under it).
    keyword = indexes.keyword if mode in ("hybrid", "bm25") else None
    dense = indexes.dense if mode in ("hybrid", "dense") else None
    embedding = indexes.embed_query(query) if dense is not None else None
    if keyword is not None:
        legs["bm25"] = keyword.search(query, limit, only_ids=only)
        if embedding is not None:
            # While the query is embedded (on other threads: the wait does not grow), read
            # the rows of BM25's first hits: most of them are among the results.
            rows.read([cid for cid, _ in legs["bm25"][:_PREFETCH]])
    cross: list[tuple[str, float]] = []  # dense scores of BM25's candidates it did not find
    if dense is not None and embedding is not None:
        # BM25 is done long before the query's vector: its candidates are scored in the
        # same batch as the dense search (see `_scored_by_both`).
        blend = mode == "hybrid" and settings.fusion_method == "blend"
        bm25_ids = [cid for cid, _ in legs["bm25"]] if blend else []
        legs["dense"], scored = dense.search_many(
            embedding.result(), [(limit, only), (len(bm25_ids), bm25_ids)]
        )
        in_dense = {cid for cid, _ in legs["dense"]}
        cross = [(cid, score) for cid, score in scored if cid not in in_dense]
    if mode == "hybrid":
        weights = settings.fusion_weights
        if one_per_page:
            # Every candidate is fused: the first k pages can lie deeper than the first k
            # chunks. Blend's BM25 then scores more of the dense leg's candidates: +0.5 to
            # 0.7 ms a search at 100k chunks (bench/search.py, generated text, 14.8-15.7 ms).
            fusing = limit
        else:
            fusing = max(keep, _EVIDENCE_DEPTH) if settings.document_weight else keep
        if settings.fusion_method != "rrf":
            # With EmbeddingGemma (score), page recall@10 on financebench-dev 0.667 -> 0.683
            # (nomic 0.550 -> 0.583), cisi nDCG@10 +0.003, amazon 0, squad-dev -0.001; with
            # focus counted where the legs agree, 0.783 (nomic 0.600), cisi -0.003.
            depth = settings.focus_depth
            documents = _documents_of(rows, legs, depth)
            weights = focus_weights(legs, documents, weights, depth=depth)
        if settings.fusion_method == "blend":
            legs = _scored_by_both(indexes, query, legs, cross, weights, fusing, limit)
        fused = fuse_rankings(
            legs,
            method=settings.fusion_method,
            k=settings.rrf_k,
            weights=weights,
            limit=fusing,
            relative={"bm25"},
        )
        if settings.document_weight:
            head, tail = fused[:_EVIDENCE_DEPTH], fused[_EVIDENCE_DEPTH:]
            places = {c.id: _place(c) for c in rows.read([hit.id for hit in head])}
            fused = with_document_evidence(head, places, settings.document_weight) + tail
        ranked = [(hit.id, hit.score, hit.legs) for hit in fused]
    else:
        ((leg, ranking),) = legs.items()
        ranked = [(cid, score, {leg: (n, score)}) for n, (cid, score) in enumerate(ranking, 1)]
    if reranker:
        ranked = _reranked(rows, reranker, query, ranked[:keep])
    ranked = _first_distinct(rows, ranked, k, one_per_page=one_per_page)
    return _resolve(rows, query, ranked, filters)


class _Rows:
    """The chunks one search has read from the store, with the paths of their documents:
    each read once (a chunk not in SQLite's page cache takes ~0.07 ms)."""

    def __init__(self, store: ChunkStore) -> None:
        self.store = store
        self.chunks: dict[str, StoredChunk] = {}
        self.paths: dict[str, list[str]] = {}  # content hash -> ingested paths, sorted

    def contents(self, ids: Sequence[str]) -> dict[str, str]:
        """The content hash (the document) of each of these chunks: from the chunks read so
        far, and for the others from the store (a content hash costs ~1/3 of a whole chunk)."""
        known = {cid: self.chunks[cid].sha256 for cid in ids if cid in self.chunks}
        if missing := sorted(set(ids) - known.keys()):
            known.update(self.store.contents_of(missing))
        return known

    def read(self, ids: Sequence[str]) -> list[StoredChunk]:
        """These chunks, in order, read from the store unless read before (missing ids are
        skipped)."""
        if missing := [cid for cid in dict.fromkeys(ids) if cid not in self.chunks]:
            found = self.store.chunks(missing)
            self.chunks.update((chunk.id, chunk) for chunk in found)
            if contents := {chunk.sha256 for chunk in found} - self.paths.keys():
                paths = self.store.paths_of(contents)
                self.paths.update({sha256: paths.get(sha256, []) for sha256 in contents})
        return [self.chunks[cid] for cid in ids if cid in self.chunks]


def _documents_of(
    rows: _Rows, legs: dict[str, list[tuple[str, float]]], depth: int
) -> dict[str, str]:
    """The content hash (the document) of each leg's first `depth` chunks."""
    return rows.contents([cid for ranking in legs.values() for cid, _ in ranking[:depth]])


def _scored_by_both(
    indexes: Indexes,
    query: str,
    legs: dict[str, list[tuple[str, float]]],
    cross: list[tuple[str, float]],
    weights: Mapping[str, float],
    keep: int,
    limit: int,
) -> dict[str, list[tuple[str, float]]]:
    """Each leg also scores the other leg's candidates, so fusion weighs every candidate on
    both scores rather than treating a near miss as a zero (nDCG@10 +0.003 on cisi, +0.002 on
    squad-dev). The added scores rank below the leg's own candidates, so ranks stay in order.
    The dense scores of BM25's candidates come in as `cross` (searched with the dense leg).
    BM25 scores only the dense candidates that could still make the first `keep` with it
    (`worth_scoring`: BM25's top-n is exact, so its last score bounds the rest) — the same
    hits, for a fraction of the lookups."""
    bm25 = legs["bm25"]
    scored = {"bm25": bm25, "dense": legs["dense"] + cross}
    complete = len(bm25) < limit
    need = worth_scoring(
        scored, "bm25", complete=complete, weights=weights, keep=keep, relative={"bm25"}
    )
    if need:
        scored["bm25"] = bm25 + indexes.keyword.search(query, len(need), only_ids=sorted(need))
    return scored


def _place(chunk: StoredChunk) -> tuple[str, tuple[str, ...] | int]:
    """A chunk's document and its place there: the page, or the section without pages."""
    return chunk.sha256, chunk.heading_path if chunk.page_start is None else chunk.page_start


def _first_distinct(
    rows: _Rows, ranked: list[_Ranked], k: int, *, one_per_page: bool
) -> list[_Ranked]:
    """The first `k` hits, each a place of its own or, without `one_per_page`, a passage of
    its own. A place: a page's best chunk stands for the page, since a citation names a file
    and a page and a page's second chunk adds no place to the results (chunks without pages
    are each their own place); two pages that say the same are two places. A passage: the
    words of a chunk that no chunk of its document before it has. The Chapter 13 trustees'
    handbook (872 pages) holds its text three times over, and the three passages the model
    read for a question were one passage three times; another document's same words stay (a
    filing repeats last year's sentences, and which filing says them is the answer). Rows are
    read k at a time: most searches stop after the first k."""
    kept: list[_Ranked] = []
    seen: set[tuple[str, int | str]] = set()
    for start in range(0, len(ranked), k):
        batch = ranked[start : start + k]
        chunks = {c.id: c for c in rows.read([cid for cid, _, _ in batch])}
        for hit in batch:
            chunk = chunks.get(hit[0])
            same = _sameness(chunk, one_per_page=one_per_page) if chunk is not None else None
            if same is not None:
                if same in seen:
                    continue
                seen.add(same)
            kept.append(hit)
            if len(kept) == k:
                return kept
    return kept


def _sameness(chunk: StoredChunk, *, one_per_page: bool) -> tuple[str, int | str] | None:
    """What two hits share when they are one: their page (places; a chunk without a page is a
    place of its own: None), or their document and words (passages)."""
    if one_per_page:
        return None if chunk.page_start is None else (chunk.sha256, chunk.page_start)
    return chunk.sha256, " ".join(chunk.text.split())


def _reranked(rows: _Rows, reranker: Reranker, query: str, ranked: list[_Ranked]) -> list[_Ranked]:
    texts = {c.id: c.text for c in rows.read([cid for cid, _, _ in ranked])}
    legs = {cid: leg_ranks for cid, _, leg_ranks in ranked}
    order = rerank(reranker, query, [(cid, texts[cid]) for cid, _, _ in ranked if cid in texts])
    return [
        (cid, score, {**legs[cid], "rerank": (n, score)}) for n, (cid, score) in enumerate(order, 1)
    ]


def _resolve(
    rows: _Rows,
    query: str,
    ranked: list[_Ranked],
    filters: Filters | None,
) -> list[SearchHit]:
    """Attach file, page, section and snippet to ranked chunk ids (skipping vanished ones)."""
    chunks = {c.id: c for c in rows.read([cid for cid, _, _ in ranked])}
    paths = rows.paths
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
