"""Request bodies of the HTTP API, and the JSON shapes shared by its endpoints."""

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Path as PathParameter
from pydantic import BaseModel, ConfigDict, Field

from api.service import Answer, AskOptions, Citation, Filters, SearchHit, display_name
from generation.prompt import Turn
from ingest.store import ChunkStore, DocumentRecord

# SQLite's integers are 64-bit: a larger id or offset is refused here, not overflowed there.
INT64_MAX = 2**63 - 1
DocumentId = Annotated[
    int, PathParameter(ge=1, le=INT64_MAX, description="A document id from GET /documents.")
]


class FiltersBody(BaseModel):
    """Restrict the passages to some documents."""

    model_config = ConfigDict(extra="forbid")

    path_glob: str | None = Field(None, examples=["*manual*"])
    file_type: str | None = Field(None, examples=["pdf"])
    document: int | None = Field(
        None, ge=1, le=INT64_MAX, description="A document id from GET /documents."
    )

    def filters(self) -> Filters:
        file_type = self.file_type and self.file_type.lstrip(".").lower()
        return Filters(path_glob=self.path_glob, file_type=file_type, document=self.document)


class Sampling(BaseModel):
    """Per-question model options; unset ones take the server's ARCHIVIST_* settings."""

    model: str | None = Field(None, description="Another model of the configured backend.")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k_sampling: int | None = Field(None, ge=1, le=2**31 - 1)
    seed: int | None = Field(None, ge=-(2**63), le=INT64_MAX)
    max_tokens: int | None = Field(None, ge=1, le=8192)


class AskBody(Sampling):
    """A question, and how to answer it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"question": "How often is the lighthouse lens cleaned?"},
                {"question": "And who does it?", "session_id": "3f2a9c1e0b7d4a55", "stream": True},
            ]
        },
    )

    # No min_length: the service refuses an empty or blank question with the usual error body.
    question: str = Field(..., max_length=4000)
    session_id: str | None = Field(None, description="Continue this conversation.")
    start_session: bool = Field(
        True, description="Without a session_id, start a new session (its id comes back)."
    )
    top_k: int | None = Field(None, ge=1, le=50, description="Passages to retrieve.")
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid"
    filters: FiltersBody | None = None
    stream: bool = Field(False, description="Server-sent events: token, citations, done.")
    extractive: bool = Field(
        False, description="Quote the sentences that answer best instead of asking the model."
    )

    def options(self) -> AskOptions:
        return AskOptions(
            session_id=self.session_id,
            start_session=self.start_session,
            sources=self.top_k,
            mode=self.mode,
            filters=self.filters.filters() if self.filters else None,
            model=self.model,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k_sampling=self.top_k_sampling,
            seed=self.seed,
            max_tokens=self.max_tokens,
            extractive=self.extractive,
        )


class ChatMessage(BaseModel):
    """One message of an OpenAI chat request (text content, or a list of text parts)."""

    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(str(part.get("text", "")) for part in self.content)
        return self.content or ""


class ChatBody(Sampling):
    """The OpenAI chat-completions request, as far as Archivist uses it."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "model": "archivist",
                    "messages": [{"role": "user", "content": "When is the lens cleaned?"}],
                    "stream": False,
                }
            ]
        },
    )

    model: str = Field("archivist", examples=["archivist"])  # type: ignore[assignment]
    messages: list[ChatMessage] = Field(..., min_length=1)
    stream: bool = False
    max_completion_tokens: int | None = Field(None, ge=1, le=8192)

    def question_and_history(self) -> tuple[str, tuple[Turn, ...]]:
        """The last user message, and the earlier user/assistant pairs before it."""
        turns: list[Turn] = []
        question: str | None = None
        for message in self.messages:
            if message.role == "user":
                question = message.text()
            elif message.role == "assistant" and question is not None:
                turns.append(Turn(question, message.text()))
                question = None
        return question or "", tuple(turns)

    def options(self, history: tuple[Turn, ...]) -> AskOptions:
        return AskOptions(
            history=history,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k_sampling=self.top_k_sampling,
            seed=self.seed,
            max_tokens=self.max_completion_tokens or self.max_tokens,
        )


# Shapes of the responses (plain dicts: FastAPI serializes them as they are)


def file_url(document_id: int | None, page: int | None) -> str | None:
    """Where the page can open the original file, at a page when there is one."""
    if document_id is None:
        return None
    return f"/documents/{document_id}/file" + (f"#page={page}" if page else "")


def document_json(record: DocumentRecord, inbox: Path, *, indexed: bool) -> dict[str, Any]:
    """One document as GET /documents lists it; `indexed`: searchable (not waiting in the
    index queue)."""
    return {
        "id": record.id,
        "name": display_name(record.path, inbox),
        "path": record.path,
        "file_type": record.file_type,
        "status": record.status,
        "indexed": record.status == "ingested" and indexed,
        "reason": record.reason,
        "error": record.error,
        "chunks": record.chunk_count,
        "pages": record.page_count,
        "pages_without_text": record.pages_without_text,
        "ocr_pages": record.ocr_pages,
        "low_confidence_pages": [int(n) for n in record.low_confidence_pages.split()],
        "size": record.size,
        "updated_at": record.updated_at,
        "url": file_url(record.id, None),
    }


class Locator:
    """Document ids and display names for the paths that hits and citations carry."""

    def __init__(self, store: ChunkStore, inbox: Path) -> None:
        self.store = store
        self.inbox = inbox
        self._ids: dict[str, int | None] = {}

    def document_id(self, path: str) -> int | None:
        if path not in self._ids:
            record = self.store.document(path)
            self._ids[path] = record.id if record else None
        return self._ids[path]

    def citation(self, citation: Citation) -> dict[str, Any]:
        document_id = self.document_id(citation.path)
        return {
            "n": citation.n,
            "path": citation.path,
            "name": display_name(citation.path, self.inbox),
            "document_id": document_id,
            "page": citation.page,
            "section": citation.section,
            "chunk_id": citation.chunk_id,
            "snippet": citation.snippet,
            "url": file_url(document_id, citation.page),
        }

    def answer(self, answer: Answer) -> dict[str, Any]:
        data = answer.to_json()
        data["citations"] = [self.citation(c) for c in answer.citations]
        return data

    def hit(self, hit: SearchHit, explain: bool) -> dict[str, Any]:
        document_id = self.document_id(hit.path)
        data: dict[str, Any] = {
            "chunk_id": hit.chunk_id,
            "path": hit.path,
            "name": display_name(hit.path, self.inbox),
            "document_id": document_id,
            "page_start": hit.page_start,
            "page_end": hit.page_end,
            "section": " > ".join(hit.section) or None,
            "score": round(hit.score, 6),
            "snippet": hit.snippet,
            "text": hit.text,
            "url": file_url(document_id, hit.page_start),
        }
        if explain:
            data["legs"] = {
                leg: {"rank": rank, "score": round(score, 6)}
                for leg, (rank, score) in hit.legs.items()
            }
        return data
