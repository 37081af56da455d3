"""One contract for every DenseIndex: the embedded Qdrant engine, qdrant-client's local mode, a
real Qdrant server and a real two-node cluster (a shard on each node)."""

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from retrieval.dense import EdgeDenseIndex, open_dense_index
from retrieval.dense_base import VECTOR_NAME, DenseIndex
from retrieval.dense_server import ClientDenseIndex
from retrieval.errors import IndexMismatch, RetrievalError
from tests.qdrant_server import Node, qdrant_installed

MODEL = "all-MiniLM-L6-v2"
DIM = 16
# The embedded index stores vectors as float16: its cosines are within ~1e-4 of exact ones.
CLOSE = 1e-3

Opener = Callable[..., DenseIndex]


def unit_vectors(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """`n` seeded random unit vectors."""
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def chunk_ids(n: int) -> list[str]:
    """`n` fresh chunk ids."""
    return [str(uuid.uuid4()) for _ in range(n)]


SERVER_KINDS = ("server", "cluster")
needs_qdrant = pytest.mark.skipif(not qdrant_installed(), reason="no Qdrant server (make qdrant)")
ALL_KINDS = ["edge", "client"] + [pytest.param(kind, marks=needs_qdrant) for kind in SERVER_KINDS]


def _openers(kind: str, request: pytest.FixtureRequest, root: Path) -> Iterator[Opener]:
    """Opens the index of `kind` for this test (again); everything opened is closed after."""
    opened: list[DenseIndex] = []
    collection = f"test-{uuid.uuid4().hex}"

    def open_index(
        model: str = MODEL, dimension: int = DIM, recreate: bool = False, node: int = 0
    ) -> DenseIndex:
        index: DenseIndex
        if kind == "edge":
            index = open_dense_index(root / "dense", model=model, dimension=dimension,
                                     recreate=recreate)  # fmt: skip
        elif kind == "client":
            index = ClientDenseIndex.connect(str(root / "qdrant"), model=model,
                                             dimension=dimension, recreate=recreate)  # fmt: skip
        elif kind == "server":
            url = request.getfixturevalue("qdrant_node").url
            index = ClientDenseIndex.connect(url, collection, model=model, dimension=dimension,
                                             recreate=recreate)  # fmt: skip
        else:  # a cluster: a shard on each node; `node` picks the node asked
            url = request.getfixturevalue("qdrant_cluster")[node].url
            index = ClientDenseIndex.connect(url, collection, model=model, dimension=dimension,
                                             recreate=recreate, shards=2)  # fmt: skip
        opened.append(index)
        return index

    yield open_index
    for index in opened:
        index.close()


@pytest.fixture(params=ALL_KINDS)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens the index (embedded, local mode, a real server, a real cluster) under `tmp_path`."""
    yield from _openers(request.param, request, tmp_path)


@pytest.fixture(params=["edge", "client"])
def local_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens an index that lives in a folder of this process's (not a server's)."""
    yield from _openers(request.param, request, tmp_path)


@pytest.fixture(params=[pytest.param(kind, marks=needs_qdrant) for kind in SERVER_KINDS])
def server_opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens an index on a real Qdrant server or cluster."""
    yield from _openers(request.param, request, tmp_path)


@pytest.fixture
def index(opener: Opener) -> DenseIndex:
    """A fresh, empty index."""
    return opener()


def test_identical_vector_is_first_with_score_one(index: DenseIndex) -> None:
    ids, vectors = chunk_ids(20), unit_vectors(20)
    index.upsert(ids, vectors)

    hits = index.search(vectors[7], limit=5)

    assert hits[0][0] == ids[7]
    assert hits[0][1] == pytest.approx(1.0, abs=CLOSE)
    assert len(hits) == 5
    scores = [score for _, score in hits]
    assert scores == sorted(scores, reverse=True)


def test_scores_are_cosine_similarities(index: DenseIndex) -> None:
    ids, vectors = chunk_ids(10), unit_vectors(10)
    index.upsert(ids, vectors)

    hits = dict(index.search(vectors[0], limit=10))

    expected = vectors @ vectors[0]
    assert [hits[i] for i in ids] == pytest.approx(expected.tolist(), abs=CLOSE)


def test_upserting_an_id_again_replaces_its_vector(index: DenseIndex) -> None:
    ids, vectors = chunk_ids(5), unit_vectors(6)
    index.upsert(ids, vectors[:5])

    index.upsert([ids[0]], vectors[5:6])

    assert index.count() == 5
    assert index.search(vectors[5], limit=1) == [(ids[0], pytest.approx(1.0, abs=CLOSE))]
    assert index.search(vectors[0], limit=1)[0][1] < 0.99


def test_delete_removes_points_and_ignores_unknown_ids(index: DenseIndex) -> None:
    ids, vectors = chunk_ids(5), unit_vectors(5)
    index.upsert(ids, vectors)

    index.delete([ids[1], ids[3], str(uuid.uuid4())])

    assert index.count() == 3
    assert index.ids() == {ids[0], ids[2], ids[4]}
    assert ids[1] not in [i for i, _ in index.search(vectors[1], limit=5)]


def test_only_ids_restricts_the_search(index: DenseIndex) -> None:
    ids, vectors = chunk_ids(30), unit_vectors(30)
    index.upsert(ids, vectors)
    allowed = {ids[2], ids[11], ids[25]}

    hits = index.search(vectors[0], limit=10, only_ids=allowed)

    assert {i for i, _ in hits} == allowed


def test_empty_only_ids_finds_nothing(index: DenseIndex) -> None:
    index.upsert(chunk_ids(3), unit_vectors(3))

    assert index.search(unit_vectors(1)[0], only_ids=set()) == []


def test_search_many_gives_each_search_alone_in_order(index: DenseIndex) -> None:
    ids, vectors = chunk_ids(40), unit_vectors(40)
    index.upsert(ids, vectors)
    query = unit_vectors(1, seed=7)[0]
    some = [ids[3], ids[17], ids[31], ids[39]]
    searches: list[tuple[int, set[str] | list[str] | None]] = [
        (5, None), (0, None), (10, some), (3, set()), (2, some[:3])
    ]  # fmt: skip

    batch = index.search_many(query, searches)

    alone = [index.search(query, limit, only_ids=only) for limit, only in searches]
    assert [len(found) for found in batch] == [5, 0, 4, 0, 2]
    assert [[i for i, _ in found] for found in batch] == [[i for i, _ in f] for f in alone]
    expected = {ids[i]: float(vectors[i] @ query) for i in range(40)}
    for found in batch:
        assert [score for _, score in found] == pytest.approx(
            [expected[i] for i, _ in found], abs=CLOSE
        )


def test_ids_and_count_agree(index: DenseIndex) -> None:
    ids = chunk_ids(25)
    index.upsert(ids, unit_vectors(25))

    assert index.ids() == set(ids)
    assert index.count() == 25


def test_ids_come_back_in_canonical_form(index: DenseIndex) -> None:
    chunk_id = str(uuid.uuid4())
    index.upsert([chunk_id.upper()], unit_vectors(1))

    assert index.ids() == {chunk_id}
    assert index.search(unit_vectors(1)[0])[0][0] == chunk_id


def test_a_chunk_id_that_is_not_a_uuid_is_refused(index: DenseIndex) -> None:
    with pytest.raises(ValueError, match="chunk id 'doc-1:0' is not a UUID"):
        index.upsert(["doc-1:0"], unit_vectors(1))


def test_vectors_of_the_wrong_dimension_are_refused(index: DenseIndex) -> None:
    with pytest.raises(ValueError, match=f"expected 2 vectors of {DIM} dimensions"):
        index.upsert(chunk_ids(2), unit_vectors(2, dim=DIM + 1))


def test_search_on_an_empty_index_returns_nothing(index: DenseIndex) -> None:
    assert index.search(unit_vectors(1)[0]) == []
    assert index.count() == 0
    assert index.ids() == set()


def test_reopening_keeps_points_and_model(opener: Opener) -> None:
    ids, vectors = chunk_ids(10), unit_vectors(10)
    first = opener()
    first.upsert(ids, vectors)
    first.flush()
    first.close()

    again = opener()

    assert again.ids() == set(ids)
    assert again.search(vectors[4], limit=1)[0][0] == ids[4]


def test_reopening_with_another_model_raises_index_mismatch(opener: Opener) -> None:
    opener().close()

    with pytest.raises(IndexMismatch) as raised:
        opener(model="bge-small-en-v1.5")

    message = str(raised.value)
    assert f"'{MODEL}' ({DIM} dimensions)" in message
    assert f"not 'bge-small-en-v1.5' ({DIM} dimensions)" in message
    assert "run `archivist reindex`" in message


def test_reopening_with_another_dimension_raises_index_mismatch(opener: Opener) -> None:
    opener().close()

    with pytest.raises(IndexMismatch, match=f"'{MODEL}' \\({DIM} dimensions\\), not '{MODEL}' "):
        opener(dimension=DIM * 2)


def test_recreate_starts_an_empty_index_for_the_new_model(opener: Opener) -> None:
    first = opener()
    first.upsert(chunk_ids(4), unit_vectors(4))
    first.close()

    rebuilt = opener(model="bge-small-en-v1.5", dimension=8, recreate=True)
    rebuilt.upsert(chunk_ids(1), unit_vectors(1, dim=8))
    rebuilt.close()

    again = opener(model="bge-small-en-v1.5", dimension=8)
    assert (again.model, again.dimension, again.count()) == ("bge-small-en-v1.5", 8, 1)


def test_clear_removes_every_point_and_keeps_the_model(opener: Opener) -> None:
    index = opener()
    index.upsert(chunk_ids(6), unit_vectors(6))

    index.clear()

    assert (index.count(), index.ids()) == (0, set())
    index.close()
    with pytest.raises(IndexMismatch, match=f"built with '{MODEL}'"):
        opener(model="bge-small-en-v1.5")


def test_a_second_open_of_the_same_index_is_refused(local_opener: Opener) -> None:
    local_opener()

    with pytest.raises(RetrievalError, match="is open in another Archivist process"):
        local_opener()


def test_clients_of_a_server_share_one_index(server_opener: Opener) -> None:
    # On the cluster, written through one node and read through the other.
    writer, reader = server_opener(node=0), server_opener(node=1)
    ids, vectors = chunk_ids(200), unit_vectors(200, seed=3)
    writer.upsert(ids, vectors)

    assert reader.count() == 200
    assert [reader.search(vectors[i], limit=1)[0][0] for i in (0, 99, 199)] == [
        ids[i] for i in (0, 99, 199)
    ]
    reader.delete(ids[:50])
    assert writer.count() == 150


def test_each_of_thousands_of_stored_vectors_finds_itself_first(opener: Opener) -> None:
    index = opener(dimension=384)
    ids, vectors = chunk_ids(3000), unit_vectors(3000, dim=384, seed=1)
    index.upsert(ids, vectors)
    index.optimize()

    sample = range(0, 3000, 50)
    found = [index.search(vectors[i], limit=1)[0] for i in sample]

    assert [hit_id for hit_id, _ in found] == [ids[i] for i in sample]
    assert min(score for _, score in found) == pytest.approx(1.0, abs=CLOSE)


def test_edge_hnsw_search_finds_stored_vectors(tmp_path: Path) -> None:
    ids, vectors = chunk_ids(3000), unit_vectors(3000, dim=384, seed=2)
    index = EdgeDenseIndex(tmp_path / "dense", model=MODEL, dimension=384, exact_limit=1000)
    index.upsert(ids, vectors)
    index.optimize()  # above exact_limit: builds HNSW graphs, and searches use them

    sample = range(0, 3000, 50)
    found = [index.search(vectors[i], limit=1)[0][0] for i in sample]
    index.close()

    assert found == [ids[i] for i in sample]


TAKE_TURNS_WRITING = """
import sys, time, uuid
from pathlib import Path
import numpy as np
from retrieval.dense import EdgeDenseIndex, unwant_shard, want_shard
from retrieval.errors import IndexBusy
path, seed = Path(sys.argv[1]), int(sys.argv[2])
while True:  # as the service opens it: ask the holder to lend it until it does
    try:
        index = EdgeDenseIndex(path, model="m", dimension=32)
        break
    except IndexBusy:
        want_shard(path)
        time.sleep(0.05)
unwant_shard(path)
rng = np.random.default_rng(seed)
for _ in range(150):
    vectors = rng.standard_normal((16, 32)).astype("float32")
    index.upsert([str(uuid.uuid4()) for _ in range(16)], vectors)
    index.flush()
index.close()
"""


def test_two_processes_writing_one_embedded_index_take_turns_and_lose_nothing(
    tmp_path: Path,
) -> None:
    """Each write waits for the shard the other holds, which lends it: 600 hand-overs. When a
    process could load the shard while the other was still closing it, a flush failed on a
    payload journal cut short, every run (see EdgeDenseIndex)."""
    path = tmp_path / "dense"
    EdgeDenseIndex(path, model="m", dimension=32).close()
    script = [sys.executable, "-c", TAKE_TURNS_WRITING, str(path)]
    writers = [subprocess.Popen([*script, n], stderr=subprocess.PIPE, text=True) for n in "12"]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err[-2000:]
    index = EdgeDenseIndex(path, model="m", dimension=32)
    assert index.count() == 2 * 150 * 16
    index.close()


def test_an_index_stored_as_float32_before_still_opens_and_searches(tmp_path: Path) -> None:
    """Vectors are stored as float16 since a million chunks held 1.5 GB of float32 in RAM;
    an index written before keeps its float32 vectors and stays usable as it is."""
    import json

    import qdrant_edge as qe

    folder = tmp_path / "dense"
    folder.mkdir()
    (folder / "index.json").write_text(json.dumps({"model": MODEL, "dimension": DIM}))
    params = qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine)
    config = qe.EdgeConfig(vectors={VECTOR_NAME: params})
    ids, vectors = chunk_ids(20), unit_vectors(20)
    shard = qe.EdgeShard.create(str(folder / "shard"), config)
    points = [qe.Point(i, {VECTOR_NAME: v.tolist()}) for i, v in zip(ids, vectors, strict=True)]
    shard.update(qe.UpdateOperation.upsert_points(points))
    shard.flush()
    shard.close()

    index = EdgeDenseIndex(folder, model=MODEL, dimension=DIM)
    found = index.search(vectors[7], limit=1)
    index.upsert(chunk_ids(1), unit_vectors(1, seed=3))
    assert index.count() == 21
    index.close()

    assert found[0][0] == ids[7] and found[0][1] == pytest.approx(1.0, abs=1e-6)


@needs_qdrant
def test_a_cluster_collection_has_a_shard_on_each_node(qdrant_cluster: list[Node]) -> None:
    collection = f"test-{uuid.uuid4().hex}"
    index = ClientDenseIndex.connect(qdrant_cluster[0].url, collection, model=MODEL,
                                     dimension=DIM, shards=2)  # fmt: skip
    index.upsert(chunk_ids(100), unit_vectors(100))
    index.close()

    local = [httpx.get(f"{node.url}/collections/{collection}/cluster").json()["result"]
             ["local_shards"] for node in qdrant_cluster]  # fmt: skip
    assert [len(shards) for shards in local] == [1, 1]
    assert sum(shard["points_count"] for shards in local for shard in shards) == 100


class _OldQdrant(BaseHTTPRequestHandler):
    """What a Qdrant 1.15 server answers at its root (the one request made before refusing)."""

    def do_GET(self) -> None:
        body = json.dumps({"title": "qdrant - vector search engine", "version": "1.15.5"})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_a_server_older_than_1_16_is_refused_with_its_version() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OldQdrant)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(RetrievalError, match=r"version 1\.15\.5; Archivist needs 1\.16"):
            ClientDenseIndex.connect(url, model=MODEL, dimension=DIM)
    finally:
        server.shutdown()
