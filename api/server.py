"""A small read-only HTTP server: `/health`, `/status` and a status page at `/`."""

import html
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from api.service import Archivist
from api.settings import Settings


def run_server(settings: Settings, host: str, port: int) -> None:
    """Serve until interrupted."""
    with Archivist(settings) as service:
        _serve(service, host, port)


def _serve(service: Archivist, host: str, port: int) -> None:
    server = ThreadingHTTPServer((host, port), _handler(service))
    print(f"Archivist is serving http://{host}:{port}/ (Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _handler(service: Archivist) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            if self.path == "/health":
                self._send(200, "application/json", json.dumps({"status": "ok"}))
            elif self.path == "/status":
                self._send(200, "application/json", json.dumps(service.status()))
            elif self.path == "/":
                self._send(200, "text/html; charset=utf-8", _page(service.status()))
            else:
                self._send(404, "application/json", json.dumps({"detail": "not found"}))

        def _send(self, code: int, content_type: str, body: str) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _page(summary: dict[str, Any]) -> str:
    documents = summary["documents"]
    failed = "".join(
        f"<li><code>{html.escape(f['path'])}</code>: {html.escape(f['error'] or '')}</li>"
        for f in summary["failed"]
    )
    return (
        "<!doctype html><meta charset=utf-8><title>Archivist</title>"
        "<body style='font-family:sans-serif;max-width:50em;margin:2em auto'>"
        "<h1>Archivist</h1>"
        f"<p>{documents['ingested']} documents ingested, {documents['failed']} failed, "
        f"{summary['chunks']} chunks.</p>"
        + (f"<h2>Failed files</h2><ul>{failed}</ul>" if failed else "")
        + "</body>"
    )
