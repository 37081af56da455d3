import dataclasses
import random
from fractions import Fraction

import pytest

from retrieval.fusion import (
    FusedHit,
    focus_weights,
    fuse_rankings,
    with_document_evidence,
    worth_scoring,
)

BM25 = [("a", 12.0), ("b", 7.5), ("c", 3.0)]
DENSE = [("c", 0.9), ("a", 0.8), ("d", 0.1)]


def _reference_rrf(rankings, k=60, weights=None):
    """Textbook RRF in exact fractions: sum of w / (k + rank), then best rank, then id."""
    scores, best = {}, {}
    for leg, ranking in rankings.items():
        weight = Fraction((weights or {}).get(leg, 1.0))
        for rank, doc in enumerate(list(dict.fromkeys(doc for doc, _ in ranking)), start=1):
            scores[doc] = scores.get(doc, Fraction(0)) + weight / (k + rank)
            best[doc] = min(best.get(doc, rank), rank)
    ordered = sorted(scores, key=lambda doc: (-scores[doc], best[doc], doc))
    return [(doc, float(scores[doc])) for doc in ordered]


def _random_case(seed):
    rng = random.Random(seed)
    shared = [f"d{i}" for i in range(rng.randint(1, 40))]
    rankings = {}
    for leg in rng.sample(["bm25", "dense", "sparse"], rng.randint(1, 3)):
        # Half the legs draw from a shared pool (overlapping ids), half from their own (disjoint).
        pool = shared if rng.random() < 0.5 else [f"{leg}-{i}" for i in range(30)]
        ids = rng.sample(pool, rng.randint(0, len(pool)))
        rankings[leg] = [(doc, rng.uniform(-1, 20)) for doc in ids]
    weights = rng.choice([None, {leg: rng.uniform(0, 3) for leg in rankings if rng.random() < 0.7}])
    return rankings, rng.choice([0, 1, 60]), weights


@pytest.mark.parametrize("seed", range(200))
def test_rrf_matches_reference_on_random_rankings(seed):
    rankings, k, weights = _random_case(seed)
    fused = fuse_rankings(rankings, k=k, weights=weights)
    expected = _reference_rrf(rankings, k=k, weights=weights)
    assert [hit.id for hit in fused] == [doc for doc, _ in expected]
    assert [hit.score for hit in fused] == pytest.approx([score for _, score in expected])


def test_rrf_hand_checked_order_and_scores():
    fused = fuse_rankings({"bm25": BM25, "dense": DENSE})
    # a: 1/61 + 1/62, c: 1/63 + 1/61, b: 1/62, d: 1/63
    assert [(hit.id, hit.score) for hit in fused] == [
        ("a", pytest.approx(1 / 61 + 1 / 62)),
        ("c", pytest.approx(1 / 63 + 1 / 61)),
        ("b", pytest.approx(1 / 62)),
        ("d", pytest.approx(1 / 63)),
    ]


def test_rrf_uses_k():
    fused = fuse_rankings({"bm25": BM25, "dense": DENSE}, k=0)
    # a: 1/1 + 1/2, c: 1/3 + 1/1, b: 1/2, d: 1/3
    assert [hit.score for hit in fused] == pytest.approx([1.5, 4 / 3, 0.5, 1 / 3])


def test_rrf_weights_reorder_hits():
    fused = fuse_rankings({"bm25": BM25, "dense": DENSE}, weights={"dense": 2.0})
    # c: 1/63 + 2/61 = 0.048660 > a: 1/61 + 2/62 = 0.048651; d: 2/63 = 0.0317 > b: 1/62 = 0.0161
    assert [hit.id for hit in fused] == ["c", "a", "d", "b"]
    assert fused[0].score == pytest.approx(1 / 63 + 2 / 61)


def test_weights_for_absent_legs_are_ignored():
    plain = fuse_rankings({"bm25": BM25, "dense": DENSE})
    assert fuse_rankings({"bm25": BM25, "dense": DENSE}, weights={"sparse": 5.0}) == plain


def test_hits_report_rank_and_raw_score_per_leg():
    hits = {hit.id: hit for hit in fuse_rankings({"bm25": BM25, "dense": DENSE})}
    assert hits["a"].legs == {"bm25": (1, 12.0), "dense": (2, 0.8)}
    assert hits["d"].legs == {"dense": (3, 0.1)}


def test_repeated_id_in_a_leg_keeps_its_first_rank():
    (hit, _) = fuse_rankings({"bm25": [("a", 3.0), ("b", 2.0), ("a", 1.0)]})
    assert (hit.id, hit.score, hit.legs) == ("a", pytest.approx(1 / 61), {"bm25": (1, 3.0)})


def test_ranks_count_distinct_ids():
    hits = fuse_rankings({"bm25": [("a", 3.0), ("b", 2.0), ("a", 1.0), ("c", 0.5)]})
    assert {hit.id: hit.legs["bm25"] for hit in hits}["c"] == (3, 0.5)


def test_ties_break_on_best_rank_before_id():
    rankings = {
        "one": [("zeta", 1.0)],
        "two": [("x1", 1.0), ("alpha", 0.5)],
        "three": [("x2", 1.0), ("alpha", 0.5)],
    }
    # k=0: zeta, x1, x2 each 1/1; alpha 1/2 + 1/2 = 1 too, but its best rank is 2, not 1.
    fused = fuse_rankings(rankings, k=0)
    assert [hit.score for hit in fused] == [1.0, 1.0, 1.0, 1.0]
    assert [hit.id for hit in fused] == ["x1", "x2", "zeta", "alpha"]


def test_ties_are_not_left_to_float_rounding():
    rankings = {
        "one": [(f"one{i}", 1.0) for i in range(5)] + [("zz", 1.0)],  # zz at rank 6
        "two": [(f"two{i}", 1.0) for i in range(9)] + [("aa", 1.0)],  # aa at rank 10
        "three": [(f"three{i}", 1.0) for i in range(14)] + [("aa", 1.0)],  # and at rank 15
    }
    # k=0: zz 1/6, aa 1/10 + 1/15 = 1/6 exactly (in floats the sum comes out one bit higher),
    # so the tie goes to zz's better best rank.
    hits = {hit.id: (position, hit) for position, hit in enumerate(fuse_rankings(rankings, k=0))}
    assert hits["zz"][1].score == hits["aa"][1].score == round(1 / 6, 12)
    assert hits["zz"][0] < hits["aa"][0]


def test_ties_on_score_and_rank_break_on_id_whatever_the_leg_order():
    first = fuse_rankings({"bm25": [("b", 1.0)], "dense": [("a", 1.0)]})
    second = fuse_rankings({"dense": [("a", 1.0)], "bm25": [("b", 1.0)]})
    assert [hit.id for hit in first] == [hit.id for hit in second] == ["a", "b"]


def test_score_fusion_sums_min_max_normalised_scores():
    rankings = {
        "bm25": [("a", 10.0), ("b", 6.0), ("c", 2.0)],  # normalised: a 1.0, b 0.5, c 0.0
        "dense": [("c", 0.8), ("d", 0.5), ("a", 0.4)],  # normalised: c 1.0, d 0.25, a 0.0
    }
    fused = fuse_rankings(rankings, method="score")
    # a: 1.0 + 0.0 and c: 0.0 + 1.0 tie on score and best rank (1), so id decides.
    assert [(hit.id, hit.score) for hit in fused] == [
        ("a", pytest.approx(1.0)),
        ("c", pytest.approx(1.0)),
        ("b", pytest.approx(0.5)),
        ("d", pytest.approx(0.25)),
    ]


def test_score_fusion_is_a_weighted_sum():
    rankings = {
        "bm25": [("a", 10.0), ("b", 6.0), ("c", 2.0)],
        "dense": [("c", 0.8), ("d", 0.5), ("a", 0.4)],
    }
    fused = fuse_rankings(rankings, method="score", weights={"bm25": 0.3, "dense": 0.7})
    # a: 0.3 * 1.0, c: 0.7 * 1.0, b: 0.3 * 0.5, d: 0.7 * 0.25
    assert [(hit.id, hit.score) for hit in fused] == [
        ("c", pytest.approx(0.7)),
        ("a", pytest.approx(0.3)),
        ("d", pytest.approx(0.175)),
        ("b", pytest.approx(0.15)),
    ]


def test_score_fusion_gives_a_leg_of_equal_scores_full_weight():
    fused = fuse_rankings({"dense": [("x", 0.5), ("y", 0.5)], "bm25": [("z", 4.0)]}, method="score")
    assert [(hit.id, hit.score) for hit in fused] == [("x", 1.0), ("z", 1.0), ("y", 1.0)]


def test_score_fusion_rejects_non_finite_scores():
    with pytest.raises(
        ValueError, match="leg 'dense': score of 'x' is nan — scores must be finite"
    ):
        fuse_rankings({"dense": [("y", 0.5), ("x", float("nan"))]}, method="score")


def _reference_blend(rankings, weights=None, relative=()):
    """The blend written out in exact fractions: sum over legs of w × score (÷ the leg's best
    for relative legs), 0 where a leg did not score the id; then best rank, then id."""
    scores, best_rank = {}, {}
    for leg, ranking in rankings.items():
        weight = Fraction((weights or {}).get(leg, 1.0))
        first = {}
        for doc, score in ranking:
            first.setdefault(doc, Fraction(score))
        top = max(first.values(), default=Fraction(0)) if leg in relative else Fraction(1)
        for rank, (doc, score) in enumerate(first.items(), start=1):
            term = score / top if top > 0 else Fraction(0)
            scores[doc] = scores.get(doc, Fraction(0)) + weight * term
            best_rank[doc] = min(best_rank.get(doc, rank), rank)
    ordered = sorted(scores, key=lambda doc: (-scores[doc], best_rank[doc], doc))
    return [(doc, float(scores[doc])) for doc in ordered]


@pytest.mark.parametrize("seed", range(200))
def test_blend_matches_reference_on_random_rankings(seed):
    rankings, _, weights = _random_case(seed)
    relative = random.Random(seed).choice([(), ("bm25",), ("bm25", "sparse")])
    fused = fuse_rankings(rankings, method="blend", weights=weights, relative=relative)
    expected = _reference_blend(rankings, weights=weights, relative=relative)
    assert [hit.id for hit in fused] == [doc for doc, _ in expected]
    assert [hit.score for hit in fused] == pytest.approx([score for _, score in expected])


def test_blend_scales_relative_legs_by_their_best_and_keeps_cosines_as_they_are():
    rankings = {
        "bm25": [("a", 10.0), ("b", 6.0), ("c", 2.0)],  # relative: a 1.0, b 0.6, c 0.2
        "dense": [("c", 0.8), ("d", 0.5), ("a", 0.4)],  # cosines, kept
    }
    fused = fuse_rankings(
        rankings, method="blend", weights={"bm25": 0.45, "dense": 0.55}, relative={"bm25"}
    )
    # a: .45 + .22, c: .09 + .44, b: .27, d: .275
    assert [(hit.id, hit.score) for hit in fused] == [
        ("a", pytest.approx(0.67)),
        ("c", pytest.approx(0.53)),
        ("d", pytest.approx(0.275)),
        ("b", pytest.approx(0.27)),
    ]


def test_blend_lets_a_flat_leg_barely_move_the_order_where_min_max_lets_it_decide():
    rankings = {
        "bm25": [("right", 9.0), ("wrong", 6.0)],
        "dense": [("wrong", 0.31), ("right", 0.30)],  # no real preference
    }
    blend = fuse_rankings(rankings, method="blend", relative={"bm25"})
    score = fuse_rankings(rankings, method="score")
    assert [hit.id for hit in blend] == ["right", "wrong"]
    assert [hit.id for hit in score][0] == "right" and score[0].score == score[1].score


def test_focus_weights_divide_by_the_documents_a_leg_hits():
    rankings = {
        "bm25": [("a1", 9.0), ("b1", 8.0), ("c1", 7.0), ("d1", 6.0)],  # four documents
        "dense": [("a1", 0.9), ("a2", 0.8), ("a3", 0.7), ("b1", 0.6)],  # two documents
    }
    document_of = {"a1": "A", "a2": "A", "a3": "A", "b1": "B", "c1": "C", "d1": "D"}
    weights = focus_weights(rankings, document_of, {"bm25": 0.45, "dense": 0.55}, depth=4)
    assert weights == pytest.approx({"bm25": 0.45 / 4, "dense": 0.55 / 2})
    # Only the first `depth` hits count; unknown ids are documents of their own.
    assert focus_weights(rankings, {}, {}, depth=2) == {"bm25": 0.5, "dense": 0.5}
    assert focus_weights({"bm25": []}, {}, {"bm25": 2.0}) == {"bm25": 2.0}


def test_focus_weights_keep_the_ratio_where_every_document_is_one_chunk():
    rankings = {"bm25": [(f"b{n}", 1.0) for n in range(20)],
                "dense": [(f"d{n}", 1.0) for n in range(20)]}  # fmt: skip
    weights = focus_weights(rankings, {}, {"bm25": 0.45, "dense": 0.55})
    assert weights["bm25"] / weights["dense"] == pytest.approx(0.45 / 0.55)


def _reference_focus(rankings, document_of, weights, depth):
    """Focus weights written out: walk each leg's ids, skipping repeats, until `depth` distinct
    ids are seen; the leg's weight is divided by how many documents they belong to, a document
    that no other leg's first ids belong to counting once for each of its ids."""
    firsts = {}
    for leg, ranking in rankings.items():
        seen = []
        for doc, _ in ranking:
            if doc not in seen and len(seen) < depth:
                seen.append(doc)
        firsts[leg] = seen
    focused = {}
    for leg, seen in firsts.items():
        others = [other for other in firsts if other != leg]
        count, documents = 0, set()
        for doc in seen:
            document = document_of.get(doc, doc)
            elsewhere = any(document_of.get(d, d) == document for o in others for d in firsts[o])
            if not others or elsewhere:
                count += document not in documents
                documents.add(document)
            else:
                count += 1
        focused[leg] = Fraction(weights.get(leg, 1.0)) / max(1, count)
    return focused


@pytest.mark.parametrize("seed", range(100))
def test_focus_weights_match_reference_at_any_depth(seed):
    rng = random.Random(seed)
    rankings, _, weights = _random_case(seed)
    # Chunks of a few documents, with repeats, so the depth decides how many are counted.
    rankings = {leg: ranking + ranking[:3] for leg, ranking in rankings.items()}
    document_of = {doc: f"doc{rng.randint(0, 5)}" for r in rankings.values() for doc, _ in r}
    depth = rng.choice([1, 3, 5, 10, 50])
    focused = focus_weights(rankings, document_of, weights or {}, depth=depth)
    expected = _reference_focus(rankings, document_of, weights or {}, depth)
    assert focused == pytest.approx({leg: float(value) for leg, value in expected.items()})


def test_focus_counts_a_document_once_only_where_another_leg_found_it_too():
    # Five pages of one wrong filing lead BM25 (the question's words are everywhere in it);
    # the dense leg's first hits are the right filing's pages and two others.
    rankings = {
        "bm25": [("adobe-p3", 9.0), ("adobe-p4", 8.0), ("adobe-p7", 7.0), ("adobe-p8", 6.0),
                 ("adobe-p9", 5.0), ("corning-p40", 4.0)],
        "dense": [("corning-p40", 0.8), ("corning-p41", 0.7), ("cisco-p2", 0.6),
                  ("corning-p12", 0.6), ("ibm-p5", 0.5), ("adobe-p3", 0.4)],
    }  # fmt: skip
    document_of = {doc: doc.split("-")[0] for r in rankings.values() for doc, _ in r}
    weights = focus_weights(rankings, document_of, {"bm25": 1.0, "dense": 1.0}, depth=5)
    # The legs' first five share no document, so each hit counts on its own: the old count
    # (BM25 one document, the dense leg three) tripled the weight of the leg on the wrong filing.
    assert weights == pytest.approx({"bm25": 1 / 5, "dense": 1 / 5})
    # Where BM25 also finds Corning among its first five, both legs' focus counts it once.
    agreed = {**rankings, "bm25": [("corning-p40", 9.0), *rankings["bm25"][:4]]}
    weights = focus_weights(agreed, document_of, {"bm25": 1.0, "dense": 1.0}, depth=5)
    assert weights == pytest.approx({"bm25": 1 / 5, "dense": 1 / 3})
    # A leg alone counts its documents as they are.
    alone = focus_weights({"bm25": rankings["bm25"]}, document_of, {"bm25": 1.0}, depth=5)
    assert alone == {"bm25": 1.0}


def test_a_shallower_focus_depth_sees_a_scattered_leg_sooner():
    rankings = {
        "bm25": [("a1", 9.0), ("b1", 8.0), ("c1", 7.0), ("d1", 6.0), ("e1", 5.0)],
        "dense": [("a1", 0.9), ("a2", 0.8), ("a3", 0.7), ("a4", 0.6), ("b1", 0.5)],
    }
    document_of = {doc: doc[0].upper() for r in rankings.values() for doc, _ in r}
    weights = {"bm25": 0.45, "dense": 0.55}
    # The dense leg stays on one document through its first four hits, BM25 never does.
    assert focus_weights(rankings, document_of, weights, depth=4) == pytest.approx(
        {"bm25": 0.45 / 4, "dense": 0.55}
    )
    assert focus_weights(rankings, document_of, weights, depth=5) == pytest.approx(
        {"bm25": 0.45 / 5, "dense": 0.55 / 2}
    )


def test_limit_keeps_the_best_hits():
    fused = fuse_rankings({"bm25": BM25, "dense": DENSE}, limit=2)
    assert [hit.id for hit in fused] == ["a", "c"]


def test_limit_zero_returns_nothing():
    assert fuse_rankings({"bm25": BM25}, limit=0) == []


@pytest.mark.parametrize("rankings", [{}, {"bm25": []}, {"bm25": [], "dense": []}])
@pytest.mark.parametrize("method", ["rrf", "score", "blend"])
def test_empty_legs_give_no_hits(rankings, method):
    assert fuse_rankings(rankings, method=method) == []


def test_an_empty_leg_does_not_change_the_others():
    assert fuse_rankings({"bm25": BM25, "dense": []}) == fuse_rankings({"bm25": BM25})


def test_unknown_method_is_rejected():
    expected = r"unknown fusion method 'max' \(supported: blend, score, rrf\)"
    with pytest.raises(ValueError, match=expected):
        fuse_rankings({"bm25": BM25}, method="max")  # type: ignore[arg-type]


def test_negative_k_is_rejected():
    with pytest.raises(ValueError, match="RRF constant k must be 0 or more, got -1"):
        fuse_rankings({"bm25": BM25}, k=-1)


def test_negative_limit_is_rejected():
    with pytest.raises(ValueError, match="limit must be 0 or more, got -3"):
        fuse_rankings({"bm25": BM25}, limit=-3)


def test_fused_hit_is_frozen():
    (hit, *_) = fuse_rankings({"bm25": BM25})
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.score = 1.0  # type: ignore[misc]


def test_fused_hit_is_hashable():
    twins = {FusedHit("a", 0.5, {"bm25": (1, 2.0)}), FusedHit("a", 0.5, {"bm25": (1, 2.0)})}
    assert len(twins) == 1


def _bm25_world(rng: random.Random, limit: int) -> tuple[dict[str, float], list, list]:
    """Every id's true BM25 score (0: no match), BM25's exact top `limit`, and a dense top
    `limit` with cosines (some ids in both, many in one only)."""
    ids = [f"d{n}" for n in range(rng.randint(limit, 4 * limit))]
    truth = {
        i: (rng.choice([0.0, rng.uniform(0.5, 30)]) if rng.random() < 0.9 else 0.0) for i in ids
    }
    bm25 = sorted(((i, s) for i, s in truth.items() if s > 0), key=lambda p: (-p[1], p[0]))
    dense = sorted(((i, rng.uniform(-0.2, 0.9)) for i in rng.sample(ids, min(limit, len(ids)))),
                   key=lambda p: (-p[1], p[0]))  # fmt: skip
    return truth, bm25[:limit], dense


@pytest.mark.parametrize("seed", range(300))
def test_scoring_only_what_may_reach_the_top_gives_the_same_hits(seed: int) -> None:
    """Fusing after BM25 scored only `worth_scoring`'s ids gives the first `keep` hits, with
    their scores, that fusing after it scored every dense candidate gives."""
    rng = random.Random(seed)
    limit, keep = rng.choice([(5, 3), (20, 10), (50, 10), (50, 30)])
    truth, bm25, dense = _bm25_world(rng, limit)
    weights = {"bm25": rng.uniform(0.05, 1), "dense": rng.uniform(0.05, 1)}
    listed = {i for i, _ in bm25}

    def cross(ids: list[str]) -> list[tuple[str, float]]:  # what the filtered search returns
        return sorted(((i, truth[i]) for i in ids if truth[i] > 0), key=lambda p: (-p[1], p[0]))

    everything = cross([i for i, _ in dense if i not in listed])
    need = worth_scoring({"bm25": bm25, "dense": dense}, "bm25", complete=len(bm25) < limit,
                         weights=weights, keep=keep, relative={"bm25"})  # fmt: skip
    assert set(need) <= {i for i, _ in dense} - listed

    def fused(extra: list[tuple[str, float]]) -> list[tuple[str, float]]:
        hits = fuse_rankings({"bm25": bm25 + extra, "dense": dense}, method="blend",
                             weights=weights, limit=keep, relative={"bm25"})  # fmt: skip
        return [(hit.id, hit.score) for hit in hits]

    assert fused(cross(need)) == fused(everything)


def test_worth_scoring_skips_what_cannot_reach_the_top() -> None:
    bm25 = [("a", 10.0), ("b", 9.0), ("c", 1.0)]  # its last score bounds every other id: 0.1
    dense = [("a", 0.9), ("b", 0.8), ("x", 0.85), ("y", 0.2)]
    rankings, weights = {"bm25": bm25, "dense": dense}, {"bm25": 1.0, "dense": 1.0}
    # a 1.9, b 1.7, then x at least 0.85: the third is at least 0.85, which y (at most
    # 0.2 + 0.1) cannot reach and x (at most 0.95) can.
    need = worth_scoring(rankings, "bm25", complete=False, weights=weights, keep=3,
                         relative={"bm25"})  # fmt: skip
    assert need == ["x"]
    assert worth_scoring(rankings, "bm25", complete=False, weights=weights, keep=2,
                         relative={"bm25"}) == []  # fmt: skip
    assert worth_scoring(rankings, "bm25", complete=True, weights=weights, keep=3,
                         relative={"bm25"}) == []  # fmt: skip


def _reference_document_evidence(hits, places, weight, per_document=2):
    """Document evidence in exact fractions: per document, its places' best scores, the mean of
    the `per_document` best (missing ones 0, below 0 counting 0); each hit's score times
    1 + weight × its document's evidence / the best document's."""
    where = {hit.id: places.get(hit.id, (hit.id, None)) for hit in hits}
    best = {}
    for hit in hits:
        best[where[hit.id]] = max(best.get(where[hit.id], Fraction(-(10**9))), Fraction(hit.score))
    evidence = {}
    for document in {document for document, _ in best}:
        top = sorted((s for (d, _), s in best.items() if d == document), reverse=True)
        evidence[document] = max(sum(top[:per_document], Fraction(0)) / per_document, 0)
    best = max(evidence.values(), default=Fraction(0))
    if best <= 0:
        return [(hit.id, hit.score) for hit in hits]
    scored = []
    for n, hit in enumerate(hits):
        score = Fraction(hit.score)
        if score > 0:  # a score below 0 stays as it is
            score *= 1 + Fraction(weight) * evidence[where[hit.id][0]] / best
        scored.append((hit.id, score, n))
    return [
        (doc_id, float(score)) for doc_id, score, _ in sorted(scored, key=lambda t: (-t[1], t[2]))
    ]


@pytest.mark.parametrize("seed", range(100))
def test_document_evidence_matches_reference_on_random_hits(seed):
    rng = random.Random(seed)
    hits = [
        FusedHit(f"c{i}", rng.choice([0.25, 0.5, rng.uniform(0, 1), rng.uniform(-0.3, 0.1)]))
        for i in range(rng.randint(0, 30))
    ]
    hits.sort(key=lambda hit: -hit.score)
    places = {
        hit.id: (f"doc{rng.randint(0, 4)}", rng.choice([1, 2, 3, ("Intro",), ("Intro", "Scope")]))
        for hit in hits
        if rng.random() < 0.9
    }
    weight, per_document = rng.choice([0.0, 0.1, 0.25, 1.0, 3.0]), rng.choice([1, 2, 3])
    got = with_document_evidence(hits, places, weight, per_document=per_document)
    expected = _reference_document_evidence(hits, places, weight, per_document)
    assert [hit.id for hit in got] == [doc_id for doc_id, _ in expected]
    assert [hit.score for hit in got] == pytest.approx([score for _, score in expected], abs=1e-9)


def test_a_document_matched_on_several_pages_outranks_one_matched_on_one():
    hits = [FusedHit("other-p4", 0.30), FusedHit("filing-p7", 0.28), FusedHit("filing-p9", 0.25)]
    places = {"other-p4": ("other", 4), "filing-p7": ("filing", 7), "filing-p9": ("filing", 9)}
    # evidence: filing (0.28 + 0.25) / 2 = 0.265, other 0.30 / 2 = 0.15
    assert [hit.id for hit in with_document_evidence(hits, places, 0.0)] == [
        "other-p4", "filing-p7", "filing-p9",
    ]  # fmt: skip
    ranked = with_document_evidence(hits, places, 0.25)
    assert [hit.id for hit in ranked] == ["filing-p7", "other-p4", "filing-p9"]
    assert ranked[0].score == pytest.approx(0.28 * 1.25)  # the best document's evidence
    assert ranked[1].score == pytest.approx(0.30 * (1 + 0.25 * 0.15 / 0.265))


def test_chunks_of_one_page_or_section_add_no_evidence():
    """A passage cut into two chunks is one place: it does not outrank a short one."""
    hits = [FusedHit("short", 0.30), FusedHit("long-1", 0.28), FusedHit("long-2", 0.27)]
    for place in (3, (), ("Results",)):
        places = {"short": ("a", place), "long-1": ("b", place), "long-2": ("b", place)}
        ranked = with_document_evidence(hits, places, 1.0)
        assert [hit.id for hit in ranked] == ["short", "long-1", "long-2"]


def test_where_each_document_is_one_place_the_order_stays():
    rng = random.Random(7)
    hits = sorted((FusedHit(f"d{i}", rng.random()) for i in range(50)), key=lambda h: -h.score)
    places = {hit.id: (hit.id, None) for hit in hits}
    for weight in (0.1, 0.25, 2.0):
        assert [h.id for h in with_document_evidence(hits, places, weight)] == [h.id for h in hits]


def test_document_evidence_keeps_each_hits_legs_and_adds_its_documents_standing():
    hits = [FusedHit("a", 0.5, {"bm25": (1, 7.0), "dense": (3, 0.6)}), FusedHit("b", 0.4)]
    a, b = with_document_evidence(hits, {"a": ("one", 1), "b": ("two", 1)}, 0.25)
    assert a.legs == {"bm25": (1, 7.0), "dense": (3, 0.6), "document": (1, 1.25)}
    assert b.legs["document"] == (2, pytest.approx(1 + 0.25 * 0.2 / 0.25))


def test_a_negative_document_weight_is_rejected():
    with pytest.raises(ValueError, match="0 or more"):
        with_document_evidence([FusedHit("a", 1.0)], {}, -0.1)


def test_a_documents_weak_hits_are_lifted_by_at_most_one_plus_the_weight():
    """Under the additive form (score + weight × evidence) the manual's contents page would
    pass the Wi-Fi note: every hit of the best document gained the same amount."""
    hits = [FusedHit("manual-p3", 0.56), FusedHit("wifi", 0.04), FusedHit("manual-p1", 0.019)]
    places = {"manual-p3": ("manual", 3), "wifi": ("wifi", ()), "manual-p1": ("manual", 1)}
    ranked = with_document_evidence(hits, places, 1.0)
    assert [hit.id for hit in ranked] == ["manual-p3", "wifi", "manual-p1"]
    assert ranked[2].score == pytest.approx(0.019 * 2)
