import pytest

from generation.citations import Citations, parse_citations


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        ("Fees are 2 euros a day [1].", [1]),
        ("Fees are 2 euros [1, 2].", [1, 2]),
        ("Fees are 2 euros [1][2].", [1, 2]),
        ("Loans last 3 weeks [2] and renew twice [1].", [2, 1]),
        ("See [1-3].", [1, 2, 3]),
        ("See [2–4].", [2, 3, 4]),
        ("See [3-1].", [1, 2, 3]),
        ("As [Source 2] says.", [2]),
        ("As [Sources 1 and 3] say.", [1, 3]),
        ("As [source 2; source 4] say.", [2, 4]),
        ("Footnote style[^2].", [2]),
        ("Full-width brackets【3】.", [3]),
        ("Repeated [1] and again [1][1, 2].", [1, 2]),
        ("Spaces inside [ 2 , 3 ].", [2, 3]),
    ],
)
def test_cited_numbers_in_order_of_first_appearance(answer, cited):
    assert parse_citations(answer, source_count=5) == Citations(cited=cited, unknown=[])


@pytest.mark.parametrize(
    "answer",
    [
        "The law of 2023 changed it.",
        "Since [2023] the fee is higher.",
        "Options [a] and [b].",
        "Section [1.2] applies.",
        "A checkbox [x] and a link [here](https://example.org/1).",
        "Empty [] and [ ].",
        "Prose in brackets [see page 3].",
        "No citations at all.",
    ],
)
def test_things_that_are_not_citations(answer):
    assert parse_citations(answer, source_count=5) == Citations(cited=[], unknown=[])


def test_numbers_matching_no_source_are_flagged():
    answer = "Fees [2] rise [7], see [0] and [3-6]."
    assert parse_citations(answer, source_count=4) == Citations(
        cited=[2, 3, 4], unknown=[7, 0, 5, 6]
    )


def test_an_unbelievable_range_keeps_only_its_ends():
    assert parse_citations("[1-999]", source_count=3) == Citations(cited=[1], unknown=[999])


def test_no_sources_makes_every_citation_unknown():
    assert parse_citations("Yes [1].", source_count=0) == Citations(cited=[], unknown=[1])
