"""The `archivist` program: the command line's commands, and `serve`, which starts the HTTP face.

The one module that joins the two faces (api/cli/ and api/server/): neither imports the other.
"""

import click

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.cli import EXIT_OK, cli, run
from api.service import Settings


@cli.command()
@click.option("--host", help="Address to listen on [ARCHIVIST_HOST: 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [ARCHIVIST_PORT: 8000].")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None) -> int:
    """Serve the web page and the HTTP API, and watch the inbox for documents.

    Files added to, changed in, moved within or removed from the inbox ($ARCHIVIST_DATA/inbox)
    are ingested or forgotten within seconds. While it runs, `ingest`, `status`, `search`,
    `ask` and `batch` go through it. Serving on an address other than loopback needs
    ARCHIVIST_API_KEY.

    Example: archivist serve --port 8000
    """
    from api.server import run_server  # FastAPI and uvicorn load only to serve

    run_server(settings, host or settings.host, port or settings.port)
    return EXIT_OK


def main() -> None:
    """Entry point: exit 0 on success, 1 on usage or configuration errors, 2 if inputs failed."""
    run(cli)


if __name__ == "__main__":
    main()
