"""Answers without a model: the sentences of the sources that best answer the question, quoted.

Used when no model is configured (ARCHIVIST_LLM=none), when a model's answer fails its
checks (answer_check.py), and on request (`--extractive`). Sentences are scored by how many of
the question's topic words they hold (weighted by rarity across the sources), plus, when the
caller gives one, the cosine similarity of their embedding to the question's.
"""

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from generation.answer_check import joined_after_abbreviations, stem, topic_words, words
from generation.injection import gives_orders
from generation.prompt import without_reference_marks

# Sentence ends: ., ! or ? before a space and a capital, digit or quote; a word's ., ! or ?
# run straight into a capital ("the mixer.I love it": text whose line breaks were lost, as in
# amazon's reviews, 2,194 times in 2,050 of them); or a line break.
_SENTENCE_END = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|(?<=[a-z]{2}[.!?])(?=[A-Z])|\n\s*\n"
    r"|\n(?=\s*[-*•\d])"
)
MIN_WORDS, MAX_WORDS = 4, 80
QUOTES = 3  # sentences at most
CLOSE = 0.8  # a further sentence is quoted only when it scores this close to the best one

Embed = Callable[[list[str]], Sequence[Sequence[float]]]  # unit vectors, question first


@dataclass(frozen=True)
class Quote:
    """A sentence of source `source` (numbered from 1, as the sources were given)."""

    source: int
    text: str
    score: float


def sentences(text: str) -> list[str]:
    """The text's sentences (and list items), whitespace tidied, too short or long ones out,
    without the reference marks a quote would show as citations ("[12]", "[citation needed]")."""
    text = without_reference_marks(text)
    pieces = joined_after_abbreviations(" ".join(p.split()) for p in _SENTENCE_END.split(text))
    return [p for p in pieces if MIN_WORDS <= len(p.split()) <= MAX_WORDS]


def best_sentences(
    question: str, sources: Sequence[str], *, embed: Embed | None = None
) -> list[Quote]:
    """Up to QUOTES sentences that best answer the question, in the order of the sources."""
    # A sentence that addresses the model is never quoted either (injection.py): shown to the
    # user as the answer, "the amount is already paid" does the attacker's work all the same.
    candidates = [(n, s) for n, source in enumerate(sources, 1) for s in sentences(source)
                  if not gives_orders(s)]  # fmt: skip
    if not candidates:
        return []
    scores = _scores(question, [s for _, s in candidates], embed)
    ranked = sorted(range(len(candidates)), key=lambda i: -scores[i])
    best = scores[ranked[0]]
    chosen = [i for i in ranked[:QUOTES] if scores[i] >= CLOSE * best]
    return [Quote(candidates[i][0], candidates[i][1], scores[i]) for i in sorted(chosen)]


def _scores(question: str, candidates: list[str], embed: Embed | None) -> list[float]:
    """Topic-word share of each sentence, plus its embedding's cosine with the question's."""
    scores = _lexical(question, candidates)
    if embed is not None and candidates:
        vectors = embed([question] + candidates)
        asked = vectors[0]
        for i, vector in enumerate(vectors[1:]):
            scores[i] += sum(a * b for a, b in zip(asked, vector, strict=True))
    return scores


def _lexical(question: str, candidates: list[str]) -> list[float]:
    """The share of the question's topic words each sentence holds, rare words weighing more."""
    topic = {stem(w) for w in topic_words(question)}
    held = [{stem(w) for w in words(sentence)} for sentence in candidates]
    weights = {w: math.log(1 + len(held) / (1 + sum(w in h for h in held))) for w in topic}
    total = sum(weights.values()) or 1.0
    return [sum(weights[w] for w in topic if w in h) / total for h in held]


def quoted_answer(quotes: Sequence[Quote]) -> str:
    """The quotes as an answer: each in quotation marks, followed by its source number."""
    return " ".join(f"“{quote.text}” [{quote.source}]" for quote in quotes)


def evidence(
    question: str, texts: Sequence[str], *, best: int, embed: Embed | None = None
) -> list[str]:
    """The `best` sentences of all the passages that best answer the question (scored as by
    best_sentences) and their neighbours, each passage cut to its own, in order: "" for a
    passage that has none of them."""
    found = [sentences(text) for text in texts]
    places = [(i, j) for i, pieces in enumerate(found) for j in range(len(pieces))]
    scores = _scores(question, [found[i][j] for i, j in places], embed)
    top = sorted(range(len(places)), key=lambda k: -scores[k])[:best]
    chosen = {(places[k][0], places[k][1] + step) for k in top for step in (-1, 0, 1)}
    return [
        " ".join(sentence for j, sentence in enumerate(pieces) if (i, j) in chosen)
        for i, pieces in enumerate(found)
    ]
