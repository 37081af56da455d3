"""The sample handbook's questions, asked as a new user asks them after `make run`: the repo's
own data/inbox served by the real app, answered by the default embedded model through /ask.
Each must come back as a sentence or two that says the answer and cites the right page; before
the prompt was redesigned, two of these four came back as labels in a loop and a pasted
passage, and one as a refusal."""

import re
import shutil
from pathlib import Path

import pytest

from api.service import Settings
from tests.api.server.live import Live, live_server

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "inbox"
HANDBOOK = "harbor-point-lighthouse-handbook.pdf"

# question, words one of which the answer says, pages the cited passage may be on
QUESTIONS = [
    ("How often is the lighthouse lens cleaned?", {"tuesday"}, {2}),
    ("When do keeper shifts change over?", {"sunday", "sundays", "18:00"}, {1}),
    ("Who has to sign the log book, and when?", {"sign", "signed", "signs"}, {2, 4}),
    ("What should the keeper write in the log book?", {"ink", "entry", "wind", "time"}, {2, 3}),
]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("handbook") / "data"
    shutil.copytree(SAMPLES, data / "inbox")
    with live_server(Settings(data=data), ready_s=300) as served:
        yield served


def test_the_handbook_questions_get_short_cited_answers(live: Live) -> None:
    quoted = []
    for question, words, pages in QUESTIONS:
        body = {"question": question, "temperature": 0, "seed": 0}
        answer = live.http.post("/ask", json=body).json()
        text = answer["answer"]
        assert answer["backend"] == "llamacpp", answer
        said = set(re.findall(r"[\w:]+", text.lower()))
        assert said & words, text
        assert len(re.findall(r"[.!?](?:\s|$)", text)) <= 3, text  # a sentence or two
        assert "harbor-point" not in text.lower() and "page" not in said, text  # no labels
        cited = {(c["name"], c["page"]) for c in answer["citations"]}
        assert cited & {(HANDBOOK, page) for page in pages}, (text, cited)
        if answer["extractive"]:  # the model's tries were rejected: quoted, and said why
            assert answer["rejected"] and answer["note"], answer
            quoted.append(question)
    # The model itself answers most of them (the 0.5B says "every 90 days" for the lens: the
    # motor's greasing, in another passage; that answer is rejected and quoted instead).
    assert len(quoted) <= 1, quoted
