"""`archivist mcp`: the documents as tools and resources for other assistants (MCP).

Search and ask go through `connect()`, so a running `archivist serve` answers them (with the
API key) and the stores are opened here only when no server runs. Documents and passages are
read from the data folder's SQLite store, which a running server shares safely with readers.
A failure the service anticipated comes back as a tool error with its reason, never a traceback.
"""

import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError
from pydantic import BaseModel, ConfigDict, Field

from api.cli.client import ServerClient, connect, document_store, file_link
from api.service import (
    USER_ERRORS,
    Archivist,
    AskOptions,
    Citation,
    Filters,
    SearchHit,
    Settings,
    display_name,
)
from ingest.store import ChunkStore, DocumentRecord, StoredChunk

Service = Archivist | ServerClient
_T = TypeVar("_T")
_INSTRUCTIONS = (
    "Archivist answers from the user's own documents, privately, on this machine. Use `search` "
    "to find passages (each names its file, page and section), `get_passage` to read one with "
    "its neighbours, `ask` for a cited answer, and cite the file and page you rely on."
)


class SearchFilters(BaseModel):
    """Restrict the passages to some documents."""

    model_config = ConfigDict(extra="forbid")

    path_glob: str | None = Field(None, description="A glob over the file's path: *manual*")
    file_type: str | None = Field(None, description="pdf, md, docx, …")
    document: int | None = Field(None, ge=1, description="A document id from list_documents.")

    def filters(self) -> Filters:
        file_type = self.file_type and self.file_type.lstrip(".").lower()
        return Filters(path_glob=self.path_glob, file_type=file_type, document=self.document)


def make_server(settings: Settings, service: Service) -> MCPServer:
    """The MCP server over `service` (the Archivist itself, or a running server's client)."""
    server = MCPServer("archivist", instructions=_INSTRUCTIONS, log_level="WARNING")
    tools = _Tools(settings, service)
    for tool in (tools.search, tools.ask, tools.list_documents, tools.get_passage):
        server.add_tool(tool)
    server.resource(
        "archivist://documents", name="documents", mime_type="application/json",
        description="Every document: id, name, path, status, pages and chunks.",
    )(lambda: tools.list_documents(limit=1000))  # fmt: skip
    server.resource(
        "archivist://documents/{document_id}", name="document", mime_type="text/plain",
        description="A document's text as it was ingested, with its page numbers.",
    )(tools.document_text)  # fmt: skip
    return server


class _Tools:
    """The tools and resources, over one service and data folder."""

    def __init__(self, settings: Settings, service: Service) -> None:
        self.settings = settings
        self.service = service

    def search(
        self,
        query: str,
        k: Annotated[int, Field(ge=1, le=50)] = 5,
        mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
        filters: SearchFilters | None = None,
    ) -> dict[str, Any]:
        """Find the passages of the user's documents that best match a query, best first; each
        names its file, page and section and carries a chunk_id for get_passage."""
        found = _user_errors(lambda: self.service.search(
            query, k=k, mode=mode, filters=filters.filters() if filters else None
        ))  # fmt: skip
        with self._store() as store:
            hits = [self._hit(store, hit) for hit in found]
        return {"hits": hits, "missing_legs": found.missing_legs}

    def ask(self, question: str, session: str | None = None) -> dict[str, Any]:
        """Answer a question from the user's documents, citing file and page. Pass the returned
        session back as `session` to ask a follow-up in the same conversation."""
        options = AskOptions(session_id=session, start_session=session is None)
        answer = _user_errors(lambda: self.service.ask(question, options))
        with self._store() as store:
            citations = [self._citation(store, citation) for citation in answer.citations]
        return {
            "answer": answer.answer,
            "citations": citations,
            "session": answer.session_id,
            "backend": answer.backend,
            "extractive": answer.extractive,
            "note": answer.note,
        }

    def list_documents(
        self,
        status: Literal["ingested", "failed"] | None = None,
        offset: Annotated[int, Field(ge=0)] = 0,
        limit: Annotated[int, Field(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """The documents Archivist holds, by path: id, name, status, pages and chunks."""
        with self._store() as store:
            page, total = store.documents_page(status=status, offset=offset, limit=limit)
        return {"documents": [self._document(r) for r in page], "total": total}

    def get_passage(
        self, chunk_id: str, neighbours: Annotated[int, Field(ge=0, le=5)] = 1
    ) -> dict[str, Any]:
        """One passage by its chunk_id (from search or ask), with the passages just before
        and after it in its document."""
        with self._store() as store:
            found = store.chunks([chunk_id])
            if not found:
                raise ToolError(
                    f"not-found: no passage {chunk_id!r} — take a chunk_id from search or ask"
                )
            chunk = found[0]
            first = max(0, chunk.ordinal - neighbours)
            around = store.chunks_of(chunk.sha256, first, chunk.ordinal + neighbours)
            path = self._path_of(store, chunk)
            passages = {c.ordinal: self._passage(store, c, path) for c in around}
        return {
            "passage": passages[chunk.ordinal],
            "before": [p for n, p in passages.items() if n < chunk.ordinal],
            "after": [p for n, p in passages.items() if n > chunk.ordinal],
        }

    def document_text(self, document_id: str) -> str:
        """A document's chunks in order, each under its page (the document resource)."""
        with self._store() as store:
            record = store.document_by_id(int(document_id)) if document_id.isdigit() else None
            if record is None:
                raise ResourceNotFoundError(
                    f"no document {document_id} — see archivist://documents"
                )
            parts = [f"# {display_name(record.path, self.settings.inbox)}"]
            for chunk in store.chunks_of(record.sha256):
                parts.append(f"[{_where(chunk.page_start, chunk.heading_path)}]\n{chunk.text}")
        return "\n\n".join(parts)

    # What each result says

    def _hit(self, store: ChunkStore, hit: SearchHit) -> dict[str, Any]:
        return {
            "chunk_id": hit.chunk_id,
            **self._file(store, hit.path, hit.page_start),
            "page_end": hit.page_end,
            "section": " > ".join(hit.section) or None,
            "score": round(hit.score, 4),
            "text": hit.text,
        }

    def _citation(self, store: ChunkStore, citation: Citation) -> dict[str, Any]:
        return {
            "n": citation.n,
            "chunk_id": citation.chunk_id,
            **self._file(store, citation.path, citation.page),
            "section": citation.section,
            "snippet": citation.snippet,
        }

    def _passage(self, store: ChunkStore, chunk: StoredChunk, path: str | None) -> dict[str, Any]:
        place = self._file(store, path, chunk.page_start) if path else {"page": chunk.page_start}
        return {
            "chunk_id": chunk.id,
            **place,
            "page_end": chunk.page_end,
            "section": " > ".join(chunk.heading_path) or None,
            "text": chunk.text,
        }

    def _file(self, store: ChunkStore, path: str, page: int | None) -> dict[str, Any]:
        """File, name, page, a link to the file (at its page) and the document's resource."""
        record = store.document(path)
        return {
            "file": path,
            "name": display_name(path, self.settings.inbox),
            "page": page,
            "link": file_link(path, page),
            "document": record.id if record else None,
            "document_uri": f"archivist://documents/{record.id}" if record else None,
        }

    def _document(self, record: DocumentRecord) -> dict[str, Any]:
        return {
            "id": record.id,
            "name": display_name(record.path, self.settings.inbox),
            "file": record.path,
            "status": record.status,
            "error": record.error,
            "pages": record.page_count,
            "chunks": record.chunk_count,
            "link": file_link(record.path, None),
            "uri": f"archivist://documents/{record.id}",
        }

    def _path_of(self, store: ChunkStore, chunk: StoredChunk) -> str | None:
        paths = store.paths_of([chunk.sha256]).get(chunk.sha256)
        return paths[0] if paths else None

    @contextmanager
    def _store(self) -> Iterator[ChunkStore]:
        """The data folder's SQLite store; a failure to open it becomes a tool error."""
        try:
            with document_store(self.settings, self.service) as store:
                yield store
        except USER_ERRORS as error:
            raise _tool_error(error) from None


def _user_errors(call: Callable[[], _T]) -> _T:
    """The call's result; an error the service anticipated becomes a tool error, reason first."""
    try:
        return call()
    except USER_ERRORS as error:
        raise _tool_error(error) from None


def _tool_error(error: Exception) -> ToolError:
    """An error the service anticipated, as a tool error: its reason first."""
    return ToolError(f"{getattr(error, 'reason', 'error')}: {error}")


def _where(page: int | None, section: tuple[str, ...]) -> str:
    where = f"page {page}" if page is not None else "no page"
    return where + (f" — {' > '.join(section)}" if section else "")


def serve_mcp(settings: Settings, port: int | None = None) -> None:
    """Serve MCP on stdio until the client closes it, or on streamable HTTP at `port`
    (loopback only) until Ctrl+C, SIGINT or SIGTERM."""
    with connect(settings) as service:
        server = make_server(settings, service)
        if port is None:
            server.run()
            return
        # uvicorn stops gracefully on either signal and then raises it again: as
        # KeyboardInterrupt here, so that the service is closed (its index locks released).
        handlers = {s: signal.signal(s, _interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
        print(f"Serving MCP at http://127.0.0.1:{port}/mcp (Ctrl+C to stop)", file=sys.stderr)
        try:
            server.run("streamable-http", host="127.0.0.1", port=port)
        except KeyboardInterrupt:
            pass
        finally:
            for signum, handler in handlers.items():
                signal.signal(signum, handler)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt
