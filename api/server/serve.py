"""`archivist serve`: the HTTP API, the web page and the watched folder, in one process."""

import ipaddress
import signal
import socket
from types import FrameType

import uvicorn

from api.server.app import create_app
from api.service import ConfigError, Settings, announce, running_server, withdraw


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_server(settings: Settings, host: str, port: int) -> None:
    """Serve until interrupted (Ctrl+C stops cleanly: the watcher, ingestion, the stores)."""
    if not is_loopback(host) and not settings.api_key:
        raise ConfigError(
            f"serving on {host} makes your documents reachable from other machines: set "
            "ARCHIVIST_API_KEY to a secret (clients send it as a bearer token), or serve on "
            "127.0.0.1"
        )
    other = running_server(settings)
    if other:
        raise ConfigError(f"a server already runs on this data folder at {other} — stop it first")
    listening = _listen(host, port)  # before loading anything: a taken port fails at once
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    app = create_app(settings.model_copy(update={"host": host}))  # the name it answers to
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGINT and SIGTERM alike while it runs, then raises the
    # signal again for the handler it found: SIGTERM's default would end the process there,
    # before the announcement is withdrawn, and a SIGINT ignored from the start (a background
    # job of a non-interactive shell: `archivist serve &`) was dropped. Outside uvicorn's run,
    # this process's handler only asks uvicorn to stop (before it runs: as soon as it has
    # started): raising KeyboardInterrupt from a signal handler could land inside asyncio's own
    # setup or teardown and leave a half-closed event loop that complained at exit ("Exception
    # ignored in BaseEventLoop.__del__"), seen once on a loaded machine.
    stops: list[int] = []

    def stop(signum: int, frame: FrameType | None) -> None:
        stops.append(signum)
        server.should_exit = True

    handlers = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"Archivist is serving {url}/ — the API at {url}/docs (Ctrl+C to stop)", flush=True)
        if settings.replica:
            print(
                f"A replica: answering from the collection '{settings.qdrant_collection}' on "
                f"{settings.qdrant_url}; documents are ingested by its writer.",
                flush=True,
            )
        else:
            print(f"Watching {settings.inbox.resolve()} for documents.", flush=True)
        announce(settings, url)
        server.run(sockets=[listening])
        if stops:
            print("Stopped.", flush=True)
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
        withdraw(settings)
        listening.close()


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({error.strerror}) — is another server running "
            "there? Choose another with --port or ARCHIVIST_PORT"
        ) from None
    listening.listen(2048)
    return listening
