"""The HTTP API and the web page: one FastAPI app over one Archivist service.

The app's lifespan opens the service, starts background ingestion and the folder watcher
(which reconcile the inbox with the stores first), opens the language model in the background,
and closes all of it on shutdown.
Endpoints are thin: they translate HTTP to service calls and service errors to status codes.
"""

import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from api.server.common import HTTPProblem, Running
from api.server.errors import ERROR_RESPONSES, add_error_handlers
from api.server.limits import BodyLimit
from api.server.origin import SameOrigin, allowed_hosts
from api.server.routes_answers import router as answers
from api.server.routes_documents import router as documents
from api.server.routes_status import router as status
from api.service import Archivist, BackgroundIngest, Settings
from generation.backend import Backend

WEB = Path(__file__).parent / "web"
# Questions, searches and chat requests are small; uploads stream to disk under their own limit.
MAX_BODY_BYTES = 2**20


def create_app(
    settings: Settings, *, backend: Backend | None = None, watch: bool = True
) -> FastAPI:
    """The app; `backend` answers every question when given, `watch=False` skips the watcher."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.inbox.mkdir(parents=True, exist_ok=True)
        service = Archivist(settings, backend=backend)
        background = BackgroundIngest(service, settings.inbox)
        watcher = None
        if watch and not settings.replica:  # (a replica ingests nothing)
            watcher = background.watcher(
                settle_s=settings.watch_settle_s, skip=settings.state_dir.resolve()
            )
            watcher.start()
        if not settings.replica:
            background.start()  # its first job reconciles the inbox with the stores
        threading.Thread(target=service.llm.warm, name="open-model", daemon=True).start()
        app.state.running = Running(service, background, watcher)
        try:
            yield
        finally:
            if watcher is not None:
                watcher.stop()
            background.stop()
            service.close()

    app = FastAPI(
        title="Archivist",
        summary="Private question answering over your documents, with citations to file and page.",
        version="0.1.0",
        lifespan=lifespan,
    )
    guard = [Depends(_require_key(settings.api_key))]
    for router in (answers, documents, status):
        app.include_router(router, dependencies=guard, responses=ERROR_RESPONSES)
    add_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES, exempt={("POST", "/documents")})
    # Outermost (added last): a refused request is answered before any of its body is read.
    app.add_middleware(SameOrigin, hosts=allowed_hosts(settings))
    app.mount("/static", StaticFiles(directory=WEB), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(WEB / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/health", tags=["status"])
    def health() -> dict[str, str]:
        """Liveness: answers as soon as the server accepts requests (no key needed)."""
        return {"status": "ok"}

    return app


_bearer = HTTPBearer(auto_error=False, description="ARCHIVIST_API_KEY, when the server has one.")


def _require_key(key: str | None) -> Any:
    """A dependency that checks the bearer token when the server has an API key."""

    def check(
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> None:
        if key is None:
            return
        given = credentials.credentials if credentials else ""
        if not secrets.compare_digest(given.encode(), key.encode()):
            raise HTTPProblem(
                401,
                "this server needs its API key: send 'Authorization: Bearer <ARCHIVIST_API_KEY>'",
                {"WWW-Authenticate": "Bearer"},
            )

    return check
