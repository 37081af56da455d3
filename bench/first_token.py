"""Time to the first shown sentence with whole passages and with evidence sentences, side by side.

Run: .venv/bin/python bench/first_token.py [DATASET_DIR [N [DATA_DIR]]]
     (no arguments: the handbook's four questions over data/inbox, each asked twice;
      DATASET_DIR: a BEIR set with answers, its first N answered questions of the fixed
      40-question sample (default 20); DATA_DIR keeps the ingested folder for reruns)

One process, the default embedded model at temperature 0, one warm-up question; each question
is asked with ARCHIVIST_ANSWER_EVIDENCE=0 (whole passages) and then with the default, so both
see the same machine at the same moment. Prints each answer's first-token time and the p50 of
all answers and of those accepted on the first try.
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import statistics
import tempfile

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.evaluation import load_dataset, write_corpus
from api.service import Archivist, Settings

ROOT = Path(__file__).resolve().parents[1]
HANDBOOK_QUESTIONS = [
    "How often is the lighthouse lens cleaned?",
    "When do keeper shifts change over?",
    "Who has to sign the log book, and when?",
    "What should the keeper write in the log book?",
]


def main(args: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="archivist-bench-") as scratch:
        data = Path(args[2]) if len(args) > 2 else Path(scratch)
        settings = Settings(data=data, model_dir=Settings().models, temperature=0.0)
        questions, documents = HANDBOOK_QUESTIONS * 2, ROOT / "data" / "inbox"
        if args:
            dataset = load_dataset(Path(args[0]), 40)
            answered = [q for k, q in dataset.queries.items() if k in dataset.answers]
            questions = answered[: int(args[1]) if len(args) > 1 else 20]
            documents = data / "corpus"
            write_corpus(dataset, documents)
        with Archivist(settings) as service:
            service.ingest([documents])
            service.ask("What is this about?")  # loads the model, processes the fixed prompt
            compare(service, questions)


def compare(service: Archivist, questions: list[str]) -> None:
    settings = ("whole passages", 0), ("evidence sentences", service.settings.answer_evidence)
    everything: dict[str, list[float]] = {name: [] for name, _ in settings}
    accepted: dict[str, list[float]] = {name: [] for name, _ in settings}
    for question in questions:
        for name, evidence in settings:
            service.settings.answer_evidence = evidence
            answer = service.ask(question)
            assert answer.first_token_ms is not None
            everything[name].append(answer.first_token_ms)
            if not answer.rejected:
                accepted[name].append(answer.first_token_ms)
            rejected = f" (rejected: {', '.join(answer.rejected)})" if answer.rejected else ""
            print(f"{name:>18} {answer.first_token_ms:7.0f} ms  {answer.answer[:70]}{rejected}")
    print()
    for name, _ in settings:
        shown, first = everything[name], accepted[name]
        print(
            f"{name:>18}: first token p50 {statistics.median(shown) / 1000:.1f} s over "
            f"{len(shown)} answers; {statistics.median(first) / 1000:.1f} s over the "
            f"{len(first)} accepted on the first try"
            if first
            else f"{name:>18}: first token p50 {statistics.median(shown) / 1000:.1f} s"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
