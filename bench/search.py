"""Hybrid search latency at 10k and 100k chunks, next to the raw cost of its parts.

Run: .venv/bin/python bench/search.py [SIZE ...]   (default: 10000 100000)

Each size gets a fresh data folder holding a real SQLite store, Tantivy index and embedded
Qdrant shard. Chunk texts are drawn from a Zipf-distributed vocabulary (so BM25 posting lists
look like natural text); their vectors are random unit vectors, since embedding 100k chunks
on two CPU cores takes hours (HNSW latency does not depend on where vectors come from).
Queries are embedded for real. In one loop, every query is timed through the full `search()`
and through each part on its own: query embedding, Tantivy search, Qdrant search.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import os
import random
import resource
import tempfile
import time

import numpy as np

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.indexes import Indexes
from api.search import search
from api.service import Archivist
from api.settings import Settings
from ingest.chunker import Chunk
from ingest.store import ChunkStore, FileState
from retrieval.keyword import KeywordDoc
from retrieval.metrics import percentile

CHUNKS_PER_DOCUMENT = 100
WORDS_PER_CHUNK = 150
QUERIES = 300


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


def build(settings: Settings, size: int, vocabulary: Vocabulary) -> None:
    """Fill the store and both indexes with `size` chunks."""
    with Archivist(settings) as service:
        _fill(service.store, service.indexes, size, vocabulary)


def _fill(store: ChunkStore, indexes: Indexes, size: int, vocabulary: Vocabulary) -> None:
    generator = np.random.default_rng(1)
    for start in range(0, size, CHUNKS_PER_DOCUMENT):
        count = min(CHUNKS_PER_DOCUMENT, size - start)
        texts = [" ".join(vocabulary.sample(WORDS_PER_CHUNK)) for _ in range(count)]
        chunks = [Chunk(n, t, (f"Section {n % 7}",), None, None, WORDS_PER_CHUNK)
                  for n, t in enumerate(texts)]  # fmt: skip
        sha = f"{start:064x}"
        store.record_chunks(FileState(f"/bench/doc{start}.md", sha, 1, 1), "md", chunks)
        stored = store.chunks([w.chunk_id for w in store.pending_work(limit=count)])
        vectors = generator.standard_normal((len(stored), indexes.dimension)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        indexes.dense.upsert([c.id for c in stored], vectors)
        indexes.keyword.upsert([KeywordDoc(c.id, c.heading_path[0], c.text) for c in stored])
        store.complete_work(w.seq for w in store.pending_work(limit=count))
    indexes.keyword.commit()
    indexes.dense.optimize()


def measure(settings: Settings, queries: list[str]) -> tuple[float, dict[str, list[float]]]:
    """Seconds to open the store and both indexes, then per query: full search, and
    embedding, Tantivy and Qdrant searches on their own."""
    started = time.perf_counter()
    with Archivist(settings) as service:
        service.status()  # opens SQLite, Tantivy and Qdrant and counts each
        opened = time.perf_counter() - started
        return opened, _measure(service, queries)


def disk_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _measure(service: Archivist, queries: list[str]) -> dict[str, list[float]]:
    store, indexes, settings = service.store, service.indexes, service.settings
    timings: dict[str, list[float]] = {"search": [], "embed": [], "tantivy": [], "qdrant": []}
    limit = settings.search_candidates
    for query in queries[:20]:  # warm caches and the model
        search(store, indexes, settings, query, k=10)
    for query in queries:
        started = time.perf_counter()
        search(store, indexes, settings, query, k=10)
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
    sizes = [int(a) for a in sys.argv[1:]] or [10_000, 100_000]
    vocabulary = Vocabulary()
    rng = random.Random(0)
    queries = [" ".join(vocabulary.sample(rng.randint(4, 12))) for _ in range(QUERIES)]
    print(f"cores: {os.cpu_count()}, {QUERIES} queries of 4-12 words, k=10, 50 candidates per leg")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="archivist-bench-") as data:
            settings = Settings(data=Path(data), llm="none")
            started = time.perf_counter()
            build(settings, size, vocabulary)
            print(f"\n{size:,} chunks (built in {time.perf_counter() - started:.0f} s)")
            size_on_disk = disk_size(settings.state_dir)
            opened, timings = measure(settings, queries)
        p50 = {name: percentile(values, 50) for name, values in timings.items()}
        p95 = {name: percentile(values, 95) for name, values in timings.items()}
        for name in ("embed", "tantivy", "qdrant", "search"):
            label = "hybrid search" if name == "search" else f"  {name}"
            print(f"  {label:16} p50 {p50[name]:7.2f} ms   p95 {p95[name]:7.2f} ms")
        parts = p50["embed"] + p50["tantivy"] + p50["qdrant"]
        print(f"  sum of parts     p50 {parts:7.2f} ms   overhead {p50['search'] / parts - 1:+.0%}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(
            f"  opened in {opened:.2f} s; on disk {size_on_disk / 2**20:,.0f} MiB; "
            f"peak RSS so far {peak:,.0f} MiB"
        )


if __name__ == "__main__":
    main()
