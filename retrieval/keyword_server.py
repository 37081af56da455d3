"""The keyword leg on a Qdrant server: BM25 as sparse vectors in the dense index's collection.

Both legs of a chunk live in one point, so a cluster shards and replicates them together and
another Archivist server searches both from it. Terms come from the Tantivy leg's own analysis
(`document_terms`, `query_terms`: the stemmer, stopwords and two-part-word splitting), and
the weights are Tantivy's BM25 (k1 1.2, b 0.75): a point's sparse vector holds each term's
term-frequency part, over the length Tantivy stores (`stored_length`), for the body and, under
other indices, for the title; Qdrant's IDF modifier multiplies in ln(1 + (N - n + 0.5) /
(n + 0.5)) at query time, each field's own, as Tantivy does, and the query weighs title terms
TITLE_BOOST. Two differences remain: lengths are normalized by average lengths measured when
the leg was weighed (Tantivy: the average of every chunk, now; the service weighs every chunk
again when its chunks' averages move by more than a tenth: api/service/indexes.py), and Qdrant
counts IDF per shard. With the averages of every chunk, the first 10 hits of all 30
financebench-dev questions are Tantivy's (scores equal to 1e-7); with those of the first 256
chunks ingested, 0.99 of them (cisi: 0.96, its first chunks 20% longer than the rest).
"""

from __future__ import annotations

import bisect
import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from qdrant_client import models

from retrieval.dense_base import SPARSE_NAME, point_id
from retrieval.dense_server import ClientDenseIndex
from retrieval.errors import IndexDamaged
from retrieval.keyword import (
    ANALYSIS_VERSION,
    TITLE_BOOST,
    KeywordDoc,
    document_terms,
    query_terms,
)

K1, B = 1.2, 0.75  # Tantivy's BM25 constants


def _stored_lengths() -> list[int]:
    """The lengths Tantivy stores a field's length as (its "fieldnorm", Lucene's one-byte code):
    exact up to 40 terms, then four steps per doubling."""
    lengths = []
    for code in range(256):
        if code < 24:
            lengths.append(code)
            continue
        bits, shift = (code - 24) & 7, (code - 24) >> 3
        lengths.append(24 + (bits if shift == 0 else (bits | 8) << (shift - 1)))
    return lengths


_STORED_LENGTHS = _stored_lengths()


def stored_length(terms: int) -> int:
    """A field of `terms` terms as Tantivy weighs it: the stored length at or below it (a
    166-term chunk counts as 152). With the title's own IDF this makes the scores Tantivy's
    (to 1e-7 on financebench-dev); exact lengths put chunks of ~150 terms up to a tenth off."""
    return _STORED_LENGTHS[bisect.bisect_right(_STORED_LENGTHS, terms) - 1]


# Collection metadata: how the terms were weighed — the analysis and weighting they come from,
# and the average body and title lengths used. Points weighed otherwise are weighed again.
_WEIGHED = "bm25"
WEIGHTING = f"{ANALYSIS_VERSION}.1"  # Tantivy's analysis, then this module's weighting
_HAS_TERMS = models.Filter(must=[models.HasVectorCondition(has_vector=SPARSE_NAME)])


def term_id(term: str, field: bytes = b"") -> int:
    """A term's index in the sparse vectors: the CRC-32 of the field's prefix and the term (a
    collision among 100,000 distinct terms is expected about once, and merges two rare words'
    weights). Body and title terms are apart (`TITLE`), so Qdrant counts each its own IDF."""
    return zlib.crc32(field + term.encode())


TITLE = b"\x01"  # the prefix of title terms: Tantivy's title field


class ServerKeywordIndex:
    """BM25 over chunks as the sparse vector SPARSE_NAME of the points of `dense`'s collection.

    The same contract as the Tantivy `KeywordIndex`: writes wait for `commit()`. A chunk's
    point holds both legs: the dense leg writes it first (an upsert replaces the point), this
    leg then adds the sparse vector and the payload a replica cites the chunk by (`KeywordDoc.
    payload`), creating the point if the dense leg has not written it yet; deleting a chunk
    from either leg deletes its point.
    """

    def __init__(self, dense: ClientDenseIndex) -> None:
        self._dense = dense
        self._upserts: dict[str, KeywordDoc] = {}
        self._deletes: set[str] = set()
        self._lengths: tuple[float, float] | None = None  # average body and title lengths

    @property
    def _client(self) -> Any:
        return self._dense.client

    @property
    def _collection(self) -> str:
        return self._dense.collection

    def upsert(self, docs: Sequence[KeywordDoc]) -> None:
        """Replace or add documents by chunk id; visible after `commit()`."""
        for doc in docs:
            key = point_id(doc.chunk_id)
            self._deletes.discard(key)
            self._upserts[key] = doc

    def delete(self, chunk_ids: Iterable[str]) -> None:
        """Remove documents by chunk id (unknown ids are ignored); visible after `commit()`."""
        for chunk_id in chunk_ids:
            key = point_id(chunk_id)
            self._upserts.pop(key, None)
            self._deletes.add(key)

    def commit(self) -> None:
        """Send pending changes in one request and wait until they are applied."""
        upserts, deletes = self._upserts, sorted(self._deletes)
        self._upserts, self._deletes = {}, set()
        operations: list[Any] = []
        if deletes:
            selector = models.PointIdsList(points=list[models.ExtendedPointId](deletes))
            operations.append(models.DeleteOperation(delete=selector))
        if upserts:
            operations.extend(self._writes(upserts))
        if operations:
            with self._dense.asking():
                self._client.batch_update_points(self._collection, operations, wait=True)

    def _writes(self, docs: dict[str, KeywordDoc]) -> list[Any]:
        """The operations that give these points their sparse vectors: added to the points
        that exist, new points (sparse vector only) for the others."""
        # The first batch written records its averages (the service may weigh all again later:
        # Indexes.reweigh).
        lengths = self.lengths() or self.weigh_with(average_lengths(docs.values()))
        vectors = {key: sparse_vector(doc, lengths) for key, doc in docs.items()}
        with self._dense.asking():
            found = self._client.retrieve(
                self._collection, list[models.ExtendedPointId](vectors), with_payload=False
            )
        existing = {str(record.id) for record in found}
        operations: list[Any] = []
        if existing:
            update = [models.PointVectors(id=key, vector={SPARSE_NAME: vectors[key]})
                      for key in vectors if key in existing]  # fmt: skip
            operations.append(
                models.UpdateVectorsOperation(update_vectors=models.UpdateVectors(points=update))
            )
            operations.extend(
                models.OverwritePayloadOperation(
                    overwrite_payload=models.SetPayload(payload=dict(doc.payload), points=[key])
                )
                for key, doc in docs.items()
                if key in existing and doc.payload is not None
            )
        if new := [key for key in vectors if key not in existing]:
            points = [
                models.PointStruct(id=key, vector={SPARSE_NAME: vectors[key]},
                                   payload=dict(docs[key].payload or {}))
                for key in new
            ]  # fmt: skip
            operations.append(models.UpsertOperation(upsert=models.PointsList(points=points)))
        return operations

    def lengths(self) -> tuple[float, float] | None:
        """The average body and title lengths the weights use; None before the first write."""
        if self._lengths is None:
            recorded = self._dense.metadata().get(_WEIGHED)
            if recorded:
                body, title = recorded["lengths"]
                self._lengths = (float(body), float(title))
        return self._lengths

    def weigh_with(self, lengths: tuple[float, float]) -> tuple[float, float]:
        """Weigh what is written from now on with these average body and title lengths (after
        `clear`, to weigh every chunk again with its corpus' averages)."""
        self._lengths = lengths
        self._dense.record({_WEIGHED: {"weighting": WEIGHTING, "lengths": list(lengths)}})
        return lengths

    def check_weighting(self) -> None:
        """Raise IndexDamaged if the collection's terms were weighed another way (by another
        Archivist): they are weighed again from SQLite (`clear`, then upserts)."""
        recorded = self._dense.metadata().get(_WEIGHED)
        if recorded and recorded.get("weighting") != WEIGHTING:
            raise IndexDamaged(
                f"the keyword leg in the collection '{self._collection}' was weighed by another "
                "Archivist — `archivist ingest`, `serve` or `reindex` weighs it again from SQLite "
                "(seconds, nothing is embedded again)"
            )

    def clear(self) -> None:
        """Remove every sparse vector (the dense leg's vectors stay) and forget the recorded
        lengths, so the next batch written measures them again."""
        self._upserts, self._deletes, self._lengths = {}, set(), None
        with self._dense.asking():
            self._client.delete_vectors(
                self._collection, vectors=[SPARSE_NAME], points=_HAS_TERMS, wait=True
            )
        self._dense.record({_WEIGHED: None})

    def search(
        self, query: str, limit: int = 50, *, only_ids: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """Return (chunk_id, BM25 score) pairs, best first; never raises on odd query text.

        `only_ids` restricts the search to those chunks (for filters)."""
        weights: dict[int, float] = {}
        for term in query_terms(query):  # a repeated word counts once per occurrence
            for key, weight in ((term_id(term), 1.0), (term_id(term, TITLE), TITLE_BOOST)):
                weights[key] = weights.get(key, 0.0) + weight
        if not weights or limit <= 0 or (only_ids is not None and not only_ids):
            return []
        only = None
        if only_ids is not None:
            allowed = list[models.ExtendedPointId](point_id(i) for i in only_ids)
            only = models.Filter(must=[models.HasIdCondition(has_id=allowed)])
        vector = models.SparseVector(
            indices=list(weights), values=[float(w) for w in weights.values()]
        )
        with self._dense.asking():
            found = self._client.query_points(
                self._collection, query=vector, using=SPARSE_NAME, limit=limit, query_filter=only,
                with_payload=False,
            ).points  # fmt: skip
        return [(str(point.id), float(point.score)) for point in found]

    def count(self) -> int:
        """Return the number of chunks with terms indexed."""
        return self._dense.count_with(SPARSE_NAME)

    def present(self, ids: Collection[str]) -> set[str]:
        """Those of these chunk ids whose terms are indexed."""
        if not ids:
            return set()
        return set(self._dense.points_with(SPARSE_NAME, [point_id(i) for i in ids])[0])

    def chunk_ids(self) -> set[str]:
        """Return every chunk id with terms indexed (for consistency checks against the store)."""
        found: set[str] = set()
        offset: Any = None
        while True:
            page, offset = self._dense.points_with(SPARSE_NAME, offset=offset)
            found.update(page)
            if offset is None:
                return found

    def close(self) -> None:
        """Drop uncommitted changes; the connection belongs to the dense index."""
        self._upserts, self._deletes = {}, set()


def average_lengths(docs: Iterable[KeywordDoc]) -> tuple[float, float]:
    """The average number of terms of these chunks' bodies and titles (at least 1)."""
    measured = [(len(body_terms(doc)), len(document_terms(doc.title))) for doc in docs]
    count = max(1, len(measured))
    return (max(1.0, sum(body for body, _ in measured) / count),
            max(1.0, sum(title for _, title in measured) / count))  # fmt: skip


def body_terms(doc: KeywordDoc) -> list[str]:
    """The body as the Tantivy leg indexes it: the title, then the text."""
    return document_terms(doc.title) + document_terms(doc.body)


def sparse_vector(doc: KeywordDoc, lengths: tuple[float, float]) -> models.SparseVector:
    """A chunk's BM25 weights without IDF, for the terms of its body and, apart, of its title."""
    weights: dict[int, float] = {}
    for terms, average, field in (
        (body_terms(doc), lengths[0], b""),
        (document_terms(doc.title), lengths[1], TITLE),
    ):
        norm = K1 * (1 - B + B * stored_length(len(terms)) / average)
        for term, tf in Counter(terms).items():
            key = term_id(term, field)
            weights[key] = weights.get(key, 0.0) + tf * (K1 + 1) / (tf + norm)
    return models.SparseVector(indices=list(weights), values=list(weights.values()))
