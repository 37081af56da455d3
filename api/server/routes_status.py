"""GET /status: what every store holds, whether they agree, and what runs in the background."""

from typing import Any

from fastapi import APIRouter, Depends

from api.server.common import Running, running

router = APIRouter(tags=["status"])


@router.get("/status")
def status(state: Running = Depends(running), deep: bool = False) -> dict[str, Any]:  # noqa: B008
    """Counts per store and whether they agree, index work pending, background ingestion,
    the generation queue, and the language and embedding models; `deep` compares the indexes
    with SQLite chunk by chunk and adds SQLite's full integrity check."""
    service = state.service
    summary = service.status(deep=deep)
    queue = service.llm.queue
    summary["llm"]["queue"] = {"running": queue.running(), "waiting": queue.waiting()}
    summary["embed_model"] = state.settings.embed_model
    summary["inbox"] = str(state.inbox)
    summary["ingest"] = state.background.progress()
    return summary
