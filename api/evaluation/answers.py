"""`archivist eval --answers`: how well answers use and cite the passages, on sets with answers.

- context recall: a gold answer appears in the passages packed into the prompt;
- citation accuracy: a passage the answer cites holds a gold answer;
- answer recall: a gold answer appears in the answer;
all after SQuAD's normalization (lowercase, no punctuation, articles or extra spaces).
"""

import re
import string
import time
from collections.abc import Callable, Iterable
from typing import Any

from api.evaluation.beir import Dataset
from api.service import Answer, Archivist, AskOptions
from retrieval.metrics import percentile

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize(text: str) -> str:
    """SQuAD's answer normalization."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def holds_answer(text: str, answers: Iterable[str]) -> bool:
    """Whether any gold answer appears in the text, both normalized (padded to whole words)."""
    haystack = f" {normalize(text)} "
    return any(f" {gold} " in haystack for gold in map(normalize, answers) if gold)


def score_answer(answer: Answer, gold: list[str]) -> dict[str, bool]:
    """The three checks for one answer."""
    cited = [answer.sources[c.n - 1].text for c in answer.citations if c.n <= len(answer.sources)]
    return {
        "context_recall": holds_answer("\n".join(s.text for s in answer.sources), gold),
        "citation_accuracy": any(holds_answer(text, gold) for text in cited),
        "answer_recall": holds_answer(answer.answer, gold),
    }


def run_answer_eval(
    service: Archivist,
    dataset: "Dataset",
    *,
    on_answer: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Ask every question that has gold answers; report the checks and latencies."""
    questions = [(q, dataset.queries[q]) for q in dataset.queries if q in dataset.answers]
    checks: dict[str, list[bool]] = {"context_recall": [], "citation_accuracy": [],
                                     "answer_recall": []}  # fmt: skip
    first_token, total = [], []
    backend = model = None
    for done, (query_id, question) in enumerate(questions, 1):
        begun = time.perf_counter()
        answer = service.ask(question, AskOptions())
        total.append((time.perf_counter() - begun) * 1000)
        if answer.first_token_ms is not None:
            first_token.append(answer.first_token_ms)
        backend, model = answer.backend, answer.model
        for name, passed in score_answer(answer, dataset.answers[query_id]).items():
            checks[name].append(passed)
        if on_answer:
            on_answer(done, len(questions))
    report: dict[str, Any] = {"backend": backend, "model": model, "questions": len(questions)}
    for name, outcomes in checks.items():
        report[name] = round(sum(outcomes) / len(outcomes), 4) if outcomes else None
    report["first_token_ms_p50"] = round(percentile(first_token, 50), 1) if first_token else None
    report["total_ms_p50"] = round(percentile(total, 50), 1) if total else None
    return report
