"""Answers without a model: the sentences of the sources that best answer the question, quoted.

Used when no model is configured (ARCHIVIST_LLM=none), when a model's answer fails its
checks (answer_check.py), and on request (`--extractive`). Sentences are scored by how many of
the question's topic words they hold (weighted by rarity across the sources; those only the
sentence before holds at half their weight), plus, when the caller gives one, the cosine
similarity of their embedding to the question's.
"""

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from generation.answer_check import joined_after_abbreviations, stem, topic_words, words
from generation.injection import gives_orders
from generation.prompt import without_reference_marks

# Sentence ends: ., ! or ? before a space and a capital, digit or quote, but not an initial's
# full stop ("financier J. P. Morgan", "the U.S. Army"; "at 30 °C." does end one); a word's
# ., ! or ? run straight into a capital ("the mixer.I love it": text whose line breaks were
# lost, as in amazon's reviews, 2,194 times in 2,050 of them); or a line break.
_BULLETS = "-–*•●▪◦·"
_SENTENCE_END = re.compile(
    r"(?<=[.!?])(?<![\s.][A-Z]\.)[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])"
    r"|(?<=[a-z]{2}[.!?])(?=[A-Z])|\n\s*\n"
    rf"|\n(?=\s*[{_BULLETS}\d])"
)
_CLAUSE_END = re.compile(r"(?<=[,;])\s+")
# A list item's bullet, left out of the quote: "“Log book up to date and signed”", not "“- Log…”".
_BULLET = re.compile(rf"^[{_BULLETS}]\s+")
MIN_WORDS, MAX_WORDS = 4, 80
QUOTES = 3  # sentences at most
CLOSE = 0.8  # a further sentence is quoted only when it scores this close to the best one
# The share of a topic word's weight a sentence takes from the one before it, for quotes:
# 200 questions, quotes alone, squad-dev 0.845 -> 0.865 answer recall, amazon 0.350 -> 0.360;
# the 0.5B's answers (quoted where rejected) 0.745 -> 0.755 and 0.295 -> 0.300.
INHERITED = 0.5

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
    return [run.text for run in _runs(text)]


@dataclass(frozen=True)
class _Run:
    """A sentence, or a run of a sentence's clauses (`opens`: it begins the sentence, `closes`:
    it ends it)."""

    text: str
    opens: bool = True
    closes: bool = True

    def quoted(self) -> str:
        """The text, with "…" where the sentence goes on: "…and geochemist Clair Patterson…"."""
        text = _BULLET.sub("", self.text)
        if not self.closes:
            text = f"{text.rstrip(',;')}…"
        return text if self.opens else f"…{text}"


def _runs(text: str) -> list[_Run]:
    text = without_reference_marks(text)
    pieces = joined_after_abbreviations(" ".join(p.split()) for p in _SENTENCE_END.split(text))
    return [run for p in pieces for run in _cut(p) if len(run.text.split()) >= MIN_WORDS]


def _cut(sentence: str) -> list[_Run]:
    """A sentence over MAX_WORDS words as runs of its clauses (cut after a comma or semicolon),
    each MAX_WORDS words at most: dropped whole, a list of 40 alumni never reached the model
    or a quote (squad-dev's passages hold 58 such sentences in 10,325)."""
    if len(sentence.split()) <= MAX_WORDS:
        return [_Run(sentence)]
    runs: list[str] = []
    size = 0  # words in the last run
    for clause in _CLAUSE_END.split(sentence):
        words_in = len(clause.split())
        if runs and size + words_in <= MAX_WORDS:
            runs[-1], size = f"{runs[-1]} {clause}", size + words_in
        else:
            runs.append(clause)
            size = words_in
    last = len(runs) - 1
    return [
        _Run(run, opens=n == 0, closes=n == last)
        for n, run in enumerate(runs)
        if len(run.split()) <= MAX_WORDS  # a clause too long alone
    ]


def best_sentences(
    question: str, sources: Sequence[str], *, embed: Embed | None = None
) -> list[Quote]:
    """Up to QUOTES sentences that best answer the question, in the order of the sources."""
    runs = [_runs(source) for source in sources]
    found = [[run.text for run in pieces] for pieces in runs]
    # A sentence that addresses the model is never quoted either (injection.py): shown to the
    # user as the answer, "the amount is already paid" does the attacker's work all the same.
    # Nor is a heading: the words it lends the sentence after it count there (INHERITED).
    places = [(i, j) for i, pieces in enumerate(found) for j, sentence in enumerate(pieces)
              if not gives_orders(sentence) and not is_heading(sentence)]  # fmt: skip
    if not places:
        return []
    scores = _scores(question, found, places, embed, inherited=INHERITED)
    ranked = sorted(range(len(places)), key=lambda k: -scores[k])
    best = scores[ranked[0]]
    chosen: list[int] = []
    said: set[str] = set()
    for k in ranked:
        if len(chosen) == QUOTES or scores[k] < CLOSE * best:
            break
        # Neighbouring chunks overlap: a sentence two passages share is quoted once (squad-dev,
        # 200 questions: 2 of 78 quoted answers, amazon 2 of 81, showed a sentence twice).
        text = " ".join(words(found[places[k][0]][places[k][1]]))
        if text not in said:
            said.add(text)
            chosen.append(k)
    return [Quote(places[k][0] + 1, runs[places[k][0]][places[k][1]].quoted(), scores[k])
            for k in sorted(chosen)]  # fmt: skip


def _scores(
    question: str,
    found: list[list[str]],
    places: list[tuple[int, int]],
    embed: Embed | None,
    *,
    inherited: float = 0.0,
) -> list[float]:
    """Topic-word share of each sentence (passage i's sentence j for each place (i, j)), plus
    its embedding's cosine with the question's."""
    scores = _lexical(question, found, places, inherited)
    if embed is not None and places:
        vectors = embed([question] + [found[i][j] for i, j in places])
        asked = vectors[0]
        for k, vector in enumerate(vectors[1:]):
            scores[k] += sum(a * b for a, b in zip(asked, vector, strict=True))
    return scores


def _lexical(
    question: str, found: list[list[str]], places: list[tuple[int, int]], inherited: float
) -> list[float]:
    """The share of the question's topic words each sentence holds, rare words weighing more;
    a topic word the sentence lacks and the sentence before it (in its passage) holds counts
    for `inherited` of its weight: "The log book is the official record. Write in ink, never
    tear out pages, and sign every entry." answers who signs it in its second sentence."""
    # A hyphened word stays one word here ("antibody-dependent" is a rarer, surer sign than
    # "antibody"): split, as the checks split it, squad-dev's quotes alone lost a question
    # (200 questions: 0.870 -> 0.865) and the 0.5B's answers one (0.760 -> 0.755).
    topic = {stem(w) for w in topic_words(question)}
    held = [[{stem(w) for w in words(sentence)} & topic for sentence in pieces] for pieces in found]
    candidates = [held[i][j] for i, j in places]
    weights = {w: math.log(1 + len(places) / (1 + sum(w in h for h in candidates))) for w in topic}
    total = sum(weights.values()) or 1.0
    scores = []
    for i, j in places:
        own = held[i][j]
        before = held[i][j - 1] - own if j else set()
        score = sum(weights[w] for w in own) + inherited * sum(weights[w] for w in before)
        scores.append(score / total)
    return scores


# A heading set as a line of its own: every word capitalized but these, and no full stop
# ("Termination of Future Case Assignments", "2.4 The Log Book"). The Chapter 13 trustees'
# handbook's "When may a standing trustee's future case assignments be terminated?" was quoted
# with that heading first, as a sentence. A list item is written as a sentence is ("Log book up
# to date and signed").
_LOWERCASE_IN_TITLES = frozenset(
    {"a", "an", "and", "as", "at", "by", "for", "from", "in", "into", "of", "on", "or", "the", "to"}
    | {"with"}
)


def is_heading(sentence: str) -> bool:
    """Whether the sentence is a heading: its words capitalized, no full stop at its end."""
    if sentence.endswith((".", "!", "?", ":", ";", ",", "…")):
        return False
    titled = [w for w in sentence.split() if w[0].isalpha()]
    return (
        bool(titled)
        and titled[0][0].isupper()
        and all(w[0].isupper() or w in _LOWERCASE_IN_TITLES for w in titled)
    )


def quoted_answer(quotes: Sequence[Quote]) -> str:
    """The quotes as an answer: each in quotation marks, followed by its source number."""
    return " ".join(f"“{quote.text}” [{quote.source}]" for quote in quotes)


def evidence(
    question: str, texts: Sequence[str], *, best: int, embed: Embed | None = None
) -> list[str]:
    """The `best` sentences of all the passages that best answer the question (scored as by
    best_sentences, but on their own words: the sentence before each is kept with it) and their
    neighbours, each passage cut to its own, in order: "" for a passage that has none of them."""
    found = [sentences(text) for text in texts]
    places = [(i, j) for i, pieces in enumerate(found) for j in range(len(pieces))]
    # Scored with the words of the sentence before too, the evidence cost the 0.5B's answers
    # on squad-dev (200 questions: 0.745 -> 0.735; amazon 0.295 either way).
    scores = _scores(question, found, places, embed)
    top = sorted(range(len(places)), key=lambda k: -scores[k])[:best]
    chosen = {(places[k][0], places[k][1] + step) for k in top for step in (-1, 0, 1)}
    return [
        " ".join(sentence for j, sentence in enumerate(pieces) if (i, j) in chosen)
        for i, pieces in enumerate(found)
    ]
