"""One contract for both keyword legs: Tantivy in a folder, and BM25 as sparse vectors in a
Qdrant collection (qdrant-client's local mode and a real server), which must also rank as
Tantivy does and share its points with the dense leg."""

import random
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from retrieval.dense_server import ClientDenseIndex
from retrieval.keyword import KeywordDoc, KeywordIndex
from retrieval.keyword_server import ServerKeywordIndex
from tests.qdrant_server import qdrant_installed

KeywordLeg = KeywordIndex | ServerKeywordIndex
needs_qdrant = pytest.mark.skipif(not qdrant_installed(), reason="no Qdrant server (make qdrant)")
KINDS = ["tantivy", "client", pytest.param("server", marks=needs_qdrant)]


def cid(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


DOCS = [
    KeywordDoc(cid(0), "Lighthouse keeping", "The keeper runs up the stairs to trim the wick."),
    KeywordDoc(cid(1), "Lighthouse keeping", "Brass fittings are polished every evening."),
    KeywordDoc(cid(2), "Beekeeping > Hives", "Bees store honey in wax combs over the summer."),
    KeywordDoc(cid(3), "Sailing", "A sloop carries one mast; a ketch carries two masts."),
]


@pytest.fixture
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], KeywordLeg]]:
    """Opens an empty keyword leg of the kind asked (a Qdrant one in a collection of its own
    with room for 4-dimension dense vectors); closed after the test."""
    opened: list[KeywordLeg] = []
    dense: list[ClientDenseIndex] = []

    def open_leg() -> KeywordLeg:
        leg: KeywordLeg
        if request.param == "tantivy":
            leg = KeywordIndex(tmp_path / "keyword")
        else:
            location = (
                str(tmp_path / "qdrant")
                if request.param == "client"
                else request.getfixturevalue("qdrant_node").url
            )
            dense.append(ClientDenseIndex.connect(location, f"kw-{tmp_path.name}", model="m",
                                                  dimension=4, keyword=True))  # fmt: skip
            leg = ServerKeywordIndex(dense[-1])
        opened.append(leg)
        return leg

    yield open_leg
    for leg in opened:
        leg.close()
    for index in dense:
        index.close()


@pytest.fixture
def index(opener: Callable[[], KeywordLeg]) -> KeywordLeg:
    leg = opener()
    leg.upsert(DOCS)
    leg.commit()
    return leg


def ids(hits: list[tuple[str, float]]) -> list[str]:
    return [chunk_id for chunk_id, _ in hits]


@pytest.mark.parametrize("opener", KINDS, indirect=True)
class TestContract:
    def test_finds_stems_titles_and_ranks_best_first(self, index: KeywordLeg) -> None:
        assert ids(index.search("honey combs")) == [cid(2)]
        assert ids(index.search("running"))[0] == cid(0)  # "runs" in the text
        assert ids(index.search("mast")) == [cid(3)]  # "mast" and "masts"
        assert ids(index.search("hives")) == [cid(2)]  # a title word
        hits = index.search("lighthouse keeper stairs")
        assert ids(hits) == [cid(0), cid(1)] and hits[0][1] > hits[1][1] > 0
        assert len(index.search("lighthouse", limit=1)) == 1

    def test_questions_lose_their_stopwords_and_odd_text_finds_nothing(
        self, index: KeywordLeg
    ) -> None:
        assert ids(index.search("what is it that the bees do with honey?"))[0] == cid(2)
        for text in ("the of and", "", "  ", '"(*:^~', "\x00\ud7ff"):
            assert index.search(text) == []

    def test_two_part_words_match_their_parts(self, index: KeywordLeg) -> None:
        index.upsert([KeywordDoc(cid(9), "Filings", "Revenue grew in FY2022 on iPhone12 sales.")])
        index.commit()
        assert ids(index.search("FY 2022"))[0] == cid(9)
        assert ids(index.search("iphone 12"))[0] == cid(9)

    def test_writes_show_after_commit_and_the_last_one_wins(self, index: KeywordLeg) -> None:
        index.upsert([KeywordDoc(cid(0), "Lighthouse keeping", "Fog horns sound in winter.")])
        index.delete([cid(2), cid(77)])  # an unknown id is ignored
        assert ids(index.search("honey")) == [cid(2)]  # not committed yet
        index.commit()
        assert index.search("honey") == [] and ids(index.search("fog horn")) == [cid(0)]
        assert index.search("wick") == []
        assert index.count() == 3 and index.chunk_ids() == {cid(0), cid(1), cid(3)}
        assert index.present([cid(0), cid(2), cid(3)]) == {cid(0), cid(3)}

    def test_only_ids_restricts_the_search(self, index: KeywordLeg) -> None:
        assert ids(index.search("lighthouse", only_ids=[cid(1), cid(3)])) == [cid(1)]
        assert index.search("lighthouse", only_ids=[]) == []

    def test_clear_removes_everything(self, index: KeywordLeg) -> None:
        index.upsert([KeywordDoc(cid(5), "Pending", "never committed")])
        index.clear()
        assert index.count() == 0 and index.search("lighthouse") == []
        index.upsert(DOCS[:1])
        index.commit()
        assert index.chunk_ids() == {cid(0)}

    def test_an_empty_index_finds_nothing(self, opener: Callable[[], KeywordLeg]) -> None:
        leg = opener()
        assert leg.search("anything") == [] and leg.count() == 0 and leg.chunk_ids() == set()


def zipf_corpus(count: int, seed: int = 7) -> list[KeywordDoc]:
    """Chunks of 20-160 words drawn from a Zipf-like vocabulary, under titles with a word of
    the body's common ones (common in bodies, rare in titles: each field needs its own IDF)."""
    rng = random.Random(seed)
    vocabulary = [f"w{n}x" for n in range(2000)]
    weights = [1 / (rank + 1) for rank in range(len(vocabulary))]
    return [
        KeywordDoc(
            cid(n),
            f"Report {n % 11} > Part {rng.choice(vocabulary[:300])}",
            " ".join(rng.choices(vocabulary, weights, k=rng.randint(20, 160))),
        )
        for n in range(count)
    ]


@pytest.mark.parametrize("opener", ["client", pytest.param("server", marks=needs_qdrant)],
                         indirect=True)  # fmt: skip
def test_the_qdrant_leg_ranks_as_tantivy_does(
    opener: Callable[[], KeywordLeg], tmp_path: Path
) -> None:
    docs = zipf_corpus(600)
    qdrant = opener()
    qdrant.upsert(docs)
    qdrant.commit()
    with KeywordIndex(tmp_path / "tantivy") as tantivy:
        tantivy.upsert(docs)
        tantivy.commit()
        rng = random.Random(3)
        overlap, ratios = [], []
        for _ in range(40):
            words = rng.sample(docs, 1)[0].body.split()
            query = " ".join(rng.sample(words, 3))
            mine, theirs = qdrant.search(query, 10), tantivy.search(query, 10)
            overlap.append(len(set(ids(mine)) & set(ids(theirs))) / len(theirs))
            ratios.append(mine[0][1] / theirs[0][1])
    # Written in one batch, the average lengths are the whole corpus's, as Tantivy's are: the
    # same scores, and the same hits but for the order of tied ones.
    assert np.mean(overlap) >= 0.95, overlap
    assert np.allclose(ratios, 1, atol=1e-4), ratios


@pytest.mark.parametrize("opener", ["client", pytest.param("server", marks=needs_qdrant)],
                         indirect=True)  # fmt: skip
def test_both_legs_share_the_points_of_one_collection(opener: Callable[[], KeywordLeg]) -> None:
    keyword = opener()
    assert isinstance(keyword, ServerKeywordIndex)
    dense = keyword._dense
    vectors = np.eye(4, dtype=np.float32)[:3]
    keyword.upsert([KeywordDoc(cid(3), "Tides", "High water at noon.")])  # before its vector
    keyword.commit()
    assert dense.count() == 0 and keyword.count() == 1  # a point of the keyword leg alone
    dense.upsert([cid(0), cid(1), cid(3)], vectors)  # replaces cid(3)'s point
    keyword.upsert(DOCS[:2] + [KeywordDoc(cid(3), "Tides", "High water at noon.")])
    keyword.commit()
    assert dense.count() == keyword.count() == 3
    assert ids(dense.search(vectors[0], 1)) == [cid(0)] and ids(keyword.search("noon")) == [cid(3)]
    keyword.delete([cid(0)])  # a chunk deleted from one leg leaves both
    keyword.commit()
    assert dense.ids() == keyword.chunk_ids() == {cid(1), cid(3)}
