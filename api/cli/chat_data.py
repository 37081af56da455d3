"""What `archivist chat` shows and asks: from the service itself, or from a running server.

Questions and searches go to the service (or the server, with the API key) as the other
commands send them; documents are read from the data folder's SQLite store, which a running
server shares safely with readers. Nothing here knows the screen: chat_app.py draws it.
"""

import os
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.cli.client import ServerClient, document_store, file_link
from api.service import (
    Answer,
    Archivist,
    AskOptions,
    BackgroundIngest,
    SessionSummary,
    Settings,
    display_name,
)
from generation.prompt import Turn


@dataclass(frozen=True)
class Place:
    """A passage as the chat lists it: where it is, and a few words of it."""

    name: str  # the file as the user knows it (relative to the inbox when it lies there)
    path: str
    page: int | None
    section: str | None
    snippet: str
    n: int | None = None  # the number an answer cites it by

    def where(self) -> str:
        """ "name, page N — section"."""
        where = self.name + (f", page {self.page}" if self.page is not None else "")
        return where + (f" — {self.section}" if self.section else "")


@dataclass(frozen=True)
class DocumentRow:
    """A document as the documents list shows it."""

    name: str
    status: str  # ingested or failed
    pages: int | None
    chunks: int
    problem: str  # for a failed one: its reason and error


class ChatData:
    """The chat's questions, searches, documents, conversations and ingest progress.

    Args:
        settings: the data folder's settings.
        service: the service itself, or a running server's client (see `connect`).
        background: the watcher's ingestion when this process runs it (its progress is shown).
    """

    def __init__(
        self,
        settings: Settings,
        service: Archivist | ServerClient,
        background: BackgroundIngest | None = None,
    ) -> None:
        self.settings = settings
        self.service = service
        self.background = background

    def where(self) -> str:
        """What answers: the server's address, or the data folder."""
        if isinstance(self.service, ServerClient):
            return f"server {self.service.url}"
        return f"data folder {self.settings.data}"

    def ask(self, question: str, session_id: str | None, on_token: Callable[[str], None]) -> Answer:
        """The cited answer, streamed to `on_token`; `session_id` None starts a conversation."""
        options = AskOptions(session_id=session_id, start_session=session_id is None)
        return self.service.ask(question, options, on_token=on_token)

    def search(self, query: str, k: int = 10) -> list[Place]:
        """The best passages for `query`."""
        hits = self.service.search(query, k=k)
        return [
            Place(self._name(h.path), h.path, h.page_start, " > ".join(h.section) or None,
                  h.snippet or h.text[:200])
            for h in hits
        ]  # fmt: skip

    def citations(self, answer: Answer) -> list[Place]:
        """The sources an answer cites, numbered as in its text."""
        return [
            Place(self._name(c.path), c.path, c.page, c.section, c.snippet, c.n)
            for c in answer.citations
        ]

    def documents(self, limit: int = 1000) -> list[DocumentRow]:
        """Every document by path (the first `limit`), failed ones with their reason."""
        with document_store(self.settings, self.service) as store:
            records, _ = store.documents_page(status=None, offset=0, limit=limit)
        return [
            DocumentRow(
                self._name(r.path), r.status, r.page_count, r.chunk_count,
                f"{r.reason}: {r.error}" if r.status == "failed" else "",
            )
            for r in records
        ]  # fmt: skip

    def history(self, session_id: str) -> list[Turn]:
        """A conversation's turns, oldest first."""
        return self.service.sessions.history(session_id, limit=1000)

    def recent_sessions(self, limit: int = 50) -> list[SessionSummary]:
        """The conversations last added to, latest first."""
        return self.service.sessions.recent(limit)

    def progress(self) -> str:
        """One line: what the store holds, the index work waiting, and the ingestion at hand
        (read every two seconds: from here, the store's counts alone, not the whole status,
        which counts the indexes and reads the model's header too)."""
        if isinstance(self.service, ServerClient):
            status = self.service.status()
            ingest = status.get("ingest")
        else:
            status = self.service.store.summary()
            ingest = self.background.progress() if self.background else None
        documents = status["documents"]
        line = f"{documents['ingested']} document" + ("" if documents["ingested"] == 1 else "s")
        if documents["failed"]:
            line += f", {documents['failed']} failed"
        if status.get("pending_index_work"):
            line += f" · {status['pending_index_work']} passages to index"
        return line + " · " + _ingesting(ingest)

    def _name(self, path: str) -> str:
        return display_name(path, self.settings.inbox)


def _ingesting(progress: dict[str, Any] | None) -> str:
    """The watcher's work in a few words."""
    if progress is None:
        return "not watching the inbox"
    if progress["state"] != "working":
        line = "inbox watched, nothing to do"
    elif progress["current"]:
        line = f"ingesting {progress['current']} ({progress['done']} of {progress['total']})"
    else:
        line = "scanning the inbox"
    for long_file in progress.get("converting", []):
        line += f", {long_file['path']} page {long_file['page']}/{long_file['pages']}"
    if progress["pending"]:
        line += f", {len(progress['pending'])} waiting"
    if progress.get("last_error"):
        line += f" · last failure: {progress['last_error']}"
    return line


def open_at_page(path: str, page: int | None) -> str:
    """Open a file with $BROWSER or the system's opener (xdg-open, open), a PDF at its page (a
    file:// link with #page=N, which browsers and most PDF viewers honour), detached from this
    terminal. Returns what was opened; raises OSError with the reason."""
    file = Path(path)
    if not file.exists():
        raise OSError(f"{path} is not there any more")
    target = str(file_link(str(file.resolve()), page))
    opener = os.environ.get("BROWSER") or ("open" if sys.platform == "darwin" else "xdg-open")
    command = shlex.split(opener)
    if not command or shutil.which(command[0]) is None:
        raise OSError(f"no program here opens files ({opener!r}): install it, or set $BROWSER")
    opening = subprocess.Popen(
        [*command, target], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    threading.Thread(target=opening.wait, daemon=True).start()  # reaped when it exits
    return target
