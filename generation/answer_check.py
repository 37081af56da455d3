"""Checks an answer before anyone reads it: a loop, an echo of source labels, the question
said back, a passage pasted nearly whole, a refusal while the sources plainly speak of the
question, a figure its source does not state, another source's words under a citation,
words taken from a sentence that is not about the question, or words the quote of the best
sentences lacks, read from no better sentence.

Small local models fall into each of these with ordinary documents (Qwen2.5-Coder-0.5B on the
sample handbook: the labels repeated until the token limit, a label followed by its whole
passage, "The sources do not contain the answer." beside a passage that holds it). Each check
is plain text work, microseconds an answer, so every answer is checked.
"""

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from difflib import SequenceMatcher

from generation.citations import parse_citations

LOOP = "loop"
LABEL_ECHO = "label-echo"
QUESTION_ECHO = "question-echo"
PASTED = "pasted-passage"
REFUSAL = "false-refusal"
UNSUPPORTED = "unsupported-figure"
MISCITED = "miscited"
OFF_TOPIC = "off-topic"
UNCITED = "uncited"
DISAGREES = "disagrees-with-quote"

_FIGURE = re.compile(r"\d+(?:[.,:]\d+)*")
_CITATION = re.compile(r"[\[【][^\[\]【】\n]{1,60}[\]】]")
_WORD = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*")
_REFUSAL = re.compile(
    r"\b(?:(?:do|does|did) not|don't|doesn't|cannot|can't|no|not)\b[^.]{0,40}\b(?P<verb>contain|"
    r"mention|provide|include|say|state|specify|answer|information|address|find|given)"
    r"|\bnot (?:mentioned|provided|specified|stated|given|available|found)\b",
    re.I,
)
# What a refusal speaks of besides the question: the sources, or what they lack.
_SOURCES_NAMED = re.compile(
    r"\b(?:sources?|excerpts?|passages?|texts?|documents?|context|information|details?|data)\b",
    re.I,
)
# Words a question shares with any text about anything: not evidence that a source is on topic.
_COMMON_WORDS = (
    "a an the and or but of to in on at by for with from as is are was were be been being do "
    "does did has have had what which who whom whose when where why how that this these those it "
    "its there their they them he she his her you your we our i me my can could should would "
    "will shall may might must not no yes if then than so such about into over under after before "
    "more most much many any some all each every other only also very just one two"
)
_COMMON = frozenset(_COMMON_WORDS.split())
# A loop: the same run of words, this long, this many times; or a longer run said twice.
# SmolLM2-135M said a clause twice over, inside a sentence or across two ("…at Levi's Stadium in
# San Francisco, California, and the game was played on February 7, 2016, at Levi's Stadium
# …"): runs of 10 to 23 words in 8 of its 120 answers, which the three-times rule let through.
# Runs of 6 or fewer said twice read as emphasis ("proteins that are involved in the"), and
# none of 8 words or more was said twice in the Qwen models' 80 shown answers (none of 3).
# Four words three times: SmolLM2 ended "…developed by a team of scientists led by a team of
# scientists led by a team of scientists." (six words would need a third whole run); of 1,078
# answers of every model on squad-dev and amazon (2026-12-07), four SmolLM2 answers hold such a
# run, no Qwen answer.
LOOP_WORDS, LOOP_REPEATS = 4, 3
SAID_TWICE_WORDS = 8
# A loop in other words: of REPEATED_TOPIC_WORDS topic words or more, this share or more said
# before ("The numbers are quite small, and they are quite small. They are quite small…").
# SmolLM2-135M's shown answers held 0.45 or more in 30 of 160 (one of them right); none of the
# Qwen models' 422 did (their most, 0.33), nor emphasis ("…two proteins that are involved in
# the process of protein folding. They are both proteins that are involved in…": 0.42).
REPEATED_TOPIC_WORDS, REPEATED_TOPIC_SHARE = 8, 0.45
# A pasted passage: a verbatim run of at least this many words that is most of the answer, or
# at least half of the passage it came from. While an answer repeats a source word for word for
# COPY_WORDS or more, it is held back until it ends, in case it becomes a paste.
PASTE_WORDS, PASTE_SHARE, COPY_WORDS = 30, 0.5, 12
# A false refusal: a source sentence holding this share of the question's topic words.
TOPIC_SHARE = 0.6
# Miscited: the cited source holds less than CITED_SHARE of the words the answer adds to the
# question, another holds OTHER_SHARE or more. On 27 of the 0.5B model's squad-dev answers,
# the right ones held 0.5-1.0 in their cited source; the four flagged were all wrong.
CITED_SHARE, OTHER_SHARE = 0.5, 0.8
# Off topic: an answer adding at least this many words to the question ("90 days" is too short
# to trace to a sentence).
OFF_TOPIC_WORDS = 3
# Disagrees with the quote (`disagrees`): an answer adding at least this many words to the
# question. Of the 0.5B model's 239 shown answers to 400 questions (squad-dev, amazon;
# 2026-12-07, two AVX2 cores, the passages as search returns them) it flags 33: 30 wrong, 13 of
# them where the quote is right; 3 right, the quote wrong there. Quoted in their place, answer
# recall 0.735 -> 0.765 on squad-dev, 0.310 -> 0.330 on amazon; the 1.5B's squad-dev 0.820 ->
# 0.830. Without the test of the model's sentence it flagged 8 more (one right, one where the
# quote is right) and the sample handbook's "What should the keeper write in the log book?";
# with one added word, 15 more, gaining nothing ("The knife is made in Japan [1].").
DISAGREE_WORDS = 2
_REFERS_BACK = re.compile(r"\s*(?:it|its|they|their|them|this|these|those|he|she|his|her)\b", re.I)


def words(text: str) -> list[str]:
    """Lowercase words, citations left out."""
    return [w.lower() for w in _WORD.findall(_CITATION.sub(" ", text))]


def topic_words(text: str) -> set[str]:
    """The words that say what a question is about (not the common ones)."""
    return {w for w in words(text) if _is_topic_word(w)}


def _is_topic_word(word: str) -> bool:
    return word not in _COMMON and len(word) > 2


def stems(text: str) -> set[str]:
    """The stems of the text's words, a hyphened word as its parts: "well-made" says what
    "well made" says ("What products are well made …?" said back as "The products are
    well-made … [1]." passed as an answer while the hyphened word counted as a new one)."""
    return {stem(part) for part in _parts(text)}


def topic_stems(text: str) -> set[str]:
    """The stems of the text's topic words, a hyphened word as its parts."""
    return {stem(part) for part in _parts(text) if _is_topic_word(part)}


def _parts(text: str) -> list[str]:
    return [part for word in words(text) for part in word.split("-") if part]


# These end a sentence only before a capital. "etc." before one does: in the three dev sets'
# passages, all 51 such cases ("…wilted greens, etc. I also love that it…" was one quote);
# "Jr." and "Inc." before one often do not ("Samuel K. Cohn, Jr. (2002)", "Engineering Index,
# Inc. (Ei)"). The others come before a figure ("consumes approx. 4 kg", "Jones et al. 1998",
# "in Fig. 2", "vol. 19, p. 148"): the dev sets' passages cut 19 sentences after one and end
# none at one (an amazon quote ended "1 gallon is for approx.", its "8 hours" cut off).
_ENDS_BEFORE_A_CAPITAL = re.compile(r"\b(?:(?i:etc|approx|ca|cf|al|figs?|vols?|pp|eqs?)|p)\.$")


# A full stop after these is no sentence end ("Dr. Smith", "e.g. the lens"): SmolLM2-135M's
# answer "… by the Doctor's creator, Dr. Constantine, to create …" said twice was shown up to
# "Dr." when its second sentence was cut as a loop.
_ABBREVIATION = re.compile(
    r"\b(?:Dr|Mr|Mrs|Ms|Prof|St|Mt|No|vs|Inc|Ltd|Jr|Sr|e\.g|i\.e)\.$"
    rf"|{_ENDS_BEFORE_A_CAPITAL.pattern}"
)


def ends_with_abbreviation(text: str) -> bool:
    """Whether the text's last full stop is an abbreviation's (looked for in its last
    characters, so that a word boundary before the abbreviation is a real one)."""
    return _ABBREVIATION.search(text[-12:]) is not None


# A web address a printed line broke after one of its dots: R's manual wrote
# "(https://CRAN.\nR-project.org/package=ROracle)", and the quote of its sentence began at
# "R-project.org/…". The piece after it goes on with the address: its first word holds a dot
# or slash, and begins with a letter or holds a slash (not a section number, "7.36").
_URL_CUT = re.compile(r"(?:\w+://|www\.)[^\s)]*\.$")
_URL_GOES_ON = re.compile(r"(?:[A-Za-z][\w-]*(?:\.[\w-]+)*[./]|[\w.-]*/)\w")


def _goes_on(before: str, piece: str) -> bool:
    """Whether `piece` continues the sentence that `before` ends with an abbreviation ("Dr."
    before "Smith") or a web address broken at a dot; after "etc.", "approx." and the like only
    a piece that does not begin with a capital does."""
    if _URL_CUT.search(before[-200:]) and _URL_GOES_ON.match(piece):
        return True
    if _ENDS_BEFORE_A_CAPITAL.search(before):
        return not piece[:1].isupper()
    return ends_with_abbreviation(before)


def joined_after_abbreviations(pieces: Iterable[str]) -> list[str]:
    """Text split at full stops, each piece that follows an abbreviation joined back to the
    piece before it."""
    joined: list[str] = []
    for piece in pieces:
        if joined and _goes_on(joined[-1], piece):
            joined[-1] += " " + piece
        else:
            joined.append(piece)
    return joined


def is_loop(answer: str) -> bool:
    """The same run of LOOP_WORDS words LOOP_REPEATS times or more, a run of SAID_TWICE_WORDS
    words said twice (the second time after the first has ended), a sentence said twice, or
    its topic words said over again (REPEATED_TOPIC_SHARE)."""
    found = words(answer)
    if _repeats_a_sentence(answer) or _repeats_its_topic(found):
        return True
    runs = Counter(tuple(found[i : i + LOOP_WORDS]) for i in range(len(found) - LOOP_WORDS + 1))
    if runs and max(runs.values()) >= LOOP_REPEATS:
        return True
    first: dict[tuple[str, ...], int] = {}
    for i in range(len(found) - SAID_TWICE_WORDS + 1):
        run = tuple(found[i : i + SAID_TWICE_WORDS])
        if i - first.setdefault(run, i) >= SAID_TWICE_WORDS:
            return True
    return False


def is_label_echo(answer: str, labels: Sequence[str]) -> bool:
    """Nothing but words of the sources' labels (file names, pages, sections) and citation
    numbers. A short answer of other words ("[1] 1965", "John Fox [1]") is an answer."""
    label_words = {w for label in labels for w in words(label)} | {"page", "pages", "source"}
    said = words(answer)
    return len(said) >= 2 and all(w in label_words for w in said)


_ASKING = re.compile(r"\b(?:what|which|who|whom|whose|when|where|why|how)\b", re.I)
_HOW_MUCH = re.compile(r"\bhow (?:many|much|long|often|old|far|soon|big|large|small)\b", re.I)


def restates_question(answer: str, question: str) -> bool:
    """A what/who/when/… question said back without an answer: the answer adds no word or
    figure the question did not hold ("… ignore which facts [1]." for "… ignore which facts?").
    A yes/no question said back ("The pillow does smell [1].") is an answer."""
    if len(words(answer)) < 3 or not _ASKING.search(question):
        return False
    if _HOW_MUCH.search(question) and not _ASKING.search(_CITATION.sub(" ", answer)):
        return False  # "about a year": common words answer how long, often or many
    said_figures = figures(_CITATION.sub(" ", answer))
    return not added_words(answer, question) and not said_figures - figures(question)


def added_words(answer: str, question: str) -> set[str]:
    """The stems of the answer's words that the question did not hold (common words aside),
    an acronym spelled out before it aside: "… in a virtual machine (VM)" adds no word."""
    spelled_out = _spelled_out_acronyms(_CITATION.sub(" ", answer))
    said = {part for part in _parts(answer) if part not in _COMMON} - spelled_out
    asked = stems(question)
    # stem() leaves words of four letters whole: "The glass gets very little of around it [1]."
    # (the 1.5B, amazon) said back "What does the glass get very little of around it?".
    return {
        word
        for word in map(stem, said)
        if word not in asked
        and not (word.endswith("s") and word[:-1] in asked)
        and f"{word}s" not in asked
    }


_ACRONYM = re.compile(r"\(([A-Z]{2,6})\)")


def _spelled_out_acronyms(text: str) -> set[str]:
    """The acronyms in brackets that the words before them spell: "virtual machine (VM)"."""
    found = set()
    for m in _ACRONYM.finditer(text):
        acronym = m.group(1).lower()
        before = _parts(text[: m.start()])[-len(acronym) :]
        if "".join(part[0] for part in before) == acronym:
            found.add(acronym)
    return found


def pasted_passage(answer: str, sources: Sequence[str]) -> int | None:
    """The number (from 1) of a source whose text the answer repeats nearly whole, if any."""
    said = words(answer)
    if len(said) < PASTE_WORDS:
        return None
    for number, source in enumerate(sources, 1):
        text = words(source)
        run = _longest_run(said, text)
        if run >= PASTE_WORDS and (run >= PASTE_SHARE * len(text) or run >= 0.8 * len(said)):
            return number
    return None


def copies_a_source(answer: str, sources: Sequence[str]) -> bool:
    """The answer repeats COPY_WORDS or more words of a source in a row."""
    said = words(answer)
    return len(said) >= COPY_WORDS and any(
        _longest_run(said, words(source)) >= COPY_WORDS for source in sources
    )


def _longest_run(said: list[str], text: list[str]) -> int:
    matcher = SequenceMatcher(None, said, text, autojunk=False)
    return matcher.find_longest_match(0, len(said), 0, len(text)).size


def is_refusal(answer: str, question: str = "") -> bool:
    """The answer says the sources do not hold the answer (and says little else).

    A "no" in the question's own verb is an answer, not a refusal, unless it names the
    sources: asked "Should the abstract of a JACoW paper include citations?", the default
    model's "The abstract of a JACoW paper should not include citations [1]." — what the
    excerpt says — was taken for a refusal and replaced by quotes. "The sources do not
    include who signs it" still refuses, and so does a verb the question does not use.
    """
    if len(words(answer)) > 40:
        return False
    asked = stems(question)
    return any(
        not match.group("verb")
        or stem(match.group("verb").lower()) not in asked
        or _SOURCES_NAMED.search(answer)
        for match in _REFUSAL.finditer(answer)
    )


def sources_speak_of(question: str, sources: Sequence[str]) -> bool:
    """Some sentence of the sources holds most of the question's topic words."""
    topic = topic_stems(question)
    if not topic:
        return False
    needed = max(1, round(TOPIC_SHARE * len(topic)))
    for source in sources:
        for sentence in re.split(r"(?<=[.!?])\s+|\n+", source):
            if len(topic & stems(sentence)) >= needed:
                return True
    return False


def stem(word: str) -> str:
    """A crude stem, enough to match "signs" with "sign", "cleaned" with "cleaning" and
    "celebrated" with "celebrate"."""
    return re.sub(r"(?:es|s|ed|ing|e)$", "", word) if len(word) > 4 else word


def unsupported_figures(answer: str, sources: Sequence[str]) -> set[str]:
    """Figures the answer states that its cited sources (all sources, if it cites none) do not:
    "every 90 days [1]" where only source 2 says 90 days. The 0.5B model does this often."""
    cited = parse_citations(answer, len(sources)).cited
    said = figures(_CITATION.sub(" ", answer))
    return said - figures(" ".join(sources[n - 1] for n in cited) if cited else " ".join(sources))


def miscited(answer: str, question: str, sources: Sequence[str]) -> bool:
    """The answer says what another source says, citing one that does not ("the lens is
    cleaned every two weeks in wet weather [1]", the bicycle chain's care, from source 3)."""
    cited = parse_citations(answer, len(sources)).cited
    new = added_words(answer, question)
    if not cited or len(new) < 2:
        return False
    shares = [len(new & stems(source)) / len(new) for source in sources]
    return max(shares[n - 1] for n in cited) < CITED_SHARE and max(shares) >= OTHER_SHARE


def off_topic(answer: str, question: str, sources: Sequence[str]) -> bool:
    """The answer's own words come from a sentence of the sources that, with the sentence
    before it, holds none of the question's topic words: an answer taken from beside the
    question ("FtsZ1 and FtsZ2 are the two oxygen atoms in the dioxygen [3]", from a sentence
    of excerpt 3 about oxygen). An excerpt's first sentence that opens with "it", "they" or
    the like speaks of what the excerpt does not show, and is taken to be on topic."""
    new = added_words(answer, question)
    topic = topic_stems(question)
    if len(new) < OFF_TOPIC_WORDS or not topic:
        return False
    said: list[tuple[set[str], bool]] = []  # each sentence's stems; on topic with the one before
    for source in sources:
        before: set[str] = set()
        for n, sentence in enumerate(_sentences(source)):
            held = stems(sentence)
            refers_back = n == 0 and bool(_REFERS_BACK.match(sentence))
            said.append((held, refers_back or bool(topic & (held | before))))
            before = held
    most = max((len(new & held) for held, _ in said), default=0)
    if most < 2:
        return False  # the answer's words are in no one sentence: not traced to one
    return not any(on_topic for held, on_topic in said if len(new & held) == most)


def disagrees(answer: str, question: str, sources: Sequence[str], quote: str) -> bool:
    """The answer adds DISAGREE_WORDS or more words to the question, the quote (the passages'
    best sentences, as an extractive answer shows them) holds none of them, and the sentences
    of the sources that hold most of them say nothing of the question that the quote does not:
    the model read a sentence that answers no better than the quote, and says something else
    ("The Panthers practiced at Stanford University [1]." — the Broncos did; the quote: "The
    Panthers used the San Jose State practice facility …"). Words in no sentence are made up.
    Where the model's sentence holds a word of the question the quote lacks, the answer stands
    ("Write in ink, never tear out pages, and sign every entry." for what the keeper writes in
    the log book, where the quote is "The outgoing keeper walks the incoming keeper through the
    log book …"). Without a quote nothing is judged."""
    new, quoted = added_words(answer, question), stems(quote)
    if not quote or len(new) < DISAGREE_WORDS or new & quoted:
        return False
    said = [stems(sentence) for source in sources for sentence in _sentences(source)]
    most = max((len(new & held) for held in said), default=0)
    unquoted = topic_stems(question) - quoted
    return not any(unquoted & held for held in said if most and len(new & held) == most)


def _sentences(text: str) -> list[str]:
    """The text's sentences (none ends after an initial: "Y. pestis")."""
    return re.split(r"(?<=[.!?])(?<!\b[A-Z]\.)\s+|\n+", text)


def figures(text: str) -> set[str]:
    """The numbers in a text, written one way: "1,577.00" and "1577" are both "1577"."""
    found = set()
    for figure in _FIGURE.findall(text):
        figure = figure.replace(",", "")
        if "." in figure:
            figure = figure.rstrip("0").rstrip(".")
        found.add(figure)
    return found


def likely_source(answer: str, sources: Sequence[str]) -> int | None:
    """The number (from 1) of the source that holds most of the answer's topic words, when it
    holds at least half of them: the source an answer without a citation was written from."""
    said = topic_stems(answer)
    if not said:
        return None
    shares = [len(said & stems(source)) / len(said) for source in sources]
    best = max(range(len(shares)), key=lambda i: shares[i], default=None)
    return best + 1 if best is not None and shares[best] >= 0.5 else None


def uncited(answer: str, question: str, sources: Sequence[str]) -> bool:
    """The answer cites no excerpt, and no excerpt holds half of its topic words: nothing ties
    it to the documents ("…you can use the `dbDriver` function from the `RJDBC` package." from
    one excerpt's function and another's package, both in R's own manual)."""
    return (
        not parse_citations(answer, len(sources)).cited
        and not is_refusal(answer, question)
        and likely_source(answer, sources) is None
    )


def problem(
    answer: str, question: str, sources: Sequence[str], labels: Sequence[str], quote: str = ""
) -> str | None:
    """What is wrong with the answer (LOOP, LABEL_ECHO, QUESTION_ECHO, PASTED, REFUSAL,
    UNSUPPORTED, MISCITED, OFF_TOPIC, DISAGREES (with `quote`) or UNCITED), or None."""
    if is_loop(answer):
        return LOOP
    if is_label_echo(answer, labels):
        return LABEL_ECHO
    if restates_question(answer, question):
        return QUESTION_ECHO
    if pasted_passage(answer, sources) is not None:
        return PASTED
    if is_refusal(answer, question) and sources_speak_of(question, sources):
        return REFUSAL
    if unsupported_figures(answer, sources):
        return UNSUPPORTED
    if miscited(answer, question, sources):
        return MISCITED
    if off_topic(answer, question, sources):
        return OFF_TOPIC
    if disagrees(answer, question, sources, quote):
        return DISAGREES
    if uncited(answer, question, sources):
        return UNCITED
    return None


# Found in the whole answer after good sentences were shown: the answer stands as it is.
_SAID_AFTER_GOOD = (
    LABEL_ECHO, QUESTION_ECHO, REFUSAL, UNSUPPORTED, MISCITED, OFF_TOPIC, DISAGREES, UNCITED,
)  # fmt: skip
# A sentence ends at . ! or ? (not after an initial: "the U.S. spearheaded"), its citations
# and a space; the first shown is at least SHOWN_WORDS long (a shorter one cannot be judged).
_SENTENCE_DONE = re.compile(r"(?<!\b[A-Z])[.!?][\"')\]]*(?:\s*\[[^\]\n]{1,60}\])*\s")
SHOWN_WORDS = 4
# The prompt's own headings at the start of a line, or an excerpt numbered past the last one
# shown: the model has begun a turn of its own (SmolLM2-135M wrote "\n\nQuestion: …" after its
# answer in 7 of 120 answers, and "\n\n[4] The thermos is …" with three excerpts in 8, most of
# them then rejected as loops; the Qwen models no such question in 520 answers, no such line in
# 160). The answer ends there.
_NEW_TURN = re.compile(r"\n\s*(?:Question\s*:|Excerpts\s*:|\[(\d+)\])")


class Guard:
    """Holds a streamed answer back until it has been checked, sentence by sentence.

    `feed` takes each generated piece and returns the text that may be shown now: the
    sentences completed so far, once the answer up to them is neither a loop, an echo of the
    labels, nor a pasted passage. A refusal is held to the end (`finish`), where it is judged
    with the sources. `stopped` says that generation should end: a loop or a paste began (a
    paste is caught mid-sentence; after good sentences the answer is those sentences), or the
    model began a turn of its own, a question or an excerpt (the answer ends before it and is
    judged in `finish`).
    A sentence is released without the whitespace after it, which goes out with what follows,
    so that what was shown is always the start of the answer.
    """

    def __init__(
        self, question: str, sources: Sequence[str], labels: Sequence[str], quote: str = ""
    ) -> None:
        self.question, self.sources, self.labels = question, sources, labels
        self.quote = quote  # what an extractive answer would show (see `disagrees`)
        self.text = ""  # everything generated
        self.shown = 0  # characters of `text` released
        self.problem: str | None = None
        self.stopped = False

    def feed(self, piece: str) -> str:
        """The text to show after this piece ("" while it is held)."""
        self.text += piece
        if self.stopped:
            return ""
        turn = self._new_turn()
        if turn is not None:
            self.text, self.stopped = self.text[:turn], True
            return ""
        # A paste is stopped as soon as it is one, not at the end of its sentence: the 0.5B
        # model's pasted sentences run to 40-60 words, a second or more of decoding.
        if pasted_passage(self.text, self.sources) is not None:
            self.problem, self.stopped = PASTED, True
            return ""
        ends = [
            m.end() - 1
            for m in _SENTENCE_DONE.finditer(self.text, self.shown)
            if not ends_with_abbreviation(self.text[max(0, m.start() - 11) : m.start() + 1])
        ]
        if not ends:
            return ""
        prefix = self.text[: ends[-1]]
        if len(words(prefix)) < SHOWN_WORDS:
            return ""
        if is_loop(prefix):
            self.problem, self.stopped = LOOP, True
            return ""
        held = (
            is_refusal(prefix, self.question)
            or is_label_echo(prefix, self.labels)
            or restates_question(prefix, self.question)
            or copies_a_source(prefix, self.sources)
            or bool(unsupported_figures(prefix, self.sources))
            or miscited(prefix, self.question, self.sources)
            or off_topic(prefix, self.question, self.sources)
            or disagrees(prefix, self.question, self.sources, self.quote)
        )
        if held:
            return ""
        released, self.shown = self.text[self.shown : ends[-1]], ends[-1]
        return released

    def _new_turn(self) -> int | None:
        """Where the model began a turn of its own in what is not yet shown, if it did."""
        for found in _NEW_TURN.finditer(self.text, self.shown):
            if found[1] is None or int(found[1]) > len(self.sources):
                return found.start()
        return None

    def finish(self) -> tuple[str, str | None]:
        """At the end of generation: (the rest to show, the problem that rejects the answer).
        With a problem and nothing shown, the caller answers otherwise; with a problem after good
        sentences were shown, the answer is what was shown.

        A last sentence that brings a problem the sentences shown do not have is left out (the
        Live Systems manual: "To build an image for a USB stick, you can use xorriso, a tool for
        creating ISO images." was followed by "You can download xorriso from the official
        website and follow the instructions provided in the excerpt.", which no excerpt holds,
        and the whole answer was shown with no source at all). Where the sentences shown fail
        on their own too (an answer that cites only in its last sentence), the answer stands."""
        if self.problem is not None:
            return "", None if self.shown else self.problem
        found = self._problem(self.text)
        if found in _SAID_AFTER_GOOD and self.shown:
            shown = self.text[: self.shown]
            if self._problem(shown) is None:
                self.problem = found  # the last sentence brought it: the answer is what was shown
                return "", None
            found = None  # the sentences shown fail alone too: the answer stands whole
        if found is None:
            # Without the whitespace that ended generation: shown, the answer is complete.
            rest, self.shown = self.text[self.shown :].rstrip(), len(self.text)
            return rest, None
        self.problem = found
        return "", None if self.shown else found

    def _problem(self, text: str) -> str | None:
        return problem(text, self.question, self.sources, self.labels, self.quote)

    @property
    def answer(self) -> str:
        """The answer as shown: all of it, or the checked sentences before a loop or paste."""
        return (self.text[: self.shown] if self.problem else self.text).strip()


def _repeats_its_topic(found: list[str]) -> bool:
    """REPEATED_TOPIC_SHARE or more of these words' topic words (stems) said before them."""
    said = [stem(w) for w in found if _is_topic_word(w)]
    if len(said) < REPEATED_TOPIC_WORDS:
        return False
    return 1 - len(set(said)) / len(said) >= REPEATED_TOPIC_SHARE


def _repeats_a_sentence(text: str) -> bool:
    """A sentence of three words or more said twice: how a loop of sentences begins."""
    pieces = joined_after_abbreviations(re.split(r"(?<=[.!?])\s+", text))
    said = [tuple(words(p)) for p in pieces]
    said = [s for s in said if len(s) >= 3]
    return len(said) != len(set(said))
