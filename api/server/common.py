"""What the app's routes share: the running service and workers, and the API's own errors."""

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from fastapi import Request

from api.service import Archivist, BackgroundIngest, Settings
from ingest.watch import FolderWatcher


class HTTPProblem(Exception):
    """An error the API answers with a status code and `{"detail": ...}`."""

    def __init__(
        self, status: int, detail: str, headers: dict[str, str] | None = None, reason: str = ""
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers
        self.reason = reason or reason_for(status)


_REASONS = {400: "bad-request", 401: "unauthorized", 404: "not-found", 405: "method-not-allowed",
            409: "conflict", 413: "too-large", 422: "invalid"}  # fmt: skip


def reason_for(status: int) -> str:
    """The `reason` of an error body with this status, where the error names none."""
    return _REASONS.get(status, "error")


@dataclass
class Running:
    """What the app holds while it serves."""

    service: Archivist
    background: BackgroundIngest
    watcher: FolderWatcher | None

    @property
    def settings(self) -> Settings:
        return self.service.settings

    @cached_property
    def inbox(self) -> Path:
        """The watched folder, resolved once (requests name files relative to it)."""
        return self.service.settings.inbox.resolve()


def running(request: Request) -> Running:
    """The service and workers of the app handling this request."""
    state: Running = request.app.state.running
    return state
