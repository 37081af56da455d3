"""The embedding runtimes side by side: torch, ONNX Runtime fp32 and int8, llama.cpp.

Run: .venv/bin/python bench/embed.py [--chunks N] [--device cpu|cuda] [--no-quality] [--compile]
     [--models NAME ...]   (default: the configured model; nomic-embed-text-v1.5 runs on
                            llama.cpp, sentence-transformers models on each of their runtimes
                            that takes them: embeddinggemma-300m on torch only)

For each backend, in one run and on the same texts:
- chunks/s: bulk `encode` of the shared corpus's chunk texts (../shared/corpus, chunked and
  led by their document context exactly as the dense index embeds them), batches of the
  index sync's size, on all cores;
- query p50/p95: one question at a time through the query thread (one compute thread; two
  for llama.cpp), 200 questions of squad-dev;
- nDCG@10 of the dense leg alone (exact cosine) on ../shared/eval/squad-dev (1,000 sampled
  questions, the sample `archivist eval --max-queries 1000` takes) and cisi;
- the lowest and mean cosine of its chunk vectors with torch's;
- with --compile, each torch row again once its questions run compiled ahead of time
  (`retrieval/compiled_queries.py`; the compile's seconds in the row's name): query p50/p95,
  nDCG@10 over the row above's document vectors, and the cosines of the 200 questions'
  vectors with the row above's.
torch runs in the precision it chooses (bf16 on a CPU with bf16 arithmetic of its own, where
an fp32 torch row comes first, as the reference). The ratios are to the first row, measured
in the same run; the default backend is the one that wins. Queries are embedded as queries
and documents as documents (the model's prefixes).
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import os
import random
import tempfile
import time
from typing import Any

import numpy as np

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.evaluation import Dataset, load_dataset
from api.service import (
    SYNC_BATCH,
    Archivist,
    Settings,
    embedding_model,
    embedding_text,
    exports_to_onnx,
    runtime_of,
)
from retrieval.embedder import Embedder
from retrieval.encoders import FOLDER_BACKENDS, computes_bf16
from retrieval.metrics import evaluate, percentile

SHARED = Path(__file__).resolve().parents[2] / "shared"
QUALITY_SETS = ("squad-dev", "cisi")


def corpus_chunks(limit: int) -> list[str]:
    """Chunk texts of the shared corpus as the dense index embeds them, a fixed sample."""
    folders = [SHARED / "corpus" / name for name in ("pdfs", "mixed")]
    with (
        tempfile.TemporaryDirectory() as data,
        Archivist(Settings(data=Path(data), llm="none")) as service,
    ):
        service.ingest([f for f in folders if f.is_dir()], index=False)
        store = service.store
        texts = [embedding_text(c) for c in store.chunks(sorted(store.chunk_ids()))]
    return random.Random(0).sample(texts, min(limit, len(texts)))


def chunks_per_second(embedder: Embedder, texts: list[str]) -> tuple[float, Any]:
    embedder.encode(texts[:16])  # warm
    started = time.perf_counter()
    vectors = np.concatenate(
        [embedder.encode(texts[i : i + SYNC_BATCH]) for i in range(0, len(texts), SYNC_BATCH)]
    )
    return len(texts) / (time.perf_counter() - started), vectors


def query_latency(embedder: Embedder, questions: list[str]) -> tuple[float, float]:
    for question in questions[:10]:  # warm
        embedder.encode_query(question)
    times = []
    for question in questions:
        started = time.perf_counter()
        embedder.encode_query(question)
        times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 50), percentile(times, 95)


def dense_ndcg(embedder: Embedder, dataset: Dataset, documents: Any = None) -> tuple[float, Any]:
    """nDCG@10 of exact cosine search over the set's documents, and their vectors (embedded
    unless given)."""
    ids = [str(doc["_id"]) for doc in dataset.corpus]
    if documents is None:
        documents = embedder.encode(
            [f"{doc.get('title') or ''}\n{doc['text']}".strip() for doc in dataset.corpus]
        )
    query_ids = list(dataset.queries)
    queries = np.stack([embedder.encode_query(dataset.queries[q]) for q in query_ids])
    scores = queries @ documents.T
    top = np.argsort(-scores, axis=1)[:, :10]
    run = {q: [ids[i] for i in row] for q, row in zip(query_ids, top, strict=True)}
    return evaluate(run, dataset.qrels, ks=(10,))["ndcg@10"], documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=1000, help="chunk texts timed (sample)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--backends", nargs="*", default=list(FOLDER_BACKENDS))
    parser.add_argument("--models", nargs="*", default=[Settings().embed_model])
    parser.add_argument("--no-quality", action="store_true", help="speed only")
    parser.add_argument(
        "--compile", action="store_true", help="each torch row again with compiled questions"
    )
    args = parser.parse_args()
    texts = corpus_chunks(args.chunks)
    sets = {name: load_dataset(SHARED / "eval" / name, 1000) for name in QUALITY_SETS}
    questions = list(sets["squad-dev"].queries.values())[:200]
    if args.no_quality:
        sets = {}
    cache = Path(tempfile.mkdtemp(prefix="onnx-"))
    print(
        f"cores: {os.cpu_count()}, device: {args.device}, bf16 arithmetic: {computes_bf16()}, "
        f"{len(texts)} chunk texts",
        flush=True,
    )
    rows: dict[str, dict[str, float | None]] = {}
    references: dict[str, Any] = {}
    # On a CPU with bf16 arithmetic torch runs in bf16; its fp32 row comes first, as the
    # reference the others' vectors are compared with.
    both = args.device == "cpu" and computes_bf16()
    runs = [
        (name, backend, half)
        for name in args.models
        for backend in (["llamacpp"] if runtime_of(name) == "gguf" else args.backends)
        if exports_to_onnx(name) or not backend.startswith("onnx")
        for half in ([False, None] if backend == "torch" and both else [None])
    ]
    for name, backend, half in runs:
        settings = Settings(embed_model=name)
        embedder = Embedder(
            embedding_model(settings),
            backend=backend,  # type: ignore[arg-type]
            device=args.device,  # type: ignore[arg-type]
            batch_size=settings.embed_batch_for(args.device),
            onnx_cache=cache,
            half=half,
        )
        precision = (" fp32" if half is False else " bf16") if backend == "torch" and both else ""
        label = f"{name} {backend}{precision}"
        rate, vectors = chunks_per_second(embedder, texts)
        p50, p95 = query_latency(embedder, questions)
        row = {"chunks/s": rate, "query p50 ms": p50, "query p95 ms": p95}
        documents = {}
        for set_name, dataset in sets.items():
            row[f"{set_name} nDCG@10"], documents[set_name] = dense_ndcg(embedder, dataset)
        reference = references.setdefault(name, vectors)  # each model's first runtime
        cosines = (vectors * reference).sum(axis=1)
        row["min cosine"], row["mean cosine"] = float(cosines.min()), float(cosines.mean())
        rows[label] = row
        print(f"  {label}: {row}", file=sys.stderr, flush=True)
        if args.compile and backend == "torch":
            uncompiled = np.stack([embedder.encode_query(q) for q in questions])
            started = time.perf_counter()
            if embedder.compile_queries(cache / "compiled").result():
                seconds = time.perf_counter() - started
                p50, p95 = query_latency(embedder, questions)
                row = {"chunks/s": None, "query p50 ms": p50, "query p95 ms": p95}
                for set_name, dataset in sets.items():
                    row[f"{set_name} nDCG@10"], _ = dense_ndcg(
                        embedder, dataset, documents[set_name]
                    )
                compiled = np.stack([embedder.encode_query(q) for q in questions])
                cosines = (compiled * uncompiled).sum(axis=1)
                row["min cosine"], row["mean cosine"] = float(cosines.min()), float(cosines.mean())
                rows[f"{label}, questions compiled ({seconds:.0f} s)"] = row
                print(f"  {label} compiled: {row}", file=sys.stderr, flush=True)
        embedder.close()
    first = next(iter(rows.values()))
    columns = list(first)
    print("\n| backend | " + " | ".join(columns) + " | chunks/s vs first |")
    print("|---" * (len(columns) + 2) + "|")
    for backend, row in rows.items():
        cells = " | ".join(_cell(c, row[c]) for c in columns)
        ratio = f"{row['chunks/s'] / first['chunks/s']:.2f}x" if row["chunks/s"] else "—"
        print(f"| {backend} | {cells} | {ratio} |")


def _cell(column: str, value: float | None) -> str:
    if value is None:  # a compiled row: the bulk path and its vectors are the row above's
        return "—"
    return f"{value:.4f}" if "cos" in column or "nDCG" in column else f"{value:.1f}"


if __name__ == "__main__":
    main()
