"""POST /ask, GET /search, GET /sessions (and /sessions/{id}) and the OpenAI chat API (model
"archivist")."""

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.server.common import HTTPProblem, Running, running
from api.server.models import INT64_MAX, AskBody, ChatBody, FiltersBody, Locator
from api.server.streaming import sse, start_answer
from api.service import Answer, check_session_id

router = APIRouter()
MODEL_NAME = "archivist"
_EVENT_STREAM = "text/event-stream"


def _locator(state: Running) -> Locator:
    return Locator(state.service.store, state.inbox)


@router.post(
    "/ask",
    tags=["answers"],
    responses={
        200: {
            "description": "The answer (JSON), or server-sent events `token`, `citations`, "
            "`done` (the whole answer) and `error` when streaming.",
            "content": {_EVENT_STREAM: {}},
        },
        429: {"description": "The model's queue is full: retry shortly."},
        503: {"description": "No model can answer now (unreachable, missing, timed out)."},
    },
)
async def ask(
    body: AskBody,
    request: Request,
    state: Running = Depends(running),  # noqa: B008
) -> Any:
    """Answer a question from the documents, citing file, page and section.

    Send `"stream": true` (or `Accept: text/event-stream`) to receive the answer as it is
    written. Every answer carries its session id: send it back to ask a follow-up.
    """
    streaming = body.stream or _EVENT_STREAM in request.headers.get("accept", "")
    options = body.options()
    if not streaming:
        answer = await run_in_threadpool(state.service.ask, body.question, options)
        return _locator(state).answer(answer)
    events = await start_answer(state.service, body.question, options)
    return StreamingResponse(_ask_events(events, _locator(state)), media_type=_EVENT_STREAM)


async def _ask_events(
    events: AsyncIterator[tuple[str, Any]], locator: Locator
) -> AsyncIterator[str]:
    try:
        async for kind, value in events:
            if kind == "token":
                yield sse("token", {"text": value})
            else:
                data = locator.answer(value)
                citations = {
                    "citations": data["citations"],
                    "unknown_citations": data["unknown_citations"],
                }
                yield sse("citations", citations)
                yield sse("done", data)
    except Exception as error:  # after the first token the status line is sent: report in-band
        yield sse("error", {"detail": str(error), "reason": getattr(error, "reason", "error")})


@router.get("/search", tags=["answers"])
def search(
    # No min_length: the service refuses an empty or blank query with the usual error body.
    q: str = Query(..., max_length=4000, description="What to look for."),
    k: int | None = Query(None, ge=1, le=1000, description="Results (default ARCHIVIST_SEARCH_K)."),
    mode: Literal["hybrid", "bm25", "dense"] = "hybrid",
    explain: bool = Query(
        False,
        description="Each leg's rank and score, and the document's rank and score factor.",
    ),
    path_glob: str | None = Query(None, examples=["*manual*"]),
    file_type: str | None = Query(None, examples=["pdf"]),
    document: int | None = Query(None, ge=1, le=INT64_MAX, description="A document id."),
    state: Running = Depends(running),  # noqa: B008
) -> dict[str, Any]:
    """The best passages for a query: file, page, section, score (and each leg's rank)."""
    filters = FiltersBody(path_glob=path_glob, file_type=file_type, document=document).filters()
    hits = state.service.search(q, k=k or state.settings.search_k, mode=mode, filters=filters)
    locator = _locator(state)
    return {"hits": [locator.hit(hit, explain) for hit in hits], "missing_legs": hits.missing_legs}


@router.get("/sessions", tags=["answers"])
def sessions(
    limit: int = Query(20, ge=1, le=1000),
    state: Running = Depends(running),  # noqa: B008
) -> dict[str, Any]:
    """The conversations last added to, latest first: id, first question, turns, last time."""
    return {"sessions": [vars(s) for s in state.service.sessions.recent(limit)]}


@router.get("/sessions/{session_id}", tags=["answers"])
def session(session_id: str, state: Running = Depends(running)) -> dict[str, Any]:  # noqa: B008
    """The turns of a conversation, oldest first."""
    turns = state.service.sessions.history(check_session_id(session_id), limit=1000)
    if not turns:
        raise HTTPProblem(404, f"no session {session_id!r}")
    return {"session_id": session_id, "turns": [vars(t) for t in turns]}


# The OpenAI chat API: chat front-ends and scripts that speak it can use Archivist as a model.


@router.get("/v1/models", tags=["openai"])
def models() -> dict[str, Any]:
    """The one model this server offers."""
    return {
        "object": "list",
        "data": [{"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "archivist"}],
    }


@router.post("/v1/chat/completions", tags=["openai"])
async def chat_completions(
    body: ChatBody,
    state: Running = Depends(running),  # noqa: B008
) -> Any:
    """OpenAI chat completions with model `archivist`: the last user message is answered from
    the documents; earlier messages are the conversation; sources are listed at the end."""
    if body.model != MODEL_NAME:
        raise HTTPProblem(
            404, f"model {body.model[:80]!r} does not exist here — use {MODEL_NAME!r}"
        )
    question, history = body.question_and_history()
    options = body.options(history)
    reply_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if not body.stream:
        answer = await run_in_threadpool(state.service.ask, question, options)
        locator = _locator(state)
        return {
            "id": reply_id,
            "object": "chat.completion",
            "created": created,
            "model": MODEL_NAME,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _with_sources(answer)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 0,
                "completion_tokens": answer.tokens,
                "total_tokens": answer.tokens,
            },  # fmt: skip
            "citations": [locator.citation(c) for c in answer.citations],
        }
    events = await start_answer(state.service, question, options)
    chunks = _chat_chunks(events, reply_id, created, _locator(state))
    return StreamingResponse(chunks, media_type=_EVENT_STREAM)


async def _chat_chunks(
    events: AsyncIterator[tuple[str, Any]], reply_id: str, created: int, locator: Locator
) -> AsyncIterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        data = {
            "id": reply_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL_NAME,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        async for kind, value in events:
            if kind == "token":
                yield chunk({"content": value})
                continue
            answer: Answer = value
            full = _with_sources(answer)
            tail = full[len(answer.answer) :] if answer.tokens else full  # tokens were sent
            citations = [locator.citation(c) for c in answer.citations]
            yield chunk({"content": tail} if tail else {}, "stop", citations=citations)
    except Exception as error:  # the status line is sent: report in-band, as OpenAI does
        failure = {"message": str(error), "type": getattr(error, "reason", "error")}
        yield f"data: {json.dumps({'error': failure})}\n\n"
    yield "data: [DONE]\n\n"


def _with_sources(answer: Answer) -> str:
    """The answer text followed by the sources it cites, for clients that show only text."""
    if not answer.citations:
        return answer.answer
    lines = [f"[{c.n}] {c.place(name_only=True)}" for c in answer.citations]
    return answer.answer + "\n\nSources:\n" + "\n".join(lines)
