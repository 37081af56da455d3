"""Hybrid search latency at 10k and 100k chunks (or any size), next to the raw cost of its parts.

Run: .venv/bin/python bench/search.py [--text real|generated] [--vectors DIR] [--data DIR]
                                      [--eval DIR] [SIZE ...]   (default sizes: 10000 100000)
     .venv/bin/python bench/search.py --embed-only --vectors DIR [SIZE ...]   (on a GPU)
     .venv/bin/python bench/search.py --qdrant-nodes 2 [--keyword qdrant] [SIZE ...]

Each size gets a fresh data folder (or `--data DIR`, built once and reused: a million chunks
take a while) holding a real SQLite store, Tantivy index and embedded Qdrant shard. With
`--qdrant-nodes N` the dense index (and with `--keyword qdrant` the BM25 leg too) lives in a
collection on a real Qdrant cluster of N nodes on this machine instead (`make qdrant`; a shard
per node, its storage in the data folder), started for the run and built in it (not reused:
a cluster's nodes find each other by the ports of their first start); ingest throughput into
it is reported as the build's chunks per second.

Text: `real` (the default when ../shared/eval is there) recombines the sentences of the shared
dev corpora (squad-dev, cisi, amazon) into as many distinct chunks as asked, and the queries
are those sets' real questions; `generated` draws words from a Zipf-distributed vocabulary
(BM25 posting lists shaped like natural text's) and makes queries the same way.
Vectors: the real text's vectors come from `--vectors DIR`, written once by `--embed-only`
(a GPU embeds 100k chunks in a minute; two CPU cores take ~45 minutes), stored as int8 with a
scale per row in files of 40,000 rows; without them, and for generated text, they are random
unit vectors — HNSW's worst case, said in the output.
Queries are embedded for real. In one loop, every query is timed through the full
`search_passages()` and through each part on its own: query embedding, Tantivy search, Qdrant
search.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import resource
import tempfile
import time
from collections.abc import Iterator

import numpy as np

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.service import Archivist, Indexes, Settings, search_passages
from ingest.chunker import Chunk
from ingest.store import ChunkStore, FileState
from retrieval.keyword import KeywordDoc
from retrieval.metrics import percentile

CHUNKS_PER_DOCUMENT = 100
WORDS_PER_CHUNK = 150
QUERIES = 300
EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
REAL_CORPORA = ("squad-dev", "cisi", "amazon")
ROWS_PER_FILE = 40_000  # int8 x 384 dimensions: 15 MB a file
_WRITE = 5_000  # chunks written to the indexes at once


class Vocabulary:
    """Words with Zipf frequencies: real English words first, then made-up rare ones."""

    def __init__(self, seed: int = 0) -> None:
        samples = Path(__file__).resolve().parents[1] / "data" / "inbox"
        real = sorted({w.lower() for p in samples.glob("*.md") for w in p.read_text().split()})
        self.words = real + [f"term{n}" for n in range(60_000)]
        weights = 1 / np.arange(1, len(self.words) + 1)
        self.cumulative = np.cumsum(weights / weights.sum())
        self.random = np.random.default_rng(seed)

    def sample(self, count: int) -> list[str]:
        picks = np.searchsorted(self.cumulative, self.random.random(count))
        return [self.words[min(i, len(self.words) - 1)] for i in picks]


class RealText:
    """Chunks recombined from the sentences of the shared dev corpora: real words in real
    sentences, as many distinct chunks as asked; queries are the sets' real questions."""

    def __init__(self, folder: Path = EVAL, seed: int = 0) -> None:
        self.sentences: list[str] = []
        for name in REAL_CORPORA:
            for line in (folder / name / "corpus.jsonl").open():
                text = json.loads(line)["text"]
                self.sentences += [s for s in re.split(r"(?<=[.!?])\s+", text) if len(s) > 20]
        self.questions = [
            json.loads(line)["text"]
            for name in ("squad-dev", "amazon")
            for line in (folder / name / "queries.jsonl").open()
        ]
        self.seed = seed

    def chunks(self, count: int) -> list[str]:
        picks = np.random.default_rng(self.seed).integers(0, len(self.sentences), count * 40)
        texts, at = [], 0
        for _ in range(count):
            words, parts = 0, []
            while words < WORDS_PER_CHUNK:
                parts.append(self.sentences[picks[at]])
                words, at = words + len(parts[-1].split()), at + 1
            texts.append(" ".join(parts))
        return texts

    def queries(self, count: int) -> list[str]:
        return random.Random(self.seed).sample(self.questions, count)


def generated_chunks(vocabulary: Vocabulary, count: int) -> list[str]:
    return [" ".join(vocabulary.sample(WORDS_PER_CHUNK)) for _ in range(count)]


def digest(texts: list[str]) -> str:
    return hashlib.sha256("\0".join(texts).encode()).hexdigest()[:12]


def save_vectors(folder: Path, texts: list[str], vectors: np.ndarray) -> None:
    """Int8 rows with a float32 scale each, in files of ROWS_PER_FILE rows."""
    folder.mkdir(parents=True, exist_ok=True)
    scales = np.abs(vectors).max(axis=1, keepdims=True) / 127
    rows = np.round(vectors / scales).astype(np.int8)
    name = f"{len(texts)}-{digest(texts)}"
    np.save(folder / f"{name}.scales.npy", scales.astype(np.float32))
    for part, start in enumerate(range(0, len(rows), ROWS_PER_FILE)):
        np.save(folder / f"{name}.{part}.npy", rows[start : start + ROWS_PER_FILE])


def load_vectors(folder: Path | None, texts: list[str]) -> np.ndarray | None:
    """The cached vectors of exactly these texts, unit length again; None if not cached."""
    name = f"{len(texts)}-{digest(texts)}"
    if folder is None or not (folder / f"{name}.scales.npy").is_file():
        return None
    scales = np.load(folder / f"{name}.scales.npy")
    parts = len(range(0, len(texts), ROWS_PER_FILE))
    rows = np.concatenate([np.load(folder / f"{name}.{n}.npy") for n in range(parts)])
    vectors = rows.astype(np.float32) * scales
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def embed(texts: list[str]) -> np.ndarray:
    """The index's own embedder (a GPU when there is one)."""
    with (
        tempfile.TemporaryDirectory() as data,
        Archivist(Settings(data=Path(data), llm="none")) as service,
    ):
        embedder = service.indexes.embedder
        started = time.perf_counter()
        vectors = embedder.encode(texts)  # in model batches of similar length
        seconds = time.perf_counter() - started
        print(f"  embedded {len(texts):,} chunks in {seconds:.0f} s on {embedder.device}")
        return vectors


def build(settings: Settings, texts: list[str], vectors: np.ndarray | None) -> None:
    """Fill the store and both indexes with these chunk texts (random unit vectors if None)."""
    with Archivist(settings) as service:
        _fill(service.store, service.indexes, texts, vectors)


def _fill(
    store: ChunkStore, indexes: Indexes, texts: list[str], vectors: np.ndarray | None
) -> None:
    generator = np.random.default_rng(1)
    for first in range(0, len(texts), _WRITE):
        ids, rows = [], []
        for start in range(first, min(first + _WRITE, len(texts)), CHUNKS_PER_DOCUMENT):
            batch = texts[start : start + CHUNKS_PER_DOCUMENT]
            chunks = [Chunk(n, t, (f"Section {n % 7}",), None, None, WORDS_PER_CHUNK)
                      for n, t in enumerate(batch)]  # fmt: skip
            sha = f"{start:064x}"
            store.record_chunks(FileState(f"/bench/doc{start}.md", sha, 1, 1), "md", chunks)
            stored = store.chunks([w.chunk_id for w in store.pending_work(limit=len(batch))])
            if vectors is None:
                part = generator.standard_normal((len(stored), indexes.dimension))
                rows.append((part / np.linalg.norm(part, axis=1, keepdims=True)).astype(np.float32))
            else:  # chunk n of this document holds text start + n
                rows.append(vectors[[start + c.ordinal for c in stored]])
            ids += [c.id for c in stored]
            indexes.keyword.upsert([KeywordDoc(c.id, c.heading_path[0], c.text) for c in stored])
            store.complete_work(w.seq for w in store.pending_work(limit=len(batch)))
        indexes.dense.upsert(ids, np.concatenate(rows))
        indexes.keyword.commit()  # after the dense leg: on a Qdrant server both share points
        if first // _WRITE % 20 == 19:
            print(f"  {first + _WRITE:,} chunks written", flush=True)
    indexes.dense.optimize()


def measure(settings: Settings, queries: list[str]) -> tuple[float, int, dict[str, list[float]]]:
    """Seconds to open the store and both indexes and the process' RSS then, and per query:
    full search, and embedding, Tantivy and Qdrant searches on their own."""
    started = time.perf_counter()
    with Archivist(settings) as service:
        service.status()  # opens SQLite, Tantivy and Qdrant and counts each
        opened = time.perf_counter() - started
        return opened, resident_bytes(), _measure(service, queries)


def resident_bytes() -> int:
    """The process' resident memory now (Linux), or its peak so far elsewhere."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def disk_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _measure(service: Archivist, queries: list[str]) -> dict[str, list[float]]:
    store, indexes, settings = service.store, service.indexes, service.settings
    timings: dict[str, list[float]] = {"search": [], "embed": [], "tantivy": [], "qdrant": []}
    limit = settings.search_candidates
    for query in queries[:20]:  # warm caches and the model
        search_passages(store, indexes, settings, query, k=10)
    for query in queries:
        started = time.perf_counter()
        search_passages(store, indexes, settings, query, k=10)
        timings["search"].append(time.perf_counter() - started)
        started = time.perf_counter()
        vector = indexes.embedder.encode_query(query)
        timings["embed"].append(time.perf_counter() - started)
        started = time.perf_counter()
        indexes.keyword.search(query, limit)
        timings["tantivy"].append(time.perf_counter() - started)
        started = time.perf_counter()
        indexes.dense.search(vector, limit)
        timings["qdrant"].append(time.perf_counter() - started)
    return {name: [t * 1000 for t in values] for name, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000])
    parser.add_argument("--text", choices=("real", "generated"))
    parser.add_argument("--vectors", type=Path, help="cached vectors of the real text")
    parser.add_argument("--embed-only", action="store_true", help="embed and cache, then stop")
    parser.add_argument("--data", type=Path, help="build here once, reuse afterwards")
    parser.add_argument("--eval", type=Path, default=EVAL, help="the dev sets' folder")
    parser.add_argument("--qdrant-nodes", type=int, default=0, help="a Qdrant cluster of N nodes")
    parser.add_argument("--keyword", choices=("tantivy", "qdrant"), default="tantivy")
    args = parser.parse_args()
    text = args.text or ("real" if (args.eval / "squad-dev").is_dir() else "generated")
    real = RealText(args.eval) if text == "real" else None
    vocabulary = Vocabulary()
    if real is not None:
        queries = real.queries(QUERIES)
        described = f"{QUERIES} real questions (squad-dev, amazon)"
    else:
        rng = random.Random(0)
        queries = [" ".join(vocabulary.sample(rng.randint(4, 12))) for _ in range(QUERIES)]
        described = f"{QUERIES} generated queries of 4-12 words"
    print(f"cores: {os.cpu_count()}, {text} text, {described}, k=10, 50 candidates per leg")
    for size in args.sizes:
        if args.embed_only:
            texts = real.chunks(size) if real else generated_chunks(vocabulary, size)
            save_vectors(args.vectors, texts, embed(texts))
            continue
        with _data_folder(args.data) as data, _cluster(data, args.qdrant_nodes) as urls:
            url = urls[0] if urls else None
            settings = Settings(data=data, llm="none", qdrant_url=url, keyword=args.keyword,
                                qdrant_shards=args.qdrant_nodes or None)  # fmt: skip
            if url:
                print(f"\n  on a {args.qdrant_nodes}-node Qdrant cluster, BM25 in {args.keyword}")
            if settings.database.exists():
                print(f"\n{size:,} chunks, as built before in {data}")
            else:
                texts = real.chunks(size) if real else generated_chunks(vocabulary, size)
                vectors = load_vectors(args.vectors, texts) if real else None
                kind = "real" if vectors is not None else "random unit"
                print(f"\n{size:,} chunks, {kind} vectors")
                started = time.perf_counter()
                build(settings, texts, vectors)
                seconds = time.perf_counter() - started
                print(f"  built in {seconds:.0f} s ({size / seconds:,.0f} chunks/s)")
                if urls:
                    _wait_for_optimizers(settings.qdrant_collection, urls)
            size_on_disk = disk_size(settings.state_dir)
            opened, resident, timings = measure(settings, queries)
            if urls:
                print(f"  the cluster's storage: {disk_size(data / 'qdrant') / 2**20:,.0f} MiB")
        report(timings, opened, resident, size_on_disk)


def _wait_for_optimizers(collection: str, urls: list[str]) -> None:
    """Wait until every node has built its HNSW graphs (they do so in the background), so the
    searches measured are those of an optimized collection, as the embedded engine's are."""
    from qdrant_client import QdrantClient, models

    started = time.perf_counter()
    for url in urls:
        client = QdrantClient(url=url, check_compatibility=False, timeout=60)
        while client.get_collection(collection).status != models.CollectionStatus.GREEN:
            time.sleep(2)
        client.close()
    print(f"  the cluster optimized it {time.perf_counter() - started:.0f} s later")


@contextlib.contextmanager
def _cluster(data: Path, nodes: int) -> Iterator[list[str]]:
    """The URLs of a cluster of `nodes` Qdrant nodes with storage under `data`, for the block;
    none for none (the embedded engine)."""
    if not nodes:
        yield []
        return
    from tests.qdrant_server import running_cluster

    if (data / "qdrant").exists():
        sys.exit(f"{data} was built on a Qdrant cluster: build again in a new folder")
    with running_cluster(data / "qdrant", nodes) as started:
        yield [node.url for node in started]


@contextlib.contextmanager
def _data_folder(kept: Path | None) -> Iterator[Path]:
    if kept is not None:
        yield kept
        return
    with tempfile.TemporaryDirectory(prefix="archivist-bench-") as data:
        yield Path(data)


def report(
    timings: dict[str, list[float]], opened: float, resident: int, size_on_disk: int
) -> None:
    p50 = {name: percentile(values, 50) for name, values in timings.items()}
    p95 = {name: percentile(values, 95) for name, values in timings.items()}
    labels = {"search": "hybrid search", "embed": "  embed", "tantivy": "  bm25 leg",
              "qdrant": "  dense leg"}  # fmt: skip
    for name in ("embed", "tantivy", "qdrant", "search"):
        label = labels[name]
        print(f"  {label:16} p50 {p50[name]:7.2f} ms   p95 {p95[name]:7.2f} ms")
    parts = p50["embed"] + p50["tantivy"] + p50["qdrant"]
    print(f"  sum of parts     p50 {parts:7.2f} ms   hybrid / parts {p50['search'] / parts:.2f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  opened in {opened:.2f} s; on disk {size_on_disk / 2**20:,.0f} MiB; "
        f"RSS after opening {resident / 2**20:,.0f} MiB, peak so far {peak:,.0f} MiB"
    )


if __name__ == "__main__":
    main()
