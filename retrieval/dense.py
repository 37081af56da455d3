"""The dense vector index: Qdrant's engine in-process (here), or a Qdrant server through
qdrant-client (dense_server.py); `open_dense_index` opens the one the settings name.

Both take chunk ids (UUID strings, given back lowercase and hyphenated) and unit float32
vectors, and record which embedding model and dimension built them. Opening an index built by
another model raises IndexMismatch; open it with `recreate=True` and re-embed to start over.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
import qdrant_edge as qe

from retrieval.child_process import process_alive
from retrieval.dense_base import (
    DEFAULT_COLLECTION,
    HNSW_EF,
    PAGE,
    VECTOR_NAME,
    BaseDenseIndex,
    DenseIndex,
    check_built_by,
    locked_error,
)
from retrieval.errors import IndexBusy, IndexDamaged

# Measured on two cores, 384-d, recall@10 against a full scan:
#   full scan: 2.5 ms at 10k points, 9.5 ms at 39k, 23-42 ms at 100k (recall 1.0);
#   HNSW (m=16, ef_construct=100) with ef=256: MiniLM embeddings 1.6 ms, recall 0.998 at 39k;
#   random unit vectors (the worst case) 4.4 ms / 0.52 at 39k, 3.8 ms / 0.30 at 100k.
# So the embedded index scans below EXACT_SEARCH_LIMIT points and uses HNSW (with HNSW_EF, in
# dense_base.py) above it.
EXACT_SEARCH_LIMIT = 20_000
LEND_S = 10.0  # longest a process lends the embedded index out to one that asked for it
RECLAIM_S = 60.0  # longest it waits to get it back
_LEND_POLL_S = 0.05


def open_dense_index(
    path: Path,
    *,
    model: str,
    dimension: int,
    url: str | None = None,
    recreate: bool = False,
    damaged: bool = False,
    collection: str = DEFAULT_COLLECTION,
    shards: int | None = None,
    replicas: int | None = None,
    keyword: bool = False,
    create: bool = True,
) -> DenseIndex:
    """The embedded index under `path`, or `collection` on the Qdrant server at `url`
    (created with `shards` and `replicas`; with room for the keyword leg, which it must have
    with `keyword`; not created unless `create`; `damaged`: see EdgeDenseIndex)."""
    if url:
        from retrieval.dense_server import ClientDenseIndex  # qdrant-client loads only when used

        return ClientDenseIndex.connect(url, collection, model=model, dimension=dimension,
                                        recreate=recreate, shards=shards,
                                        replicas=replicas, keyword=keyword,
                                        create=create)  # fmt: skip
    return EdgeDenseIndex(
        path, model=model, dimension=dimension, recreate=recreate, damaged=damaged
    )


class EdgeDenseIndex(BaseDenseIndex):
    """Qdrant's engine in-process: one shard under `path`, opened by one process at a time.

    `path/index.json` records the model and dimension; `path/shard/` belongs to Qdrant.

    Qdrant's engine lets one process open a shard at a time, so an open index lends itself
    out: a process that finds it busy asks for it (`want_shard`: a `wanted.<pid>` file), and
    the holder, between two operations, closes the shard until the asker is done (at most
    LEND_S), then opens it again on its next use. A search in another process so waits
    for one write at most, never for a whole import.

    The shard is open only while this process holds `open.lock` (an flock), taken before
    Qdrant's own lock and let go once the shard has closed: Qdrant lets its lock go (its
    WAL's) before the segments finish closing, and a process that loaded the shard in that
    moment read a payload journal the closing one then cut short ("Tracker journal ... is
    shorter than expected" at its next flush: two processes writing 16 points and flushing,
    150 times each, failed so in 10 runs of 10 without this lock and 0 of 30 with it).

    `recreate` starts over, loading the old shard first to take its lock, so that an index
    open in another process is never deleted — unless it is known to be `damaged` (by
    `probe_shard`, which found it unlocked): loading that may crash the process.
    """

    def __init__(
        self,
        path: Path,
        *,
        model: str,
        dimension: int,
        recreate: bool = False,
        damaged: bool = False,
        exact_limit: int = EXACT_SEARCH_LIMIT,
    ) -> None:
        self.path, self.model, self.dimension = Path(path), model, dimension
        self.exact_limit = exact_limit
        self._shard_dir = self.path / "shard"
        self._closed = False
        self._held: qe.EdgeShard | None = None  # None while lent to another process
        self._open_lock: IO[str] | None = None  # held exactly while a shard is open
        self._using = threading.RLock()  # held for every operation; the lender waits for it
        self._stop_lending = threading.Event()
        self._start(model, dimension, recreate=recreate, damaged=damaged)
        threading.Thread(target=self._lend, name="dense-lender", daemon=True).start()

    def _start(self, model: str, dimension: int, *, recreate: bool, damaged: bool) -> None:
        if shard_exists(self.path) and not recreate:
            self._load(model, dimension)
            return
        # Creating takes a file lock, so that of two processes starting on a new data folder
        # one creates while the other waits, then opens (or finds it busy), and neither
        # deletes a shard the other is making.
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / "create.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            exists = shard_exists(self.path)
            if exists and not recreate:
                self._load(model, dimension)
                return
            self._open_lock = take_open_lock(self.path)  # an index open elsewhere stays
            try:
                if exists and not damaged:  # (and so does one Qdrant finds locked)
                    old = self._open(self._load_shard, damaged_ok=True)
                    if old is not None:
                        old.close()
                shutil.rmtree(self._shard_dir, ignore_errors=True)  # also a half-created shard
                self._held = self._create()
            except BaseException:
                self._let_go()
                raise

    def _load(self, model: str, dimension: int) -> None:
        check_built_by(str(self.path), _read_json(self.path / "index.json"), model, dimension)
        self._held = self._open(self._load_shard)

    @property
    def _shard(self) -> qe.EdgeShard:
        """The open shard, taken back first if it was lent (call with `_using` held)."""
        if self._held is None:
            deadline = time.monotonic() + RECLAIM_S
            try:
                while self._held is None:
                    try:
                        self._held = self._open(self._load_shard)
                    except IndexBusy:
                        if time.monotonic() >= deadline:
                            raise
                        want_shard(self.path)  # a borrower that now waits itself lends it back
                        time.sleep(_LEND_POLL_S)
            finally:
                unwant_shard(self.path)
        return self._held

    def count(self) -> int:
        """Number of stored vectors."""
        with self._using:
            return self._shard.count(qe.CountRequest(exact=True))

    def optimize(self) -> None:
        """Merge segments and build HNSW graphs for segments past the exact-search size."""
        # Blocking, and the bindings hold the GIL throughout: every Python thread stops
        # (24.6 s for a first graph over 20k random 384-d points on two cores).
        with self._using:
            self._shard.optimize()

    def flush(self) -> None:
        """Make every write durable on disk."""
        with self._using:
            self._shard.flush()

    def clear(self) -> None:
        """Remove every vector, keeping the model and dimension."""
        with self._using:
            self._shard.close()
            shutil.rmtree(self._shard_dir)
            self._held = self._create()

    def close(self) -> None:
        """Flush and release the shard and its lock; closing twice is harmless."""
        self._stop_lending.set()
        with self._using:
            if not self._closed:
                self._closed = True
                if self._held is not None:
                    self._held.flush()
                    self._held.close()
                    self._held = None
                self._let_go()

    def _lend(self) -> None:
        """Between operations, hand the shard to a process that asked for it (see the class)."""
        while not self._stop_lending.wait(_LEND_POLL_S):
            if not _askers(self.path):
                continue
            with self._using:
                if self._closed or self._held is None:
                    continue
                self._held.flush()
                self._held.close()
                self._held = None
                self._let_go()
                deadline = time.monotonic() + LEND_S
                while _askers(self.path) and time.monotonic() < deadline:
                    if self._stop_lending.wait(_LEND_POLL_S):
                        break

    def _put(self, ids: list[str], rows: np.ndarray) -> None:
        # numpy rows as they are (0.04 s for 2,048 points against 0.10 s through lists), and
        # ids as UUID objects: given strings, the bindings let go of the interpreter lock for
        # each id and wait to get it back while another thread runs Python — 2,048 points
        # beside one busy thread, median of 8: 0.47 s with strings, 0.12 s with UUIDs.
        points = [
            qe.Point(uuid.UUID(i), {VECTOR_NAME: row}) for i, row in zip(ids, rows, strict=True)
        ]
        with self._using:
            self._shard.update(qe.UpdateOperation.upsert_points(points))

    def _remove(self, ids: list[str]) -> None:
        point_ids: list[qe.PointId] = list(ids)  # the alias exists only in the stubs
        with self._using:
            self._shard.update(qe.UpdateOperation.delete_points(point_ids))

    def _nearest(
        self, query: list[float], searches: list[tuple[int, list[str] | None]]
    ) -> list[list[tuple[str, float]]]:
        with self._using:
            shard = self._shard
            exact = shard.info().points_count < self.exact_limit  # info() costs microseconds
            params = qe.SearchParams(exact=True) if exact else qe.SearchParams(hnsw_ef=HNSW_EF)
            batch = qe.QueryBatchRequest(
                [
                    qe.QueryRequest(
                        limit=limit,
                        query=qe.Query.Nearest(query, using=VECTOR_NAME),
                        filter=None
                        if allowed is None
                        else qe.Filter(must=[qe.HasIdCondition(set(allowed))]),
                        params=params,
                    )
                    for limit, allowed in searches
                ]
            )
            try:
                results = shard.query_batch(batch)
            except Exception as exc:  # e.g. a truncated vector file: "vector 125 is not readable"
                raise _damaged(self.path, exc) from exc
        return [[(str(p.id), float(p.score)) for p in points] for points in results]

    def _present(self, ids: list[str]) -> list[str]:
        point_ids: list[qe.PointId] = list(ids)
        with self._using:
            shard = self._shard
            try:
                records = shard.retrieve(point_ids, with_payload=False, with_vector=True)
            except Exception as exc:
                raise _damaged(self.path, exc) from exc
        return [str(r.id) for r in records]

    def _page(self, offset: Any) -> tuple[list[str], Any]:
        request = qe.ScrollRequest(offset=offset, limit=PAGE, with_payload=False)
        with self._using:
            records, offset = self._shard.scroll(request)
        return [str(r.id) for r in records], offset

    def _create(self) -> qe.EdgeShard:
        # Metadata first, atomically: a crash before the shard exists leaves a folder that is
        # simply recreated next time.
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / "index.json.tmp"
        tmp.write_text(json.dumps({"model": self.model, "dimension": self.dimension}) + "\n")
        os.replace(tmp, self.path / "index.json")
        # Vectors stored as float16: half the memory (a million chunks: 0.77 instead of 1.5 GB
        # held in RAM), the same search time, cosines within ~1e-4 (recall@10 against an exact
        # float32 scan 0.985 instead of 0.988 at 100k chunks of real text).
        params = qe.EdgeVectorParams(
            size=self.dimension,
            distance=qe.Distance.Cosine,
            datatype=qe.VectorStorageDatatype.Float16,
        )
        # No HNSW graph for a segment that small searches scan anyway (a graph for 10k points
        # costs seconds of optimize() on two cores). The threshold is in KB, per segment.
        threshold = max(1, self.exact_limit * self.dimension * 4 // 1024)
        optimizers = qe.EdgeOptimizersConfig(indexing_threshold=threshold)
        config = qe.EdgeConfig(vectors={VECTOR_NAME: params}, optimizers=optimizers)
        return self._open(lambda: qe.EdgeShard.create(str(self._shard_dir), config))

    def _load_shard(self) -> qe.EdgeShard:
        return qe.EdgeShard.load(str(self._shard_dir))

    def _open(self, opener: Callable[[], qe.EdgeShard], damaged_ok: bool = False) -> Any:
        """Open the shard with `opener`, taking `open.lock` first unless already held (and
        then keeping it whatever happens)."""
        taken = self._open_lock is None
        if taken:
            self._open_lock = take_open_lock(self.path)
        try:
            return opener()
        except Exception as exc:  # the bindings raise plain Exception
            if taken:
                self._let_go()
            if "WouldBlock" in str(exc):
                raise locked_error(self.path) from None
            if damaged_ok:
                return None
            raise _damaged(self.path, exc) from exc

    def _let_go(self) -> None:
        """Release `open.lock` (call once the shard is closed)."""
        if self._open_lock is not None:
            self._open_lock.close()  # closing the file releases its flock
            self._open_lock = None


def take_open_lock(path: Path) -> IO[str]:
    """The lock a process holds while the embedded index under `path` is open in it (see
    EdgeDenseIndex); raises IndexBusy if another process holds it. Closing the file frees it."""
    path.mkdir(parents=True, exist_ok=True)
    handle = (path / "open.lock").open("a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise locked_error(path) from None
    return handle


def shard_exists(path: Path) -> bool:
    """Whether an embedded index has been created under `path`."""
    return (Path(path) / "shard" / "edge_config.json").exists()


def shard_files(path: Path) -> Path:
    """The folder of an embedded index's shard (Qdrant's files)."""
    return Path(path) / "shard"


# Opens the shard and reads every stored vector (an exact search scans them all); run in a
# child process, so that a crash inside the index library ends the child, not the caller.
_PROBE = """
import sys
import qdrant_edge as qe
try:
    shard = qe.EdgeShard.load(sys.argv[1])
    query = qe.Query.Nearest([1.0] * int(sys.argv[2]), using=sys.argv[3])
    shard.query(qe.QueryRequest(limit=1, query=query, params=qe.SearchParams(exact=True)))
    shard.close()
except Exception as exc:
    print(exc)
    sys.exit(3 if "WouldBlock" in str(exc) else 2)
"""


def probe_shard(path: Path, dimension: int, *, timeout_s: float = 600) -> str | None:
    """Check that the embedded index under `path` opens and every vector reads, in a child
    process: None if it does, else what is wrong. Garbage in an id-tracker file makes the index
    library abort the whole process ("memory allocation of 43 GB failed", SIGABRT), which no
    exception handler survives. Takes 0.08 s for a small index; raises if the index is open in
    another process."""
    command = [sys.executable, "-c", _PROBE, str(shard_files(path)), str(dimension), VECTOR_NAME]
    try:
        with take_open_lock(Path(path)):  # held for the child, as by any process opening it
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"opening it took over {timeout_s:.0f} s"
    said = (done.stdout.strip() or done.stderr.strip()).splitlines()
    if done.returncode == 0:
        return None
    if done.returncode == 3:
        raise locked_error(Path(path))
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        return f"the index library crashed opening it ({name}{': ' + said[-1] if said else ''})"
    return said[-1] if said else f"the check exited with status {done.returncode}"


def _damaged(path: Path, error: object) -> IndexDamaged:
    return IndexDamaged(
        f"the dense index at {path} is damaged ({error}) — `archivist reindex` rebuilds it from "
        "SQLite (so do `archivist ingest` and `archivist serve`, on their own)"
    )


def want_shard(path: Path) -> None:
    """Ask the process holding the embedded index under `path` to lend it (see
    EdgeDenseIndex); `unwant_shard` when done with it."""
    (Path(path) / f"wanted.{os.getpid()}").touch()


def unwant_shard(path: Path) -> None:
    """Withdraw this process's request for the index under `path`."""
    (Path(path) / f"wanted.{os.getpid()}").unlink(missing_ok=True)


def _askers(path: Path) -> list[int]:
    """Processes that asked for the index and still run (requests of dead ones are removed)."""
    alive = []
    for request in path.glob("wanted.*"):
        pid = request.suffix.lstrip(".")
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        if process_alive(int(pid)):
            alive.append(int(pid))
        else:
            request.unlink(missing_ok=True)
    return alive


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
