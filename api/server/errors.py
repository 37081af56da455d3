"""Every error the HTTP API answers, in one body: `{"detail": "...", "reason": "..."}`.

Service errors, the API's own problems, FastAPI's validation errors and Starlette's HTTP errors
(a malformed multipart body, an unknown route) all get it; under /v1 the body also carries
OpenAI's `{"error": {...}}`, which its clients show. A body never repeats the request back.
"""

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from api.server.common import HTTPProblem, reason_for
from api.service import USER_ERRORS, BadRequest, ConfigError, ReplicaOnly
from generation.errors import GenerationError, PromptTooLong, QueueFull
from ingest.errors import StoreError
from retrieval.errors import RetrievalError

# Service errors by status code; the first matching class wins. A question too long for the
# model is the caller's to fix; any other generation failure is the model server's (down,
# slow, failing), so the API is unavailable for questions until it recovers.
_STATUS: list[tuple[type[BaseException] | tuple[type[BaseException], ...], int]] = [
    (ReplicaOnly, 409),  # asked of a replica what only the writer does: ask the writer
    (QueueFull, 429),
    (PromptTooLong, 400),
    (GenerationError, 503),
    ((ConfigError, StoreError, RetrievalError), 503),
    (BadRequest, 400),
]
_SHOWN_ERRORS = 3  # validation errors spelled out in `detail` (all are listed in `errors`)


class ErrorBody(BaseModel):
    """What every error response holds (for the OpenAPI schema)."""

    detail: str
    reason: str
    errors: list[dict[str, Any]] | None = None  # 422: each invalid part (loc, msg, type)


# In the schema in place of FastAPI's own 422 body, which this API never sends.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ErrorBody, "description": "The request is not valid: `detail` says why."}
}


def status_for(error: BaseException) -> int:
    """The HTTP status of a service error (400 for bad input, 429 busy, 503 unavailable)."""
    for kinds, code in _STATUS:
        if isinstance(error, kinds):
            return code
    return 400


def error_body(request: Request, detail: str, reason: str) -> dict[str, Any]:
    """`{"detail", "reason"}`; under /v1 also OpenAI's `{"error": {...}}` that its clients show."""
    body: dict[str, Any] = {"detail": detail, "reason": reason}
    if request.url.path.startswith("/v1/"):
        body["error"] = {"message": detail, "type": reason, "code": reason}
    return body


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error with the one error body."""

    async def problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPProblem)
        body = error_body(request, error.detail, error.reason)
        return JSONResponse(body, error.status, headers=error.headers)

    async def service_error(request: Request, error: Exception) -> JSONResponse:
        code = status_for(error)
        headers = {"Retry-After": "1"} if code == 429 else None
        body = error_body(request, str(error), getattr(error, "reason", "error"))
        return JSONResponse(body, code, headers=headers)

    async def invalid(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        errors = [_plain(e) for e in error.errors()]
        body = error_body(request, _describe(errors), "invalid") | {"errors": errors}
        return JSONResponse(body, 422)

    async def http_error(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        body = error_body(request, str(error.detail), reason_for(error.status_code))
        return JSONResponse(body, error.status_code, headers=error.headers)

    async def internal(request: Request, error: Exception) -> JSONResponse:
        # Logged with its traceback by the server; the client gets the body, not the trace.
        detail = f"the server failed on this request ({type(error).__name__}) — see its log"
        return JSONResponse(error_body(request, detail, "internal"), 500)

    app.add_exception_handler(HTTPProblem, problem)
    for kind in USER_ERRORS:
        app.add_exception_handler(kind, service_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, internal)


def _plain(error: Any) -> dict[str, Any]:
    """A validation error without the input it refused (which may be huge, or not JSON: NaN,
    a lone surrogate) or its context; a JSON syntax error keeps what the parser said."""
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    if error.get("type") == "json_invalid":  # the parser's own words
        message = str(error.get("ctx", {}).get("error", message))
    location = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
    return {"loc": location, "msg": message, "type": str(error.get("type", ""))}


def _describe(errors: Sequence[dict[str, Any]]) -> str:
    """The first few errors in words: "body field question: String should have at most …"."""
    if not errors:
        return "the request is not valid"
    parts = [f"{_where(e['loc'], e['type'])}: {e['msg']}" for e in errors[:_SHOWN_ERRORS]]
    more = len(errors) - _SHOWN_ERRORS
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _where(location: list[Any], kind: str) -> str:
    if kind == "json_invalid":  # ("body", character offset)
        return f"the body is not valid JSON at character {location[-1]}"
    place = {"body": "body field", "query": "query parameter", "path": "path parameter"}
    source, *names = location or ["request"]
    if not names:
        return f"the {source}"
    return f"{place.get(source, str(source))} {'.'.join(str(n) for n in names)}"
