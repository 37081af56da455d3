"""The dense vector index: Qdrant's engine in-process, or a Qdrant server through qdrant-client.

Both take chunk ids (UUID strings, given back lowercase and hyphenated) and unit float32
vectors, and record which embedding model and dimension built them. Opening an index built by
another model raises IndexMismatch; open it with `recreate=True` and re-embed to start over.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import qdrant_edge as qe

from retrieval.errors import IndexMismatch, RetrievalError

VECTOR_NAME = "dense"
DEFAULT_COLLECTION = "archivist_chunks"
# Measured on two cores, 384-d, recall@10 against a full scan:
#   full scan: 2.5 ms at 10k points, 9.5 ms at 39k, 23-42 ms at 100k (recall 1.0);
#   HNSW (m=16, ef_construct=100) with ef=256: MiniLM embeddings 1.6 ms, recall 0.998 at 39k;
#   random unit vectors (the worst case) 4.4 ms / 0.52 at 39k, 3.8 ms / 0.30 at 100k.
# So the embedded index scans below EXACT_SEARCH_LIMIT points and uses HNSW above it.
EXACT_SEARCH_LIMIT = 20_000
HNSW_EF = 256  # Qdrant's default ef is the result limit: recall 0.993 on MiniLM at 39k
_BATCH = 1_000
PAGE = 10_000


class DenseIndex(Protocol):
    """Chunk ids to unit vectors, searched by cosine similarity; records the model that built it."""

    @property
    def model(self) -> str | None: ...
    @property
    def dimension(self) -> int: ...
    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None: ...
    def delete(self, ids: Iterable[str]) -> None: ...
    def search(
        self, vector: np.ndarray, limit: int = 50, *, only_ids: Collection[str] | None = None
    ) -> list[tuple[str, float]]: ...
    def count(self) -> int: ...
    def ids(self) -> set[str]: ...
    def optimize(self) -> None: ...
    def flush(self) -> None: ...
    def clear(self) -> None: ...
    def close(self) -> None: ...


def open_dense_index(
    path: Path, *, model: str, dimension: int, url: str | None = None, recreate: bool = False
) -> DenseIndex:
    """The embedded index under `path`, or the collection on the Qdrant server at `url`."""
    if url:
        from retrieval.dense_server import ClientDenseIndex  # qdrant-client loads only when used

        return ClientDenseIndex.connect(url, model=model, dimension=dimension, recreate=recreate)
    return EdgeDenseIndex(path, model=model, dimension=dimension, recreate=recreate)


class _BaseIndex:
    """Checks ids and shapes and batches writes; subclasses talk to Qdrant."""

    model: str
    dimension: int
    # What each backend provides, with ids already in canonical form.
    _put: Callable[[list[str], list[list[float]]], None]
    _remove: Callable[[list[str]], None]
    _nearest: Callable[[list[float], int, list[str] | None], list[tuple[str, float]]]
    _page: Callable[[Any], tuple[list[str], Any]]  # (ids, next offset or None)

    def upsert(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Insert or replace the vectors of these chunk ids."""
        point_ids = [_point_id(i) for i in ids]
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.shape != (len(point_ids), self.dimension):
            raise ValueError(
                f"expected {len(point_ids)} vectors of {self.dimension} dimensions, "
                f"got shape {matrix.shape}"
            )
        for start in range(0, len(point_ids), _BATCH):
            self._put(point_ids[start : start + _BATCH], matrix[start : start + _BATCH].tolist())

    def delete(self, ids: Iterable[str]) -> None:
        """Remove these chunk ids; unknown ids are ignored."""
        point_ids = [_point_id(i) for i in ids]
        if point_ids:
            self._remove(point_ids)

    def search(
        self, vector: np.ndarray, limit: int = 50, *, only_ids: Collection[str] | None = None
    ) -> list[tuple[str, float]]:
        """The `limit` nearest chunk ids with their cosine similarity, best first."""
        query = np.asarray(vector, dtype=np.float32)
        if query.shape != (self.dimension,):
            raise ValueError(f"expected a {self.dimension}-dimension query, got {query.shape}")
        if limit <= 0 or (only_ids is not None and not only_ids):
            return []
        allowed = None if only_ids is None else [_point_id(i) for i in only_ids]
        return self._nearest(query.tolist(), limit, allowed)

    def ids(self) -> set[str]:
        """Every stored chunk id."""
        found: set[str] = set()
        offset: Any = None
        while True:
            page, offset = self._page(offset)
            found.update(page)
            if offset is None:
                return found


class EdgeDenseIndex(_BaseIndex):
    """Qdrant's engine in-process: one shard under `path`, opened by one process at a time.

    `path/index.json` records the model and dimension; `path/shard/` belongs to Qdrant.
    """

    def __init__(
        self,
        path: Path,
        *,
        model: str,
        dimension: int,
        recreate: bool = False,
        exact_limit: int = EXACT_SEARCH_LIMIT,
    ) -> None:
        self.path, self.model, self.dimension = Path(path), model, dimension
        self.exact_limit = exact_limit
        self._shard_dir = self.path / "shard"
        self._closed = False
        exists = (self._shard_dir / "edge_config.json").exists()
        if exists and not recreate:
            _check_built_by(str(self.path), _read_json(self.path / "index.json"), model, dimension)
            self._shard = self._open(lambda: qe.EdgeShard.load(str(self._shard_dir)))
            return
        if exists:  # opening takes the lock first, so an index open elsewhere is never deleted
            old = self._open(lambda: qe.EdgeShard.load(str(self._shard_dir)), damaged_ok=True)
            if old is not None:
                old.close()
        shutil.rmtree(self._shard_dir, ignore_errors=True)  # also a half-created shard
        self._shard = self._create()

    def count(self) -> int:
        """Number of stored vectors."""
        return self._shard.count(qe.CountRequest(exact=True))

    def optimize(self) -> None:
        """Merge segments and build HNSW graphs for segments past the exact-search size."""
        # Blocking, and the bindings hold the GIL throughout: every Python thread stops
        # (24.6 s for a first graph over 20k random 384-d points on two cores).
        self._shard.optimize()

    def flush(self) -> None:
        """Make every write durable on disk."""
        self._shard.flush()

    def clear(self) -> None:
        """Remove every vector, keeping the model and dimension."""
        self._shard.close()
        shutil.rmtree(self._shard_dir)
        self._shard = self._create()

    def close(self) -> None:
        """Flush and release the shard and its lock; closing twice is harmless."""
        if not self._closed:
            self._closed = True
            self._shard.flush()
            self._shard.close()

    def _put(self, ids: list[str], rows: list[list[float]]) -> None:
        points = [qe.Point(i, {VECTOR_NAME: row}) for i, row in zip(ids, rows, strict=True)]
        self._shard.update(qe.UpdateOperation.upsert_points(points))

    def _remove(self, ids: list[str]) -> None:
        point_ids: list[qe.PointId] = list(ids)  # the alias exists only in the stubs
        self._shard.update(qe.UpdateOperation.delete_points(point_ids))

    def _nearest(
        self, query: list[float], limit: int, allowed: list[str] | None
    ) -> list[tuple[str, float]]:
        exact = self._shard.info().points_count < self.exact_limit  # info() costs microseconds
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(query, using=VECTOR_NAME),
            filter=None if allowed is None else qe.Filter(must=[qe.HasIdCondition(set(allowed))]),
            params=qe.SearchParams(exact=True) if exact else qe.SearchParams(hnsw_ef=HNSW_EF),
        )
        return [(str(p.id), float(p.score)) for p in self._shard.query(request)]

    def _page(self, offset: Any) -> tuple[list[str], Any]:
        request = qe.ScrollRequest(offset=offset, limit=PAGE, with_payload=False)
        records, offset = self._shard.scroll(request)
        return [str(r.id) for r in records], offset

    def _create(self) -> qe.EdgeShard:
        # Metadata first, atomically: a crash before the shard exists leaves a folder that is
        # simply recreated next time.
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / "index.json.tmp"
        tmp.write_text(json.dumps({"model": self.model, "dimension": self.dimension}) + "\n")
        os.replace(tmp, self.path / "index.json")
        params = qe.EdgeVectorParams(size=self.dimension, distance=qe.Distance.Cosine)
        # No HNSW graph for a segment that small searches scan anyway (a graph for 10k points
        # costs seconds of optimize() on two cores). The threshold is in KB, per segment.
        threshold = max(1, self.exact_limit * self.dimension * 4 // 1024)
        optimizers = qe.EdgeOptimizersConfig(indexing_threshold=threshold)
        config = qe.EdgeConfig(vectors={VECTOR_NAME: params}, optimizers=optimizers)
        return self._open(lambda: qe.EdgeShard.create(str(self._shard_dir), config))

    def _open(self, opener: Callable[[], qe.EdgeShard], damaged_ok: bool = False) -> Any:
        try:
            return opener()
        except Exception as exc:  # the bindings raise plain Exception
            if "WouldBlock" in str(exc):
                raise _locked_error(self.path) from None
            if damaged_ok:
                return None
            raise RetrievalError(
                f"the dense index at {self.path} cannot be opened ({exc}) — run `archivist reindex`"
            ) from exc


def _point_id(chunk_id: str) -> str:
    """Qdrant's spelling of a chunk id: a lowercase hyphenated UUID."""
    try:
        return str(uuid.UUID(chunk_id))
    except (ValueError, TypeError, AttributeError):
        raise ValueError(f"chunk id {chunk_id!r} is not a UUID") from None


def _check_built_by(where: str, built: dict[str, Any] | None, model: str, dimension: int) -> None:
    built = built or {}
    if built.get("model") == model and built.get("dimension") == dimension:
        return
    raise IndexMismatch(
        f"the dense index at {where} was built with '{built.get('model') or 'an unknown model'}'"
        f" ({built.get('dimension') or '?'} dimensions), not '{model}' ({dimension} dimensions)"
        " — run `archivist reindex` to rebuild it"
    )


def _locked_error(path: Path) -> RetrievalError:
    return RetrievalError(
        f"the index at {path} is open in another Archivist process — stop it "
        "(`archivist serve`, `archivist watch`) or point ARCHIVIST_DATA at another folder"
    )


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
