"""`archivist eval` on a small BEIR dataset written by the test."""

import json
import os
import subprocess
import sys
from pathlib import Path

from api.evaluation import load_dataset
from api.evaluation.answers import holds_answer, normalize

ARCHIVIST = str(Path(sys.executable).parent / "archivist")
DOCS = {
    "d1": ("Lighthouse", "The lens of the lighthouse is cleaned every Tuesday."),
    "d2": ("Garden", "Tomatoes are watered every morning before eight."),
    "d3": ("Ferry", "The last ferry to Gull Island leaves at 17:40."),
    "d4": ("Bread", "Sourdough is baked until it reaches 96 degrees inside."),
}
QUERIES = {"q1": "when is the lighthouse lens cleaned", "q2": "last ferry to Gull Island"}
QRELS = {"q1": "d1", "q2": "d3"}


def write_dataset(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w") as corpus:
        for doc_id, (title, text) in DOCS.items():
            corpus.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as queries:
        for query_id, text in QUERIES.items():
            queries.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in QRELS.items()]
    (folder / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    return folder


def test_eval_json_reports_every_mode_with_metrics_and_latency(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "tiny")
    env = {**os.environ, "ARCHIVIST_DATA": str(tmp_path / "unused")}
    done = subprocess.run(
        [ARCHIVIST, "eval", str(dataset), "--json"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["dataset"], report["queries"]) == ("tiny", 2)
    assert report["index_seconds"] >= 0
    assert set(report["results"]) == {"hybrid", "bm25", "dense"}
    for scores in report["results"].values():
        assert scores["ndcg@10"] == scores["recall@10"] == scores["mrr@10"] == 1.0
        assert 0 < scores["latency_ms_p50"] <= scores["latency_ms_p95"]
    assert not (tmp_path / "unused").exists()


def test_max_queries_takes_a_fixed_sample(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "tiny")
    first = load_dataset(dataset, max_queries=1)
    assert list(first.queries) == list(load_dataset(dataset, max_queries=1).queries)
    assert len(first.queries) == 1 and set(first.qrels) == set(first.queries)


def test_a_folder_without_the_beir_layout_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([ARCHIVIST, "eval", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "has no corpus.jsonl: expected the BEIR layout" in done.stderr


def test_eval_answers_scores_the_answers_of_questions_with_gold_answers(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "tiny")
    lines = [json.loads(line) for line in (dataset / "queries.jsonl").read_text().splitlines()]
    gold = {"q1": ["every Tuesday"], "q2": ["17:40"]}
    (dataset / "queries.jsonl").write_text(
        "".join(json.dumps({**q, "answers": gold[q["_id"]]}) + "\n" for q in lines)
    )
    env = {**os.environ, "ARCHIVIST_DATA": str(tmp_path / "unused"), "ARCHIVIST_LLM": "none"}
    out = tmp_path / "answers.jsonl"
    done = subprocess.run(
        [ARCHIVIST, "eval", str(dataset), "--answers", "--mode", "bm25", "--json",
         "--answers-out", str(out)],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answers = json.loads(done.stdout)["answers"]
    assert (answers["backend"], answers["model"], answers["questions"]) == ("none", None, 2)
    # Without a model the answer quotes the sentence that answers: it holds the gold answer.
    assert answers["context_recall"] == answers["citation_accuracy"] == 1.0
    assert answers["answer_recall"] == answers["extractive_share"] == 1.0
    assert answers["degenerate"] == answers["false_refusals"] == answers["rejected_share"] == 0
    assert answers["figures_in_answer"] == 1.0  # "17:40" holds figures; "every Tuesday" none
    assert answers["first_token_ms_p50"] > 0 and answers["total_ms_p50"] > 0
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(w["id"], w["gold"]) for w in written] == [("q1", gold["q1"]), ("q2", gold["q2"])]
    assert all(w["answer"] and w["citations"] and w["scores"]["answer_recall"] for w in written)


def test_eval_answers_needs_a_set_with_answers(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "tiny")
    done = subprocess.run(
        [ARCHIVIST, "eval", str(dataset), "--answers"], capture_output=True, text=True
    )
    assert done.returncode == 1
    assert 'queries.jsonl has no "answers"' in done.stderr


def test_answers_are_compared_without_any_punctuation() -> None:
    gold = ["it isn't an elegant piece of furniture", "$1,577.00"]
    assert holds_answer(
        "“I knocked a point off: it isn’t an elegant piece of furniture.” [1]", gold
    )
    assert holds_answer("Capital expenditure was 1577.00 dollars", gold)
    assert not holds_answer("it is an elegant piece of furniture", gold[:1])
    assert normalize("“The Lens,” she said") == "lens she said"
