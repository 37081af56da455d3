"""The dense index on a Qdrant server or cluster, or in qdrant-client's local mode."""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, Self

import numpy as np
from qdrant_client import QdrantClient, models

from retrieval.dense_base import (
    DEFAULT_COLLECTION,
    HNSW_EF,
    PAGE,
    VECTOR_NAME,
    BaseDenseIndex,
    check_built_by,
    locked_error,
)
from retrieval.errors import RetrievalError


class ClientDenseIndex(BaseDenseIndex):
    """A collection on a Qdrant server, or in qdrant-client's local mode, via qdrant-client.

    The collection's `metadata` records the model and dimension. `close()` closes the client.
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str = DEFAULT_COLLECTION,
        *,
        model: str,
        dimension: int,
        recreate: bool = False,
    ) -> None:
        self.client, self.collection = client, collection
        self.model, self.dimension = model, dimension
        options = client.init_options
        local = bool(options.get("path")) or options.get("location") == ":memory:"
        # Local mode scans every vector and warns about search parameters; it is not safe
        # to call from several threads at once (FastAPI's thread pool), so calls take turns.
        self._params = None if local else models.SearchParams(hnsw_ef=HNSW_EF)
        self._turn: AbstractContextManager[Any] = threading.RLock() if local else nullcontext()
        if recreate:
            client.delete_collection(collection)
        if not client.collection_exists(collection):
            self._create()
            return
        config = client.get_collection(collection).config
        built = dict(config.metadata or {})
        vectors = config.params.vectors
        if isinstance(vectors, dict) and VECTOR_NAME in vectors:
            built.setdefault("dimension", vectors[VECTOR_NAME].size)
        check_built_by(f"collection '{collection}'", built, model, dimension)

    @classmethod
    def connect(
        cls,
        location: str,
        collection: str = DEFAULT_COLLECTION,
        *,
        model: str,
        dimension: int,
        recreate: bool = False,
        api_key: str | None = None,
    ) -> Self:
        """Open `collection` on the server at an http(s) URL, or in local mode in a folder."""
        remote = location.startswith(("http://", "https://"))
        try:
            if remote:
                client = QdrantClient(url=location, api_key=api_key)
            else:  # ":memory:" or a folder
                client = (
                    QdrantClient(location)
                    if location == ":memory:"
                    else QdrantClient(path=location)
                )
        except RuntimeError as exc:  # local mode: "Storage folder ... is already accessed"
            raise locked_error(Path(location)) from exc
        try:
            return cls(client, collection, model=model, dimension=dimension, recreate=recreate)
        except Exception as exc:
            client.close()
            if isinstance(exc, RetrievalError) or not remote:
                raise
            raise RetrievalError(
                f"Qdrant at {location} is not usable ({exc}) — start the server, or fix or "
                "unset ARCHIVIST_QDRANT_URL (unset means the embedded index)"
            ) from exc

    def count(self) -> int:
        """Number of stored vectors."""
        with self._turn:
            return self.client.count(self.collection, exact=True).count

    def optimize(self) -> None:
        """Nothing to do: a Qdrant server optimizes in the background."""

    def flush(self) -> None:
        """Nothing to do: the server's WAL and local mode's storage persist every write."""

    def clear(self) -> None:
        """Remove every vector, keeping the model and dimension."""
        with self._turn:
            self.client.delete_collection(self.collection)
            self._create()

    def close(self) -> None:
        """Close the client, releasing local mode's folder; closing twice is harmless."""
        self.client.close()

    def _put(self, ids: list[str], rows: np.ndarray) -> None:
        vectors: dict[str, Any] = {VECTOR_NAME: rows.tolist()}
        batch = models.Batch(ids=list[models.ExtendedPointId](ids), vectors=vectors)
        with self._turn:
            self.client.upsert(self.collection, points=batch, wait=True)

    def _remove(self, ids: list[str]) -> None:
        selector = models.PointIdsList(points=list[models.ExtendedPointId](ids))
        with self._turn:
            self.client.delete(self.collection, points_selector=selector, wait=True)

    def _nearest(
        self, query: list[float], searches: list[tuple[int, list[str] | None]]
    ) -> list[list[tuple[str, float]]]:
        requests = [
            models.QueryRequest(
                query=query,
                using=VECTOR_NAME,
                limit=limit,
                filter=None
                if allowed is None
                else models.Filter(
                    must=[models.HasIdCondition(has_id=list[models.ExtendedPointId](allowed))]
                ),
                params=self._params,
                with_payload=False,
            )
            for limit, allowed in searches
        ]
        with self._turn:
            responses = self.client.query_batch_points(self.collection, requests=requests)
        return [[(str(p.id), float(p.score)) for p in r.points] for r in responses]

    def _present(self, ids: list[str]) -> list[str]:
        with self._turn:
            records = self.client.retrieve(
                self.collection, list[models.ExtendedPointId](ids), with_payload=False
            )
        return [str(r.id) for r in records]

    def _page(self, offset: Any) -> tuple[list[str], Any]:
        with self._turn:
            records, offset = self.client.scroll(
                self.collection, limit=PAGE, offset=offset, with_payload=False
            )
        return [str(r.id) for r in records], offset

    def _create(self) -> None:
        params = models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)
        self.client.create_collection(
            self.collection,
            vectors_config={VECTOR_NAME: params},
            metadata={"model": self.model, "dimension": self.dimension},
        )
