"""Ingestion throughput on the shared corpus: conversion, then the whole pipeline.

Run: .venv/bin/python bench/ingest.py [--no-embed] [--copies N] [FOLDER ...]
     (default folders: ../shared/corpus/pdfs and mixed; --copies N ingests N distinct copies
     of the first folder's PDFs, enough pages to keep a GPU busy)

For each folder, in one run:
1. conversion only: ingest into a fresh data folder (conversion, chunking and SQLite writes on
   all cores), next to pdfium alone extracting the same PDFs on one core;
2. the whole pipeline (first folder only, unless --no-embed): ingest, embed and index into a
   fresh data folder, next to the embedding model's raw `encode` throughput on the very same
   chunk texts (and, on the torch backend, sentence-transformers' own `encode`, the raw speed
   the GPU target was first stated against). Embedding is the bottleneck; everything else
   should hide behind it.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import os
import tempfile
import time

import pypdfium2 as pdfium

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.service import Archivist, Settings, embedding_text
from retrieval.embedder import Embedder, resolve_model_path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def pdfium_pages_per_second(folder: Path) -> tuple[int, float]:
    """Raw text extraction with pdfium on one core: (pages, seconds)."""
    pages, started = 0, time.perf_counter()
    for path in sorted(folder.rglob("*.pdf")):
        try:
            pdf = pdfium.PdfDocument(path)
        except pdfium.PdfiumError:
            continue
        for index in range(len(pdf)):
            page = pdf[index]
            textpage = page.get_textpage()
            textpage.get_text_range()
            textpage.close()
            page.close()
        pages += len(pdf)
        pdf.close()
    return pages, time.perf_counter() - started


def ingest_folder(folder: Path) -> dict[str, float]:
    """Ingest a folder into a fresh data folder; time it and count what went in."""
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data=Path(data), llm="none")
        with Archivist(settings) as service:
            started = time.perf_counter()
            report = service.ingest([folder], index=False).report
            seconds = time.perf_counter() - started
            store = service.store
            pages = sum(d.page_count or 0 for d in store.documents() if d.file_type == "pdf")
            chunks = store.chunk_count()
    summary = report.summary()
    return {"seconds": seconds, "pages": pages, "chunks": chunks, **summary}


def pipeline_versus_encode(folder: Path) -> None:
    """Chunks/s through ingest + embed + index, against raw `encode` on the same texts."""
    with tempfile.TemporaryDirectory() as data:
        settings = Settings(data=Path(data), llm="none")
        with Archivist(settings) as service:
            service.indexes.embedder.encode(["warm"])  # loaded, as raw `encode` below is
            files: list[float] = []
            started = time.perf_counter()
            on_file = lambda _: files.append(time.perf_counter())  # noqa: E731
            service.ingest([folder], optimize=False, on_file=on_file)
            indexed = time.perf_counter() - started
            service.indexes.dense.optimize()
            seconds = time.perf_counter() - started
            converted = files[-1] - started if files else 0.0
            store = service.store
            texts = [embedding_text(c) for c in store.chunks(sorted(store.chunk_ids()))]
            indexes = service.indexes
            embedder = Embedder(
                settings.embed_model,
                backend=indexes.backend,
                device=indexes.device,
                batch_size=indexes.embedder.batch_size,
                onnx_cache=settings.models / "onnx",
            )
    embedder.encode(texts[:64])  # load and warm, as the pipeline's first batch did
    started = time.perf_counter()
    embedder.encode(texts)  # all at once, in model batches of similar length: the best case
    raw = len(texts) / (time.perf_counter() - started)
    embedder.close()
    reference = (
        sentence_transformers_encode(
            settings.embed_model, embedder.device, embedder.batch_size, texts
        )
        if embedder.backend == "torch"
        else None
    )
    through = len(texts) / seconds
    print(
        f"\n{folder.name}, whole pipeline: {len(texts)} chunks in {seconds:.1f} s "
        f"({embedder.backend} on {embedder.device}, batches of {embedder.batch_size})"
    )
    print(f"  pipeline      {through:8.1f} chunks/s  (convert, chunk, store, embed, index)")
    print(
        f"  of its {seconds:.1f} s: files converted after {converted:.1f} s, chunks indexed "
        f"after {indexed:.1f} s, then {seconds - indexed:.1f} s building the HNSW graph"
    )
    print(
        f"  raw encode    {raw:8.1f} chunks/s  (same texts)   pipeline/encode = {through / raw:.2f}"
    )
    if reference:
        print(
            f"  sentence-transformers encode {reference:8.1f} chunks/s  (same texts, same batches)"
            f"   pipeline/that = {through / reference:.2f}"
        )


def sentence_transformers_encode(
    model: str, device: str, batch_size: int, texts: list[str]
) -> float:
    """Chunks/s of sentence-transformers' own `encode` (half precision on a GPU, as the torch
    encoder runs): the raw speed the GPU target was first stated against, before the torch
    encoder fed the model's tokenizer to its modules directly."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(resolve_model_path(model)), device=device)
    if device == "cuda":
        reference.half()
    reference.encode(texts[:64], batch_size=batch_size)
    started = time.perf_counter()
    reference.encode(texts, batch_size=batch_size, normalize_embeddings=True)
    return len(texts) / (time.perf_counter() - started)


def copies_of(folder: Path, copies: int, into: Path) -> Path:
    """`copies` distinct copies of every PDF in `folder` (a comment after the end of each file
    makes its content hash differ, so none is skipped as a duplicate; pdfium reads them alike)."""
    for n in range(copies):
        for path in sorted(folder.rglob("*.pdf")):
            target = into / f"copy{n}" / path.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(path.read_bytes() + f"\n%copy {n}\n".encode())
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folders", nargs="*", type=Path)
    parser.add_argument("--no-embed", action="store_true", help="conversion only")
    parser.add_argument(
        "--copies", type=int, default=1, help="ingest N distinct copies of each PDF (GPU runs)"
    )
    args = parser.parse_args()
    folders = args.folders or [SHARED / "pdfs", SHARED / "mixed"]
    print(f"cores: {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as scratch:
        if args.copies > 1:
            folders = [copies_of(folders[0], args.copies, Path(scratch)), *folders[1:]]
        for folder in folders:
            if not folder.is_dir():
                print(f"{folder}: not found, skipped")
                continue
            report_conversion(folder)
        if not args.no_embed and folders[0].is_dir():
            pipeline_versus_encode(folders[0])


def report_conversion(folder: Path) -> None:
    raw_pages, raw_seconds = pdfium_pages_per_second(folder)
    result = ingest_folder(folder)
    seconds = result["seconds"]
    print(
        f"\n{folder.name}: {result['ingested']} ingested, {result['failed']} failed, "
        f"{result['pages']} PDF pages, {result['chunks']} chunks in {seconds:.2f} s"
    )
    print(
        f"  pipeline      {result['pages'] / seconds:8.0f} PDF pages/s"
        f"  {result['chunks'] / seconds:8.0f} chunks/s  (all cores, into SQLite)"
    )
    if raw_seconds:
        raw = raw_pages / raw_seconds
        print(
            f"  pdfium alone  {raw:8.0f} pages/s on one core"
            f"  (pipeline/pdfium = {result['pages'] / seconds / raw:.2f})"
        )


if __name__ == "__main__":
    main()
