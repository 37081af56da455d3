"""Search over a small generated corpus: each mode, filters, odd queries, citations."""

from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from api.service import Archivist, Filters, SearchHit, Settings, search_passages
from retrieval.errors import ModelNotFound
from retrieval.fusion import FusedHit, focus_weights, fuse_rankings, with_document_evidence
from tests.fixtures import make_pdf, make_with_pandoc

GARDEN = """# Allotment Rules

## Watering

Tomatoes are watered every morning before eight o'clock; hoses are banned at midday.

## Compost

Kitchen scraps go in the green bins; woody prunings go to the shredder on Fridays.
"""
FERRY = (
    "<h1>Ferry Timetable</h1><h2>Winter</h2><p>The last boat to Gull Island leaves at 17:40.</p>"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archivist]:
    root = tmp_path_factory.mktemp("search")
    docs = root / "docs"
    docs.mkdir()
    make_with_pandoc(docs / "allotment.docx", GARDEN)
    (docs / "ferry.html").write_text(f"<html><body>{FERRY}</body></html>")
    make_pdf(
        docs / "boiler.pdf",
        ["Boiler manual. Contents.", "The boiler pressure must stay between 1.0 and 1.5 bar.",
         "Call the installer, Kettleworth Heating, if the red lamp flashes."],
    )  # fmt: skip
    (docs / "notes").mkdir()
    (docs / "notes" / "wifi.md").write_text(
        "# Wi-Fi\n\nThe router password is on a card by the TV.\n"
    )
    with Archivist(Settings(data=root / "data", llm="none")) as service:
        service.ingest([docs])
        yield service


def find(corpus: Archivist, query: str, **options: object) -> list[SearchHit]:
    options.setdefault("k", 10)
    return search_passages(corpus.store, corpus.indexes, corpus.settings, query, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_every_mode_finds_the_right_document(corpus, mode: str) -> None:  # type: ignore[no-untyped-def]
    hits = find(corpus, "when is the last ferry boat to Gull Island", mode=mode, k=3)
    assert Path(hits[0].path).name == "ferry.html"


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_undecodable_bytes_in_a_query_are_searched_past(corpus, mode: str) -> None:  # type: ignore[no-untyped-def]
    """A command line's undecodable bytes reach Python as lone surrogates, which the
    tokenizers cannot take: they are searched as U+FFFD, the rest of the query as usual."""
    hits = corpus.search("last ferry to Gull Island \udcff", k=3, mode=mode)
    assert Path(hits[0].path).name == "ferry.html"


def test_dense_finds_a_paraphrase_without_shared_words(corpus) -> None:  # type: ignore[no-untyped-def]
    hits = find(corpus, "irrigating vegetables in the early day", mode="dense", k=2)
    assert hits[0].section == ("Allotment Rules", "Watering")


def test_bm25_finds_a_rare_exact_name(corpus) -> None:  # type: ignore[no-untyped-def]
    hits = find(corpus, "Kettleworth", mode="bm25", k=3)
    assert [(Path(h.path).name, h.page_start) for h in hits] == [("boiler.pdf", 3)]


def test_pdf_hits_cite_their_page_and_snippets_show_the_match(corpus) -> None:  # type: ignore[no-untyped-def]
    hit = find(corpus, "boiler pressure in bar", k=1)[0]
    assert (Path(hit.path).name, hit.page_start, hit.page_end) == ("boiler.pdf", 2, 2)
    assert "pressure must stay between 1.0 and 1.5 bar" in hit.snippet


def test_hybrid_reports_each_legs_rank(corpus) -> None:  # type: ignore[no-untyped-def]
    hit = find(corpus, "green bins for kitchen scraps compost", k=1)[0]
    assert hit.section == ("Allotment Rules", "Compost")
    assert set(hit.legs) == {"bm25", "dense", "document"} and hit.legs["bm25"][0] == 1


def test_hybrid_weighs_each_hit_by_its_documents_best_pages_or_sections(corpus) -> None:  # type: ignore[no-untyped-def]
    """The fused hits go through `with_document_evidence`, with a PDF's pages and the other
    documents' sections as the places where a document matched."""
    query = "who do I call when the red lamp flashes"
    plain = corpus.settings.model_copy(update={"document_weight": 0.0})
    weighed = corpus.settings.model_copy(update={"document_weight": 1.0})
    fused = search_passages(corpus.store, corpus.indexes, plain, query, k=10)  # evidence's depth
    hits = search_passages(corpus.store, corpus.indexes, weighed, query, k=6)
    places = {
        h.chunk_id: (h.path, h.section if h.page_start is None else h.page_start) for h in fused
    }
    expected = with_document_evidence([FusedHit(h.chunk_id, h.score) for h in fused], places, 1.0)
    assert [h.chunk_id for h in hits] == [h.id for h in expected[:6]]
    assert [h.score for h in hits] == pytest.approx([h.score for h in expected[:6]])
    # The manual's other pages come up behind its lamp page: the weight changed the order.
    assert [h.chunk_id for h in hits] != [h.chunk_id for h in fused[:6]]
    assert [(Path(h.path).name, h.page_start) for h in hits[:2]] == [
        ("boiler.pdf", 3),
        ("boiler.pdf", 1),
    ]


def test_score_fusion_weighs_down_a_leg_whose_first_hits_scatter(corpus) -> None:  # type: ignore[no-untyped-def]
    """Min-max fusion takes the focus rule too: each leg's weight is divided by the number of
    documents among its first `focus_depth` hits."""
    query = "what is on the card by the TV"
    score = corpus.settings.model_copy(update={"fusion": "score", "document_weight": 0.0})
    legs = {
        mode: [(h.chunk_id, h.legs[mode][1]) for h in find(corpus, query, mode=mode, k=50,
                                                            one_per_page=False)]
        for mode in ("bm25", "dense")
    }  # fmt: skip
    documents = {
        c.id: c.sha256 for c in corpus.store.chunks([i for r in legs.values() for i, _ in r])
    }
    weights = focus_weights(legs, documents, {"bm25": 1.0, "dense": 1.0}, depth=score.focus_depth)
    hits = search_passages(corpus.store, corpus.indexes, score, query, k=10, one_per_page=False)
    expected = fuse_rankings(legs, method="score", weights=weights, limit=10)
    assert weights["bm25"] != weights["dense"]  # the legs' first hits differ in how they scatter
    assert [h.chunk_id for h in hits] == [h.id for h in expected]
    assert [h.score for h in hits] == pytest.approx([h.score for h in expected])
    plain = fuse_rankings(legs, method="score", limit=10)
    assert [h.score for h in plain] != pytest.approx([h.score for h in expected])


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(file_type="pdf"), {"boiler.pdf"}),
        (Filters(path_glob="*/notes/*"), {"wifi.md"}),
        (Filters(file_type="md"), {"wifi.md"}),
    ],
)
def test_filters_restrict_results(corpus, filters: Filters, expected: set[str]) -> None:  # type: ignore[no-untyped-def]
    for mode in ("hybrid", "bm25", "dense"):
        hits = find(corpus, "password pressure boat tomatoes", mode=mode, k=10, filters=filters)
        assert {Path(h.path).name for h in hits} == expected, mode


def test_filter_by_document_id(corpus) -> None:  # type: ignore[no-untyped-def]
    ferry = next(d for d in corpus.store.documents() if d.path.endswith("ferry.html"))
    hits = find(corpus, "tomatoes boat", k=10, filters=Filters(document=ferry.id))
    assert {Path(h.path).name for h in hits} == {"ferry.html"}


@pytest.mark.parametrize(
    "query", ["C++ (unclosed", '"unterminated', "AND", "(((", "", "the of and"]
)
def test_odd_query_text_never_errors(corpus, query: str) -> None:  # type: ignore[no-untyped-def]
    for mode in ("hybrid", "bm25"):
        hits = find(corpus, query, mode=mode, k=5)
        assert len(hits) <= 5


class WordOverlapReranker:
    """A reranker that scores passages by how many query words they contain."""

    def score(self, query: str, passages: list[str]) -> list[float]:
        words = set(query.lower().split())
        return [float(len(words & set(p.lower().split()))) for p in passages]


def test_a_reranker_reorders_the_candidates(corpus) -> None:  # type: ignore[no-untyped-def]
    query = "the router password card"
    reranked = find(corpus, query, k=4, reranker=WordOverlapReranker())
    assert Path(reranked[0].path).name == "wifi.md"
    assert reranked[0].legs["rerank"] == (1, 4.0)
    scores = [hit.score for hit in reranked]
    assert scores == sorted(scores, reverse=True)
    read = find(corpus, query, k=corpus.settings.rerank_candidates)
    assert {h.chunk_id for h in reranked} <= {h.chunk_id for h in read}


@pytest.mark.parametrize("mode", ["bm25", "dense"])
def test_chunks_are_found_by_their_documents_title_and_file_name(tmp_path: Path, mode: str) -> None:
    """Two filings whose pages never name their company: only the title (PDF metadata) or
    the file name tells them apart; results still show the page's own text."""
    docs = tmp_path / "docs"
    docs.mkdir()
    page = "Net revenue grew {} percent, driven by volume; operating margin was {} percent."
    make_pdf(docs / "annual.pdf", [page.format(12, 18)], title="Zephyr Holdings Annual Report")
    make_pdf(docs / "BRAMBLE_FOODS_2023_10K.pdf", [page.format(3, 9)])
    with Archivist(Settings(data=tmp_path / "data", llm="none")) as service:
        service.ingest([docs])
        for query, expected in [
            ("How much did Zephyr Holdings' net revenue grow?", "annual.pdf"),
            ("How much did Bramble Foods' net revenue grow?", "BRAMBLE_FOODS_2023_10K.pdf"),
        ]:
            hits = search_passages(
                service.store, service.indexes, service.settings, query, mode=mode
            )
            assert [Path(h.path).name for h in hits][0] == expected
            assert "Zephyr" not in hits[0].text and "BRAMBLE" not in hits[0].text
            assert hits[0].text.startswith("Net revenue grew")


def test_a_searchs_first_ten_hits_are_the_same_whatever_k(tmp_path: Path) -> None:
    """Document evidence re-orders only the first 10 fused hits: asking for 40 does not change
    them. (Weighed among all 40, the second guide's weaker pages, found only then, raised
    its evidence and so its first page's score.)"""
    docs = tmp_path / "docs"
    docs.mkdir()
    ferry = "{} harbour: the ferry to the island leaves at {}:15 when the tide allows."
    make_pdf(docs / "ashford.pdf", [ferry.format("Ashford", 6 + n) for n in range(9)])
    make_pdf(
        docs / "brindle.pdf",
        [ferry.format("Brindle", 7)]
        + [f"Brindle harbour café, page {n}: tea and cake near the pontoons." for n in range(7)],
    )
    with Archivist(Settings(data=tmp_path / "data", llm="none")) as service:
        service.ingest([docs])
        query = "when does the ferry to the island leave the harbour"
        few = search_passages(service.store, service.indexes, service.settings, query, k=10)
        many = search_passages(service.store, service.indexes, service.settings, query, k=40)
    assert len(many) == 17 and "brindle.pdf" in {Path(h.path).name for h in few}
    assert [(h.chunk_id, h.score) for h in many[:10]] == [(h.chunk_id, h.score) for h in few]
    assert all("document" not in h.legs for h in many[10:])
    assert [h.score for h in many] == sorted((h.score for h in many), reverse=True)


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_a_page_is_one_hit_and_a_document_without_pages_keeps_each_chunk(
    tmp_path: Path, mode: str
) -> None:
    """A long page's chunks all match, yet the page is one hit (its best chunk) and the
    pages after it get the room; the chunks of a document without pages stay hits each."""
    docs = tmp_path / "docs"
    docs.mkdir()
    sailing = "The ferry to Gull Island sails at {}:15 from the north pier, tide permitting. "
    long_page = "".join(sailing.format(6 + n % 12) for n in range(60))  # several chunks
    make_pdf(docs / "timetable.pdf", [long_page, sailing.format(7), sailing.format(8)])
    (docs / "notes.md").write_text(
        "# Ferry notes\n\n" + "\n\n".join(sailing.format(9 + n % 9) * 4 for n in range(8))
    )
    with Archivist(Settings(data=tmp_path / "data", llm="none")) as service:
        service.ingest([docs])
        pdf = service.store.chunks(service.store.chunk_ids_where(file_type="pdf"))
        notes = service.store.chunk_ids_where(file_type="md")
        hits = search_passages(
            service.store, service.indexes, service.settings,
            "when does the ferry to Gull Island sail", k=20, mode=mode,  # type: ignore[arg-type]
        )  # fmt: skip
    assert [c.page_start for c in pdf].count(1) >= 3 and len(notes) >= 2
    assert len(pdf) + len(notes) <= 20  # each chunk could be a hit
    assert sorted(h.page_start for h in hits if Path(h.path).name == "timetable.pdf") == [1, 2, 3]
    assert sorted(h.chunk_id for h in hits if Path(h.path).name == "notes.md") == sorted(notes)


@pytest.mark.parametrize("mode", ["hybrid", "bm25", "dense"])
def test_a_passage_a_document_repeats_is_read_once(tmp_path: Path, mode: str) -> None:
    """The Chapter 13 trustees' handbook (../shared/corpus/mixed/handbook-872p.docx) holds its
    text three times over: the three passages read for a question were one passage three
    times. A text repeated in a document is one passage, and the next gets the room; the same
    text in another file is a passage of its own (a filing repeats last year's sentences, and
    which filing says them is the answer). A search's places keep each repeat: another
    section or page is another place."""
    docs = tmp_path / "docs"
    docs.mkdir()
    removal = "The clearest case for removal of a standing trustee is fraud or embezzlement."
    parts = "".join(f"# Part {n}\n\n## Removal\n\n{removal}\n\n" for n in "ABC")
    (docs / "handbook.md").write_text(
        f"{parts}# Remedies\n\nA standing trustee may also be removed for misconduct.\n"
    )
    (docs / "copy.md").write_text(f"# Removal\n\n{removal}\n")
    question = "What is the clearest case for removing a standing trustee?"
    with Archivist(Settings(data=tmp_path / "data", llm="none")) as service:
        service.ingest([docs])
        stored = service.store.chunks(service.store.chunk_ids_where())
        repeated = [chunk.text for chunk in stored if removal in chunk.text]
        assert len(repeated) == 4 and len(set(repeated)) == 1  # one text, stored four times
        search = partial(search_passages, service.store, service.indexes, service.settings,
                         question, k=10, mode=mode)  # fmt: skip
        passages, places = search(one_per_page=False), search(one_per_page=True)

    def holding_it(hits: list[SearchHit]) -> list[str]:
        return sorted(Path(hit.path).name for hit in hits if hit.text == repeated[0])

    assert holding_it(passages) == ["copy.md", "handbook.md"]
    assert len(passages) == len(places) - 2  # each repeat's room goes to the next passage
    assert holding_it(places) == ["copy.md", "handbook.md", "handbook.md", "handbook.md"]


def _cross_encoder(folder: Path) -> Path:
    """A real (small, untrained) sentence-transformers cross-encoder, saved as a user's would
    be: BERT with one relevance output, on the packaged model's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from retrieval.embedder import DEFAULT_MODEL, resolve_model_path

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(DEFAULT_MODEL))
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, num_labels=1)  # fmt: skip
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_a_cross_encoder_folder_reranks_the_services_searches(tmp_path: Path) -> None:
    """ARCHIVIST_RERANK_MODEL names a local folder: the service's searches are ordered by that
    model's score of (query, chunk text) over the first `rerank_candidates` fused hits."""
    from sentence_transformers import CrossEncoder

    model = _cross_encoder(tmp_path / "cross-encoder")
    (tmp_path / "docs").mkdir()
    make_pdf(
        tmp_path / "docs" / "boiler.pdf", [f"Boiler page {n}: pressure {n} bar." for n in range(8)]
    )
    query = "what pressure should the boiler stay at"
    settings = Settings(data=tmp_path / "data", llm="none", rerank_model=str(model))
    with Archivist(settings) as service:
        service.ingest([tmp_path / "docs"])
        hits = service.search(query, k=5)
        read = search_passages(
            service.store, service.indexes, settings, query, k=settings.rerank_candidates
        )
    expected = CrossEncoder(str(model)).predict([(query, hit.text) for hit in hits])
    assert [hit.score for hit in hits] == pytest.approx([float(s) for s in expected], abs=1e-5)
    assert [hit.legs["rerank"][0] for hit in hits] == [1, 2, 3, 4, 5]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert {hit.chunk_id for hit in hits} <= {hit.chunk_id for hit in read}
    assert [h.chunk_id for h in hits] != [h.chunk_id for h in read[:5]]  # the order did change


def test_a_missing_cross_encoder_folder_says_what_to_give(tmp_path: Path) -> None:
    settings = Settings(data=tmp_path / "data", llm="none", rerank_model=str(tmp_path / "nowhere"))
    with Archivist(settings) as service, pytest.raises(ModelNotFound, match="local folder"):
        service.search("boiler pressure", k=3)


def test_an_embedding_model_given_as_the_reranker_is_refused(tmp_path: Path) -> None:
    """The packaged embedding model has no relevance head: as a reranker it would order hits
    at random, so it is refused with the reason."""
    settings = Settings(data=tmp_path / "data", llm="none", rerank_model="all-MiniLM-L6-v2")
    with Archivist(settings) as service, pytest.raises(Exception, match="not a cross-encoder"):
        service.search("boiler pressure", k=3)
