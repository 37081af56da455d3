"""Evaluation: clients of the service that score its search and answers on datasets.

BEIR-layout sets (beir.py: nDCG, recall, MRR per search mode), page-level sets of real
documents (pages.py: the right file and the evidence page), answers on sets with gold answers
(answers.py), prompt injection (injection.py: attacks scored on real answers, ordinary text
the withholding filter takes), and OCR readings against the text on the page (ocr.py).
`evaluate` (run.py) ingests a set into a scratch data folder and runs them; `archivist eval`
and the benchmarks call it. The service never imports this package.
"""

from api.evaluation.beir import Dataset, load_dataset, write_corpus
from api.evaluation.injection import (
    attack_report,
    load_injection_suite,
    run_attacks,
    withholding_report,
)
from api.evaluation.ocr import character_error_rate
from api.evaluation.pages import (
    PageDataset,
    PageQuestion,
    is_page_dataset,
    load_page_dataset,
    page_scores,
)
from api.evaluation.run import evaluate

__all__ = [
    "Dataset",
    "PageDataset",
    "PageQuestion",
    "attack_report",
    "character_error_rate",
    "evaluate",
    "is_page_dataset",
    "load_dataset",
    "load_injection_suite",
    "load_page_dataset",
    "page_scores",
    "run_attacks",
    "withholding_report",
    "write_corpus",
]
