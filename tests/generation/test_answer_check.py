"""The answer checks on answers the default model really gave (recorded_answers.json: the sample
handbook's four questions, Qwen2.5-Coder-0.5B at temperature 0, under the prompt before the
redesign, which labelled each source with its file and page, and under the prompt after)."""

import json
from pathlib import Path

import pytest

from generation.answer_check import (
    DISAGREES,
    LABEL_ECHO,
    LOOP,
    MISCITED,
    OFF_TOPIC,
    PASTE_WORDS,
    PASTED,
    QUESTION_ECHO,
    REFUSAL,
    UNCITED,
    UNSUPPORTED,
    Guard,
    disagrees,
    ends_with_abbreviation,
    is_label_echo,
    is_loop,
    is_refusal,
    likely_source,
    miscited,
    off_topic,
    pasted_passage,
    problem,
    restates_question,
    sources_speak_of,
    uncited,
    unsupported_figures,
)

RECORDED = json.loads((Path(__file__).parent / "recorded_answers.json").read_text())


def recorded(prompt: str, question: str) -> dict:
    return next(r for r in RECORDED if r["prompt"] == prompt and r["question"] == question)


def check(record: dict, answer: str | None = None) -> str | None:
    texts = [s["text"] for s in record["sources"]]
    labels = [s["label"] for s in record["sources"]]
    return problem(record["answer"] if answer is None else answer, record["question"], texts,
                   labels)  # fmt: skip


LENS = "How often is the lighthouse lens cleaned?"
SHIFTS = "When do keeper shifts change over?"
SIGN = "Who has to sign the log book, and when?"
WRITE = "What should the keeper write in the log book?"


def test_the_labels_repeated_in_a_loop_are_a_loop():
    record = recorded("before", LENS)
    assert record["answer"].startswith("[1] harbor-point-lighthouse-handbook.pdf, page 2")
    assert is_loop(record["answer"])
    assert check(record) == LOOP


def test_the_labels_said_once_are_an_echo():
    record = recorded("before", LENS)
    labels = [s["label"] for s in record["sources"]]
    once = record["answer"].split(" [1] ")[0]  # the loop's first round: each label once
    assert not is_loop(once)
    assert is_label_echo(once, labels)
    assert check(record, once) == LABEL_ECHO


def test_a_label_followed_by_its_whole_passage_is_a_pasted_passage():
    record = recorded("before", SHIFTS)
    texts = [s["text"] for s in record["sources"]]
    assert pasted_passage(record["answer"], texts) == 2
    assert check(record) == PASTED


def test_a_refusal_beside_a_passage_that_speaks_of_the_question_is_false():
    record = recorded("before", SIGN)
    assert record["answer"] == "[1] The sources do not contain the answer."
    assert is_refusal(record["answer"])
    assert sources_speak_of(SIGN, [s["text"] for s in record["sources"]])
    assert check(record) == REFUSAL


def test_a_refusal_is_right_when_no_passage_speaks_of_the_question():
    record = recorded("before", SIGN)
    texts = [s["text"] for s in recorded("before", LENS)["sources"]][2:]  # the bicycle FAQ
    assert not sources_speak_of(SIGN, texts)
    assert problem(record["answer"], SIGN, texts, ["bicycle-commuting-faq.html"]) is None


@pytest.mark.parametrize(
    ("prompt", "question"),
    [("before", WRITE)] + [("after", q) for q in (LENS, SHIFTS, WRITE)],
)
def test_real_answers_pass(prompt: str, question: str):
    record = recorded(prompt, question)
    assert check(record) is None, record["answer"]


@pytest.mark.parametrize("answer", ["[2] 90 days", "[1] Tuesday", "Tuesday [1].", "Yes [2]."])
def test_short_answers_are_not_echoes_nor_refusals(answer: str):
    record = recorded("after", LENS)
    assert check(record, answer) is None


@pytest.mark.parametrize(
    "answer",
    [
        "The sources do not mention who signs it.",
        "The excerpts don't say when the log book is signed [2].",
        "This information is not provided in the excerpts.",
    ],
)
def test_refusals_in_other_words_are_found(answer: str):
    assert is_refusal(answer)
    assert check(recorded("before", SIGN), answer) == REFUSAL


# JACoW's author guide (../shared/corpus/pdfs/texlive-JACoW_LaTeX_Letter.pdf), page 1, and
# the default model's answer at temperature 0: a "no" in the question's own verb.
CITATIONS = "Should the abstract of a JACoW paper include citations?"
CITATIONS_EXCERPT = (
    "The abstract itself is to act as a stand-alone entity and, as such, should not include "
    "citations. Any acronyms should be expanded on their first occurrence, both in the "
    "abstract and in the rest of the paper."
)


def test_a_no_in_the_questions_own_words_is_an_answer_not_a_refusal():
    answer = "The abstract of a JACoW paper should not include citations [1]."
    assert is_refusal(answer)  # read without the question, it could be one
    assert not is_refusal(answer, CITATIONS)
    assert problem(answer, CITATIONS, [CITATIONS_EXCERPT], [""]) is None


@pytest.mark.parametrize(
    "answer",
    [
        "The excerpts do not include whether the abstract has citations.",  # names the sources
        "The information about citations is not provided [1].",
        "I cannot find anything about the abstract.",  # a verb the question does not use
    ],
)
def test_a_refusal_in_the_questions_words_is_still_one(answer: str):
    assert is_refusal(answer, CITATIONS)
    assert problem(answer, CITATIONS, [CITATIONS_EXCERPT], [""]) == REFUSAL


# Real answers (squad-dev and amazon, temperature 0) that say the question back.
SAID_BACK = [
    (
        "There is criticism that the energy policies are expensive quick fixes that ignore which "
        "facts?",
        "There is criticism that the energy policies are expensive quick fixes that ignore which "
        "facts [1].",
    ),
    (
        "What part of the ScumBuster was used to clean the shower surround?",
        "The ScumBuster was used to clean the shower surround [1].",
    ),
    (
        "What group of scientists seek to measure the amounts of oxygen in marine animals?",
        "The scientists seek to measure the amounts of oxygen in marine animals [1].",
    ),
    (  # SmolLM2-135M: "The U.S." must not pass as a first sentence of its own
        "What department in the U.S. spearheaded the efforts against Islamism?",
        "The U.S. spearheaded the efforts against Islamism. [1]",
    ),
    (
        "Where did John Paul II celebrate Mass in Warsaw?",
        "John Paul II celebrated Mass in Warsaw in Warsaw [1].",
    ),
    (  # the default model on amazon, shown until hyphened words were taken as their parts
        "What products are well made and have a storage case for the discs?",
        "The products are well-made and have a storage case for the discs [1].",
    ),
    (  # the default model on the Live Systems manual: "(VM)" counted as a word it added
        "What do I need to run a live image in a virtual machine?",
        "A virtual machine needs to run a live image to run them in a virtual machine (VM) [1].",
    ),
    (  # the 1.5B on amazon: a short word's -s is no word added ("gets" for "get")
        "What does the glass get very little of around it?",
        "The glass gets very little of around it [1].",
    ),
]


@pytest.mark.parametrize(("question", "answer"), SAID_BACK)
def test_the_question_said_back_is_no_answer(question: str, answer: str):
    assert restates_question(answer, question)
    assert problem(answer, question, ["Some passage."], ["label"]) == QUESTION_ECHO
    guard = Guard(question, ["Some passage."], ["label"])
    assert feed_all(guard, answer) == "" and guard.finish()[1] == QUESTION_ECHO


@pytest.mark.parametrize(
    ("question", "answer"),
    [
        ("How many years is the warranty?", "The warranty is about a year [1]."),  # real
        ("Does the pillow smell?", "The pillow does smell [1]."),  # yes or no
        ("Where was the treaty signed?", "The treaty was signed in the UK [2]."),
        ("Who coached both teams?", "John Fox coached both teams [1]."),
        ("When was the work received?", "The work was received in 1965 [1]."),
        ("What products are well made?", "OXO's products are well-made [1]."),
        ("Where does the image run?", "It runs in a virtual machine (VM) [1]."),
        ("Which tool makes the image?", "The image is made by the Live Build (LB) tool [1]."),
        ("Which tool makes the image?", "The tool makes the image (ISO) [1]."),
        ("What does the glass get little of?", "The glass gets little frost [1]."),
        ("What do the pans lack?", "The pan lacks a lid [1]."),
    ],
)
def test_an_answer_that_adds_a_word_or_figure_is_not_the_question_said_back(
    question: str, answer: str
):
    assert not restates_question(answer, question)


def test_a_figure_the_cited_source_does_not_state_is_unsupported():
    # The 0.5B model's real answer under the new prompt with top_p 0.9: the 90 days are the
    # motor's greasing, in source 2.
    record = recorded("after", LENS)
    wrong = "The lighthouse lens is cleaned every 90 days [1]."
    assert unsupported_figures(wrong, [s["text"] for s in record["sources"]]) == {"90"}
    assert check(record, wrong) == UNSUPPORTED
    assert check(record, wrong.replace("[1]", "[2]")) is None
    assert check(record, "It is cleaned every 45 days.") == UNSUPPORTED  # nowhere at all
    guard = guard_for(record)
    assert feed_all(guard, wrong) == "" and guard.finish()[1] == UNSUPPORTED


def test_another_sources_words_under_a_citation_are_miscited():
    # The 0.5B model's real answer when it read the passages' best sentences: the bicycle
    # chain's care (source 3) given as the lens's (source 1).
    record = recorded("after", LENS)
    texts = [s["text"] for s in record["sources"]]
    wrong = (
        "The lighthouse lens is cleaned every two weeks in wet weather and once a month in dry "
        "weather [1]."
    )
    assert "every two weeks in wet weather" in texts[2]
    assert miscited(wrong, LENS, texts)
    assert check(record, wrong) == MISCITED
    assert not miscited(wrong.replace("[1]", "[3]"), LENS, texts)  # cited where it is said
    assert not miscited("The lens is polished with a soft cloth [1].", LENS, texts)  # nowhere
    guard = guard_for(record)
    assert feed_all(guard, wrong) == "" and guard.finish()[1] == MISCITED


def test_a_garbled_answer_from_another_source_is_miscited():
    # "Keeper's Cottage Volunteer" is the cottage's passage (source 3), cited as the log book's.
    record = recorded("after", SIGN)
    assert (
        record["answer"]
        == "The log book is signed by the Keeper's Cottage Volunteer volunteers [1]."
    )
    assert check(record) == MISCITED


def test_an_answer_from_a_sentence_beside_the_question_is_off_topic():
    # How the 0.5B model answers from the wrong sentence of an excerpt it cites rightly: on
    # squad-dev, "FtsZ1 and FtsZ2 are the two oxygen atoms in the dioxygen. [3]", from a
    # sentence of excerpt 3 about oxygen. Here the machinery sentence answers the shift question.
    record = recorded("after", SHIFTS)
    texts = [s["text"] for s in record["sources"]]
    wrong = "Keeper shifts change when the rotation motor is greased [2]."
    assert "rotation motor is greased" in texts[1]
    assert off_topic(wrong, SHIFTS, texts)
    assert check(record, wrong) == OFF_TOPIC
    guard = guard_for(record)
    assert feed_all(guard, wrong) == "" and guard.finish()[1] == OFF_TOPIC
    # The right sentence, said in the answer's own words, and a short answer pass.
    assert not off_topic("Shifts change over every Sunday evening at 18:00 [1].", SHIFTS, texts)
    assert not off_topic("On Sundays [1].", SHIFTS, texts)


def test_an_answer_without_a_citation_is_traced_to_the_source_holding_its_words():
    record = recorded("after", WRITE)  # "The keeper should write in ink, … [1]."
    texts = [s["text"] for s in record["sources"]]
    bare = record["answer"].replace(" [1]", "")
    assert likely_source(bare, texts) == 1
    assert likely_source("Bicycles need new chains.", texts) is None
    assert likely_source("[2]", texts) is None


# Two excerpts of R's "R Data Import/Export" manual (../shared/corpus/pdfs/R-data.pdf) that
# the default model read for "How can I connect R to a relational database?" (temperature 0),
# and its answer: one excerpt's function with the other's package, citing neither.
DATABASES = "How can I connect R to a relational database?"
DATABASE_EXCERPTS = [
    "Also on CRAN are the back-ends ROracle (https://CRAN. R-project.org/package=ROracle), "
    "RPostgreSQL (https://CRAN.R-project.org/ package=RPostgreSQL) and RSQLite "
    "(https://CRAN.R-project.org/package=RSQLite) (which works with the bundled DBMS SQLite, "
    "https://www.sqlite.org/index.html) and RJDBC (https://CRAN.R-project.org/package=RJDBC) "
    "(which uses Java and can connect to any DBMS that has a JDBC driver).",
    "MySQL exists on Unix/Linux/macOS and Windows: there is a ‘Community Edition’ released "
    "under GPL but commercial licenses are also available. MySQL was originally a ‘light and "
    'lean’ database. The call dbDriver("MySQL") returns a database connection manager '
    "object, and then a call to dbConnect opens a database connection which can subsequently "
    "be closed by a call to the generic function dbDisconnect.",
]
MIXED = (
    "To connect R to a relational database, you can use the `dbDriver` function from the "
    "`RJDBC` package."
)


def test_an_answer_tied_to_no_excerpt_is_uncited():
    assert problem(MIXED, DATABASES, DATABASE_EXCERPTS, ["", ""]) == UNCITED
    assert not uncited(MIXED + " [1]", DATABASES, DATABASE_EXCERPTS)  # cited: others judge it
    assert not uncited("The sources do not contain the answer.", DATABASES, DATABASE_EXCERPTS)
    record = recorded("after", WRITE)  # without its [1], traced to the handbook's excerpt
    assert check(record, record["answer"].replace(" [1]", "")) is None


# The Live Systems manual (../shared/corpus/same-content/live-manual.en.epub), the excerpt the
# default model read, and its answer (temperature 0.1): a good sentence, then one no excerpt
# holds.
USB_STICK = "How do I build an image for a USB stick?"
USB_EXCERPT = (
    "4.5.2 Copying an ISO hybrid image to a USB stick ISO images prepared with xorriso, can be "
    "simply copied to a USB stick with the cp program or an equivalent. Plug in a USB stick "
    "with a size large enough for your image file and determine which device it is, which we "
    "hereafter refer to as ${USBSTICK}. Once you are certain you have the correct device name, "
    "use the cp command to copy the image to the stick."
)
USB_GOOD = "To build an image for a USB stick, you can use xorriso, a tool for creating ISO images."
USB_MADE_UP = (
    " You can download xorriso from the official website and follow the instructions provided "
    "in the excerpt."
)


def test_a_last_sentence_no_excerpt_holds_is_left_out():
    assert problem(USB_GOOD + USB_MADE_UP, USB_STICK, [USB_EXCERPT], [""]) == UNCITED
    assert problem(USB_GOOD, USB_STICK, [USB_EXCERPT], [""]) is None
    guard = Guard(USB_STICK, [USB_EXCERPT], [""])
    assert feed_all(guard, USB_GOOD + USB_MADE_UP) == USB_GOOD
    assert guard.answer == USB_GOOD and guard.problem == UNCITED


def test_a_loop_in_the_last_sentence_after_a_shown_one_leaves_the_shown_one():
    source = "The Fresnel lens is cleaned every Tuesday morning with a soft cloth."
    good = "The lens is cleaned every Tuesday morning [1]."
    loop = " It is clean and bright, " * 4 + "it is clean"
    guard = Guard("How often is the lens cleaned?", [source], [""])
    text = good + loop
    shown = "".join(guard.feed(text[i : i + 3]) for i in range(0, len(text), 3))
    assert shown == good
    assert guard.finish() == ("", None)  # no rejection: what was shown is the answer
    assert guard.answer == good and guard.problem == LOOP


def test_an_answer_whose_shown_sentences_fail_alone_stands_whole():
    # Shown before the answer ended, the first sentence cannot be taken back: where it ties
    # to no excerpt either, the answer stands as it was said.
    first = "Use the flashing utility your vendor supplies."
    second = " Then restart the laptop."
    assert problem(first, USB_STICK, [USB_EXCERPT], [""]) == UNCITED
    guard = Guard(USB_STICK, [USB_EXCERPT], [""])
    assert feed_all(guard, first + second) == first + second
    assert guard.problem is None


def test_the_guard_shows_nothing_of_an_uncited_answer():
    guard = Guard(DATABASES, DATABASE_EXCERPTS, ["", ""])
    assert feed_all(guard, MIXED) == ""
    assert guard.problem == UNCITED
    # What follows can tie the answer to an excerpt.
    guard = Guard(DATABASES, DATABASE_EXCERPTS, ["", ""])
    follows = " The call dbDriver returns a database connection manager object."
    assert feed_all(guard, MIXED + follows) == MIXED + follows and guard.problem is None


# The 0.5B model on squad-dev (2026-12-07): its answer is taken from the sentence after the one
# that answers, which the quote shows; every other check passes it.
PANTHERS = "Where did the Panthers practice at for Super Bowl 50?"
PANTHERS_EXCERPT = (
    "Super_Bowl_50\n\nThe Panthers used the San Jose State practice facility and stayed at the "
    "San Jose Marriott. The Broncos practiced at Stanford University and stayed at the Santa "
    "Clara Marriott."
)
PANTHERS_QUOTE = (
    "“The Panthers used the San Jose State practice facility and stayed at the San Jose "
    "Marriott.” [1]"
)
PANTHERS_WRONG = "The Panthers practiced at Stanford University [1]."


def test_an_answer_none_of_whose_words_the_quote_holds_disagrees_with_it():
    assert problem(PANTHERS_WRONG, PANTHERS, [PANTHERS_EXCERPT], [""]) is None
    assert problem(PANTHERS_WRONG, PANTHERS, [PANTHERS_EXCERPT], [""], PANTHERS_QUOTE) == DISAGREES
    guard = Guard(PANTHERS, [PANTHERS_EXCERPT], [""], PANTHERS_QUOTE)
    assert feed_all(guard, PANTHERS_WRONG) == ""
    assert guard.problem == DISAGREES and guard.answer == ""


def test_an_answer_sharing_a_word_beyond_the_question_with_the_quote_agrees():
    right = "The Panthers practiced at the San Jose State facility [1]."
    assert not disagrees(right, PANTHERS, [PANTHERS_EXCERPT], PANTHERS_QUOTE)
    guard = Guard(PANTHERS, [PANTHERS_EXCERPT], [""], PANTHERS_QUOTE)
    assert feed_all(guard, right) == right and guard.problem is None
    # The 0.5B model's answer from the passage after the quoted one, in its own words but for
    # "Ten Commandments" (right: squad-dev's gold answer is "the Ten Commandments").
    question = "What should a Christian follow in his life?"
    answer = (
        "A Christian should follow the Ten Commandments, and the beginnings of the renewed life "
        "of Christians accorded to them by the sacrament of baptism. [2]"
    )
    quote = (
        "“For Luther, also Christ's life, when understood as an example, is nothing more than an "
        "illustration of the Ten Commandments, which a Christian should follow in his or her "
        "vocations on a daily basis.” [1]"
    )
    assert not disagrees(answer, question, [quote, answer], quote)


# The sample handbook: the quote is the wrong sentence, the 0.5B model read the right one, which
# holds "write" where the quote does not.
LOG_BOOK = (
    "The log book is the official record of the station. Write in ink, never tear out pages, "
    "and sign every entry. Completed log books go to the Trust archive in Merrow each January."
)
COTTAGE = (
    "Shifts last one week and change over on Sundays at 18:00. The outgoing keeper walks the "
    "incoming keeper through the log book, the fuel level and any open repair notes before "
    "handing over the keys."
)
COTTAGE_QUOTE = (
    "“The outgoing keeper walks the incoming keeper through the log book, the fuel level and "
    "any open repair notes before handing over the keys.” [2]"
)


def test_an_answer_from_a_sentence_saying_more_of_the_question_than_the_quote_stands():
    answer = (
        "The keeper should write in ink, never tear out pages, and sign every entry. Completed "
        "log books go to the Trust archive in Merrow each January [1]."
    )
    assert not disagrees(answer, WRITE, [LOG_BOOK, COTTAGE], COTTAGE_QUOTE)
    assert problem(answer, WRITE, [LOG_BOOK, COTTAGE], ["", ""], COTTAGE_QUOTE) is None
    # From a sentence that says no more of the question than the quote: rejected.
    other = "The keeper should write down that the annual archive is in Merrow [1]."
    assert disagrees(other, WRITE, [LOG_BOOK, COTTAGE], COTTAGE_QUOTE)


def test_an_answer_in_words_no_sentence_holds_disagrees_with_the_quote():
    made_up = "The keeper writes the tide tables and the moon phases [1]."
    assert disagrees(made_up, WRITE, [LOG_BOOK, COTTAGE], COTTAGE_QUOTE)


def test_a_one_word_answer_or_no_quote_is_not_judged_against_the_quote():
    sources = [PANTHERS_EXCERPT]
    assert not disagrees("At Stanford [1].", PANTHERS, sources, PANTHERS_QUOTE)  # one word
    assert not disagrees(PANTHERS_WRONG, PANTHERS, sources, "")  # no sentence to quote


def feed_all(guard: Guard, text: str, piece_chars: int = 3) -> str:
    shown = ""
    for start in range(0, len(text), piece_chars):
        shown += guard.feed(text[start : start + piece_chars])
        if guard.stopped:
            break
    rest, _ = guard.finish()
    return shown + rest


def guard_for(record: dict) -> Guard:
    texts = [s["text"] for s in record["sources"]]
    return Guard(record["question"], texts, [s["label"] for s in record["sources"]])


def test_the_guard_shows_nothing_of_a_label_loop_and_stops_it():
    record = recorded("before", LENS)
    guard = guard_for(record)
    assert feed_all(guard, record["answer"]) == ""
    assert guard.problem == LOOP and guard.stopped


@pytest.mark.parametrize("question", [SHIFTS, SIGN])
def test_the_guard_shows_nothing_of_a_paste_or_a_false_refusal(question: str):
    record = recorded("before", question)
    guard = guard_for(record)
    assert feed_all(guard, record["answer"]) == ""
    assert guard.finish()[1] in (PASTED, REFUSAL)


@pytest.mark.parametrize("question", [LENS, SHIFTS, WRITE])
def test_the_guard_shows_a_good_answer_whole(question: str):
    record = recorded("after", question)
    guard = guard_for(record)
    assert feed_all(guard, record["answer"]) == record["answer"]
    assert guard.answer == record["answer"] and guard.problem is None


def test_the_guard_shows_sentences_as_they_are_checked():
    record = recorded("after", WRITE)
    guard = guard_for(record)
    first = "The keeper should write in ink, never tear out pages, and sign every entry. "
    assert guard.feed(first[:-10]) == ""  # the sentence is not finished
    assert guard.feed(first[-10:]) == first.rstrip()  # the space goes out with what follows


def test_a_loop_after_good_sentences_keeps_the_sentences():
    record = recorded("after", LENS)
    guard = guard_for(record)
    good = "The lighthouse lens is cleaned every Tuesday morning [1]. "
    looping = "Use distilled water and a soft cloth. " * 4
    shown = feed_all(guard, good + looping)
    assert guard.problem == LOOP and guard.stopped
    assert shown.startswith(good) and shown.count("distilled") < 3
    assert guard.answer == shown.strip()


# SmolLM2-135M's answers to squad-dev questions, as it wrote them.
SAID_TWICE = [
    "The game was played on February 7, 2016, at Levi's Stadium in San Francisco, California, "
    "and the game was played on February 7, 2016, at Levi's Stadium in San Francisco, "
    "California. [2]",
    "The game will be broadcast on BBC Radio 5 Live, which is located in the Great North East "
    "and Cumbria. The game will be broadcast on BBC Radio Newcastle, which is located in the "
    "Great North East and Cumbria. [3]",
]
SAID_AGAIN_AT_THE_END = (
    "The plos pathogen paper claims that Yersinia pestis is a pathogen that causes the Black "
    'Death. The paper is titled "Preliminary Evidence of a Novel Plasmid Infection by Yersinia '
    'pestis" and is published by the Journal of Molecular Biology. The paper is titled '
    '"Preliminary Evidence of a Novel Plasmid Infection by Yersinia pestis" and is published by '
    "the Journal of Molecular Biology."
)
AFTER_A_TITLE = (  # SmolLM2-135M, recorded: a loop whose sentences hold "Dr."
    "The planet Doctor From is a fictional planet created by the Doctor's creator, Dr. "
    "Constantine, to create a fictional planet that is not actually a planet. The planet is "
    "created by the Doctor's creator, Dr. Constantine, to create a fictional planet that is not "
    "actually a planet."
)
EMPHASIS = [  # a few words said again: read as emphasis, not a loop
    "The FTSZ1 and FTSZ2 are two proteins that are involved in the process of protein folding. "
    "They are both proteins that are involved in the folding of proteins. [1]",
    "The glacial alpine valley known as the Rhine Valley (German: Rheintal) is a natural glacial "
    "valley that stretches across the Alps, Europe, and is the result of the last glacial "
    "maximum. It is a natural glacial valley that has been shaped by the last ice age. [2]",
]


SAID_OVER = [  # SmolLM2-135M's answers, as it wrote them: the same few words, over again
    "The insert is made of a high quality material, and it's made of a very good quality "
    "material, and it's very durable. It's made of a very good material, and it's very durable. "
    "[2]",
    "The reviewer knocked a point off the rating for a reason. They didn't just knock a point "
    "off the rating, they knocked it off the rating for a reason. [1]",
    "The Christian should follow the path of the Orthodox Christian, and the path of the "
    "Christian should be the path of the Orthodox Christian. [1]",
    "The cup is a single cup, not a double one. It's a single cup, not a double cup. [1]",
    "The uranium-lead dating method was developed by a team of scientists led by a team of "
    "scientists led by a team of scientists. [1]",
]
SAID_ONCE = [  # the Qwen models' recorded answers whose topic words repeat the most (0.21-0.33)
    "After purchasing the Bissell Green Tea, she returned the product and purchased the Bissell "
    "Green Tea instead and love it! [1]",
    "Subscriber numbers in other areas of Europe were not reached as the growth in subscriber "
    "numbers elsewhere in Europe flattened [1].",
    "The American show that changed the views of Romanians during the cold war was the soap "
    "opera Dallas during the Cold War [1].",
    "The Pauli exclusion principle is manifested in the macro world as a structural force, "
    "resulting in the force that acts in a direction normal to the surface interface between two "
    "objects. [1]",
]


@pytest.mark.parametrize("answer", SAID_OVER)
def test_the_same_words_said_over_again_are_a_loop(answer: str):
    assert is_loop(answer)
    assert problem(answer, "What is it made of?", ["It is made of plastic."], ["a.md"]) == LOOP


@pytest.mark.parametrize("answer", SAID_ONCE)
def test_an_answer_that_names_its_subject_twice_is_no_loop(answer: str):
    assert not is_loop(answer)


def test_a_loop_in_other_words_is_cut_before_the_sentence_that_makes_it_one():
    answer = (
        "The dial does not show the time. The heating is not a feature of the dial. The heating "
        "is a feature of the heating element. The heating element is a feature of the heating "
        "system."
    )  # SmolLM2-135M, recorded
    guard = Guard("On what area of the dial shows the time?", ["The dial shows 12:00."], ["a.md"])
    shown = feed_all(guard, answer)
    assert guard.problem == LOOP
    assert shown.startswith("The dial does not show the time.") and "system" not in shown
    assert guard.answer == shown.strip()


@pytest.mark.parametrize("answer", SAID_TWICE)
def test_a_clause_said_twice_is_a_loop_and_nothing_of_it_is_shown(answer: str):
    assert is_loop(answer)
    guard = Guard("Where was the game played?", ["Levi's Stadium hosted the game."], ["a.md"])
    assert feed_all(guard, answer) == ""
    assert guard.problem == LOOP


def test_a_sentence_said_again_as_the_answer_ends_is_a_loop():
    source = "The PLOS Pathogens paper says that Y. pestis caused the plague."
    guard = Guard("What does the PLOS Pathogens paper claim?", [source], ["a.md"])
    shown = feed_all(guard, SAID_AGAIN_AT_THE_END)
    assert guard.problem == LOOP and shown.count("titled") == 1  # the first time was shown
    assert guard.answer == shown.strip()


def test_a_sentence_goes_on_after_a_title_and_is_shown_whole_before_its_repeat():
    guard = Guard("What planet is Doctor Who from?", ["The Doctor is from Gallifrey."], ["a.md"])
    shown = feed_all(guard, AFTER_A_TITLE)
    assert guard.problem == LOOP
    assert shown == AFTER_A_TITLE[: AFTER_A_TITLE.index(" The planet is")]
    assert ends_with_abbreviation("by its creator, Dr.")
    assert not ends_with_abbreviation("not actually a planet.")


@pytest.mark.parametrize("answer", EMPHASIS)
def test_a_few_words_said_again_are_no_loop(answer: str):
    assert not is_loop(answer)


def test_a_paste_is_stopped_before_its_sentence_ends():
    source = (
        "On the other hand, in the late 1980s the Western Atlantic ctenophore Mnemiopsis leidyi "
        "was accidentally introduced into the Black Sea and Sea of Azov via the ballast tanks of "
        "ships, and has been blamed for causing sharp drops in fish catches by eating both fish "
        "larvae and small crustaceans that would otherwise feed the adult fish."
    )
    guard = Guard("How did Mnemiopsis reach the Black Sea?", [source, "Keepers eat at seven."],
                  ["a.md", "b.md"])  # fmt: skip
    fed = 0
    for word in source.split():
        assert guard.feed(word + " ") == ""
        fed += 1
        if guard.stopped:
            break
    assert guard.problem == PASTED and fed == PASTE_WORDS < len(source.split())
    assert guard.finish() == ("", PASTED) and guard.answer == ""


def test_an_answer_ends_where_the_model_starts_a_question_of_its_own():
    # SmolLM2-135M's answer to an amazon question, as it wrote it: the prompt's shape continued.
    answer = "The person purchased this a few months ago. First, the machine constantly clogs."
    written = (
        f"{answer}\n\nQuestion: How many times has the person purchased this product?\n"
        "Answer in one or two sentences and cite the excerpt like [1]."
    )
    source = (
        "We purchased this a few months ago. Since we purchased it, it has been a terrible "
        "product. First, the machine constantly clogs."
    )
    guard = Guard("How many times has the person purchased the product?", [source], ["a.md"])
    shown = feed_all(guard, written)
    assert guard.stopped and guard.problem is None
    assert shown == guard.answer == answer  # what was shown is the answer, nothing after it


def test_a_question_inside_the_answer_is_not_a_new_turn():
    answer = "The form asks one Question: whether the lens was cleaned [1]."
    guard = Guard("What does the form ask?", [answer], ["a.md"])
    assert feed_all(guard, answer) == answer and not guard.stopped


def test_a_sentence_is_shown_without_the_whitespace_after_it():
    # The whitespace goes out with what follows: what was shown is always the start of the
    # answer, so a citation added after the last shown sentence joins it as in the answer.
    source = "The keeper signs every entry in the log book at the end of each watch."
    guard = Guard("Who signs the log book?", [source], ["a.md"])
    assert guard.feed("The keeper signs every entry [1].\n") == "The keeper signs every entry [1]."
    assert guard.feed("He signs at the end of each watch [1].") == ""
    assert guard.finish() == ("\nHe signs at the end of each watch [1].", None)


def test_an_answer_ends_where_the_model_writes_an_excerpt_of_its_own():
    # SmolLM2-135M's answer to an amazon question with three excerpts, as it wrote it.
    answer = "The size of the thermos is 16 ounces, which is a bit larger than the standard one."
    written = f"{answer}\n\n[4] The thermos is a new type of insulated metal beverage container."
    sources = ["The thermos holds 16 ounces, a bit larger than the standard size.",
               "A standard thermos.", "The lid is tight."]  # fmt: skip
    guard = Guard("What is the size of the thermos?", sources, ["a.md", "b.md", "c.md"])
    assert feed_all(guard, written) == guard.answer == answer and guard.stopped


def test_a_line_that_starts_with_a_shown_excerpts_number_is_kept():
    answer = "The lens is cleaned every Tuesday.\n[2] says it is done with distilled water."
    sources = ["The lens is cleaned every Tuesday.", "Use distilled water on the lens."]
    guard = Guard("How is the lens cleaned?", sources, ["a.md", "b.md"])
    assert feed_all(guard, answer) == answer and not guard.stopped
