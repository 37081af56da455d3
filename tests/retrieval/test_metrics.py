import math
import random

import numpy as np
import pytest

from retrieval.metrics import evaluate, mrr_at_k, ndcg_at_k, percentile, recall_at_k


def test_ndcg_hand_checked():
    # DCG = 1/log2(2) + 2/log2(4) = 1 + 1 = 2.0
    # IDCG = 2/log2(2) + 1/log2(3) = 2 + 0.63093 = 2.63093
    # nDCG = 2.0 / 2.63093 = 0.76019
    assert ndcg_at_k(["a", "b", "c"], {"a": 1, "c": 2}, k=3) == pytest.approx(0.76019, abs=1e-5)


def test_ndcg_cuts_the_ranking_at_k():
    # Top 2 is [a, b]: DCG = 1/log2(2) = 1.0; IDCG@2 = 2/log2(2) + 1/log2(3) = 2.63093
    assert ndcg_at_k(["a", "b", "c"], {"a": 1, "c": 2}, k=2) == pytest.approx(0.38010, abs=1e-5)


def test_ndcg_ideal_is_cut_at_k_too():
    # Three relevant docs, k=1: DCG = 1/log2(2) = 1; IDCG@1 = 1/log2(2) = 1
    assert ndcg_at_k(["a", "b"], {"a": 1, "b": 1, "c": 1}, k=1) == 1.0


def test_ndcg_gain_is_linear_in_the_grade():
    # DCG = 1/log2(2) + 3/log2(3) = 2.89279; IDCG = 3/log2(2) + 1/log2(3) = 3.63093;
    # nDCG = 0.79671 (exponential gain 2^rel - 1 would give (1 + 7/log2(3)) / (7 + 1/log2(3))
    # = 0.70981)
    assert ndcg_at_k(["b", "a"], {"a": 3, "b": 1}) == pytest.approx(0.79671, abs=1e-5)


def test_ndcg_of_the_ideal_ranking_is_one():
    assert ndcg_at_k(["c", "a", "b"], {"a": 1, "c": 2}, k=3) == pytest.approx(1.0)


def test_ndcg_ideal_counts_relevant_docs_that_were_not_retrieved():
    # k=10 is past the end of the list. DCG = 1/log2(2) = 1; IDCG = 1 + 1/log2(3) = 1.63093
    assert ndcg_at_k(["b"], {"a": 1, "b": 1}, k=10) == pytest.approx(0.61315, abs=1e-5)


@pytest.mark.parametrize("relevant", [{}, {"a": 0}, {"a": -1}])
def test_ndcg_without_relevant_docs_is_zero(relevant):
    assert ndcg_at_k(["a", "b"], relevant) == 0.0


def test_ndcg_negative_grades_count_as_non_relevant():
    # DCG = 0 (a) + 1/log2(3) (b) = 0.63093; IDCG = 1/log2(2) = 1
    assert ndcg_at_k(["a", "b"], {"a": -1, "b": 1}) == pytest.approx(0.63093, abs=1e-5)


def test_ndcg_ignores_repeats_after_the_first_occurrence():
    # [a, a, b] is read as [a, b]: DCG = 1/log2(3) = 0.63093; IDCG = 1
    assert ndcg_at_k(["a", "a", "b"], {"b": 1}, k=2) == pytest.approx(0.63093, abs=1e-5)


def test_recall_hand_checked():
    # Relevant: a, d, e (f has grade 0). Top 3 [a, b, c] holds a: 1/3.
    relevant = {"a": 1, "d": 2, "e": 1, "f": 0}
    assert recall_at_k(["a", "b", "c", "d", "f"], relevant, k=3) == pytest.approx(1 / 3)


def test_recall_grows_with_k():
    # Top 5 [a, b, c, d, f] holds a and d: 2/3.
    relevant = {"a": 1, "d": 2, "e": 1, "f": 0}
    assert recall_at_k(["a", "b", "c", "d", "f"], relevant, k=5) == pytest.approx(2 / 3)


def test_recall_leaves_zero_grades_out_of_the_denominator():
    assert recall_at_k(["a"], {"a": 1, "f": 0}, k=10) == 1.0


@pytest.mark.parametrize("relevant", [{}, {"a": 0}])
def test_recall_without_relevant_docs_is_zero(relevant):
    assert recall_at_k(["a"], relevant, k=10) == 0.0


def test_recall_ignores_repeats_after_the_first_occurrence():
    # [a, a, a, d] is read as [a, d]; the top 2 holds both of a, d, but not e: 2/3.
    assert recall_at_k(["a", "a", "a", "d"], {"a": 1, "d": 1, "e": 1}, k=2) == pytest.approx(2 / 3)


def test_mrr_is_the_reciprocal_rank_of_the_first_relevant_doc():
    assert mrr_at_k(["x", "y", "a", "b"], {"a": 1, "b": 2}) == pytest.approx(1 / 3)


def test_mrr_is_zero_when_the_first_relevant_doc_is_past_k():
    assert mrr_at_k(["x", "y", "a"], {"a": 1}, k=2) == 0.0


def test_mrr_skips_zero_grades():
    assert mrr_at_k(["f", "a"], {"f": 0, "a": 1}) == 0.5


def test_mrr_ignores_repeats_after_the_first_occurrence():
    assert mrr_at_k(["x", "x", "a"], {"a": 1}) == 0.5


@pytest.mark.parametrize("metric", [ndcg_at_k, recall_at_k, mrr_at_k])
def test_cut_off_below_one_is_rejected(metric):
    with pytest.raises(ValueError, match="cut-off k must be 1 or more, got 0"):
        metric(["a"], {"a": 1}, 0)


def test_evaluate_averages_over_qrels_queries():
    filler = [f"x{i}" for i in range(10)]
    run = {"q1": ["a", *filler, "e"], "q2": ["c", "x", "b"], "q4": ["z"]}
    qrels = {"q1": {"a": 1, "e": 1}, "q2": {"b": 2, "c": 1}, "q3": {"d": 1}}
    # q1: e is at rank 12. nDCG@10 = 1 / (1 + 1/log2(3)) = 0.61315; recall@10 = 0.5, @100 = 1;
    #     MRR = 1
    # q2: DCG = 1/log2(2) + 2/log2(4) = 2; IDCG = 2 + 1/log2(3) = 2.63093; nDCG = 0.76019;
    #     recall = 1; MRR = 1
    # q3: not in the run: all 0. q4: not in qrels: ignored. Means are over 3 queries.
    assert evaluate(run, qrels) == {
        "ndcg@10": pytest.approx((0.61315 + 0.76019) / 3, abs=1e-5),
        "recall@10": pytest.approx(1.5 / 3),
        "recall@100": pytest.approx(2 / 3),
        "mrr@10": pytest.approx(2 / 3),
    }


def test_evaluate_scores_a_query_missing_from_the_run_as_zero():
    assert evaluate({"q1": ["a"]}, {"q1": {"a": 1}, "q2": {"b": 1}})["ndcg@10"] == 0.5


def test_evaluate_ignores_run_queries_without_qrels():
    qrels = {"q1": {"a": 1}}
    assert evaluate({"q1": ["a"], "q9": ["z"]}, qrels) == evaluate({"q1": ["a"]}, qrels)


def test_evaluate_names_metrics_after_the_cut_offs():
    assert set(evaluate({"q1": ["a"]}, {"q1": {"a": 1}}, ks=(5, 20))) == {
        "ndcg@5",
        "recall@5",
        "recall@20",
        "mrr@5",
    }


def test_evaluate_rejects_empty_qrels():
    with pytest.raises(ValueError, match="qrels has no queries — nothing to evaluate"):
        evaluate({"q1": ["a"]}, {})


def test_evaluate_rejects_empty_cut_offs():
    with pytest.raises(ValueError, match=r"ks is empty — give at least one cut-off"):
        evaluate({"q1": ["a"]}, {"q1": {"a": 1}}, ks=())


@pytest.mark.parametrize(("q", "expected"), [(0, 1.0), (50, 2.5), (95, 3.85), (100, 4.0)])
def test_percentile_interpolates_linearly(q, expected):
    # Position (n - 1) * q / 100 in [1, 2, 3, 4]; q=95 -> 2.85 -> 3 + 0.85 * (4 - 3) = 3.85
    assert percentile([4.0, 1.0, 3.0, 2.0], q) == pytest.approx(expected)


def test_percentile_of_one_value_is_that_value():
    assert percentile([7.5], 95) == 7.5


@pytest.mark.parametrize("seed", range(20))
def test_percentile_matches_numpy(seed):
    rng = random.Random(seed)
    values = [rng.lognormvariate(0, 1) for _ in range(rng.randint(1, 200))]
    for q in (0, 1, 25, 50, 90, 95, 99, 99.9, 100, rng.uniform(0, 100)):
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_rejected():
    with pytest.raises(ValueError, match="percentile of an empty sequence is undefined"):
        percentile([], 50)


@pytest.mark.parametrize("q", [-1, 100.5, math.nan])
def test_percentile_outside_0_to_100_is_rejected(q):
    with pytest.raises(ValueError, match="percentile q must be between 0 and 100"):
        percentile([1.0], q)
