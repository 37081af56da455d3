"""`archivist eval`: one dataset, ingested into a scratch data folder, scored."""

from collections.abc import Callable, Sequence
from typing import Any

from api.evaluation.answers import run_answer_eval
from api.evaluation.beir import Dataset, run_eval
from api.evaluation.pages import PageDataset, run_page_eval
from api.service import Archivist, BadRequest, Mode

Progress = Callable[[int, int], None]


def evaluate(
    service: Archivist,
    dataset: Dataset | PageDataset,
    *,
    modes: Sequence[Mode],
    answers: bool = False,
    on_stage: Callable[[str], None] | None = None,
    on_answer: Progress | None = None,
) -> dict[str, Any]:
    """Ingest a dataset into the service's (scratch) data folder; score search, and answers if
    asked (BEIR sets score documents; page-level sets score files and evidence pages)."""
    if isinstance(dataset, PageDataset):
        if answers:
            raise BadRequest(f"{dataset.name}: answers are scored on BEIR sets only")
        return run_page_eval(service, dataset, modes=modes, on_stage=on_stage)
    report = run_eval(service, dataset, modes=modes, on_stage=on_stage)
    if answers:
        report["answers"] = run_answer_eval(service, dataset, on_answer=on_answer)
    return report
