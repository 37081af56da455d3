"""Other web pages cannot use the server through headless Chromium; the Archivist page can.

A page of another site on another port tries to upload, ask and delete; a DNS-rebinding page
(another name that Chromium resolves to 127.0.0.1) tries to read answers.
"""

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.server.app import create_app
from api.service import Settings
from tests.api.server.browser import chromium
from tests.api.server.test_cross_site import NOTE, PLANTED, QUESTION
from tests.llm_servers import serve_app

ATTACK = """<!doctype html>
<title>A page of another site</title>
<pre id="results">running</pre>
<script>
const target = "TARGET";
const results = {};
async function attempt(name, url, init) {
  try {
    const response = await fetch(url, init);
    results[name] = `${response.type} ${response.status} ${await response.text()}`;
  } catch (error) {
    results[name] = `failed ${error.name}`;
  }
}
(async () => {
  const form = new FormData();
  form.append("files", new File([PLANTED], "planted.md", {type: "text/markdown"}));
  // A multipart post and a text/plain one need no CORS preflight: the browser sends them.
  await attempt("upload", `${target}/documents`, {method: "POST", mode: "no-cors", body: form});
  await attempt("ask", `${target}/ask`,
                {method: "POST", mode: "no-cors", headers: {"Content-Type": "text/plain"},
                 body: JSON.stringify(QUESTION)});
  await attempt("delete", `${target}/documents/DOCUMENT`, {method: "DELETE"});
  await attempt("read", `${target}/ask`,
                {method: "POST", headers: {"Content-Type": "application/json"},
                 body: JSON.stringify(QUESTION)});
  document.getElementById("results").textContent = JSON.stringify(results);
})();
</script>
"""

# Runs in a page: fetch(path, init), then hand back [status, body] (or the error).
FETCH = """
const [path, init, done] = arguments;
fetch(path, init).then(async (r) => done([r.status, await r.text()]))
                 .catch((error) => done([0, String(error)]));
"""


class Recorder:
    """ASGI middleware: notes each request's method, path, Origin and the status answered."""

    def __init__(self, app: ASGIApp, *, seen: list[tuple[str, str, str, int]]) -> None:
        self.app = app
        self.seen = seen

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        origin = dict(scope["headers"]).get(b"origin", b"").decode()

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["method"], scope["path"], origin, message["status"]))
            await send(message)

        await self.app(scope, receive, noting)


@dataclass
class Server:
    """The live app, what reached it, and the browser."""

    url: str
    http: httpx.Client
    seen: list[tuple[str, str, str, int]]
    driver: WebDriver
    inbox: Path

    def wait(self) -> WebDriverWait[WebDriver]:
        return WebDriverWait(self.driver, 60, poll_frequency=0.2)

    def fetch(self, path: str, init: dict[str, Any] | None = None) -> tuple[int, str]:
        """fetch() from the page the browser shows; the status and body it got."""
        result: list[Any] = self.driver.execute_async_script(FETCH, path, init or {})
        return result[0], result[1]

    def names(self) -> set[str]:
        return {d["name"] for d in self.http.get("/documents").json()["documents"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A live app with one note; Chromium resolving attacker.test and evil.test to 127.0.0.1."""
    root = tmp_path_factory.mktemp("cross-site")
    settings = Settings(data=root / "data", workers=2, convert_timeout_s=30, llm="none",
                        watch_settle_s=0.3)  # fmt: skip
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "notes.md").write_text(NOTE)
    app = create_app(settings)
    seen: list[tuple[str, str, str, int]] = []
    app.add_middleware(Recorder, seen=seen)
    driver = chromium(
        root, "--host-resolver-rules=MAP attacker.test 127.0.0.1, MAP evil.test 127.0.0.1"
    )
    driver.set_script_timeout(60)
    try:
        with serve_app(app) as url, httpx.Client(base_url=url, timeout=60) as http:
            assert app.state.running.background.wait_idle(60), "the start-up scan did not end"
            yield Server(url, http, seen, driver, settings.inbox)
    finally:
        driver.quit()


@pytest.fixture
def attacker(tmp_path: Path, server: Server) -> Iterator[str]:
    """http://attacker.test:PORT/ : a plain web server of another site, with the attack page."""
    (document,) = [d for d in server.http.get("/documents").json()["documents"]
                   if d["name"] == "notes.md"]  # fmt: skip
    filled = {"TARGET": server.url, "DOCUMENT": str(document["id"]),
              "PLANTED": json.dumps(PLANTED), "QUESTION": json.dumps(QUESTION)}  # fmt: skip
    page = ATTACK
    for name, value in filled.items():
        page = page.replace(name, value)
    (tmp_path / "index.html").write_text(page)
    handler = partial(_QuietHandler, directory=str(tmp_path))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as site:
        thread = threading.Thread(target=site.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://attacker.test:{site.server_address[1]}"
        finally:
            site.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_page_of_another_site_cannot_upload_ask_or_delete(server: Server, attacker: str) -> None:
    server.driver.get(f"{attacker}/")
    shown = server.wait().until(
        lambda driver: (text := driver.find_element("id", "results").text) != "running" and text
    )
    results = json.loads(shown)
    # The posts went out (a no-cors answer is opaque to the page); the others never left the
    # browser: a DELETE and a JSON post need the server's consent (CORS), which it never gives.
    assert results["upload"] == results["ask"] == "opaque 0 ", results
    assert results["delete"] == results["read"] == "failed TypeError", results

    reached = {(method, path, status) for method, path, origin, status in server.seen
               if origin == attacker}  # fmt: skip
    assert ("POST", "/documents", 403) in reached and ("POST", "/ask", 403) in reached, reached
    assert not [r for r in reached if r[0] != "OPTIONS" and r[2] != 403], reached
    assert not (server.inbox / "planted.md").exists()
    assert server.names() == {"notes.md"}


def test_a_rebinding_page_cannot_read_answers_or_documents(server: Server) -> None:
    """To the server, a page whose name was rebound to 127.0.0.1 is one that Chromium loads
    from evil.test at the server's port: the browser's own origin, another Host."""
    port = server.url.rsplit(":", 1)[1]
    server.driver.get(f"http://evil.test:{port}/")
    init = {"method": "POST", "headers": {"Content-Type": "application/json"},
            "body": json.dumps(QUESTION)}  # fmt: skip
    for path, request in [("/ask", init), ("/documents", {}), ("/status", {})]:
        status, body = server.fetch(path, request)
        assert status == 400, (path, body)
        assert json.loads(body)["reason"] == "unknown-host"
        assert "lamp oil" not in body and "notes.md" not in body


def test_the_archivist_page_still_uploads_asks_and_deletes(server: Server) -> None:
    for address in (server.url, server.url.replace("127.0.0.1", "localhost")):
        server.driver.get(f"{address}/")
        upload = "const f = new FormData(); f.append('files', new File(['Oil.'], 'own.md')); "
        status, body = server.driver.execute_async_script(
            upload + "fetch('/documents', {method: 'POST', body: f})"
            ".then(async (r) => arguments[0]([r.status, await r.text()]))"
        )
        assert status == 202, body
        (saved,) = json.loads(body)["accepted"]
        init = {"method": "POST", "headers": {"Content-Type": "application/json"},
                "body": json.dumps(QUESTION)}  # fmt: skip
        status, body = server.fetch("/ask", init)
        assert status == 200 and "lamp oil" in body, body
        server.wait().until(lambda _: "own.md" in server.names())
        (own,) = [d for d in server.http.get("/documents").json()["documents"]
                  if d["name"] == "own.md"]  # fmt: skip
        status, body = server.fetch(f"/documents/{own['id']}", {"method": "DELETE"})
        assert status == 202, body
        server.wait().until(lambda _: "own.md" not in server.names())
        assert not (server.inbox / "own.md").exists(), saved
