"""IR evaluation against BEIR-style graded qrels, and latency percentiles."""

import math
from collections.abc import Mapping, Sequence


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """nDCG@k with linear gain (as BEIR / pytrec_eval `ndcg_cut`); grades <= 0 count as 0."""
    top = _top_k(ranked, k)
    dcg = _dcg([relevant.get(doc_id, 0) for doc_id in top])
    ideal = _dcg(sorted(relevant.values(), reverse=True)[:k])
    return dcg / ideal if ideal > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Fraction of the relevant docs (grade > 0) found in the top k; 0.0 when none are relevant."""
    wanted = {doc_id for doc_id, grade in relevant.items() if grade > 0}
    if not wanted:
        return 0.0
    return len(wanted.intersection(_top_k(ranked, k))) / len(wanted)


def mrr_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """Reciprocal rank of the first relevant doc (grade > 0) in the top k; 0.0 when none is."""
    for rank, doc_id in enumerate(_top_k(ranked, k), start=1):
        if relevant.get(doc_id, 0) > 0:
            return 1.0 / rank
    return 0.0


def evaluate(
    run: Mapping[str, Sequence[str]],
    qrels: Mapping[str, Mapping[str, int]],
    *,
    ks: Sequence[int] = (10, 100),
) -> dict[str, float]:
    """Mean metrics over the queries in qrels: nDCG and MRR at ks[0], recall at every k.

    A query in qrels but not in run scores 0; queries only in run are ignored.
    With the default ks the keys are "ndcg@10", "recall@10", "recall@100" and "mrr@10".
    """
    if not ks:
        raise ValueError("ks is empty — give at least one cut-off, e.g. ks=(10, 100)")
    if not qrels:
        raise ValueError("qrels has no queries — nothing to evaluate")
    first = ks[0]
    totals = dict.fromkeys([f"ndcg@{first}", *(f"recall@{k}" for k in ks), f"mrr@{first}"], 0.0)
    for query_id, relevant in qrels.items():
        ranked = run.get(query_id, ())
        totals[f"ndcg@{first}"] += ndcg_at_k(ranked, relevant, first)
        totals[f"mrr@{first}"] += mrr_at_k(ranked, relevant, first)
        for k in ks:
            totals[f"recall@{k}"] += recall_at_k(ranked, relevant, k)
    return {name: total / len(qrels) for name, total in totals.items()}


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy.percentile's default."""
    if not values:
        raise ValueError("percentile of an empty sequence is undefined")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q must be between 0 and 100, got {q}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _top_k(ranked: Sequence[str], k: int) -> list[str]:
    """The first k distinct ids; a repeated id keeps only its first (best) position."""
    if k < 1:
        raise ValueError(f"cut-off k must be 1 or more, got {k}")
    return list(dict.fromkeys(ranked))[:k]


def _dcg(grades: Sequence[int]) -> float:
    # Rank r (1-based) is discounted by log2(r + 1); negative grades must not subtract gain.
    return sum(max(grade, 0) / math.log2(rank + 1) for rank, grade in enumerate(grades, start=1))
