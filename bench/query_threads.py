"""A GGUF embedding model's question latency with one compute thread against two, on a quiet
machine and beside a bulk encode at the bulk thread's lower priority (as during ingestion).

Run: .venv/bin/python bench/query_threads.py [--model nomic-embed-text-v1.5]
     (`make models` first). Each setting twice, alternated; medians of 100 amazon questions and
     financebench-dev's 30 (longer) questions, each embedded alone behind the query prefix.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import json
import os
import statistics
import threading
import time

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.service import Settings, embedding_model
from retrieval.encoders import LlamaEncoder

ROOT = Path(__file__).resolve().parents[1]
EVAL = ROOT.parent / "shared" / "eval"


def questions() -> dict[str, list[str]]:
    amazon = (EVAL / "amazon" / "queries.jsonl").read_text().splitlines()[:100]
    filings = (EVAL / "financebench-dev" / "questions.jsonl").read_text().splitlines()[:30]
    return {
        "amazon": [json.loads(line)["text"] for line in amazon],
        "financebench": [json.loads(line)["question"] for line in filings],
    }


def median_ms(encoder: LlamaEncoder, prefix: str, texts: list[str]) -> float:
    times = []
    for text in texts:
        started = time.perf_counter()
        encoder.encode([prefix + text], 1)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="nomic-embed-text-v1.5")
    args = parser.parse_args()
    model = embedding_model(Settings(embed_model=args.model))
    if model.path is None or model.runtime != "gguf":
        sys.exit(f"{args.model} is not a GGUF embedding model")
    asked = questions()
    bulk = LlamaEncoder(model.path, context=model.max_tokens, threads=os.cpu_count() or 1)
    chunks = [p for p in (ROOT / "README.md").read_text().split("\n\n") if len(p) > 400][:4]

    for threads in (1, 2, 1, 2):
        encoder = LlamaEncoder(model.path, context=model.max_tokens, threads=threads)
        for busy in (False, True):
            stop = threading.Event()

            def ingest(stop: threading.Event = stop) -> None:
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
                while not stop.is_set():
                    bulk.encode([model.document_prefix + c for c in chunks], 1)

            beside = threading.Thread(target=ingest)
            if busy:
                beside.start()
                time.sleep(1)
            row = {"threads": threads, "beside ingestion": busy}
            for name, texts in asked.items():
                row[f"{name} p50 ms"] = median_ms(encoder, model.query_prefix, texts)
            stop.set()
            if busy:
                beside.join()
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
