"""A store's chunks embedded on a GPU with a sentence-transformers model's real weights, when
the GPU machine takes 64 MiB a transfer: EmbeddingGemma-300M's 1.2 GB of fp32 weights.

They travel as bf16 — what the torch backend runs EmbeddingGemma in on a GPU — and its token
table (201M of its 303M weights) cut to the rows of the tokens the texts use: a row that is
never looked up changes no vector. That leaves ~270 MB, sent in parts, one per call.

Here:  ARCHIVIST_EMBED_MODEL=embeddinggemma-300m .venv/bin/python bench/gpu_vectors.py \
           --prepare --data DATA/financebench-dev [MORE STORES]
       writes .gpu/vectors/ (ignored by git): every chunk's text as the dense index embeds it
       (behind the model's document prefix), the model's folder without its weights, and the
       weights in parts of 56 MiB (part-00, part-01, …).
There: one call per part, carrying .gpu/vectors/part-NN (the first call also .gpu/vectors/model
       and the texts), each `python3 bench/gpu_vectors.py --receive`, which moves what arrived
       to /tmp/vectors; the last call then `python3 bench/gpu_vectors.py --embed`,
       which joins the weights, embeds every store's texts with the torch backend's own
       encoder (batches of 512) and writes $OUT/vectors-STORE-K.npy. /tmp/vectors lasts as
       long as the machine: each call must come while the last one's machine is still warm.
Here:  ARCHIVIST_EMBED_MODEL=embeddinggemma-300m .venv/bin/python bench/gpu_vectors.py \
           --apply --data DATA/financebench-dev --vectors DIR
       empties the store's indexes and fills them through the normal sync (`reindex`), its
       embedder handing back the GPU's vectors, so the store searches as if it had been
       ingested on the GPU (questions are still embedded here, in fp32).
"""

import gzip
import hashlib
import importlib
import json
import os
import shutil
import sys
import time
import types
from concurrent.futures import Future
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / ".gpu" / "vectors"
THERE = Path("/tmp/vectors")
PART_BYTES = 56 << 20
WEIGHTS = "model.safetensors"
TABLE = "embed_tokens.weight"
KEPT_ROWS = "kept_rows"
JOINED = "weights.json"  # how many parts, and the SHA-256 of the weights they join into


def _archivist() -> None:
    """Archivist's packages importable, its environment prepared before numpy loads (here
    only: the GPU machine lacks its index libraries)."""
    sys.path.insert(0, str(ROOT))
    importlib.import_module("api")


def prepare(stores: list[Path]) -> None:
    _archivist()
    import torch
    from safetensors.torch import load_file, save_file

    from api.service import Settings, embedding_model, embedding_text
    from ingest.store import ChunkStore
    from retrieval.encoders import _PROBE, _tokenizer

    model = embedding_model(Settings())
    if model.path is None or not (model.path / WEIGHTS).is_file():
        sys.exit(f"{model.name} is not a sentence-transformers folder with {WEIGHTS}")
    shutil.rmtree(HERE, ignore_errors=True)
    (HERE / "model").mkdir(parents=True)
    tokenizer = _tokenizer(model.path)
    # The torch encoder embeds _PROBE in fp16 to learn whether the model overflows it: its
    # tokens keep their rows too, or the probe would not overflow and fp16 would be kept.
    used = {0, 1, 2, 3}  # padding, end, start and unknown, whatever the texts hold
    used.update(tokenizer.encode(_PROBE).ids)
    for n, data in enumerate(stores):
        store = ChunkStore(Settings(data=data).state_dir / "archivist.db")
        texts = [embedding_text(c) for c in store.chunks(sorted(store.chunk_ids()))]
        given = {"data": str(data), "model": model.name, "prefix": model.document_prefix}
        with gzip.open(HERE / f"texts-{n}.json.gz", "wt") as f:
            json.dump({**given, "texts": texts}, f)
        for encoding in tokenizer.encode_batch([model.document_prefix + t for t in texts]):
            used.update(encoding.ids)
        print(f"{data}: {len(texts)} texts", flush=True)

    kept = torch.tensor(sorted(used), dtype=torch.int64)
    weights = load_file(model.path / WEIGHTS)
    table = weights.pop(TABLE)
    sent = {name: tensor.to(torch.bfloat16) for name, tensor in weights.items()}
    sent[TABLE] = table[kept].to(torch.bfloat16)
    sent[KEPT_ROWS] = kept
    sent["table_rows"] = torch.tensor([table.shape[0]], dtype=torch.int64)
    for dense in sorted(model.path.glob("*_Dense")):  # the projection layers, as bf16 too
        for name, tensor in load_file(dense / WEIGHTS).items():
            sent[f"{dense.name}/{name}"] = tensor.to(torch.bfloat16)
    whole = HERE / "weights.safetensors"
    save_file(sent, whole)
    copy_folder(model.path, HERE / "model")
    digest, parts = hashlib.sha256(), 0
    with open(whole, "rb") as f:
        while block := f.read(PART_BYTES):
            (HERE / f"part-{parts:02d}").write_bytes(block)
            digest.update(block)
            parts += 1
    whole.unlink()
    (HERE / "model" / JOINED).write_text(json.dumps({"parts": parts, "sha256": digest.hexdigest()}))
    size = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"{len(kept)} of {table.shape[0]} token rows kept; {parts} parts; "
          f"{size / 2**20:.0f} MiB in {HERE}")  # fmt: skip


def copy_folder(folder: Path, target: Path) -> None:
    """The model's folder without its weights (they travel in the parts) and with its
    tokenizer gzipped (33 MB of JSON; 5 MB gzipped)."""
    for path in folder.rglob("*"):
        relative = path.relative_to(folder)
        if path.is_dir() or path.name in (WEIGHTS, "tokenizer.model", "README.md"):
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        if path.name == "tokenizer.json":
            with open(path, "rb") as f, gzip.open(target / "tokenizer.json.gz", "wb") as g:
                shutil.copyfileobj(f, g)
        else:
            shutil.copy2(path, target / relative)


def receive() -> None:
    """Move what this call carried out of the working tree, which the next call replaces."""
    THERE.mkdir(exist_ok=True)
    for path in sorted(HERE.iterdir()):
        shutil.rmtree(THERE / path.name, ignore_errors=True)
        shutil.move(str(path), THERE / path.name)
    print(sorted(p.name for p in THERE.iterdir()), flush=True)


def embed(out: Path, device: str) -> None:
    import numpy as np
    import torch
    from safetensors.torch import load, save_file

    folder = THERE / "model"
    with gzip.open(folder / "tokenizer.json.gz") as f, open(folder / "tokenizer.json", "wb") as g:
        shutil.copyfileobj(f, g)
    expected = json.loads((folder / JOINED).read_text())
    blob = b"".join((THERE / f"part-{n:02d}").read_bytes() for n in range(expected["parts"]))
    if hashlib.sha256(blob).hexdigest() != expected["sha256"]:
        sys.exit("the joined parts are not the weights prepared: send every part again")
    sent = load(blob)
    kept, height = sent.pop(KEPT_ROWS), int(sent.pop("table_rows")[0])
    table = torch.zeros((height, sent[TABLE].shape[1]), dtype=torch.bfloat16)
    table[kept] = sent.pop(TABLE)
    for dense in sorted(folder.glob("*_Dense")):
        layer = {k.split("/", 1)[1]: v for k, v in sent.items() if k.startswith(f"{dense.name}/")}
        save_file(layer, dense / WEIGHTS)
    weights = {k: v for k, v in sent.items() if "/" not in k}
    save_file({**weights, TABLE: table}, folder / WEIGHTS)

    encoder = _encoders().TorchEncoder(folder, device)
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    print(json.dumps({"device": name, "dtype": str(encoder.dtype)}))
    stores = sorted(THERE.glob("texts-*.json.gz"), key=_n)
    vectors = []
    for path in stores:
        with gzip.open(path, "rt") as f:
            given = json.load(f)
        started = time.perf_counter()
        vectors.append(encoder.encode([given["prefix"] + t for t in given["texts"]], 512))
        seconds = time.perf_counter() - started
        finite = bool(np.isfinite(vectors[-1]).all())
        print(json.dumps({"store": given["data"], "texts": len(given["texts"]),
                          "seconds": round(seconds, 1), "finite": finite}), flush=True)  # fmt: skip
    # What comes back: 64 MiB in at most 8 files of 16 MiB. fp16 if fp32 would not fit (a unit
    # vector's cosines move by ~1e-4 in fp16: less than bf16's own rounding moves them).
    dtype = np.float32 if sum(v.nbytes for v in vectors) < (60 << 20) else np.float16
    for n, rows in enumerate(vectors):
        per_file = (15 << 20) // (rows.shape[1] * np.dtype(dtype).itemsize)
        for k, start in enumerate(range(0, len(rows), per_file)):
            np.save(out / f"vectors-{n}-{k}.npy", rows[start : start + per_file].astype(dtype))


def _encoders() -> types.ModuleType:
    """retrieval/encoders.py without retrieval/__init__.py, which imports the index libraries
    (Qdrant's, Tantivy) that the GPU machine lacks."""
    package = types.ModuleType("retrieval")
    package.__path__ = [str(ROOT / "retrieval")]
    sys.modules["retrieval"] = package
    sys.path.insert(0, str(ROOT))
    return importlib.import_module("retrieval.encoders")


def apply(data: Path, vectors: Path) -> None:
    _archivist()
    import numpy as np

    from api.service import Indexes, Settings, embedding_text, sync_indexes
    from ingest.store import ChunkStore

    class GivenVectors:
        """The part of the Embedder the index sync uses, answering with vectors made
        elsewhere for the same texts."""

        def __init__(self, by_text: dict[str, Any], dimension: int) -> None:
            self.by_text, self.dimension, self.batch_size = by_text, dimension, 512

        def submit(self, texts: list[str]) -> "Future[Any]":
            done: Future[Any] = Future()
            done.set_result(np.stack([self.by_text[t] for t in texts]))
            return done

    class GivenIndexes(Indexes):
        def __init__(self, settings: Settings, by_text: dict[str, Any]) -> None:
            super().__init__(settings)
            self.given = GivenVectors(by_text, self.dimension)

        @property
        def embedder(self) -> Any:
            return self.given

    for path in sorted(HERE.glob("texts-*.json.gz"), key=_n):
        with gzip.open(path, "rt") as f:
            given = json.load(f)
        if Path(given["data"]) == data:
            break
    else:
        sys.exit(f"no texts of {data} in {HERE}: prepare with it")
    files = sorted(
        vectors.glob(f"vectors-{_n(path)}-*.npy"), key=lambda p: int(p.stem.split("-")[2])
    )
    rows = np.concatenate([np.load(p).astype(np.float32) for p in files])
    if len(rows) != len(given["texts"]):
        sys.exit(f"{len(rows)} vectors for {len(given['texts'])} texts")
    settings = Settings(data=data)
    if settings.embed_model != given["model"]:
        sys.exit(f"the vectors are {given['model']}'s, not {settings.embed_model}'s")
    store = ChunkStore(settings.state_dir / "archivist.db")
    texts = [embedding_text(c) for c in store.chunks(sorted(store.chunk_ids()))]
    by_text = dict(zip(given["texts"], rows, strict=True))
    if missing := sum(t not in by_text for t in texts):
        sys.exit(f"{missing} of the store's chunks have no vector: prepare again")
    indexes = GivenIndexes(settings, by_text)
    indexes.rebuild(store)
    report = sync_indexes(store, indexes, on_progress=_progress)
    indexes.close()
    print(f"\n{report.upserted} chunks written to both indexes")


def _n(path: Path) -> int:
    """The store's number in texts-N.json.gz."""
    return int(path.name.split("-")[1].split(".")[0])


def _progress(done: int, total: int) -> None:
    print(f"\r{done}/{total}", end="", file=sys.stderr, flush=True)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prepare", action="store_true")
    parser.add_argument("--receive", action="store_true")
    parser.add_argument("--embed", action="store_true")
    parser.add_argument("--apply", action="store_true")
    parser.add_argument("--data", type=Path, nargs="+", help="stores (apply: one)")
    parser.add_argument("--vectors", type=Path)
    parser.add_argument("--device", default="cuda", help="with --embed: cpu to check it here")
    args = parser.parse_args()
    if args.prepare:
        prepare(args.data)
    elif args.receive:
        receive()
    elif args.embed:
        embed(Path(os.environ.get("OUT", ".")), args.device)
    elif args.apply:
        apply(args.data[0], args.vectors)
    else:
        parser.error("one of --prepare, --receive, --embed, --apply")
