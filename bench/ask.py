"""Time before the first token of an answer, and the embedded models' speed, at 10k chunks.

Run: .venv/bin/python bench/ask.py [SIZE] [MODEL ...]
     (default: 10000 chunks; models qwen2.5-coder-1.5b qwen2.5-coder-0.5b smollm2-135m)

Builds a store of SIZE chunks like bench/search.py (Zipf text, random vectors), then, in one
run, for each question:
1. retrieval before the first token: the hybrid search for the question's passages plus
   packing them into the model's window with the model's own tokenizer (what `ask` does
   before the model sees anything), p50/p95 over 200 questions;
2. per model, on 10 questions over real passages: load time, time to first token (prompt
   processing included), generation tokens/s, prompt size and the process's peak RSS.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import random
import resource
import tempfile
import time

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.service import Archivist, AskOptions, Settings, passage_source
from bench.search import Vocabulary, build
from generation.prompt import pack_prompt
from retrieval.metrics import percentile
from tests.fixtures import HANDBOOK_MD

MODELS = ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "smollm2-135m"]
QUESTIONS = [
    "When does the first person unlock the staff door?",
    "How many items may adults borrow?",
    "How much are late fees per day?",
    "Where do staff meet in a fire alarm?",
    "When do the public doors open on Saturdays?",
    "How many items do children's cards allow?",
    "How often can an item be renewed?",
    "Who takes the visitor count?",
    "What is done with items in the returns box?",
    "Are fees waived for children?",
]


def retrieval_before_first_token(service: Archivist, queries: list[str]) -> list[float]:
    """Milliseconds from question to a packed prompt, per query."""
    backend = service.llm.backend()
    assert backend is not None
    timings = []
    for query in queries:
        started = time.perf_counter()
        hits = service.search(query, k=service.settings.ask_sources)
        sources = [passage_source(hit) for hit in hits]
        pack_prompt(
            query, sources, [], window=backend.context_window(),
            answer_tokens=service.settings.answer_tokens, count=backend.count_tokens,
        )  # fmt: skip
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def model_speed(settings: Settings, model: str, docs: Path) -> dict[str, float]:
    """Load time, first token, tokens/s over the handbook questions, with one model."""
    with Archivist(settings.model_copy(update={"gguf": model})) as service:
        service.ingest([docs])
        started = time.perf_counter()
        backend = service.llm.backend()
        loaded = time.perf_counter() - started
        assert backend is not None
        answers = [service.ask(q, AskOptions(temperature=0, seed=0)) for q in QUESTIONS]
    first = [a.first_token_ms for a in answers if a.first_token_ms]
    speed = [a.tokens_per_s for a in answers if a.tokens_per_s]
    return {
        "load_s": loaded,
        "first_token_ms_p50": percentile(first, 50),
        "tokens_per_s_p50": percentile(speed, 50),
        "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    sizes = [a for a in sys.argv[1:] if a.isdigit()]
    models = [a for a in sys.argv[1:] if not a.isdigit()] or MODELS
    size = int(sizes[0]) if sizes else 10_000
    vocabulary = Vocabulary()
    rng = random.Random(0)
    queries = [" ".join(vocabulary.sample(rng.randint(4, 12))) for _ in range(200)]
    with tempfile.TemporaryDirectory(prefix="archivist-bench-") as scratch:
        root = Path(scratch)
        settings = Settings(data=root / "data", llm="llamacpp", gguf="smollm2-135m",
                            model_dir=Path("data/models").resolve())  # fmt: skip
        build(settings, size, vocabulary)
        with Archivist(settings) as service:
            retrieval_before_first_token(service, queries[:20])  # warm up
            timings = retrieval_before_first_token(service, queries)
        print(f"{size:,} chunks, {settings.ask_sources} passages packed with the model's tokenizer")
        print(
            f"  retrieval before the first token: p50 {percentile(timings, 50):.1f} ms, "
            f"p95 {percentile(timings, 95):.1f} ms"
        )
        docs = root / "docs"
        docs.mkdir()
        (docs / "handbook.md").write_text(HANDBOOK_MD)
        print("\nmodel                 load s   first token p50   tokens/s p50   peak RSS MB")
        for model in models:
            figures = model_speed(settings.model_copy(update={"data": root / model}), model, docs)
            print(
                f"{model:22}{figures['load_s']:7.1f}{figures['first_token_ms_p50']:15.0f} ms"
                f"{figures['tokens_per_s_p50']:15.1f}{figures['rss_mb']:14.0f}"
            )


if __name__ == "__main__":
    main()
