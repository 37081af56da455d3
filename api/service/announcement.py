"""The running server's announcement: `state/server.json` names its URL and process.

`archivist serve` writes it when it listens and withdraws it when it stops; every other
command reads it to find the server (the embedded dense index can be open in one process
only, so while a server runs, commands send their work to it).
"""

import json
import os
import time
from contextlib import suppress
from pathlib import Path

import httpx

from api.service.settings import Settings
from retrieval.child_process import process_alive

_START_WAIT_S = 15.0  # a server that just started may still be loading its stores


def server_file(settings: Settings) -> Path:
    """Where a running server announces itself."""
    return settings.state_dir / "server.json"


def announce(settings: Settings, url: str) -> None:
    """Record that this process serves `url` (atomically; read by other commands)."""
    path = server_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"url": url, "pid": os.getpid()}) + "\n")
    os.replace(temporary, path)


def withdraw(settings: Settings) -> None:
    """Remove the announcement if it is this process's."""
    path = server_file(settings)
    with suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


def running_server(settings: Settings) -> str | None:
    """The URL of the server running on this data folder, or None (a stale file is ignored)."""
    try:
        announced = json.loads(server_file(settings).read_text())
        url, pid = str(announced["url"]), int(announced["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if pid == os.getpid() or not process_alive(pid):
        return None
    deadline = time.monotonic() + _START_WAIT_S
    while True:
        with suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return url
        if time.monotonic() > deadline or not process_alive(pid):
            return None
        time.sleep(0.25)
