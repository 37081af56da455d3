"""`archivist eval` on documents with page-level questions (the financebench-dev layout)."""

import json
import os
import subprocess
from pathlib import Path

import pytest

from api.evaluation import PageQuestion, load_page_dataset, page_scores
from api.service import BadRequest, SearchHit
from tests.api.evaluation.test_evaluation import ARCHIVIST
from tests.fixtures import make_pdf

FILINGS = {
    "ACME_2023_10K.pdf": [
        "ACME Corporation annual report 2023. Business overview and risk factors.",
        "Cash flow statement. Capital expenditure was 412 million dollars in fiscal 2023.",
        "Income statement. The effective tax rate was 19 percent.",
    ],
    "GLOBEX_2022_10K.pdf": [
        "Globex annual report 2022. Segments and competition.",
        "Balance sheet. Inventories of turbines rose to 88 million dollars.",
        "Dividends. The board declared a quarterly dividend of 31 cents per share.",
    ],
}
QUESTIONS = [
    {"id": "q1", "question": "capital expenditure fiscal 2023", "doc": "ACME_2023_10K.pdf",
     "pages": [2]},
    {"id": "q2", "question": "quarterly dividend per share declared", "doc": "GLOBEX_2022_10K.pdf",
     "pages": [3]},
    {"id": "q3", "question": "inventories of turbines", "doc": "GLOBEX_2022_10K.pdf",
     "pages": [2, 3]},
]  # fmt: skip


def write_dataset(folder: Path) -> Path:
    (folder / "pdfs").mkdir(parents=True)
    for name, pages in FILINGS.items():
        make_pdf(folder / "pdfs" / name, pages)
    lines = [json.dumps(question) for question in QUESTIONS]
    (folder / "questions.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def _hit(name: str, page: int | None, page_end: int | None = None) -> SearchHit:
    end = page if page_end is None else page_end
    return SearchHit("c", f"/docs/{name}", page, end, (), 1.0, "", "")


def test_page_scores_count_files_pages_and_the_first_right_page() -> None:
    question = PageQuestion("q", "?", "a.pdf", frozenset({4, 7}))
    hits = [_hit("b.pdf", 4), _hit("a.pdf", 1), _hit("a.pdf", 3, 4), _hit("b.pdf", 7)]
    hits += [_hit("c.pdf", 1)] * 3 + [_hit("a.pdf", 7)] + [_hit("d.pdf", 1)] * 3
    scores = page_scores(hits, question)
    assert scores["doc_recall@1"] == 0.0 and scores["doc_recall@5"] == 1.0
    assert scores["page_recall@1"] == 0.0  # page 4 of another file does not count
    assert scores["page_recall@5"] == 0.5  # page 4 through the 3-4 chunk
    assert scores["page_recall@10"] == 1.0  # page 7 at rank 8
    assert scores["page_mrr@10"] == pytest.approx(1 / 3)
    assert page_scores([], question)["page_mrr@10"] == 0.0


def test_figures_at_10_asks_for_every_gold_figure_in_the_first_ten_hits() -> None:
    question = PageQuestion("q", "?", "a.pdf", frozenset({2}), answer="$1,577.00 and 31%")
    both = SearchHit("c", "/docs/a.pdf", 2, 2, (), 1.0, "capex was 1577 million; margin 31 %", "")
    one = SearchHit("c", "/docs/a.pdf", 2, 2, (), 1.0, "capex was 1,577 million", "")
    assert page_scores([one, both], question)["figures@10"] == 1.0
    assert page_scores([one] * 10 + [both], question)["figures@10"] == 0.0  # 31 at rank 11
    assert "figures@10" not in page_scores([both], PageQuestion("q", "?", "a.pdf", frozenset()))


def test_a_question_may_name_its_file_inside_a_subfolder() -> None:
    """`doc` is relative to the documents folder: "2020/a.pdf" is not 2019's a.pdf."""
    question = PageQuestion("q", "?", "2020/a.pdf", frozenset({2}))
    hits = [_hit("2019/a.pdf", 2), _hit("2020/a.pdf", 2)]
    scores = page_scores(hits, question)
    assert scores["doc_recall@1"] == 0.0 and scores["doc_recall@5"] == 1.0
    assert scores["page_recall@1"] == 0.0 and scores["page_mrr@10"] == 0.5
    assert (
        page_scores(hits[1:], PageQuestion("q", "?", "a.pdf", frozenset({2})))["page_recall@1"]
        == 1.0
    )


def test_eval_scores_files_and_pages_per_mode(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "filings")
    env = {**os.environ, "ARCHIVIST_DATA": str(tmp_path / "unused"), "ARCHIVIST_LLM": "none"}
    done = subprocess.run(
        [ARCHIVIST, "eval", str(dataset), "--mode", "bm25", "--mode", "hybrid", "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["dataset"], report["queries"], report["documents"]) == ("filings", 3, 2)
    assert set(report["results"]) == {"bm25", "hybrid"}
    bm25 = report["results"]["bm25"]
    assert bm25["doc_recall@1"] == bm25["doc_recall@5"] == 1.0
    assert bm25["page_recall@1"] == pytest.approx((1 + 1 + 0.5) / 3, abs=1e-4)
    assert bm25["page_mrr@10"] == 1.0 and bm25["latency_ms_p50"] > 0
    plain = subprocess.run([ARCHIVIST, "eval", str(dataset), "--mode", "bm25"],
                           capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert "page_recall@10" in plain.stdout and "doc_recall@1" in plain.stdout
    refused = subprocess.run([ARCHIVIST, "eval", str(dataset), "--answers"],
                             capture_output=True, text=True, env=env, check=False)  # fmt: skip
    assert refused.returncode == 1 and 'questions.jsonl has no "answer"' in refused.stderr


def test_eval_answers_on_page_questions_checks_the_gold_figures(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "filings")
    gold = {"q1": "$412.00", "q2": "31 cents", "q3": "88 million"}
    lines = "".join(json.dumps({**q, "answer": gold[q["id"]]}) + "\n" for q in QUESTIONS)
    (dataset / "questions.jsonl").write_text(lines)
    env = {**os.environ, "ARCHIVIST_DATA": str(tmp_path / "unused"), "ARCHIVIST_LLM": "none"}
    done = subprocess.run(
        [ARCHIVIST, "eval", str(dataset), "--mode", "bm25", "--answers", "--json"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)["answers"]
    assert answers["questions"] == 3 and answers["extractive_share"] == 1.0
    # "$412.00" is found as "412 million": figures compare as numbers, not as text.
    assert answers["figures_in_context"] == answers["figures_in_answer"] == 1.0


def test_a_question_about_a_missing_file_or_a_bad_line_is_refused(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "filings")
    questions = dataset / "questions.jsonl"
    questions.write_text(json.dumps({**QUESTIONS[0], "doc": "NOPE.pdf"}) + "\n")
    with pytest.raises(BadRequest, match="NOPE.pdf"):
        load_page_dataset(dataset)
    questions.write_text('{"id": "q1", "question": "x"}\n')
    with pytest.raises(BadRequest, match="line 1"):
        load_page_dataset(dataset)
