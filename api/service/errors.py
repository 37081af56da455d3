"""Errors of the service layer, and the one list of errors every interface translates."""

from generation.errors import GenerationError
from ingest.errors import IngestError, StoreError
from retrieval.errors import RetrievalError


class ConfigError(Exception):
    """Settings that cannot work together; the message says which to change."""

    reason = "config"


class BadRequest(Exception):
    """A request the service cannot act on (an empty question, a malformed session id)."""

    reason = "bad-request"


class ServerError(Exception):
    """A running Archivist server refused or failed a request; the message is its reason."""

    reason = "server"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason:
            self.reason = reason


# What the CLI turns into "Error: …" and the HTTP API into a JSON error, never a traceback.
USER_ERRORS = (
    ConfigError,
    BadRequest,
    ServerError,
    StoreError,
    RetrievalError,
    IngestError,
    GenerationError,
)
