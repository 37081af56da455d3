"""`archivist eval --answers`: how well answers use and cite the passages, on sets with answers.

- context recall: a gold answer appears in the passages packed into the prompt;
- citation accuracy: a passage the answer cites holds a gold answer;
- answer recall: a gold answer appears in the answer;
all after SQuAD's normalization (lowercase, no punctuation, articles or extra spaces); and what a
person would be shown instead of an answer:
- degenerate: a loop, an echo of the source labels or of the question, or a pasted passage
  (generation.answer_check);
- false refusals: "not in the sources" while a gold answer was in the packed passages;
- extractive share: answers quoted from the passages (no model, or the model's tries rejected);
- rejected share: answers whose model answer the checks rejected (and quoted instead);
and, where the gold answer holds figures ("$1577.00", the financebench layout), whether all of
them appear among the packed passages' and the answer's figures ("1,577").
`--answers-out FILE` writes each question, its gold answers, the answer, its citations and the
checks as one JSON line, for reading them.
"""

import json
import re
import string
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from api.service import Answer, Archivist, AskOptions
from generation.answer_check import (
    LABEL_ECHO,
    LOOP,
    PASTED,
    QUESTION_ECHO,
    figures,
    is_refusal,
    problem,
)
from retrieval.metrics import percentile

_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize(text: str) -> str:
    """SQuAD's answer normalization, with punctuation beyond ASCII removed too: an extractive
    answer's quotation marks (“…”) would otherwise stick to its first and last words."""
    kept = "".join(
        c
        for c in text.lower()
        if c not in string.punctuation and not unicodedata.category(c).startswith("P")
    )
    return " ".join(_ARTICLES.sub(" ", kept).split())


def holds_answer(text: str, answers: Iterable[str]) -> bool:
    """Whether any gold answer appears in the text, both normalized (padded to whole words)."""
    haystack = f" {normalize(text)} "
    return any(f" {gold} " in haystack for gold in map(normalize, answers) if gold)


def score_answer(answer: Answer, question: str, gold: list[str]) -> dict[str, bool | None]:
    """The checks for one answer."""
    cited = [answer.sources[c.n - 1].text for c in answer.citations if c.n <= len(answer.sources)]
    texts = [source.text for source in answer.sources]
    gold_figures = set().union(*(figures(g) for g in gold))
    in_context = holds_answer("\n".join(texts), gold)
    found = None if answer.extractive else problem(
        answer.answer, question, texts, [source.label for source in answer.sources]
    )  # fmt: skip
    return {
        "context_recall": in_context,
        "citation_accuracy": any(holds_answer(text, gold) for text in cited),
        "answer_recall": holds_answer(answer.answer, gold),
        "degenerate": found in (LOOP, LABEL_ECHO, QUESTION_ECHO, PASTED),
        "false_refusals": (
            in_context and not answer.extractive and is_refusal(answer.answer, question)
        ),
        "extractive_share": answer.extractive,
        "rejected_share": bool(answer.rejected),
        "figures_in_context": gold_figures <= figures("\n".join(texts)) if gold_figures else None,
        "figures_in_answer": gold_figures <= figures(answer.answer) if gold_figures else None,
    }


def run_answer_eval(
    service: Archivist,
    questions: Sequence[tuple[str, str, list[str]]],
    *,
    options: AskOptions | None = None,
    out: TextIO | None = None,
    on_answer: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Ask each (id, question, gold answers); report the checks and latencies, and write each
    answer to `out` as a JSON line."""
    checks: dict[str, list[bool]] = {}
    first_token, total = [], []
    backend = model = None
    for done, (query_id, question, gold) in enumerate(questions, 1):
        begun = time.perf_counter()
        answer = service.ask(question, options or AskOptions())
        total.append((time.perf_counter() - begun) * 1000)
        if answer.first_token_ms is not None:
            first_token.append(answer.first_token_ms)
        if not answer.extractive:
            backend, model = answer.backend, answer.model
        scores = score_answer(answer, question, gold)
        for name, passed in scores.items():
            if passed is not None:  # figures, where the gold answer has none
                checks.setdefault(name, []).append(passed)
        if out is not None:
            record = {"id": query_id, "question": question, "gold": gold, **answer.to_json(),
                      "scores": scores}  # fmt: skip
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
        if on_answer:
            on_answer(done, len(questions))
    backend = backend or "none"
    report: dict[str, Any] = {"backend": backend, "model": model, "questions": len(questions)}
    for name, outcomes in checks.items():
        report[name] = round(sum(outcomes) / len(outcomes), 4) if outcomes else None
    report["first_token_ms_p50"] = round(percentile(first_token, 50), 1) if first_token else None
    report["total_ms_p50"] = round(percentile(total, 50), 1) if total else None
    return report
