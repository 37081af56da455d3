"""Structure-aware chunking, sized in tokens of the embedding model's own tokenizer."""

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from itertools import groupby
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ingest.document import Block

# Enough for "Table of Contents 3M Company and Subsidiaries Consolidated Statement of Cash
# Flows Years ended December 31".
PAGE_OPENING_WORDS = 16
_SENTENCE_END = re.compile(r"((?<=[.!?。！？])\s+|\n\s*)")  # (kept by split: a line break stays)
# One tokenizer call holds tens of bytes per character of its text at once (a 20 MB "word"
# asked for single blocks of 268 and 536 MB, and the worker aborted under its memory cap):
# text goes to the tokenizer in pieces of at most this many characters.
_ENCODE_CHARS = 1 << 16
# Pieces are also cut at this many characters per token they may hold: a blob the tokenizer
# reads as a few tokens (4 MB of one letter: 64) would otherwise make a chunk of megabytes,
# which the embedder would have to read whole.
_CHARS_PER_TOKEN = 16


@dataclass(frozen=True)
class ChunkOptions:
    """Chunk size in tokens: aim for `target`, never exceed `cap`, repeat about `overlap`."""

    target: int
    cap: int
    overlap: int


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough to embed whole, with where it came from."""

    ordinal: int
    text: str
    heading_path: tuple[str, ...]
    page_start: int | None
    page_end: int | None
    token_count: int
    # The first words of its page (paged formats): a statement's or chapter's running title,
    # which the page's later chunks would otherwise not carry. Indexed, never shown; only for
    # the section the page opens in (and its subsections).
    page_opening: str = ""


@dataclass(frozen=True)
class _Unit:
    text: str
    tokens: int
    paragraph: int
    page: int | None
    new_line: bool = False  # begins a line of its paragraph (a list item): joined by a line break


class TokenCounter:
    """Counts and splits text in the embedding model's tokens (special tokens excluded).

    Counting runs the model's tokenizer once per distinct whitespace-separated word and sums
    cached counts: the tokenizer splits at whitespace before anything else, so the sum equals
    the whole-text count at a fraction of the cost of re-tokenizing every page. Windows are
    cut between words for the same reason, so their counts are exact too.
    """

    _CACHE_LIMIT = 500_000

    def __init__(self, tokenizer_file: Path | str) -> None:
        self._tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._word_tokens: dict[str, int] = {}

    def count(self, texts: list[str]) -> list[int]:
        """Token count of each text."""
        words = [text.split() for text in texts]
        self._learn({word for text_words in words for word in text_words})
        cache = self._word_tokens
        return [sum(cache[word] for word in text_words) for text_words in words]

    def _learn(self, words: set[str]) -> None:
        new = [word for word in words if word not in self._word_tokens]
        if not new:
            return
        if len(self._word_tokens) + len(new) > self._CACHE_LIMIT:
            self._word_tokens.clear()
            new = list(words)
        for batch in _batches(new, _ENCODE_CHARS):
            self._word_tokens.update(zip(batch, self._counts(batch), strict=True))

    def _counts(self, words: list[str]) -> list[int]:
        if len(words) == 1:  # (perhaps longer than one call takes)
            return [sum(len(offsets) for _, offsets in self._encode(words[0]))]
        # One call over the words joined by spaces, far cheaper than one call per word;
        # each token is credited to the word its first character falls in.
        word_starts = np.cumsum([0] + [len(word) + 1 for word in words[:-1]])
        offsets = self._tokenizer.encode(" ".join(words), add_special_tokens=False).offsets
        token_starts = np.fromiter((start for start, _ in offsets), dtype=np.int64)
        owners = np.searchsorted(word_starts, token_starts, side="right") - 1
        return np.bincount(owners, minlength=len(words)).tolist()  # type: ignore[no-any-return]

    def _encode(self, text: str) -> Iterator[tuple[int, list[tuple[int, int]]]]:
        """Token offsets of a text of any length, a piece at a time: (piece start, offsets)."""
        for start in range(0, len(text), _ENCODE_CHARS):
            piece = text[start : start + _ENCODE_CHARS]
            yield start, self._tokenizer.encode(piece, add_special_tokens=False).offsets

    def windows(self, text: str, size: int) -> list[str]:
        """Cut text into consecutive pieces of at most `size` tokens, between words."""
        words = text.split()
        self._learn(set(words))
        pieces: list[str] = []
        current: list[str] = []
        used = 0
        for word in words:
            tokens = self._word_tokens[word]
            if tokens > size or len(word) > size * _CHARS_PER_TOKEN:  # a URL, a blob of data
                pieces += [" ".join(current), *self._token_windows(word, size)]
                current, used = [], 0
            elif used + tokens > size:
                pieces.append(" ".join(current))
                current, used = [word], tokens
            else:
                current.append(word)
                used += tokens
        pieces.append(" ".join(current))
        return [piece for piece in pieces if piece]

    def _token_windows(self, text: str, size: int) -> list[str]:
        starts: list[int] = []
        seen = 0
        for piece_start, offsets in self._encode(text):
            starts += [piece_start + offsets[i][0] for i in range(-seen % size, len(offsets), size)]
            seen += len(offsets)
        ends = starts[1:] + [len(text)]
        longest = size * _CHARS_PER_TOKEN
        return [
            text[cut : min(cut + longest, end)]
            for start, end in zip(starts, ends, strict=True)
            for cut in range(start, end, longest)
        ]


def _batches(words: list[str], chars: int) -> Iterator[list[str]]:
    """Consecutive words, joined by spaces no longer than `chars` (a longer word alone)."""
    batch: list[str] = []
    length = 0
    for word in words:
        if batch and length + len(word) > chars:
            yield batch
            batch, length = [], 0
        batch.append(word)
        length += len(word) + 1
    if batch:
        yield batch


def split_blocks(blocks: list[Block], counter: TokenCounter, options: ChunkOptions) -> list[Chunk]:
    """Pack blocks into chunks; a chunk never crosses a heading or a page boundary.

    Staying within one page makes every PDF citation a single page.
    """
    chunks: list[Chunk] = []
    openings = _page_openings(blocks)
    for (heading_path, page), section in groupby(blocks, key=lambda b: (b.heading_path, b.page)):
        units = list(_units(list(section), counter, options))
        opening, opened_under = openings.get(page, ("", ()))
        if heading_path[: len(opened_under)] != opened_under:
            opening = ""  # a section the page's opening is not part of
        for packed in _pack(units, options):
            chunk = _chunk(len(chunks), heading_path, packed)
            chunks.append(replace(chunk, page_opening=opening))
    kept = _without_contents_pages(chunks)
    return [replace(chunk, ordinal=n) for n, chunk in enumerate(kept)]


# Headings this many in a row, with no text between them, are a contents page.
CONTENTS_RUN = 3


def _without_contents_pages(chunks: list[Chunk]) -> list[Chunk]:
    """The chunks without the runs of CONTENTS_RUN or more that are each a heading alone: a
    contents page written as headings (the Live Systems manual's EPUB opened with 190 of its
    466 chunks so, and "14.8 Where to report bugs" was quoted as where to report one). The
    headings are not lost: the chunks under each carry it (indexed as their title, embedded
    before their text). A heading alone elsewhere stays — a chapter's over its first
    section's, a title over a passage too long to share its chunk: left out too, the
    handbook's "2. Routine Duties" gave its place among a question's three passages to
    another, and the default model answered "When do keeper shifts change over?" from the
    wrong sentence (it answered right with 4 or 6 evidence sentences: that fragile). A
    document of nothing but headings keeps them."""
    kept: list[Chunk] = []
    for alone, run in groupby(chunks, key=_heading_alone):
        run_chunks = list(run)
        if not (alone and len(run_chunks) >= CONTENTS_RUN):
            kept += run_chunks
    return kept or chunks


def _heading_alone(chunk: Chunk) -> bool:
    """The chunk is its section's heading and nothing else."""
    heading = chunk.heading_path[-1] if chunk.heading_path else ""
    return bool(heading) and " ".join(chunk.text.split()) == " ".join(heading.split())


def _page_openings(blocks: list[Block]) -> dict[int | None, tuple[str, tuple[str, ...]]]:
    """The first PAGE_OPENING_WORDS words of each page, and the heading path of its first
    block: the opening is the context of that section's chunks on the page (and of its
    subsections'), not of a section that begins further down the page."""
    words: dict[int | None, list[str]] = {}
    paths: dict[int | None, tuple[str, ...]] = {}
    for block in blocks:
        if block.page is not None:
            page = words.setdefault(block.page, [])
            paths.setdefault(block.page, block.heading_path)
            page += block.text.split()[: PAGE_OPENING_WORDS - len(page)]
    return {page: (" ".join(opening), paths[page]) for page, opening in words.items()}


def _units(blocks: list[Block], counter: TokenCounter, options: ChunkOptions) -> Iterator[_Unit]:
    """Paragraphs, split into sentences when longer than the target, then into token windows."""
    longest = options.cap * _CHARS_PER_TOKEN
    counts = counter.count([block.text for block in blocks])
    for index, (block, tokens) in enumerate(zip(blocks, counts, strict=True)):
        if tokens <= options.target and len(block.text) <= longest:
            yield _Unit(block.text, tokens, index, block.page)
            continue
        parts = _SENTENCE_END.split(block.text)  # sentence, separator, sentence, …
        before = ["", *parts[1::2]]  # the separator before each sentence
        kept = [(s, "\n" in b) for s, b in zip(parts[::2], before, strict=True) if s.strip()]
        counts = counter.count([sentence for sentence, _ in kept])
        for (sentence, new_line), sentence_tokens in zip(kept, counts, strict=True):
            if sentence_tokens <= options.cap and len(sentence) <= longest:
                yield _Unit(sentence, sentence_tokens, index, block.page, new_line)
                continue
            pieces = counter.windows(sentence, options.cap)
            for piece, piece_tokens in zip(pieces, counter.count(pieces), strict=True):
                yield _Unit(piece, piece_tokens, index, block.page, new_line)
                new_line = False  # a long line's later pieces continue it


def _pack(units: list[_Unit], options: ChunkOptions) -> Iterator[list[_Unit]]:
    longest = options.cap * _CHARS_PER_TOKEN
    current: list[_Unit] = []
    size = chars = 0
    for unit in units:
        if current and (size + unit.tokens > options.target or chars + len(unit.text) > longest):
            yield current
            current = _overlap_tail(current, options.overlap)
            size, chars = sum(u.tokens for u in current), sum(len(u.text) for u in current)
            if size + unit.tokens > options.cap or chars + len(unit.text) > longest:
                current, size, chars = [], 0, 0
        current.append(unit)
        size, chars = size + unit.tokens, chars + len(unit.text)
    if current:
        yield current


def _overlap_tail(units: list[_Unit], budget: int) -> list[_Unit]:
    """The last units of a chunk, up to `budget` tokens, to repeat at the start of the next."""
    tail: list[_Unit] = []
    for unit in reversed(units):
        if unit.tokens > budget:
            break
        budget -= unit.tokens
        tail.insert(0, unit)
    return tail if len(tail) < len(units) else []


def _chunk(ordinal: int, heading_path: tuple[str, ...], units: list[_Unit]) -> Chunk:
    parts: list[str] = []
    for previous, unit in zip([None, *units], units, strict=False):
        if previous is not None:
            line_break = "\n" if unit.new_line else " "
            parts.append(line_break if previous.paragraph == unit.paragraph else "\n\n")
        parts.append(unit.text)
    pages = [unit.page for unit in units if unit.page is not None]
    return Chunk(
        ordinal=ordinal,
        text="".join(parts),
        heading_path=heading_path,
        page_start=min(pages) if pages else None,
        page_end=max(pages) if pages else None,
        token_count=sum(unit.tokens for unit in units),
    )
