"""`archivist chat`: a conversation with the documents in the terminal, keyboard only.

Four tabs under a line that says what answers (a running server, or this data folder) and
which conversation this is; a status line (documents, index work, the watcher's ingestion)
and the keys above the bottom edge. Everything reads in 80×24 without colour: turns begin
with "You:" and "Archivist:", sources with their number as the answer cites them.

- Chat (F2): the conversation, the answer streaming in as it is written, beside the sources
  it cites (file, page, section, the words quoted). Enter asks; a follow-up stays in the
  conversation; Ctrl+N starts a new one.
- Search (F3): passages for a query, best first, without asking the model.
- Documents (F4): every document with its status, pages and passages; failed ones with why.
- Sessions (F5): earlier conversations, latest first; Enter takes one up again.

Ctrl+O opens the highlighted source or passage with the system's opener (a PDF at its page);
Tab moves between the panes; Ctrl+Q quits.
"""

import logging
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TypeVar

from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import (
    DataTable,
    Footer,
    Input,
    Label,
    ListItem,
    ListView,
    Static,
    TabbedContent,
    TabPane,
)

from api.cli.chat_data import ChatData, DocumentRow, Place, open_at_page
from api.cli.client import connect
from api.cli.watch import watching
from api.service import USER_ERRORS, Answer, Archivist, SessionSummary, Settings
from generation.prompt import Turn

_T = TypeVar("_T")
_PROGRESS_EVERY_S = 2.0
_SNIPPET_CHARS = 160  # a passage's first words in a list: three or four sources fit beside


class PlaceItem(ListItem):
    """A source or passage in a list: where it is, then its words."""

    def __init__(self, place: Place) -> None:
        number = f"[{place.n}] " if place.n is not None else ""
        words = _shortened(place.snippet, _SNIPPET_CHARS)
        super().__init__(Label(f"{number}{place.where()}\n  {words}", markup=False))
        self.place = place


class SessionItem(ListItem):
    """An earlier conversation: when, how long, how it began."""

    def __init__(self, summary: SessionSummary) -> None:
        when = summary.last_at.replace("T", " ")[:16]
        turns = f"{summary.turns} question" + ("s" if summary.turns > 1 else "")
        super().__init__(Label(f"{when} · {turns} · {summary.first_question}", markup=False))
        self.summary = summary


class ChatApp(App[None]):
    """The terminal chat over `data`; `session_id` continues an earlier conversation."""

    TITLE = "Archivist"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #where { height: 1; padding: 0 1; }
    TabbedContent, TabbedContent > ContentSwitcher, TabPane, TabPane > Horizontal {
        height: 1fr;
    }
    TabPane { padding: 0; }
    #conversation { width: 3fr; border: round $foreground 50%; padding: 0 1; }
    #sources { width: 2fr; min-width: 26; border: round $foreground 50%; }
    #hits, #session-list { border: round $foreground 50%; }
    ListItem.-highlight > Label, DataTable > .datatable--cursor { text-style: reverse; }
    #question, #query { dock: bottom; }
    #progress { height: 1; padding: 0 1; }
    .turn { margin-bottom: 1; }
    PlaceItem, SessionItem { padding: 0 1; }
    PlaceItem Label, SessionItem Label { width: 100%; }
    """
    BINDINGS = [
        Binding("f2", "show('chat')", "Chat"),
        Binding("f3", "show('search')", "Search"),
        Binding("f4", "show('documents')", "Documents"),
        Binding("f5", "show('sessions')", "Sessions"),
        Binding("ctrl+n", "new_conversation", "New"),
        Binding("ctrl+o", "open_place", "Open"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, data: ChatData, session_id: str | None = None) -> None:
        super().__init__()
        self.data = data
        self.session_id = session_id
        self.asking = False

    def compose(self) -> ComposeResult:
        yield Static(id="where", markup=False)
        with TabbedContent(initial="chat"):
            with TabPane("Chat", id="chat"):
                with Horizontal():
                    yield VerticalScroll(id="conversation")
                    yield ListView(id="sources")
                yield Input(placeholder="Ask a question and press Enter", id="question")
            with TabPane("Search", id="search"):
                yield ListView(id="hits")
                yield Input(placeholder="Search the documents and press Enter", id="query")
            with TabPane("Documents", id="documents"):
                yield DataTable(id="document-table", cursor_type="row", zebra_stripes=False)
            with TabPane("Sessions", id="sessions"):
                yield ListView(id="session-list")
        yield Static("…", id="progress", markup=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#conversation").border_title = "Conversation"
        self.query_one("#sources").border_title = "Sources"
        self.query_one(DataTable).add_columns("Document", "Status", "Pages", "Passages", "Why")
        self._show_where()
        if self.session_id:
            self._load_session(self.session_id)
        self.query_one("#question", Input).focus()
        self._refresh_progress()
        self.set_interval(_PROGRESS_EVERY_S, self._refresh_progress)

    # Asking

    @on(Input.Submitted, "#question")
    def ask(self, event: Input.Submitted) -> None:
        question = event.value.strip()
        if not question:
            return
        if self.asking:
            self.notify("An answer is still being written: wait for it.", severity="warning")
            return
        event.input.clear()
        self.asking = True
        conversation = self.query_one("#conversation", VerticalScroll)
        reply = _turn("Archivist: …")
        conversation.mount_all([_turn(f"You: {question}"), reply])
        conversation.scroll_end(animate=False)
        self._answer(question, reply)

    @work(thread=True, group="ask")
    def _answer(self, question: str, reply: Static) -> None:
        written: list[str] = []

        def on_token(piece: str) -> None:
            written.append(piece)
            self.call_from_thread(self._write, reply, "".join(written))

        try:
            answer = self.data.ask(question, self.session_id, on_token)
        except USER_ERRORS as error:
            self.call_from_thread(self._failed, reply, error)
        else:
            self._on_screen(self._answered, reply, answer)

    def _write(self, reply: Static, text: str) -> None:
        reply.update(f"Archivist: {text}")
        self.query_one("#conversation", VerticalScroll).scroll_end(animate=False)

    async def _answered(self, reply: Static, answer: Answer) -> None:
        self.asking = False
        text = answer.answer + (f"\n({answer.note})" if answer.note else "")
        self._write(reply, text)
        self.session_id = answer.session_id
        self._show_where()
        await self._list(self.query_one("#sources", ListView), self.data.citations(answer))
        for leg, problem in answer.missing_legs.items():
            self.notify(f"Searched without the {leg} leg: {problem}", severity="warning")

    def _failed(self, reply: Static, error: Exception) -> None:
        self.asking = False
        self._write(reply, f"could not answer. {_reason(error)}")

    def action_new_conversation(self) -> None:
        self._start_conversation(None)
        self.action_show("chat")

    def _start_conversation(self, session_id: str | None) -> VerticalScroll:
        """An empty conversation pane (and no sources) for `session_id` (None: a new one)."""
        self.session_id = session_id
        self._show_where()
        conversation = self.query_one("#conversation", VerticalScroll)
        conversation.remove_children()
        self.query_one("#sources", ListView).clear()
        return conversation

    # Searching

    @on(Input.Submitted, "#query")
    def search(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self._search(event.value.strip())

    @work(thread=True, exclusive=True, group="search")
    def _search(self, query: str) -> None:
        places = self._fetch(lambda: self.data.search(query))
        if places is not None:
            self._on_screen(self._found, query, places)

    async def _found(self, query: str, places: list[Place]) -> None:
        hits = self.query_one("#hits", ListView)
        hits.border_title = f"{len(places)} passages for {query!r}"
        await self._list(hits, places)

    # Documents and sessions, read when their tab is shown

    @on(TabbedContent.TabActivated)
    def _tab_shown(self, event: TabbedContent.TabActivated) -> None:
        pane = event.pane.id
        if pane == "documents":
            self._read_documents()
        elif pane == "sessions":
            self._read_sessions()
        focus = {"chat": "#question", "search": "#query", "documents": "#document-table"}
        self.query_one(focus.get(pane or "", "#session-list")).focus()

    @work(thread=True, exclusive=True, group="documents")
    def _read_documents(self) -> None:
        rows = self._fetch(self.data.documents)
        if rows is not None:
            self.call_from_thread(self._show_documents, rows)

    def _show_documents(self, rows: list[DocumentRow]) -> None:
        table = self.query_one(DataTable)
        table.clear()
        for row in rows:
            pages = "" if row.pages is None else str(row.pages)
            table.add_row(row.name, row.status, pages, str(row.chunks), row.problem)

    @work(thread=True, exclusive=True, group="sessions")
    def _read_sessions(self) -> None:
        sessions = self._fetch(self.data.recent_sessions)
        if sessions is not None:
            self._on_screen(self._show_sessions, sessions)

    async def _show_sessions(self, sessions: list[SessionSummary]) -> None:
        listed = self.query_one("#session-list", ListView)
        listed.border_title = "Earlier conversations (Enter takes one up)"
        await self._fill(listed, [SessionItem(summary) for summary in sessions])

    @on(ListView.Selected, "#session-list")
    def _session_chosen(self, event: ListView.Selected) -> None:
        if isinstance(event.item, SessionItem):
            self._load_session(event.item.summary.session_id)
            self.action_show("chat")

    @work(thread=True, exclusive=True, group="history")
    def _load_session(self, session_id: str) -> None:
        turns = self._fetch(lambda: self.data.history(session_id))
        if turns is not None:
            self.call_from_thread(self._show_history, session_id, turns)

    def _show_history(self, session_id: str, turns: list[Turn]) -> None:
        conversation = self._start_conversation(session_id)
        for turn in turns:
            conversation.mount_all([_turn(f"You: {turn.question}"),
                                    _turn(f"Archivist: {turn.answer}")])  # fmt: skip
        conversation.scroll_end(animate=False)
        if not turns:
            self.notify(f"No conversation {session_id!r} yet: the next question starts it.")

    # Opening a source, moving around, the lines above and below

    @on(ListView.Selected, "#sources, #hits")
    def _place_chosen(self, event: ListView.Selected) -> None:
        self.action_open_place()

    def action_open_place(self) -> None:
        focused = self.focused if isinstance(self.focused, ListView) else None
        lists = [focused] if focused else [self.query_one("#sources", ListView)]
        item = next((v.highlighted_child for v in lists if v.highlighted_child), None)
        if not isinstance(item, PlaceItem):
            self.notify("Choose a source or passage first (Tab, then the arrow keys).")
            return
        try:
            open_at_page(item.place.path, item.place.page)
        except OSError as error:
            self.notify(f"Cannot open {item.place.name}: {error}", severity="error")
            return
        self.notify(f"Opened {item.place.where()}")

    def action_show(self, tab: str) -> None:
        """Show a tab; shown already, read its documents or sessions again."""
        tabs = self.query_one(TabbedContent)
        if tabs.active != tab:
            tabs.active = tab
        elif tab == "documents":
            self._read_documents()
        elif tab == "sessions":
            self._read_sessions()

    async def _list(self, listed: ListView, places: list[Place]) -> None:
        await self._fill(listed, [PlaceItem(place) for place in places])

    async def _fill(self, listed: ListView, items: list[ListItem]) -> None:
        """Put `items` in the list, the first highlighted."""
        await listed.clear()
        await listed.extend(items)
        listed.index = 0 if items else None

    def _show_where(self) -> None:
        conversation = f"conversation {self.session_id}" if self.session_id else "new conversation"
        self.query_one("#where", Static).update(f"{self.data.where()} · {conversation}")

    @work(thread=True, exclusive=True, group="progress")
    def _refresh_progress(self) -> None:
        try:
            line = self.data.progress()
        except USER_ERRORS as error:
            line = f"Status unavailable: {_reason(error)}"
        self.call_from_thread(self.query_one("#progress", Static).update, line)

    def _fetch(self, read: Callable[[], _T]) -> _T | None:
        """`read()`, in a worker thread; a failure the service anticipated is shown with its
        reason instead (and None returned)."""
        try:
            return read()
        except USER_ERRORS as error:
            self.call_from_thread(self.notify, _reason(error), severity="error")
            return None

    def _on_screen(self, show: Callable[..., Awaitable[None]], *args: Any) -> None:
        """Run `show(*args)`, a coroutine that changes the screen, from a worker thread."""
        # mypy solves Textual's `T | Awaitable[T]` as Never for a coroutine function.
        self.call_from_thread(show, *args)  # type: ignore[arg-type]

    def show_logged(self, message: str) -> None:
        """A message the service logged for people, as a notification (from any thread)."""
        if threading.current_thread() is threading.main_thread():
            self.notify(message, severity="warning")
        else:
            self.call_from_thread(self.notify, message, severity="warning")


def _turn(text: str) -> Static:
    """One turn of the conversation: "You: …" or "Archivist: …"."""
    return Static(text, classes="turn", markup=False)


def _shortened(text: str, most: int) -> str:
    """`text` cut at a word before `most` characters, with an ellipsis when cut."""
    text = " ".join(text.split())
    return text if len(text) <= most else text[:most].rsplit(" ", 1)[0] + " …"


def _reason(error: Exception) -> str:
    """An anticipated error as the user reads it: its reason code, then what to do."""
    reason = getattr(error, "reason", None)
    return f"{reason}: {error}" if reason else str(error)


class _ToApp(logging.Handler):
    def __init__(self, app: ChatApp) -> None:
        super().__init__(logging.WARNING)
        self.app = app

    def emit(self, record: logging.LogRecord) -> None:
        self.app.show_logged(record.getMessage())


@contextmanager
def _logged_to(app: ChatApp) -> Iterator[None]:
    """What the service logs for people goes to the app's notifications, not over the screen."""
    root = logging.getLogger()
    others = [h for h in root.handlers if h.level <= logging.WARNING]
    handler = _ToApp(app)
    for other in others:
        root.removeHandler(other)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for other in others:
            root.addHandler(other)


def run_chat(settings: Settings, session_id: str | None, *, watch: bool) -> None:
    """The chat until Ctrl+Q: over a running server when there is one, else over the data
    folder, whose inbox it watches (`watch`) as the server would."""
    with connect(settings) as service:
        inbox = settings.inbox.resolve()
        if isinstance(service, Archivist) and watch:
            service.pool.start_server()  # before the screen takes stderr over: see start_server
        with (
            watching(service, inbox) if isinstance(service, Archivist) and watch else nullcontext()
        ) as background:
            app = ChatApp(ChatData(settings, service, background), session_id)
            with _logged_to(app):
                app.run()
