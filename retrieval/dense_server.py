"""The dense index on a Qdrant server or cluster, or in qdrant-client's local mode."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from retrieval.dense_base import (
    DEFAULT_COLLECTION,
    HNSW_EF,
    PAGE,
    SPARSE_NAME,
    VECTOR_NAME,
    BaseDenseIndex,
    check_built_by,
    locked_error,
)
from retrieval.errors import IndexDamaged, IndexMismatch, IndexUnavailable, RetrievalError

# Collections record their model in `metadata`, which Qdrant keeps from 1.16 on. qdrant-client's
# own check (minor versions at most 1 apart) warns from a background thread, at no fixed time,
# for every server older than 1.19: Archivist checks the server's version itself, at connect.
OLDEST_SERVER = (1, 16)
# How long a call may take (qdrant-client's default is 5 s): a server busy building its graphs
# took longer than that to apply 5,000 points with wait=True, beside other work on two cores.
TIMEOUT_S = 120


class ClientDenseIndex(BaseDenseIndex):
    """A collection on a Qdrant server, or in qdrant-client's local mode, via qdrant-client.

    The collection's `metadata` records the model and dimension. Its points may also carry the
    keyword leg's sparse vectors (keyword_server.py; `keyword`: it must have room for them), so
    this leg counts and lists only the points with a dense vector. `close()` closes the client.
    """

    def __init__(
        self,
        client: QdrantClient,
        collection: str = DEFAULT_COLLECTION,
        *,
        model: str,
        dimension: int,
        recreate: bool = False,
        shards: int | None = None,
        replicas: int | None = None,
        keyword: bool = False,
        create: bool = True,
    ) -> None:
        self.client, self.collection = client, collection
        self.model, self.dimension = model, dimension
        self._shards, self._replicas = shards, replicas
        options = client.init_options
        local = bool(options.get("path")) or options.get("location") == ":memory:"
        # Local mode scans every vector and warns about search parameters; it is not safe
        # to call from several threads at once (FastAPI's thread pool), so calls take turns.
        self._params = None if local else models.SearchParams(hnsw_ef=HNSW_EF)
        self._turn: AbstractContextManager[Any] = threading.RLock() if local else nullcontext()
        self._location = str(options.get("url") or options.get("path") or options.get("location"))
        if recreate:
            client.delete_collection(collection)
        if not client.collection_exists(collection):
            if not create:
                raise IndexUnavailable(
                    f"there is no collection '{collection}' on the Qdrant server at "
                    f"{self._location} yet — ingest with the Archivist that writes it"
                )
            self._create()
            return
        config = client.get_collection(collection).config
        built = dict(config.metadata or {})
        vectors = config.params.vectors
        if isinstance(vectors, dict) and VECTOR_NAME in vectors:
            built.setdefault("dimension", vectors[VECTOR_NAME].size)
        check_built_by(f"collection '{collection}'", built, model, dimension)
        if keyword and SPARSE_NAME not in (config.params.sparse_vectors or {}):
            raise IndexMismatch(
                f"the collection '{collection}' has no room for the keyword leg (created by an "
                "older Archivist) — `archivist reindex` rebuilds it"
            )

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
        shards: int | None = None,
        replicas: int | None = None,
        keyword: bool = False,
        create: bool = True,
    ) -> Self:
        """Open `collection` on the server at an http(s) URL, or in local mode in a folder; a
        collection created on a server has `shards` shards of `replicas` copies each (default:
        the server's, one and one); without `create`, a missing collection is IndexUnavailable."""
        remote = location.startswith(("http://", "https://"))
        try:
            if remote:
                client = QdrantClient(
                    url=location, api_key=api_key, check_compatibility=False, timeout=TIMEOUT_S
                )
            else:  # ":memory:" or a folder
                client = (
                    QdrantClient(location)
                    if location == ":memory:"
                    else QdrantClient(path=location)
                )
        except RuntimeError as exc:  # local mode: "Storage folder ... is already accessed"
            raise locked_error(Path(location)) from exc
        try:
            if remote:
                _check_version(client, location)
            return cls(client, collection, model=model, dimension=dimension, recreate=recreate,
                       shards=shards, replicas=replicas, keyword=keyword,
                       create=create)  # fmt: skip
        except (UnexpectedResponse, ResponseHandlingException) as exc:
            error = failure(exc, client, location, collection)
            client.close()
            raise error from exc
        except Exception as exc:
            client.close()
            if isinstance(exc, RetrievalError) or not remote:
                raise
            raise RetrievalError(
                f"Qdrant at {location} is not usable ({exc}) — start the server, or fix or "
                "unset ARCHIVIST_QDRANT_URL (unset means the embedded index)"
            ) from exc

    @contextmanager
    def asking(self) -> Iterator[None]:
        """A call to Qdrant (taking turns in local mode), its failures told as the index's."""
        try:
            with self._turn:
                yield
        except (UnexpectedResponse, ResponseHandlingException) as error:
            raise failure(error, self.client, self._location, self.collection) from error

    def metadata(self) -> dict[str, Any]:
        """What the collection records: the model and dimension, and what the keyword leg and
        the writing Archivist add (`record`)."""
        with self.asking():
            return dict(self.client.get_collection(self.collection).config.metadata or {})

    def record(self, entries: dict[str, Any]) -> None:
        """Add these entries to the collection's metadata, the others kept (None removes one)."""
        with self.asking():
            self.client.update_collection(self.collection, metadata=entries)

    def count(self) -> int:
        """Number of stored vectors."""
        return self.count_with(VECTOR_NAME)

    def count_with(self, vector: str) -> int:
        """Number of points holding `vector` (this leg's, or the keyword leg's)."""
        holding = models.Filter(must=[models.HasVectorCondition(has_vector=vector)])
        with self.asking():
            return self.client.count(self.collection, count_filter=holding, exact=True).count

    def points_with(
        self, vector: str, among: list[str] | None = None, offset: Any = None
    ) -> tuple[list[str], Any]:
        """A page of the ids of the points holding `vector` (of the canonical ids `among`, all
        on one page), and the next page's offset (None after the last)."""
        must: list[Any] = [models.HasVectorCondition(has_vector=vector)]
        if among is not None:
            must.append(models.HasIdCondition(has_id=list[models.ExtendedPointId](among)))
        with self.asking():
            records, offset = self.client.scroll(
                self.collection, scroll_filter=models.Filter(must=must),
                limit=PAGE if among is None else len(among), offset=offset, with_payload=False,
            )  # fmt: skip
        return [str(r.id) for r in records], offset

    def optimize(self) -> None:
        """Nothing to do: a Qdrant server optimizes in the background."""

    def flush(self) -> None:
        """Nothing to do: the server's WAL and local mode's storage persist every write."""

    def clear(self) -> None:
        """Remove every point (the keyword leg's too), keeping the model and dimension."""
        with self.asking():
            self.client.delete_collection(self.collection)
            self._create()

    def close(self) -> None:
        """Close the client, releasing local mode's folder; closing twice is harmless."""
        self.client.close()

    def _put(self, ids: list[str], rows: np.ndarray) -> None:
        vectors: dict[str, Any] = {VECTOR_NAME: rows.tolist()}
        batch = models.Batch(ids=list[models.ExtendedPointId](ids), vectors=vectors)
        with self.asking():
            self.client.upsert(self.collection, points=batch, wait=True)

    def _remove(self, ids: list[str]) -> None:
        selector = models.PointIdsList(points=list[models.ExtendedPointId](ids))
        with self.asking():
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
        with self.asking():
            responses = self.client.query_batch_points(self.collection, requests=requests)
        return [[(str(p.id), float(p.score)) for p in r.points] for r in responses]

    def _present(self, ids: list[str]) -> list[str]:
        return self.points_with(VECTOR_NAME, ids)[0]

    def _page(self, offset: Any) -> tuple[list[str], Any]:
        return self.points_with(VECTOR_NAME, offset=offset)

    def _create(self) -> None:
        params = models.VectorParams(size=self.dimension, distance=models.Distance.COSINE)
        self.client.create_collection(
            self.collection,
            vectors_config={VECTOR_NAME: params},
            sparse_vectors_config={
                SPARSE_NAME: models.SparseVectorParams(modifier=models.Modifier.IDF)
            },
            shard_number=self._shards,
            replication_factor=self._replicas,
            metadata={"model": self.model, "dimension": self.dimension},
        )


def _check_version(client: QdrantClient, location: str) -> None:
    """Refuse a server older than OLDEST_SERVER, saying which version it is."""
    version = client.info().version
    numbers = tuple(int(part) for part in version.split(".")[:2] if part.isdigit())
    if numbers < OLDEST_SERVER:
        oldest = ".".join(map(str, OLDEST_SERVER))
        raise RetrievalError(
            f"the Qdrant server at {location} is version {version}; Archivist needs {oldest} or "
            "newer (it records the embedding model in the collection's metadata) — upgrade it"
        )


def failure(
    error: UnexpectedResponse | ResponseHandlingException,
    client: QdrantClient,
    location: str,
    collection: str,
) -> RetrievalError:
    """What a failed call to Qdrant means for the index: gone (IndexDamaged: rebuilt from
    SQLite), or a server or cluster node that does not answer (IndexUnavailable: used again
    once it does), naming the nodes of the cluster that do not answer."""
    if isinstance(error, UnexpectedResponse) and error.status_code == 404:
        return IndexDamaged(f"the collection '{collection}' is gone from the Qdrant server at "
                            f"{location} — `archivist reindex` rebuilds it")  # fmt: skip
    down = _silent_peers(client)
    if down:
        return IndexUnavailable(
            f"the Qdrant cluster at {location} cannot answer for collection '{collection}': "
            f"{', '.join(down)} does not answer — start it again; what waits is indexed once it "
            "answers (searches go on while a node is down when each shard has a copy on another "
            "node, ARCHIVIST_QDRANT_REPLICAS=2)"
        )
    if isinstance(error, ResponseHandlingException):
        return IndexUnavailable(
            f"the Qdrant server at {location} does not answer ({error.source}) — start it, or "
            "unset ARCHIVIST_QDRANT_URL (unset means the embedded index)"
        )
    return IndexUnavailable(f"the Qdrant server at {location} failed ({_said(error)})")


def _said(error: UnexpectedResponse) -> str:
    """The server's own words for an error, shortened."""
    try:
        said = str(json.loads(error.content)["status"]["error"])
    except (ValueError, KeyError, TypeError):
        said = error.reason_phrase
    return " ".join(said.split())[:300]


def _silent_peers(client: QdrantClient) -> list[str]:
    """The nodes of the server's cluster that do not accept a connection ("peer ID at URI")."""
    try:
        status = client.http.distributed_api.cluster_status().result
    except Exception:  # not a cluster, or the node asked is failing too
        return []
    peers = getattr(status, "peers", None) or {}
    return [f"node {peer} ({info.uri})" for peer, info in peers.items() if not _answers(info.uri)]


def _answers(uri: str) -> bool:
    address = urlsplit(uri)
    try:
        with socket.create_connection((address.hostname or "", address.port or 6335), timeout=1):
            return True
    except OSError:
        return False
