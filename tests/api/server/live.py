"""A live Archivist server for tests: the real app under uvicorn on a free local port."""

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from api.server.app import create_app
from api.server.common import Running
from api.service import Settings
from generation.backend import Backend
from tests.llm_servers import serve_app


@dataclass
class Live:
    """A running server: its URL, a client of it, and what its app holds."""

    url: str
    http: httpx.Client
    running: Running

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until background ingestion has applied everything queued so far."""
        assert self.running.background.wait_idle(timeout), "background ingestion did not finish"

    def names(self) -> dict[str, str]:
        """Document name -> status, as GET /documents lists them."""
        documents = self.http.get("/documents", params={"limit": 1000}).json()["documents"]
        return {d["name"]: d["status"] for d in documents}

    def hit_names(self, query: str, mode: str = "hybrid") -> list[str]:
        hits = self.http.get("/search", params={"q": query, "mode": mode}).json()["hits"]
        return [h["name"] for h in hits]


@contextmanager
def live_server(
    settings: Settings, *, backend: Backend | None = None, ready_s: float = 60.0
) -> Iterator[Live]:
    """Serve `settings` (with `backend` answering, if given) until the block ends; first wait
    up to `ready_s` for the start-up scan to be applied."""
    app = create_app(settings, backend=backend)
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=180) as http:
        live = Live(url, http, app.state.running)
        live.settle(ready_s)  # the start-up scan of the inbox
        yield live


def wait_until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll `check` until it returns something true; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.1)
