"""The CLI's way to a running `archivist serve`: found through a file in the state folder.

The embedded dense index can be open in one process only, so while a server runs, `ingest`,
`status`, `search`, `ask` and `batch` send their work to it instead of opening the stores.
`ServerClient` offers the same operations as the service, with the same return types.
"""

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from api.service import (
    Answer,
    Archivist,
    AskOptions,
    BadRequest,
    Citation,
    ConfigError,
    Filters,
    IngestOutcome,
    Mode,
    SearchHit,
    SearchHits,
    ServerError,
    SessionSummary,
    Settings,
    check_session_id,
    running_server,
)
from generation.errors import QueueFull
from generation.prompt import Turn
from ingest.ingester import FileResult, IngestReport
from ingest.store import ChunkStore


def connect(settings: Settings) -> "Archivist | ServerClient":
    """The running server's client when there is one, else the service itself."""
    url = running_server(settings)
    return ServerClient(url, settings.api_key) if url else Archivist(settings)


class ServerClient:
    """The service's operations, carried out by a running server."""

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url = url
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        # No read timeout: answers and ingestion take as long as they take.
        self._http = httpx.Client(
            base_url=url, headers=headers, timeout=httpx.Timeout(10.0, read=None)
        )

    def __enter__(self) -> "ServerClient":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._http.close()

    def ingest(
        self,
        paths: Sequence[Path],
        *,
        force: bool = False,
        on_start: Callable[[int], None] | None = None,
        on_file: Callable[[FileResult], None] | None = None,
        **_: Any,
    ) -> IngestOutcome:
        """Have the server ingest these paths (it indexes them too), and report each file."""
        body = {"paths": [str(p.resolve()) for p in paths], "force": force}
        report = IngestReport.from_json(self._call("POST", "/ingest", json=body))
        if on_start:
            on_start(len(report.files))
        for result in report.files:
            if on_file:
                on_file(result)
        return IngestOutcome(report, None)

    def status(self, *, deep: bool = False) -> dict[str, Any]:
        """The server's `/status`."""
        status: dict[str, Any] = self._call("GET", "/status?deep=true" if deep else "/status")
        status["server"] = self.url
        return status

    def search(
        self, query: str, *, k: int, mode: Mode = "hybrid", filters: Filters | None = None
    ) -> SearchHits:
        """The server's search results."""
        params: dict[str, Any] = {"q": query, "k": k, "mode": mode, "explain": True}
        if filters:
            params.update({n: v for n, v in vars(filters).items() if v is not None})
        found = self._call("GET", "/search", params=params)
        return SearchHits(map(_hit, found["hits"]), found.get("missing_legs"))

    def ask(
        self,
        question: str,
        options: AskOptions | None = None,
        *,
        on_token: Callable[[str], None] | None = None,
    ) -> Answer:
        """The server's answer; tokens are passed to `on_token` as they arrive."""
        body = _ask_body(question, options or AskOptions(), stream=on_token is not None)
        if on_token is None:
            return _answer(self._call("POST", "/ask", json=body))
        with self._http.stream("POST", "/ask", json=body) as response:
            if response.status_code != 200:
                response.read()
                raise _error(response)
            for event, data in _events(response.iter_lines()):
                if event == "token":
                    on_token(data["text"])
                elif event == "done":
                    return _answer(data)
                elif event == "error":
                    raise ServerError(data["detail"], data.get("reason"))
        raise ServerError(f"the server at {self.url} ended the answer early")

    @property
    def sessions(self) -> "ServerSessions":
        """The server's conversations, read as the service's SessionStore reads them."""
        return ServerSessions(self)

    def _call(self, method: str, path: str, *, missing_ok: bool = False, **kwargs: Any) -> Any:
        """The JSON the server answers (None for a 404 when `missing_ok`)."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise ServerError(f"the server at {self.url} did not answer: {error}") from None
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise _error(response)
        return response.json()


class ServerSessions:
    """`history` and `recent` of the service's SessionStore, from a running server."""

    def __init__(self, client: ServerClient) -> None:
        self._client = client

    def history(self, session_id: str, limit: int = 20) -> list[Turn]:
        """The session's last `limit` turns, oldest first (none for an unknown id)."""
        path = f"/sessions/{check_session_id(session_id)}"
        found = self._client._call("GET", path, missing_ok=True) or {"turns": []}
        return [Turn(t["question"], t["answer"]) for t in found["turns"][-limit:]]

    def recent(self, limit: int = 20) -> list[SessionSummary]:
        """The conversations last added to, latest first."""
        found = self._client._call("GET", "/sessions", params={"limit": limit})
        return [SessionSummary(**summary) for summary in found["sessions"]]


@contextmanager
def document_store(settings: Settings, service: "Archivist | ServerClient") -> Iterator[ChunkStore]:
    """The data folder's SQLite store, to read documents and passages: the service's own, or
    (beside a running server, which shares it safely with readers) one opened here."""
    if isinstance(service, Archivist):
        yield service.store
        return
    store = ChunkStore(settings.database)
    try:
        yield store
    finally:
        store.close()


def file_link(path: str, page: int | None) -> str | None:
    """A file:// link to a stored path (None for a relative one), at the page for a PDF (as
    browsers and PDF viewers open it)."""
    file = Path(path)
    if not file.is_absolute():
        return None
    at = f"#page={page}" if page is not None and file.suffix.lower() == ".pdf" else ""
    return file.as_uri() + at


def _error(response: httpx.Response) -> Exception:
    try:
        body = response.json()
        detail, reason = str(body.get("detail")), body.get("reason")
    except ValueError:
        detail, reason = response.text[:500], None
    if response.status_code == 429:
        return QueueFull(detail)
    if response.status_code == 401:
        return ConfigError(f"{detail} (set ARCHIVIST_API_KEY for this command)")
    if response.status_code in (400, 422):
        return BadRequest(detail)
    return ServerError(f"the server answered {response.status_code}: {detail}", reason)


def _events(lines: Iterator[str]) -> Iterator[tuple[str, Any]]:
    """Server-sent events as (event, parsed JSON data)."""
    event, data = "message", ""
    for line in lines:
        if not line:
            if data:
                yield event, json.loads(data)
            event, data = "message", ""
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def _ask_body(question: str, options: AskOptions, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "question": question,
        "session_id": options.session_id,
        "start_session": options.start_session,
        "top_k": options.sources,
        "mode": options.mode,
        "model": options.model,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k_sampling": options.top_k_sampling,
        "seed": options.seed,
        "max_tokens": options.max_tokens,
        "extractive": options.extractive or None,
        "stream": stream,
    }
    if options.filters:
        body["filters"] = {k: v for k, v in vars(options.filters).items() if v is not None}
    return {k: v for k, v in body.items() if v is not None}


def _answer(data: dict[str, Any]) -> Answer:
    fields = Citation.__dataclass_fields__
    citations = [Citation(**{k: v for k, v in c.items() if k in fields}) for c in data["citations"]]
    names = Answer.__dataclass_fields__
    return Answer(**{**{k: v for k, v in data.items() if k in names}, "citations": citations})


def _hit(item: dict[str, Any]) -> SearchHit:
    legs = {leg: (v["rank"], v["score"]) for leg, v in (item.get("legs") or {}).items()}
    section = tuple(item["section"].split(" > ")) if item.get("section") else ()
    return SearchHit(
        item["chunk_id"], item["path"], item["page_start"], item["page_end"], section,
        item["score"], item["text"], item["snippet"], legs,
    )  # fmt: skip
