"""The Tantivy keyword index: upserts, deletes, persistence and forgiving BM25 queries."""

import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retrieval.errors import RetrievalError
from retrieval.keyword import KeywordDoc, KeywordIndex, query_terms, split_joined

DOCS = [
    KeywordDoc("lamp-1", "Lighthouse keeping", "The keeper runs up the stairs to trim the wick."),
    KeywordDoc("lamp-2", "Lighthouse keeping", "Brass fittings are polished every evening."),
    KeywordDoc("bees-1", "Beekeeping > Hives", "Bees store honey in wax combs over the summer."),
    KeywordDoc("sail-1", "Sailing", "A sloop carries one mast; a ketch carries two masts."),
]


@pytest.fixture
def index(tmp_path: Path) -> Iterator[KeywordIndex]:
    with KeywordIndex(tmp_path / "keyword") as idx:
        idx.upsert(DOCS)
        idx.commit()
        yield idx


def ids(hits: list[tuple[str, float]]) -> list[str]:
    return [chunk_id for chunk_id, _ in hits]


def test_search_finds_the_matching_chunk_first(index: KeywordIndex) -> None:
    hits = index.search("honey combs")
    assert ids(hits) == ["bees-1"]
    assert hits[0][1] > 0


def test_stemming_matches_other_word_forms(index: KeywordIndex) -> None:
    assert ids(index.search("running"))[0] == "lamp-1"  # "runs" in the text
    assert ids(index.search("mast")) == ["sail-1"]  # "mast" and "masts"


def test_results_are_ordered_best_first(index: KeywordIndex) -> None:
    hits = index.search("lighthouse keeper stairs")
    assert ids(hits) == ["lamp-1", "lamp-2"]
    assert hits[0][1] > hits[1][1]


def test_title_words_match(index: KeywordIndex) -> None:
    assert ids(index.search("beekeeping")) == ["bees-1"]
    assert ids(index.search("hives")) == ["bees-1"]


def test_limit_caps_results(index: KeywordIndex) -> None:
    assert len(index.search("lighthouse", limit=1)) == 1
    assert index.search("lighthouse", limit=0) == []


def test_natural_language_question_ignores_stopwords(index: KeywordIndex) -> None:
    # Without stopword removal "the", "are", "in" ... would match every document.
    question = "What are the bees doing in the summer with all of their honey?"
    assert ids(index.search(question)) == ["bees-1"]


def test_query_terms_are_stemmed_without_stopwords() -> None:
    assert query_terms("What is the Keeper RUNNING to?") == ["keeper", "run"]
    assert query_terms("don't stop") == ["stop"]


def test_stopword_only_query_returns_nothing(index: KeywordIndex) -> None:
    assert index.search("the and of it is to") == []


@pytest.mark.parametrize(
    "text",
    ["C++ (unclosed", '"unterminated', "AND", "(((", "", "   ", "title:", "-", "*", "wick~2^"],
)
def test_odd_query_text_never_raises(index: KeywordIndex, text: str) -> None:
    hits = index.search(text)
    assert all(chunk_id in {d.chunk_id for d in DOCS} for chunk_id in ids(hits))


def test_query_syntax_characters_are_treated_as_words(index: KeywordIndex) -> None:
    assert ids(index.search('(("wick" AND')) == ["lamp-1"]
    assert ids(index.search("body:ketch")) == ["sail-1"]


def test_upsert_twice_keeps_one_document(index: KeywordIndex) -> None:
    index.upsert(DOCS)
    index.commit()
    assert index.count() == len(DOCS)
    assert ids(index.search("honey")) == ["bees-1"]


def test_upsert_replaces_text_of_an_existing_id(index: KeywordIndex) -> None:
    index.upsert([KeywordDoc("bees-1", "Beekeeping", "Smoke calms the colony.")])
    index.commit()
    assert index.search("honey") == []
    assert ids(index.search("smoke colony")) == ["bees-1"]
    assert index.count() == len(DOCS)


def test_last_of_repeated_ids_in_one_batch_wins(tmp_path: Path) -> None:
    with KeywordIndex(tmp_path / "kw") as idx:
        idx.upsert([KeywordDoc("a", "", "first version"), KeywordDoc("a", "", "second version")])
        idx.commit()
        assert idx.count() == 1
        assert idx.search("first") == []
        assert ids(idx.search("second")) == ["a"]


def test_delete_removes_documents(index: KeywordIndex) -> None:
    index.delete(["bees-1", "no-such-id"])
    index.commit()
    assert index.search("honey") == []
    assert index.count() == len(DOCS) - 1


def test_changes_are_invisible_until_commit(index: KeywordIndex) -> None:
    index.upsert([KeywordDoc("new-1", "", "Foghorns sound in thick weather.")])
    index.delete(["sail-1"])
    assert index.search("foghorn") == []
    assert ids(index.search("ketch")) == ["sail-1"]
    index.commit()
    assert ids(index.search("foghorn")) == ["new-1"]
    assert index.search("ketch") == []


def test_chunk_ids_follow_changes(index: KeywordIndex) -> None:
    assert index.chunk_ids() == {"lamp-1", "lamp-2", "bees-1", "sail-1"}
    index.delete(["lamp-2"])
    index.upsert([KeywordDoc("sail-2", "Sailing", "Reefing the mainsail."), DOCS[0]])
    index.commit()
    assert index.chunk_ids() == {"lamp-1", "bees-1", "sail-1", "sail-2"}
    assert index.count() == 4


def test_clear_removes_committed_and_pending_documents(index: KeywordIndex) -> None:
    index.upsert([KeywordDoc("pending", "", "Uncommitted foghorn text.")])
    index.clear()
    assert index.count() == 0
    assert index.chunk_ids() == set()
    assert index.search("foghorn honey") == []
    index.upsert([DOCS[2]])
    index.commit()
    assert index.chunk_ids() == {"bees-1"}


def test_reopen_from_disk_keeps_documents(tmp_path: Path) -> None:
    path = tmp_path / "keyword"
    with KeywordIndex(path) as idx:
        idx.upsert(DOCS)
        idx.commit()
    with KeywordIndex(path) as reopened:
        assert reopened.count() == len(DOCS)
        assert ids(reopened.search("honey")) == ["bees-1"]
        reopened.delete(["bees-1"])  # the first writer's lock was released by close()
        reopened.commit()
        assert reopened.count() == len(DOCS) - 1


def test_close_discards_uncommitted_changes(tmp_path: Path) -> None:
    path = tmp_path / "keyword"
    with KeywordIndex(path) as idx:
        idx.upsert(DOCS[:1])
        idx.commit()
        idx.upsert(DOCS[1:])
    with KeywordIndex(path) as reopened:
        assert reopened.chunk_ids() == {"lamp-1"}


def test_second_writer_gets_a_clear_error(index: KeywordIndex) -> None:
    other = KeywordIndex(index.path, writer_wait_s=0.3)
    assert ids(other.search("honey")) == ["bees-1"]  # reading needs no lock
    with pytest.raises(RetrievalError, match="being written by another Archivist process"):
        other.upsert(DOCS[:1])


def test_a_folder_gone_from_under_the_index_is_not_taken_for_another_writer(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kw"
    index = KeywordIndex(path, writer_wait_s=30)
    shutil.rmtree(path)
    # Taken for another writer, it would wait the 30 s and raise IndexBusy ("being written by
    # another Archivist process"), which this message does not match; no clock is read, so a
    # loaded machine cannot fail it.
    with pytest.raises(RetrievalError, match="cannot be written .* run `archivist reindex`"):
        index.upsert(DOCS[:1])


def test_second_writer_waits_for_the_first_to_finish(index: KeywordIndex) -> None:
    other = KeywordIndex(index.path, writer_wait_s=30)
    index.upsert(DOCS[:1])  # holds the writer
    threading.Timer(0.5, index.close).start()
    other.upsert(DOCS[1:2])
    other.commit()
    other.close()
    assert DOCS[1].chunk_id in KeywordIndex(index.path).chunk_ids()


def test_search_on_an_empty_index_returns_nothing(tmp_path: Path) -> None:
    with KeywordIndex(tmp_path / "empty") as idx:
        assert idx.search("anything") == []
        assert idx.count() == 0
        assert idx.chunk_ids() == set()


def test_search_can_be_restricted_to_some_chunks(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "kw")
    index.upsert([KeywordDoc(f"c{n}", "", f"lighthouse lens number {n}") for n in range(5)])
    index.commit()
    unrestricted = index.search("lighthouse lens", 10)
    restricted = index.search("lighthouse lens", 10, only_ids={"c1", "c3"})
    assert {cid for cid, _ in restricted} == {"c1", "c3"}
    assert dict(restricted) == {cid: s for cid, s in unrestricted if cid in {"c1", "c3"}}
    assert index.search("lighthouse", 10, only_ids=set()) == []
    many = {"c1", "c3"} | {f"absent{n}" for n in range(5000)}  # past one term query per id
    assert dict(index.search("lighthouse lens", 10, only_ids=many)) == dict(restricted)
    assert index.present(many) == {"c1", "c3"}
    assert index.present(["c0", "c4", "nope"]) == {"c0", "c4"}
    index.close()


def test_letters_and_digits_written_together_match_them_written_apart(tmp_path: Path) -> None:
    with KeywordIndex(tmp_path / "kw") as index:
        index.upsert(
            [
                KeywordDoc("revenue", "Annual report", "Revenue in fiscal 2022 rose by a tenth."),
                KeywordDoc("phone", "Reviews", "The iPhone 12 battery lasts a full day."),
                KeywordDoc("cases", "Health", "COVID19 cases fell in the spring."),
                KeywordDoc("tape", "3M", "Masking tape from 3M and an mp3 player."),
            ]
        )
        index.commit()
        assert ids(index.search("FY2022 revenue"))[0] == "revenue"
        assert ids(index.search("iPhone12")) == ["phone"]
        assert ids(index.search("covid 19")) == ["cases"]
        assert ids(index.search("3M tape")) == ["tape"]
    # a single letter or digit, or more than two parts, is a name or a code: kept whole
    assert query_terms("FY2022 3M mp3 H100 2021Q1 tok160x") == [
        "fy", "2022", "3m", "mp3", "h100", "2021q1", "tok160x"
    ]  # fmt: skip


def test_an_index_whose_terms_were_made_another_way_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "kw"
    with KeywordIndex(path) as index:
        index.upsert(DOCS)
        index.commit()
    (path / "archivist-analysis").unlink()  # as an index built before the analysis was recorded
    with pytest.raises(RetrievalError, match="split text into words differently"):
        KeywordIndex(path)


def _split_by_words(text: str) -> str:
    """What `split_joined` does, word by word over every text (no shortcut)."""

    def word(match: re.Match[str]) -> str:
        letters_first = re.sub(r"^([A-Za-z]{2,})([0-9]{2,})$", r"\1 \2", match.group())
        return re.sub(r"^([0-9]{2,})([A-Za-z]{2,})$", r"\1 \2", letters_first)

    return re.sub(r"[A-Za-z0-9]+", word, text)


@given(
    st.lists(
        st.sampled_from(
            ["FY", "k", "2022", "7", "x", " ", "_", "-", "é", "中", "\u2019", "\ud800"]
        ),
        max_size=12,
    ).map("".join)
)
def test_split_joined_is_the_word_by_word_rule(text: str) -> None:
    assert split_joined(text) == _split_by_words(text)


def test_a_commit_cut_short_does_not_block_the_next_one(tmp_path: Path) -> None:
    """A process killed mid-commit can leave the commit's delete file written (and listed in
    Tantivy's managed files) but meta.json not yet replaced. The next process, repeating the
    same changes, reaches the same operation number: its commit must not fail on the file
    (it did, "FileAlreadyExists", in the kill -9 test's recovery now and then)."""
    path, crashed = tmp_path / "index", tmp_path / "crashed"
    with KeywordIndex(path) as index:
        index.upsert([KeywordDoc(f"c{i}", "", f"lighthouse lens {i}") for i in range(20)])
        index.commit()
    shutil.copytree(path, crashed)
    changes = [KeywordDoc(f"c{i}", "", f"lantern room {i}") for i in range(5)]
    with KeywordIndex(path) as index:
        index.upsert(changes)
        index.commit()
    # The state a kill between writing the delete file and replacing meta.json leaves.
    left = [p for p in path.glob("*.del") if not (crashed / p.name).exists()]
    assert left  # the commit wrote one: the copy below is what a crash leaves
    for leftover in left:
        shutil.copy(leftover, crashed / leftover.name)
    shutil.copy(path / ".managed.json", crashed / ".managed.json")
    with KeywordIndex(crashed) as index:
        index.upsert(changes)
        index.commit()
        assert len(index.search("lantern", 10)) == 5
        assert len(index.search("lens", 30)) == 15


def test_a_commit_that_cannot_be_written_says_what_to_do(tmp_path: Path) -> None:
    index = KeywordIndex(tmp_path / "index")
    index.upsert([KeywordDoc("a", "", "lighthouse lens")])
    (tmp_path / "index").rename(tmp_path / "moved")  # its folder gone from under it
    with pytest.raises(RetrievalError, match="could not be saved.*archivist reindex"):
        index.commit()
