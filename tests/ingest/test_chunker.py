"""Chunks are sized in the embedding model's tokens and respect document structure."""

from tokenizers import Tokenizer

from ingest.chunker import PAGE_OPENING_WORDS, ChunkOptions, TokenCounter, split_blocks
from ingest.document import Block
from retrieval.embedder import tokenizer_file

OPTIONS = ChunkOptions(target=60, cap=80, overlap=12)
SENTENCE = "The keeper trims the wick, polishes the brass and logs the weather every evening."


def real_token_counts(texts: list[str]) -> list[int]:
    tokenizer = Tokenizer.from_file(str(tokenizer_file("all-MiniLM-L6-v2")))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return [len(e.ids) for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def test_counts_match_the_model_tokenizer(counter: TokenCounter) -> None:
    texts = [SENTENCE, "Übergrößenträger (x²) cost $1,234.56—really?", "naïve café, C++ & O'Neil"]
    assert counter.count(texts) == real_token_counts(texts)


def test_no_chunk_exceeds_the_cap_even_for_one_endless_sentence(counter: TokenCounter) -> None:
    endless = " ".join(f"word{n} and" for n in range(2000))  # no sentence end at all
    blocks = [Block(SENTENCE * 20), Block(endless), Block("Short tail.")]
    chunks = split_blocks(blocks, counter, OPTIONS)
    counts = real_token_counts([c.text for c in chunks])
    assert max(counts) <= OPTIONS.cap
    assert [c.token_count for c in chunks] == counts


def test_chunks_aim_for_the_target_size(counter: TokenCounter) -> None:
    blocks = [Block(f"Paragraph {n}. {SENTENCE}") for n in range(40)]
    chunks = split_blocks(blocks, counter, OPTIONS)
    assert all(OPTIONS.target - 25 <= c.token_count <= OPTIONS.cap for c in chunks[:-1])


def test_neighbouring_chunks_overlap(counter: TokenCounter) -> None:
    blocks = [Block(f"Sentence number {n} is here.") for n in range(60)]
    chunks = split_blocks(blocks, counter, OPTIONS)
    assert len(chunks) > 2
    for first, second in zip(chunks, chunks[1:], strict=False):
        earlier, later = first.text.split("\n\n"), second.text.split("\n\n")
        shared = [p for p in later if p in earlier]
        assert shared and earlier[-len(shared) :] == shared == later[: len(shared)]


def test_a_chunk_never_spans_two_sections(counter: TokenCounter) -> None:
    blocks = [
        Block("Setup step one.", ("Guide", "Setup")),
        Block("Use it daily.", ("Guide", "Use")),
    ]
    chunks = split_blocks(blocks, counter, OPTIONS)
    assert [(c.heading_path, c.text) for c in chunks] == [
        (("Guide", "Setup"), "Setup step one."),
        (("Guide", "Use"), "Use it daily."),
    ]


def test_a_contents_page_of_headings_is_left_out(counter: TokenCounter) -> None:
    # Three headings or more in a row with no text between them; every chunk under a heading
    # carries it in its path.
    contents = [
        Block(title, ("Contents", title)) for title in ("1.1 Terms", "1.2 Authors", "14.8 Bugs")
    ]
    body = [
        Block("Read the guide before the first shift.", ("Preface",)),
        Block("Guide", ("Guide",)),
        Block("Setup", ("Guide", "Setup")),
        Block("Setup step one.", ("Guide", "Setup")),
        Block("Report bugs to the tracker.", ("Guide", "Bugs")),
    ]
    chunks = split_blocks(contents + body, counter, OPTIONS)
    assert [(c.heading_path, c.text) for c in chunks] == [
        (("Preface",), "Read the guide before the first shift."),
        (("Guide",), "Guide"),  # a chapter's heading alone over its first section's stays
        (("Guide", "Setup"), "Setup\n\nSetup step one."),
        (("Guide", "Bugs"), "Report bugs to the tracker."),
    ]
    assert [c.ordinal for c in chunks] == [0, 1, 2, 3]
    two = split_blocks(contents[:2] + body, counter, OPTIONS)
    assert [c.text for c in two][:2] == ["1.1 Terms", "1.2 Authors"]  # two in a row stay


def test_a_document_of_headings_alone_keeps_them(counter: TokenCounter) -> None:
    titles = ("Shopping", "To do", "Done")
    blocks = [Block(title, ("List", title)) for title in titles]
    assert [c.text for c in split_blocks(blocks, counter, OPTIONS)] == list(titles)


def test_a_chunk_stays_on_one_page(counter: TokenCounter) -> None:
    blocks = [Block(f"Page {n} words here.", page=n) for n in (1, 1, 2, 3)]
    chunks = split_blocks(blocks, counter, OPTIONS)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (2, 2), (3, 3)]
    many = split_blocks(blocks * 10, counter, OPTIONS)
    assert len(many) > 1 and [c.ordinal for c in many] == list(range(len(many)))


def test_every_chunk_of_a_page_knows_how_the_page_opens(counter: TokenCounter) -> None:
    statement = ["Consolidated Statement", "of Cash Flows (Millions)"]
    rows = [
        f"Line item {n}: purchases of equipment {n * 7} and proceeds {n * 3}." for n in range(30)
    ]
    blocks = [Block(text, page=4) for text in statement + rows] + [Block("Notes.", page=5)]
    chunks = split_blocks(blocks, counter, OPTIONS)
    on_page_4 = [c for c in chunks if c.page_start == 4]
    assert len(on_page_4) > 2  # several chunks on the page; only the first shows the title
    opening = (
        "Consolidated Statement of Cash Flows (Millions) "
        "Line item 0: purchases of equipment 0 and proceeds 0."
    )
    assert {c.page_opening for c in on_page_4} == {opening}
    assert [c.page_opening for c in chunks if c.page_start == 5] == ["Notes."]
    plain = split_blocks([Block("No pages here.")], counter, OPTIONS)
    assert [c.page_opening for c in plain] == [""]


def test_a_section_that_begins_further_down_the_page_does_not_take_its_opening(
    counter: TokenCounter,
) -> None:
    # A page of ../shared/corpus/mixed/DA-619p.pdf (its outline gives the headings): with the
    # opening's "Only one person witnessed Maferath's betrayal" as their context, the chunks
    # "CULTURE AND HISTORY" and "Aravels If The Warden is Dalish..." were the first two
    # passages for "Who witnessed Maferath's betrayal?", ahead of the one that says it.
    magic, culture = ("Codex", "MAGIC AND RELIGION"), ("Codex", "CULTURE AND HISTORY")
    ashes = (*magic, "The Sacred Ashes of Andraste")
    blocks = [
        Block("The Sacred Ashes of Andraste", ashes, 48),
        Block("Only one person witnessed Maferath's betrayal: Havard the Aegis.", ashes, 48),
        Block("Havard gathered the earthly remains of Andraste.", (*ashes, "Havard"), 48),
        Block("The Veil", (*magic, "The Veil"), 48),
        Block(
            "I detest this notion that the Veil is some manner of curtain.",
            (*magic, "The Veil"),
            48,
        ),
        Block("CULTURE AND HISTORY", culture, 48),
        Block("Aravels If The Warden is Dalish...", (*culture, "Aravels"), 48),
        Block("The aravels are the landships of the Dalish.", (*culture, "Aravels"), 49),
    ]
    chunks = split_blocks(blocks, counter, OPTIONS)
    opening = " ".join(" ".join(b.text for b in blocks).split()[:PAGE_OPENING_WORDS])
    assert [(c.heading_path[-1], c.page_opening) for c in chunks] == [
        ("The Sacred Ashes of Andraste", opening),
        ("Havard", opening),  # a subsection of the one the page opens in
        ("The Veil", ""),
        ("CULTURE AND HISTORY", ""),
        ("Aravels", ""),
        ("Aravels", "The aravels are the landships of the Dalish."),  # the next page opens in it
    ]


def test_a_list_keeps_its_line_breaks_when_its_paragraph_is_split(counter: TokenCounter) -> None:
    items = [f"- Item {n}: {SENTENCE}" for n in range(8)]  # one paragraph, far over the target
    block = Block("Checklist for the handover.\n" + "\n".join(items) + "\nSigned off.")
    chunks = split_blocks([block], counter, OPTIONS)
    assert len(chunks) > 1
    assert all(" - Item" not in chunk.text for chunk in chunks)  # never run into the line before
    text = "\n".join(chunk.text for chunk in chunks)
    assert all(f"\n{item}" in text for item in items)
    assert "every evening. Signed off." not in text and "evening.\nSigned off." in text
