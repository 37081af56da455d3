"""`archivist eval`: one dataset, ingested into a scratch data folder, scored."""

from collections.abc import Callable, Sequence
from typing import Any, TextIO

from api.evaluation.answers import run_answer_eval
from api.evaluation.beir import Dataset, run_eval
from api.evaluation.pages import PageDataset, run_page_eval
from api.service import Archivist, AskOptions, BadRequest, Mode

Progress = Callable[[int, int], None]


def evaluate(
    service: Archivist,
    dataset: Dataset | PageDataset,
    *,
    modes: Sequence[Mode],
    answers: bool = False,
    ask: AskOptions | None = None,
    answers_out: TextIO | None = None,
    on_stage: Callable[[str], None] | None = None,
    on_answer: Progress | None = None,
) -> dict[str, Any]:
    """Ingest a dataset into the service's (scratch) data folder; score search, and answers if
    asked (BEIR sets score documents; page-level sets score files and evidence pages), each
    answer written to `answers_out` as a JSON line."""
    questions: list[tuple[str, str, list[str]]]
    if isinstance(dataset, PageDataset):
        report = run_page_eval(service, dataset, modes=modes, on_stage=on_stage)
        questions = [(q.id, q.text, [q.answer]) for q in dataset.questions if q.answer]
    else:
        report = run_eval(service, dataset, modes=modes, on_stage=on_stage)
        questions = [(q, text, dataset.answers[q]) for q, text in dataset.queries.items()
                     if q in dataset.answers]  # fmt: skip
    if answers:
        if not questions:
            raise BadRequest(f"{dataset.name}: no question has a gold answer to score")
        report["answers"] = run_answer_eval(
            service, questions, options=ask, out=answers_out, on_answer=on_answer
        )
    return report
