"""Fuse ranked lists from several retrieval legs (BM25, dense) into one ranking."""

import math
from collections.abc import Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

FusionMethod = Literal["blend", "score", "rrf"]
_METHODS = ("blend", "score", "rrf")

_Positions = dict[str, tuple[int, float]]  # id -> (1-based rank, raw score) within one leg
_Terms = dict[str, dict[str, float]]  # leg -> id -> that leg's unweighted contribution


@dataclass(frozen=True)
class FusedHit:
    """One fused result: its id, fused score, and where each leg ranked it (rank, raw score)."""

    id: str
    score: float
    # Left out of the hash so a hit stays hashable; ranks are 1-based, as `--explain` shows them.
    legs: dict[str, tuple[int, float]] = field(default_factory=dict, hash=False)


def fuse_rankings(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    *,
    method: FusionMethod = "rrf",
    k: int = 60,
    weights: Mapping[str, float] | None = None,
    limit: int | None = None,
    relative: Collection[str] = (),
) -> list[FusedHit]:
    """Merge per-leg (id, score) lists, best first, into one list of hits, best first.

    Args:
        rankings: leg name -> (id, score) pairs, best first; repeats of an id are skipped.
        method: "blend" sums w × score over legs, a leg named in `relative` contributing its
            score divided by its best score (BM25: unbounded, so scaled to the query's best
            match) and the others their scores as they are (cosine similarities are on one
            scale already); a leg that did not score the id adds 0. Unlike min-max, this keeps
            a leg whose scores are close together (little confidence) from swinging the order.
            "score": CombSUM of min-max normalised scores, a leg whose scores are all equal
            giving 1.0, a leg that missed the id giving 0. "rrf" sums w / (k + rank) over legs
            (reciprocal rank fusion).
        k: RRF smoothing constant; larger values flatten the gap between top ranks.
        weights: per-leg weight, 1.0 where not given; weights for absent legs are ignored.
        limit: keep at most this many hits.
        relative: for "blend", the legs whose scores are divided by their best score.

    Ties go to the hit with the best rank in any leg, then to the smaller id.
    """
    _check_arguments(method, k, limit)
    legs = {name: _first_occurrences(ranking) for name, ranking in rankings.items()}
    if method == "blend":
        contributions = _blend_terms(legs, relative)
    elif method == "score":
        contributions = _normalised_scores(legs)
    else:
        contributions = _rrf_terms(legs, k)
    leg_weights = {leg: float((weights or {}).get(leg, 1.0)) for leg in legs}
    scores = _weighted_sums(contributions, leg_weights)
    best_rank: dict[str, int] = {}
    for positions in legs.values():
        for doc_id, (rank, _) in positions.items():
            if rank < best_rank.get(doc_id, rank + 1):
                best_rank[doc_id] = rank
    ordered = sorted(scores, key=lambda doc_id: (-scores[doc_id], best_rank[doc_id], doc_id))
    kept = ordered if limit is None else ordered[:limit]
    return [FusedHit(doc_id, scores[doc_id], _positions(doc_id, legs)) for doc_id in kept]


def focus_weights(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    document_of: Mapping[str, str],
    weights: Mapping[str, float],
    *,
    depth: int = 10,
) -> dict[str, float]:
    """Each leg's weight divided by the number of documents among its first `depth` hits,
    where a document counts once only if another leg also has it among its first `depth`.

    A leg whose best hits come from one or two documents has found what the question is
    about; one whose hits scatter over many documents is matching words, not the subject
    (a verbose question's "analyst", "assume", "answer" in BM25). But a leg can be sure of
    the wrong document: for a question on Corning's tax rate BM25's first five hits were five
    pages of one Adobe filing, and counted as one document they doubled BM25's weight over a
    dense leg that had found Corning. So a first hit whose document no other leg found there
    counts as a document of its own: focus counts where the legs agree. Where every document
    is one chunk, both legs count `depth` documents and the weights keep their ratio; a leg
    alone counts its documents as they are. Ids missing from `document_of` count as
    documents of their own.
    """
    tops = {
        leg: list(dict.fromkeys(doc_id for doc_id, _ in r))[:depth] for leg, r in rankings.items()
    }
    documents = {
        leg: [document_of.get(doc_id, doc_id) for doc_id in top] for leg, top in tops.items()
    }
    focused = {}
    for leg, top in tops.items():
        others = [documents[other] for other in tops if other != leg]
        shared = set().union(*others) if others else set(documents[leg])
        counted = {("document", document) if document in shared else ("hit", doc_id)
                   for doc_id, document in zip(top, documents[leg], strict=True)}  # fmt: skip
        focused[leg] = float(weights.get(leg, 1.0)) / (len(counted) or 1)
    return focused


def with_document_evidence(
    hits: Sequence[FusedHit],
    places: Mapping[str, tuple[str, Hashable]],
    weight: float,
    *,
    per_document: int = 2,
) -> list[FusedHit]:
    """The hits re-scored with how widely their document matched, best first.

    `places` maps a hit's id to its document and its place in it (a page, or a section
    where the document has no pages). A document's evidence is the mean of its
    `per_document` best places among `hits` (a place scores its best hit; a document matched
    in fewer places counts the rest as 0), and each hit's score is multiplied by
    1 + `weight` × its document's evidence / the best document's. A filing matched on
    several pages then outranks another company's filing with one page that matched a
    little better: a chunk alone rarely says which document it is from. The factor scales a
    hit's own score, so a document's weak hits are not lifted past other documents' good
    ones. Chunks of one place add no evidence, so a long passage split in two does not
    outrank a short one; where each document is one place the order does not change. Ids
    missing from `places` count as documents of their own. A score below 0 (a blend of
    cosines can be) stays as it is, and so does every score where no document's evidence is
    above 0. Ties go to the earlier hit. Each hit's `legs` gains "document": its document's
    place among the documents by evidence, and the factor its score was multiplied by (what
    `archivist search --explain` shows).
    """
    if weight < 0:
        raise ValueError(f"document weight must be 0 or more, got {weight}")
    if weight == 0 or per_document <= 0:
        return list(hits)
    where = {hit.id: places.get(hit.id, (hit.id, None)) for hit in hits}
    best_by_place: dict[tuple[str, Hashable], float] = {}
    for hit in hits:
        best_by_place[where[hit.id]] = max(best_by_place.get(where[hit.id], -math.inf), hit.score)
    by_document: dict[str, list[float]] = {}
    for (document, _), score in best_by_place.items():
        by_document.setdefault(document, []).append(score)
    evidence = {
        document: max(sum(sorted(scores, reverse=True)[:per_document]) / per_document, 0.0)
        for document, scores in by_document.items()
    }
    best = max(evidence.values(), default=0.0)
    if best <= 0:
        return list(hits)
    ranked = sorted(evidence, key=lambda document: -evidence[document])  # stable: ties by order
    standing = {document: n for n, document in enumerate(ranked, 1)}
    rescored = []
    for hit in hits:
        document = where[hit.id][0]
        factor = 1 + weight * evidence[document] / best if hit.score > 0 else 1.0
        legs = {**hit.legs, "document": (standing[document], factor)}
        rescored.append(FusedHit(hit.id, round(hit.score * factor, 12), legs))
    order = sorted(range(len(rescored)), key=lambda i: (-rescored[i].score, i))
    return [rescored[i] for i in order]


def worth_scoring(
    rankings: Mapping[str, Sequence[tuple[str, float]]],
    leg: str,
    *,
    complete: bool,
    weights: Mapping[str, float],
    keep: int,
    relative: Collection[str] = (),
) -> list[str]:
    """The ids the other legs found that `leg` has not scored and that could still be among
    the first `keep` of a "blend" fusion once it has: the others cannot, whatever their score.

    `leg` must be an exact top-n search of non-negative scores, so that an id it did not
    return scores at most its last score (`complete`: it returned every id it matches, so the
    others score 0 there and none needs scoring). Every other id is bounded below by what the
    other legs give it, and above by that plus `leg`'s most; ids whose bound reaches the
    `keep`-th best score have `leg`'s score looked up. Fusing with only those scored gives the
    same first `keep` hits, scores included, as scoring them all.
    """
    legs = {name: _first_occurrences(ranking) for name, ranking in rankings.items()}
    terms = _blend_terms(legs, relative)
    leg_weights = {name: float(weights.get(name, 1.0)) for name in legs}
    scored = legs[leg]
    best = max((score for _, score in scored.values()), default=0.0)
    last = min((score for _, score in scored.values()), default=0.0)
    most = 0.0 if complete or best <= 0 else (last / best if leg in relative else last)
    most *= leg_weights[leg]
    fused = _weighted_sums(terms, leg_weights)
    unscored = [doc_id for doc_id in fused if doc_id not in scored]
    ordered = sorted(fused.values(), reverse=True)
    bar = ordered[keep - 1] if 0 < keep <= len(ordered) else -math.inf
    return [doc_id for doc_id in unscored if most > 0 and fused[doc_id] + most >= bar - 1e-9]


def _check_arguments(method: str, k: int, limit: int | None) -> None:
    if method not in _METHODS:
        raise ValueError(f"unknown fusion method {method!r} (supported: {', '.join(_METHODS)})")
    if k < 0:
        raise ValueError(f"RRF constant k must be 0 or more, got {k}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be 0 or more, got {limit}")


def _first_occurrences(ranking: Sequence[tuple[str, float]]) -> _Positions:
    """Map each id to its 1-based rank among distinct ids and its raw score at first sight."""
    positions: _Positions = {}
    for doc_id, score in ranking:
        if doc_id not in positions:
            positions[doc_id] = (len(positions) + 1, float(score))
    return positions


def _rrf_terms(legs: Mapping[str, _Positions], k: int) -> _Terms:
    """Per leg and id, the unweighted reciprocal-rank term 1 / (k + rank)."""
    return {
        leg: {doc_id: 1.0 / (k + rank) for doc_id, (rank, _) in positions.items()}
        for leg, positions in legs.items()
    }


def _blend_terms(legs: Mapping[str, _Positions], relative: Collection[str]) -> _Terms:
    """Per leg and id, the score, divided by that leg's best score for `relative` legs."""
    terms: _Terms = {}
    for leg, positions in legs.items():
        scores = _finite_scores(leg, positions)
        best = max(scores.values(), default=0.0) if leg in relative else 1.0
        terms[leg] = {d: score / best if best > 0 else 0.0 for d, score in scores.items()}
    return terms


def _normalised_scores(legs: Mapping[str, _Positions]) -> _Terms:
    """Per leg and id, the score min-max normalised to [0, 1] within that leg."""
    terms: _Terms = {}
    for leg, positions in legs.items():
        scores = _finite_scores(leg, positions)
        low = min(scores.values(), default=0.0)
        span = max(scores.values(), default=low) - low
        terms[leg] = {d: (score - low) / span if span else 1.0 for d, score in scores.items()}
    return terms


def _finite_scores(leg: str, positions: _Positions) -> dict[str, float]:
    """Each id's score in one leg; every score must be a finite number."""
    scores = {doc_id: score for doc_id, (_, score) in positions.items()}
    if not all(map(math.isfinite, scores.values())):
        doc_id, score = next((d, s) for d, s in scores.items() if not math.isfinite(s))
        raise ValueError(f"leg '{leg}': score of '{doc_id}' is {score} — scores must be finite")
    return scores


def _weighted_sums(terms: _Terms, weights: Mapping[str, float]) -> dict[str, float]:
    """Per id, the sum of its legs' terms times the legs' weights, in `math.fsum`'s precision:
    with two legs, added as floats a leg at a time (one correctly rounded addition is what
    fsum gives for two terms; no list per id: 0.96 -> 0.67 ms a hybrid search's fusion).
    Rounded so that equal fused scores compare equal and reach the rank/id tie-breakers:
    added in floats, 1/15 + 1/10 and 1/6 differ in the last bit."""
    if len(terms) <= 2:
        sums: dict[str, float] = {}
        for leg, by_id in terms.items():
            weight = weights[leg]
            for doc_id, term in by_id.items():
                sums[doc_id] = sums[doc_id] + weight * term if doc_id in sums else weight * term
    else:
        parts: dict[str, list[float]] = {}
        for leg, by_id in terms.items():
            for doc_id, term in by_id.items():
                parts.setdefault(doc_id, []).append(weights[leg] * term)
        sums = {doc_id: math.fsum(values) for doc_id, values in parts.items()}
    return {doc_id: round(total, 12) for doc_id, total in sums.items()}


def _positions(doc_id: str, legs: Mapping[str, _Positions]) -> dict[str, tuple[int, float]]:
    return {leg: positions[doc_id] for leg, positions in legs.items() if doc_id in positions}
