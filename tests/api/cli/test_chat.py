"""`archivist chat` driven by Textual's own headless driver (pilot) at 80×24, over a real data
folder: the service answering through a scripted model that streams word by word, a model
that is down, and a running server; and the command itself in a pseudo-terminal."""

import asyncio
import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import DataTable, Input, ListView, Static

from api.cli.chat_app import ChatApp, PlaceItem, SessionItem
from api.cli.chat_data import ChatData
from api.cli.client import ServerClient
from api.service import Archivist, Settings
from generation.backend import Message, Sampling
from tests.api.cli.test_ask_cli import ARCHIVIST
from tests.api.server.live import live_server
from tests.fixtures import make_pdf
from tests.llm_servers import free_port
from tests.scripted_backend import ScriptedBackend

MANUAL_PAGES = [
    "Harbor Point Lighthouse. Keeper's manual. Contents: the lamp, the lens, the fog signal.",
    "Lens care. The lens is cleaned every fourteen days with a soft cloth and alcohol.",
]
REPLY = "The lens is cleaned every fourteen days [1]. A soft cloth and alcohol are used [1]."
FIRST_SENTENCE_WORDS = 8  # the answer is shown a sentence at a time, each checked first
SIZE = (80, 24)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder whose inbox holds the two-page manual, a note and a PDF that fails."""
    data = tmp_path_factory.mktemp("data")
    inbox = data / "inbox"
    inbox.mkdir()
    make_pdf(inbox / "manual.pdf", MANUAL_PAGES)
    (inbox / "bell.md").write_text("# Bell\n\nThe Vellmar bell weighs 300 kg.\n")
    (inbox / "broken.pdf").write_bytes(b"%PDF-1.7\nnot a PDF after all\n")
    with Archivist(Settings(data=data, workers=1, llm="none")) as service:
        outcome = service.ingest([inbox])
    assert outcome.report.summary()["ingested"] == 2 and outcome.index_error is None
    return data


class HalfwayBackend(ScriptedBackend):
    """Streams the first words of its reply, then waits for `go_on` before the rest."""

    def __init__(self, reply: str, words_first: int) -> None:
        super().__init__(reply)
        self.words_first = words_first
        self.halfway = threading.Event()
        self.go_on = threading.Event()

    def stream(self, messages: list[Message], sampling: Sampling) -> Iterator[str]:
        words = list(super().stream(messages, sampling))
        yield from words[: self.words_first]
        self.halfway.set()
        self.go_on.wait(60)
        yield from words[self.words_first :]


def drive(app: ChatApp, steps: Callable[[Pilot[None]], Awaitable[None]]) -> None:
    """Run the app headless at 80×24 and take `steps` in it."""

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await steps(pilot)

    asyncio.run(run())


async def until(
    pilot: Pilot[None], check: Callable[[], Any], what: str, timeout: float = 60
) -> Any:
    """Let the app run until `check()` is true; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        await pilot.pause(0.05)
    return value


async def ask(pilot: Pilot[None], question: str) -> None:
    pilot.app.query_one("#question", Input).value = question
    await pilot.press("enter")


def text(widget: Widget) -> str:
    return str(widget.render())


def turns(app: ChatApp) -> list[str]:
    return [text(turn) for turn in app.query("#conversation Static").results(Static)]


def listed(app: ChatApp, selector: str) -> list[str]:
    view = app.query_one(selector, ListView)
    return [item.place.where() for item in view.query(PlaceItem).results(PlaceItem)]


def on_screen(app: ChatApp, selector: str) -> bool:
    region = app.query_one(selector).region
    return (
        region.width > 0
        and region.height > 0
        and region.right <= SIZE[0]
        and (region.bottom <= SIZE[1])
    )


def test_an_answer_streams_in_and_its_sources_are_listed_with_file_and_page(data: Path) -> None:
    backend = HalfwayBackend(REPLY, words_first=FIRST_SENTENCE_WORDS + 1)
    settings = Settings(data=data, workers=1)
    with Archivist(settings, backend=backend) as service:
        app = ChatApp(ChatData(settings, service))

        async def steps(pilot: Pilot[None]) -> None:
            for pane in ("#where", "#conversation", "#sources", "#question", "#progress"):
                assert on_screen(app, pane), f"{pane} is not visible at 80×24"
            await ask(pilot, "How often is the lens cleaned?")
            await until(pilot, backend.halfway.is_set, "the model has written half its answer")
            await until(pilot, lambda: "days" in turns(app)[-1], "the first sentence is shown")
            assert turns(app)[0] == "You: How often is the lens cleaned?"
            assert (
                turns(app)[1].strip() == "Archivist: The lens is cleaned every fourteen days [1]."
            )
            assert listed(app, "#sources") == []  # sources come with the whole answer
            backend.go_on.set()
            await until(pilot, lambda: listed(app, "#sources"), "the sources are listed")
            assert turns(app)[-1] == f"Archivist: {REPLY}"
            assert listed(app, "#sources") == ["manual.pdf, page 2"]
            assert "fourteen days" in str(app.query_one(PlaceItem).query_one("Label").render())
            assert f"conversation {app.session_id}" in text(app.query_one("#where"))

        drive(app, steps)


def test_a_follow_up_stays_in_the_conversation(data: Path) -> None:
    backend = ScriptedBackend(REPLY)
    settings = Settings(data=data, workers=1)
    with Archivist(settings, backend=backend) as service:
        app = ChatApp(ChatData(settings, service))
        sessions: list[str | None] = []

        async def steps(pilot: Pilot[None]) -> None:
            for question in ("How often is the lens cleaned?", "And with what?"):
                await ask(pilot, question)
                await until(pilot, lambda: not app.asking, "the answer is complete")
                sessions.append(app.session_id)
            assert len(turns(app)) == 4

        drive(app, steps)
        assert sessions[0] is not None and sessions == [sessions[0]] * 2
        follow_up = " ".join(m["content"] for m in backend.requests[1][0])
        assert "How often is the lens cleaned?" in follow_up  # the first turn came along
        history = service.sessions.history(sessions[0])
        assert [t.question for t in history] == ["How often is the lens cleaned?", "And with what?"]


def test_a_model_that_is_down_is_shown_with_its_reason_and_the_chat_goes_on(data: Path) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    settings = Settings(data=data, workers=1, llm="ollama", ollama_url=down)
    with Archivist(settings) as service:
        app = ChatApp(ChatData(settings, service))

        async def steps(pilot: Pilot[None]) -> None:
            await ask(pilot, "How often is the lens cleaned?")
            await until(pilot, lambda: not app.asking, "the failure is shown")
            reply = turns(app)[-1]
            assert reply.startswith("Archivist: could not answer. backend-unavailable: ")
            assert down in reply
            await ask(pilot, "Still down?")  # the chat takes the next question
            await until(pilot, lambda: len(turns(app)) == 4 and not app.asking, "a second try")

        drive(app, steps)


def test_search_documents_and_sessions_tabs(data: Path, tmp_path: Path) -> None:
    settings = Settings(data=data, workers=1)
    with Archivist(settings, backend=ScriptedBackend(REPLY)) as service:
        app = ChatApp(ChatData(settings, service))

        async def steps(pilot: Pilot[None]) -> None:
            await ask(pilot, "How often is the lens cleaned?")
            await until(pilot, lambda: not app.asking, "the answer is complete")
            first_session = app.session_id
            await pilot.press("f3")
            assert app.focused is app.query_one("#query")
            app.query_one("#query", Input).value = "Vellmar bell weight"
            await pilot.press("enter")
            hits = await until(pilot, lambda: listed(app, "#hits"), "passages are found")
            assert hits[0] == "bell.md — Bell"

            await pilot.press("f4")
            table = app.query_one(DataTable)
            await until(pilot, lambda: table.row_count == 3, "the three documents are listed")
            rows = {table.get_row_at(i)[0]: table.get_row_at(i) for i in range(3)}
            assert rows["manual.pdf"] == ["manual.pdf", "ingested", "2", "2", ""]
            assert rows["broken.pdf"][1:4] == ["failed", "", "0"]
            assert rows["broken.pdf"][4].startswith("corrupt: broken.pdf: damaged or not a PDF")

            await pilot.press("ctrl+n")
            assert app.session_id is None and turns(app) == []
            await pilot.press("f5")
            chosen = await until(
                pilot, lambda: list(app.query(SessionItem).results(SessionItem)), "sessions shown"
            )
            assert chosen[0].summary.session_id == first_session
            assert "1 question · How often is the lens cleaned?" in text(
                chosen[0].query_one("Label")
            )
            await pilot.press("enter")
            await until(pilot, lambda: len(turns(app)) == 2, "the conversation is taken up")
            assert app.session_id == first_session
            assert turns(app)[-1] == f"Archivist: {REPLY}"

        drive(app, steps)


def test_ctrl_o_opens_the_cited_pdf_at_its_page(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = tmp_path / "opened.txt"
    opener = tmp_path / "opener"
    opener.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    opener.chmod(0o755)
    monkeypatch.setenv("BROWSER", str(opener))
    settings = Settings(data=data, workers=1)
    with Archivist(settings, backend=ScriptedBackend(REPLY)) as service:
        app = ChatApp(ChatData(settings, service))

        async def steps(pilot: Pilot[None]) -> None:
            await ask(pilot, "How often is the lens cleaned?")
            await until(pilot, lambda: listed(app, "#sources"), "the sources are listed")
            app.query_one("#sources", ListView).focus()
            await pilot.press("ctrl+o")
            await until(pilot, opened.exists, "the opener ran")

        drive(app, steps)
    assert opened.read_text() == (data / "inbox" / "manual.pdf").resolve().as_uri() + "#page=2"


def test_over_a_running_server_the_status_line_shows_its_watcher(
    data: Path, tmp_path: Path
) -> None:
    settings = Settings(data=data, workers=1)
    with (
        live_server(settings, backend=ScriptedBackend(REPLY)) as live,
        ServerClient(live.url, None) as client,
    ):
        app = ChatApp(ChatData(settings, client))

        async def steps(pilot: Pilot[None]) -> None:
            assert text(app.query_one("#where")).startswith(f"server {live.url}")
            line = await until(
                pilot,
                lambda: (
                    "inbox watched" in text(app.query_one("#progress"))
                    and text(app.query_one("#progress"))
                ),
                "the server's watcher is shown",
            )
            assert line.startswith("2 documents, 1 failed")
            await ask(pilot, "How often is the lens cleaned?")
            await until(pilot, lambda: listed(app, "#sources"), "the sources are listed")
            assert listed(app, "#sources") == ["manual.pdf, page 2"]
            await pilot.press("f5")  # the server's conversations, through GET /sessions
            chosen = await until(
                pilot, lambda: list(app.query(SessionItem).results(SessionItem)), "sessions shown"
            )
            assert chosen[0].summary.session_id == app.session_id

        drive(app, steps)
        assert app.session_id is not None
        history = client.sessions.history(app.session_id)
        assert [(t.question, t.answer) for t in history] == [
            ("How often is the lens cleaned?", REPLY)
        ]
        assert client.sessions.history("no-such-session") == []


class Terminal:
    """A program in a pseudo-terminal of 80×24, its screen output read as text."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the program
            os.execve(argv[0], argv, env)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", *reversed(SIZE), 0, 0)[:8])
        self.output = b""

    def text(self) -> str:
        """What it printed, without the terminal's control sequences."""
        plain = re.sub(rb"\x1b\[[0-9;?<>=]*[a-zA-Z~]|\x1b\][^\x07]*\x07|\x1b[()=>][A-Z0-9]?", b"",
                       self.output)  # fmt: skip
        return plain.decode("utf-8", "replace")

    def wait_for(self, words: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while words not in self.text():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{words!r} did not appear in {timeout} s: {self.text()[-800:]}"
                )
            if select.select([self.fd], [], [], 0.2)[0]:
                self.output += os.read(self.fd, 1 << 16)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def exit_code(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if select.select([self.fd], [], [], 0.2)[0]:
                with contextlib.suppress(OSError):  # the program closed the terminal
                    self.output += os.read(self.fd, 1 << 16)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError(f"the program did not exit in {timeout} s")

    def close(self) -> None:
        """Kill the program if it still runs (a failed test leaves nothing running)."""
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            if os.waitpid(self.pid, os.WNOHANG) == (0, 0):
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_archivist_chat_answers_in_a_terminal_watches_the_inbox_and_quits_on_ctrl_q(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    make_pdf(data / "inbox" / "manual.pdf", MANUAL_PAGES)
    env = {**os.environ, "ARCHIVIST_DATA": str(data), "ARCHIVIST_LLM": "none", "TERM": "xterm"}
    terminal = Terminal([ARCHIVIST, "chat"], env)
    try:
        terminal.wait_for("1 document · inbox watched")  # ingested by the chat's own watcher
        terminal.type(b"How often is the lens cleaned?\r")
        # What fits on one line of the screen (the program redraws line by line).
        terminal.wait_for("Archivist: “The lens is")  # quoted: no model answers here
        terminal.wait_for("[1] manual.pdf, page 2")
        terminal.type(b"\x11")  # Ctrl+Q
        assert terminal.exit_code() == 0
    finally:
        terminal.close()
