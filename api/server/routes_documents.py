"""Documents: list, read, download the original, upload into the inbox, delete, ingest paths."""

import hashlib
import os
import unicodedata
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.server.common import HTTPProblem, Running, running
from api.server.models import INT64_MAX, DocumentId, display_name, document_json
from api.service import BadRequest
from ingest.ingester import is_temporary
from ingest.store import DocumentRecord

router = APIRouter(tags=["documents"])
_MAX_NAME_BYTES = 255
_MAX_FILES = 100
_COPY_BLOCK = 1 << 20


@router.get("/documents")
def list_documents(
    status: Literal["ingested", "failed"] | None = None,
    offset: int = Query(0, ge=0, le=INT64_MAX),
    limit: int = Query(50, ge=1, le=1000),
    state: Running = Depends(running),  # noqa: B008
) -> dict[str, Any]:
    """Documents by path, a page at a time: status, error, chunk and page counts."""
    store = state.service.store
    page, total = store.documents_page(status=status, offset=offset, limit=limit)
    waiting = store.awaiting_index(record.sha256 for record in page)
    return {
        "documents": [
            document_json(record, state.inbox, indexed=record.sha256 not in waiting)
            for record in page
        ],
        "total": total,
        "offset": offset,
        "limit": limit,
    }


@router.get("/documents/{document_id}")
def get_document(document_id: DocumentId, state: Running = Depends(running)) -> dict[str, Any]:  # noqa: B008
    """One document."""
    record = _record(state, document_id)
    waiting = state.service.store.awaiting_index([record.sha256])
    return document_json(record, state.inbox, indexed=record.sha256 not in waiting)


@router.get("/documents/{document_id}/file", response_class=FileResponse)
def get_file(document_id: DocumentId, state: Running = Depends(running)) -> FileResponse:  # noqa: B008
    """The original file, shown inline (a PDF opens at `#page=N`)."""
    record = _record(state, document_id)
    if not os.path.isfile(record.path):
        raise HTTPProblem(404, f"{display_name(record.path, state.inbox)} is no longer on disk")
    return FileResponse(
        record.path, filename=Path(record.path).name, content_disposition_type="inline"
    )


@router.delete("/documents/{document_id}", status_code=202)
def delete_document(document_id: DocumentId, state: Running = Depends(running)) -> dict[str, Any]:  # noqa: B008
    """Remove the file from the inbox and the document from every store (in the background).

    A document ingested from outside the inbox is forgotten; its file is left where it is."""
    record = _record(state, document_id)
    path = Path(record.path)
    if path.is_relative_to(state.inbox):
        path.unlink(missing_ok=True)
    state.background.submit(forget=[path])
    return {"name": display_name(record.path, state.inbox), "path": record.path, "status": "queued"}


_UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}}
                    },
                }
            }
        },
    }
}


@router.post("/documents", status_code=202, openapi_extra=_UPLOAD_SCHEMA)
async def upload(request: Request, state: Running = Depends(running)) -> dict[str, Any]:  # noqa: B008
    """Save uploaded files (multipart field `files`) into the inbox; they are ingested in the
    background: poll GET /documents. Names are reduced to a plain file name; an existing
    file is never overwritten (the upload gets a numbered name); identical content already
    in the inbox is refused with 409."""
    await run_in_threadpool(state.service.check_writable, "uploading documents")
    limit = state.settings.max_file_mb * 2**20
    declared = int(request.headers.get("content-length") or 0)
    if declared > limit * _MAX_FILES:
        raise _too_large(state)
    async with request.form(max_files=_MAX_FILES, max_fields=10) as form:
        uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
        if not uploads:
            raise HTTPProblem(422, "send one or more files in the multipart field 'files'")
        staged: list[_Staged] = []
        try:
            for upload in uploads:
                staged.append(await _stage(upload, state, limit))
            await run_in_threadpool(_refuse_duplicates, staged, state)
            saved = [_place(item, state.inbox) for item in staged]
        finally:
            for item in staged:
                item.temporary.unlink(missing_ok=True)
    state.background.submit(touched=saved)
    accepted = [{"name": display_name(str(p), state.inbox), "path": str(p), "status": "queued"}
                for p in saved]  # fmt: skip
    return {"accepted": accepted}


class IngestBody(BaseModel):
    """Files and folders on the server's machine to ingest now (what `archivist ingest` sends
    when a server is running)."""

    paths: list[str] = Field(..., min_length=1)
    force: bool = False


@router.post("/ingest")
def ingest(body: IngestBody, state: Running = Depends(running)) -> dict[str, Any]:  # noqa: B008
    """Ingest files and folders by path, wait for it, and report each file."""
    paths = [Path(p) for p in body.paths]
    missing = [str(p) for p in paths if not _exists(p)]
    if missing:
        raise BadRequest(f"no such file or folder: {', '.join(missing)}")
    outcome = state.service.ingest(paths, force=body.force, optimize=False)
    return outcome.report.to_json()


def _exists(path: Path) -> bool:
    """Whether `path` exists; BadRequest when it cannot be looked up (a name too long)."""
    try:
        return path.exists()
    except OSError as error:
        raise BadRequest(f"{str(path)[:80]}…: {error.strerror}") from None


# Uploads


def safe_name(filename: str | None) -> str:
    """A plain file name from what the client sent, or BadRequest.

    Directory parts (either slash) are dropped, so `../../etc/passwd` saves as `passwd` inside
    the inbox; NUL and control characters, empty names, `.`/`..` and hidden or temporary names
    (which the watcher ignores) are refused."""
    raw = filename or ""
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise BadRequest(f"the file name {raw[:80]!r} contains control characters")
    name = unicodedata.normalize("NFC", raw.replace("\\", "/").rsplit("/", 1)[-1].strip())
    if name in ("", ".", ".."):
        raise BadRequest(f"{raw[:80]!r} is not a file name")
    if is_temporary(name):
        raise BadRequest(f"{name!r} looks like a hidden or temporary file — rename it first")
    if len(name.encode()) > _MAX_NAME_BYTES:
        raise BadRequest(f"the file name is longer than {_MAX_NAME_BYTES} bytes")
    return name


@dataclass
class _Staged:
    name: str
    temporary: Path
    sha256: str


async def _stage(upload: UploadFile, state: Running, limit: int) -> _Staged:
    """Copy one upload to a hidden file in the inbox (the watcher ignores it), checking size."""
    name = safe_name(upload.filename)
    state.inbox.mkdir(parents=True, exist_ok=True)
    temporary = state.inbox / f".upload-{uuid.uuid4().hex}.part"
    digest, size = hashlib.sha256(), 0
    with temporary.open("xb") as handle:
        while block := await upload.read(_COPY_BLOCK):
            size += len(block)
            if size > limit:
                handle.close()
                temporary.unlink()
                raise _too_large(state)
            digest.update(block)
            handle.write(block)
    return _Staged(name, temporary, digest.hexdigest())


def _refuse_duplicates(staged: list[_Staged], state: Running) -> None:
    store, seen = state.service.store, dict[str, str]()
    for item in staged:
        if item.sha256 in seen:
            raise HTTPProblem(409, f"{item.name} and {seen[item.sha256]} have the same content")
        seen[item.sha256] = item.name
        for record in store.documents_with_content(item.sha256):
            if Path(record.path).is_relative_to(state.inbox) and os.path.exists(record.path):
                raise HTTPProblem(
                    409,
                    f"{item.name} has the same content as "
                    f"{display_name(record.path, state.inbox)} (document {record.id}), "
                    "already in the inbox",
                )


def _place(item: _Staged, inbox: Path) -> Path:
    """Give the staged file its name without overwriting anything: `report (2).pdf` if taken."""
    stem, suffix = os.path.splitext(item.name)
    for n in range(1, 1000):
        target = inbox / (item.name if n == 1 else f"{stem} ({n}){suffix}")
        try:
            os.link(item.temporary, target)  # fails if the name exists: never overwrites
        except FileExistsError:
            continue
        return target
    raise HTTPProblem(409, f"too many files named like {item.name} in the inbox")


def _too_large(state: Running) -> HTTPProblem:
    return HTTPProblem(
        413, f"a file is larger than ARCHIVIST_MAX_FILE_MB={state.settings.max_file_mb} MB"
    )


def _record(state: Running, document_id: int) -> DocumentRecord:
    record = state.service.store.document_by_id(document_id)
    if record is None:
        raise HTTPProblem(404, f"no document {document_id}")
    return record
