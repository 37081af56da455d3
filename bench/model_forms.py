"""Time to the first shown sentence with the default model's form and with other GGUF files,
side by side.

Run: .venv/bin/python bench/model_forms.py [--set DATASET_DIR] [--questions N] GGUF ...
     (no --set: the handbook's four questions over data/inbox, each asked twice; with --set, a
      BEIR set with answers: its first N answered questions of the fixed 40-question sample)
Example (Q8_0, what runs, against the Q4_K_M file it is made from):
     .venv/bin/python bench/model_forms.py ~/.cache/archivist/models/qwen2.5-coder-0.5b.gguf

Each setting gets its own service, model and copy of the data folder, so that no model reads a
prompt another setting's question left in llama.cpp's cache; every question is asked of each in
turn, at temperature 0, after one warm-up question each. Prints each answer, the first-token
p50 of all answers and of those accepted on the first try, and the decoding speed p50.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import contextlib
import shutil
import statistics
import tempfile

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.evaluation import load_dataset, write_corpus
from api.service import Archivist, Settings
from bench.first_token import HANDBOOK_QUESTIONS

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("gguf", nargs="*", help="GGUF files to compare with the default")
    parser.add_argument("--set", type=Path, help="a BEIR set with answers")
    parser.add_argument("--questions", type=int, default=20)
    args = parser.parse_args()
    models = Settings().models
    with tempfile.TemporaryDirectory(prefix="archivist-bench-") as scratch:
        source = Path(scratch) / "source"
        questions = _prepare(source, args.set, args.questions, models)
        forms = [("default", None)] + [(Path(path).name, path) for path in args.gguf]
        with contextlib.ExitStack() as stack:
            services = {}
            for n, (name, gguf) in enumerate(forms):
                data = Path(scratch) / f"form-{n}"
                shutil.copytree(source, data)
                update = {"gguf": gguf} if gguf else {}
                settings = Settings(data=data, model_dir=models, temperature=0.0, **update)
                services[name] = stack.enter_context(Archivist(settings))
                services[name].ask("What is this about?")  # loads the model, the fixed prompt
            compare(services, questions)


def _prepare(data: Path, dataset: Path | None, count: int, models: Path) -> list[str]:
    """The questions; `data` ingested with their documents."""
    questions, documents = HANDBOOK_QUESTIONS * 2, ROOT / "data" / "inbox"
    if dataset is not None:
        loaded = load_dataset(dataset, 40)
        questions = [q for k, q in loaded.queries.items() if k in loaded.answers][:count]
        documents = data.parent / "corpus"
        write_corpus(loaded, documents)
    with Archivist(Settings(data=data, model_dir=models, llm="none")) as service:
        service.ingest([documents])
    return questions


def compare(services: dict[str, Archivist], questions: list[str]) -> None:
    shown: dict[str, list[float]] = {name: [] for name in services}
    accepted: dict[str, list[float]] = {name: [] for name in services}
    decoding: dict[str, list[float]] = {name: [] for name in services}
    for question in questions:
        for name, service in services.items():
            answer = service.ask(question)
            assert answer.first_token_ms is not None
            shown[name].append(answer.first_token_ms)
            if not answer.rejected:
                accepted[name].append(answer.first_token_ms)
            if answer.tokens_per_s:
                decoding[name].append(answer.tokens_per_s)
            print(f"{name[:24]:>24} {answer.first_token_ms:7.0f} ms  {answer.answer[:70]}")
    print()
    for name in services:
        first = accepted[name]
        tried = f"{statistics.median(first) / 1000:.2f} s" if first else "none"
        print(
            f"{name[:24]:>24}: first token p50 {statistics.median(shown[name]) / 1000:.2f} s over "
            f"{len(shown[name])} answers; {tried} over the {len(first)} accepted on the first try; "
            f"decoding p50 {statistics.median(decoding[name] or [0]):.1f} tokens/s"
        )


if __name__ == "__main__":
    main()
