"""A cap on request bodies, enforced while they arrive rather than after they are in memory."""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyLimit:
    """ASGI middleware: a body larger than `max_bytes` is refused with 413.

    A declared Content-Length over the limit is refused at the first read, before any of the
    body is kept; a chunked body as soon as it passes the limit. The routes in `exempt`
    (method, path) read their bodies under limits of their own (uploads stream to disk).
    The 413 is raised from the app's own read of the body, so the app's error handlers give
    it the API's error body.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, exempt: set[tuple[str, str]]) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"], scope["path"]) in self.exempt:
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if max(received, declared) > self.max_bytes:
                    raise HTTPException(
                        413,
                        f"the request body is larger than {self.max_bytes // 1024} KB — "
                        "send less (uploads go to POST /documents)",
                    )
            return message

        await self.app(scope, limited, send)


def _content_length(scope: Scope) -> int:
    """The declared body size, or 0 when none (or nonsense) is declared."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
