"""An answer as an async stream of events, for server-sent events over HTTP.

The service answers on a worker thread and calls back for every token; the events cross to
the event loop through an asyncio queue. The first event is awaited before the response
starts, so a question refused at once (bad input, queue full, no model) gets a real status
code; a client that goes away cancels the generation at its next token.
"""

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from typing import Any

from api.service import Archivist, AskOptions
from generation.errors import Cancelled

Event = tuple[str, Any]  # ("token", str) | ("answer", Answer)


async def start_answer(
    service: Archivist, question: str, options: AskOptions
) -> AsyncIterator[Event]:
    """Start answering; raises what the service raises before the first event, then yields
    ("token", text) events and ends with ("answer", Answer). A later failure is raised from
    the iteration."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    gone = threading.Event()

    def put(kind: str, value: Any) -> None:
        loop.call_soon_threadsafe(events.put_nowait, (kind, value))

    def on_token(text: str) -> None:
        if gone.is_set():
            raise Cancelled("the client went away")
        put("token", text)

    def work() -> None:
        try:
            put("answer", service.ask(question, options, on_token=on_token))
        except BaseException as error:  # crosses to the event loop, raised there
            put("error", error)

    threading.Thread(target=work, name="answer", daemon=True).start()
    first = await events.get()
    if first[0] == "error":
        gone.set()
        raise first[1]
    return _rest(first, events, gone)


async def _rest(
    first: tuple[str, Any], events: "asyncio.Queue[tuple[str, Any]]", gone: threading.Event
) -> AsyncIterator[Event]:
    try:
        kind, value = first
        while True:
            if kind == "error":
                raise value
            yield kind, value
            if kind == "answer":
                return
            kind, value = await events.get()
    finally:
        gone.set()  # the client left (or the answer ended): stop generating


def sse(event: str, data: Any) -> str:
    """One server-sent event."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
