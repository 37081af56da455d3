"""Embedding speed on a GPU through Archivist's own `Embedder` (torch backend): MiniLM and
EmbeddingGemma-300M, when the GPU machine cannot receive the weights (64 MiB a transfer).

Here:  .venv/bin/python bench/gpu_embed.py --prepare --data /tmp/bench-minilm/data
       writes .gpu/ (ignored by git): each model's folder without its transformer weights
       (configuration, real tokenizer, real dense layers), 2,048 chunk texts of squad-dev and
       amazon as the dense index embeds them (from stores `archivist eval` built under DATA),
       and 200 squad-dev questions.
       It also downloads into .gpu/whl the wheels of qdrant-edge-py and tantivy (the versions
       installed here), which `retrieval` imports and the GPU machine lacks.
There: python3 -m pip install -q --no-deps --target /tmp/site .gpu/whl/*.whl &&
       PYTHONPATH=/tmp/site python3 bench/gpu_embed.py        (carry .gpu)
       draws each model's weights from its configuration (speed does not depend on their
       values), then prints one JSON row per run: chunks/s of 5 bulk runs, query p50/p95 one at
       a time, the half precision the encoder chose; for EmbeddingGemma also bf16 against fp16,
       alternated.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import gzip
import json
import random
import shutil
import statistics
import subprocess
import time
from importlib.metadata import version

import api  # noqa: F401  (prepares the environment before numpy loads)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".gpu"
SHARED = ROOT.parent / "shared"
SKIP = {"README.md", "tokenizer.model", "tokenizer.json", "model.safetensors"}  # at the root


def prepare(data: Path) -> None:
    from api.service import Settings, embedding_text
    from generation.models import resolve_folder
    from ingest.store import ChunkStore
    from retrieval.embedder import resolve_model_path

    OUT.mkdir(exist_ok=True)
    texts = []
    for name in ("squad-dev", "amazon"):
        store = ChunkStore(data / name / "state" / "archivist.db")
        ids = sorted(store.chunk_ids())
        random.Random(0).shuffle(ids)
        texts += [embedding_text(c) for c in store.chunks(ids[:1024])]
    lines = (SHARED / "eval/squad-dev/queries.jsonl").read_text().splitlines()
    queries = [json.loads(line)["text"] for line in lines]
    (OUT / "texts.json").write_text(json.dumps({"texts": texts, "queries": queries[:200]}))
    folders = {
        "minilm": resolve_model_path("all-MiniLM-L6-v2"),
        "gemma": resolve_folder("embeddinggemma-300m", Settings(data=data).models),
    }
    for short, folder in folders.items():
        target = OUT / short
        shutil.rmtree(target, ignore_errors=True)
        root = str(folder)  # its transformer's weights are drawn there; the dense layers' kept
        shutil.copytree(
            folder,
            target,
            ignore=lambda at, names, root=root: SKIP & set(names) if at == root else [],
        )
        with (
            open(folder / "tokenizer.json", "rb") as f,
            gzip.open(target / "tokenizer.json.gz", "wb") as g,
        ):
            shutil.copyfileobj(f, g)
    wheels = [f"{name}=={version(name)}" for name in ("qdrant-edge-py", "tantivy")]
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 28, 34)]
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version=3.12", "--implementation=cp", *platforms, "--dest", str(OUT / "whl"),
         *wheels],
        check=True,
    )  # fmt: skip
    print(f"{len(texts)} texts, {len(folders)} model folders and {len(wheels)} wheels in {OUT}")


def drawn_weights(folder: Path) -> None:
    """The tokenizer unpacked and transformer weights drawn from the model's configuration."""
    import torch
    from transformers import AutoConfig, AutoModel

    with gzip.open(folder / "tokenizer.json.gz") as f, open(folder / "tokenizer.json", "wb") as g:
        shutil.copyfileobj(f, g)
    if not (folder / "model.safetensors").exists():
        torch.manual_seed(0)
        AutoModel.from_config(AutoConfig.from_pretrained(folder)).save_pretrained(folder)


def timed(embedder, texts: list[str], runs: int) -> list[int]:
    import torch

    rates = []
    for _ in range(runs):
        torch.cuda.synchronize()
        started = time.perf_counter()
        embedder.encode(texts)
        torch.cuda.synchronize()
        rates.append(round(len(texts) / (time.perf_counter() - started)))
    return rates


def run() -> None:
    import torch

    from retrieval.embedder import Embedder

    data = json.loads((OUT / "texts.json").read_text())
    texts, queries = data["texts"], data["queries"]
    print(torch.__version__, torch.cuda.get_device_name(0), flush=True)
    for short, batch in (("minilm", 512), ("gemma", 512), ("gemma", 64)):
        folder = OUT / short
        drawn_weights(folder)
        embedder = Embedder(
            str(folder), backend="torch", device="cuda", batch_size=batch, onnx_cache=OUT / "onnx"
        )
        encoder = embedder._encoder
        embedder.encode(texts[:256])  # warm
        row: dict = {"model": short, "batch": batch, "dtype": str(encoder.dtype)}  # type: ignore[attr-defined]
        row["chunks_per_s"] = timed(embedder, texts, 5)
        latencies = []
        for question in queries:
            started = time.perf_counter()
            embedder.encode_query(question)
            latencies.append((time.perf_counter() - started) * 1000)
        latencies.sort()
        row["query_p50_ms"] = round(statistics.median(latencies), 1)
        row["query_p95_ms"] = round(latencies[int(0.95 * len(latencies))], 1)
        if short == "gemma" and batch == 512:
            for dtype in (torch.bfloat16, torch.float16) * 2:
                encoder._model.to(dtype)  # type: ignore[attr-defined]
                embedder.encode(texts)  # warm at this precision
                row.setdefault(str(dtype), []).append(timed(embedder, texts, 3))
        print(json.dumps(row), flush=True)
        embedder.close()
        torch.cuda.empty_cache()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", action="store_true", help="write .gpu/ here")
    parser.add_argument("--data", type=Path, help="with --prepare: the eval stores' folder")
    args = parser.parse_args()
    if args.prepare:
        if args.data is None:
            parser.error("--prepare needs --data")
        prepare(args.data)
    else:
        run()
