"""Other web pages cannot use the server through the user's browser; programs and the page can.

First the requests as a browser sends them (its `Origin`, `Sec-Fetch-Site` and `Host`
headers, written out), then the real thing in headless Chromium: a page of another site on
another port, and a DNS-rebinding page (another name that resolves to 127.0.0.1).
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
from api.server.origin import allowed_hosts
from api.service import Settings
from tests.api.server.browser import chromium
from tests.api.server.live import live_server
from tests.llm_servers import serve_app

NOTE = "# Supplies\n\nThe store holds lamp oil and wicks for the Vellmar lighthouse.\n"
PLANTED = "The lens of the Vellmar lighthouse is never cleaned."
QUESTION = {"question": "What does the store hold?"}
UPLOAD = {"files": ("planted.md", PLANTED.encode(), "text/markdown")}


@pytest.fixture
def noted(settings: Settings) -> Settings:
    """An inbox with one note, ingested by the server's start-up scan."""
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "notes.md").write_text(NOTE)
    return settings


def _reason(response: httpx.Response) -> str:
    reason: str = response.json()["reason"]
    return reason


# --- Changes from another page: 403


def test_an_upload_from_another_page_is_refused(noted: Settings) -> None:
    with live_server(noted) as live:
        other = live.url.rsplit(":", 1)[0] + ":9"  # the same machine, another port
        refused = live.http.post("/documents", files=UPLOAD, headers={"Origin": other})
        assert refused.status_code == 403 and _reason(refused) == "cross-origin"
        assert "Archivist's own page" in refused.json()["detail"]
        assert not (noted.inbox / "planted.md").exists()


def test_a_delete_marked_cross_site_is_refused(noted: Settings) -> None:
    with live_server(noted) as live:
        (document,) = live.http.get("/documents").json()["documents"]
        refused = live.http.delete(
            f"/documents/{document['id']}", headers={"Sec-Fetch-Site": "cross-site"}
        )
        assert refused.status_code == 403 and _reason(refused) == "cross-origin"
        live.settle()
        assert live.names() == {"notes.md": "ingested"}
        assert (noted.inbox / "notes.md").exists()


def test_a_question_from_another_page_or_a_sandboxed_one_is_refused(noted: Settings) -> None:
    with live_server(noted) as live:
        for origin in ("http://attacker.test", "null"):
            refused = live.http.post("/ask", json=QUESTION, headers={"Origin": origin})
            assert refused.status_code == 403 and _reason(refused) == "cross-origin", origin
        same_site = live.http.post("/ask", json=QUESTION, headers={"Sec-Fetch-Site": "same-site"})
        assert same_site.status_code == 403  # another port of the same host is another origin


def test_the_openai_endpoint_refuses_other_pages_in_its_own_error_shape(noted: Settings) -> None:
    body = {"model": "archivist", "messages": [{"role": "user", "content": "What is stored?"}]}
    with live_server(noted) as live:
        refused = live.http.post(
            "/v1/chat/completions", json=body, headers={"Origin": "http://attacker.test"}
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "cross-origin"
        assert live.http.post("/v1/chat/completions", json=body).status_code == 200


def test_programs_and_the_servers_own_page_still_make_changes(noted: Settings) -> None:
    with live_server(noted) as live:
        port = live.url.rsplit(":", 1)[1]
        own_page = {"Origin": live.url, "Sec-Fetch-Site": "same-origin"}
        uploaded = live.http.post("/documents", files=UPLOAD, headers=own_page)
        assert uploaded.status_code == 202, uploaded.text
        assert live.http.post("/ask", json=QUESTION).status_code == 200  # curl, scripts
        by_name = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
        assert live.http.post("/ask", json=QUESTION, headers=by_name).status_code == 200
        # Reading needs no check: a browser keeps a cross-origin answer from its page.
        listed = live.http.get("/documents", headers={"Sec-Fetch-Site": "cross-site"})
        assert listed.status_code == 200
        live.settle()
        assert (noted.inbox / "planted.md").exists()


# --- Requests to another name (DNS rebinding): 400


def test_a_request_to_another_name_is_refused(noted: Settings) -> None:
    with live_server(noted) as live:
        port = live.url.rsplit(":", 1)[1]
        rebound = {"Host": f"attacker.test:{port}"}
        for method, path in [("GET", "/"), ("GET", "/documents"), ("POST", "/ask")]:
            refused = live.http.request(method, path, json=QUESTION, headers=rebound)
            assert refused.status_code == 400 and _reason(refused) == "unknown-host", path
            assert "ARCHIVIST_ALLOWED_HOSTS" in refused.json()["detail"]
            assert f"http://localhost:{port}/" in refused.json()["detail"]
            assert "lamp oil" not in refused.text


def test_loopback_names_and_addresses_are_answered(noted: Settings) -> None:
    with live_server(noted) as live:
        port = live.url.rsplit(":", 1)[1]
        addresses = [f"127.0.0.1:{port}", f"[::1]:{port}", f"192.168.1.5:{port}"]
        for host in [f"localhost:{port}", "LOCALHOST.", *addresses]:  # an address is never rebound
            answered = live.http.get("/documents", headers={"Host": host})
            assert answered.status_code == 200, host


def test_allowed_hosts_adds_names(noted: Settings) -> None:
    settings = noted.model_copy(update={"allowed_hosts": ["archivist.lan"]})
    with live_server(settings) as live:
        port = live.url.rsplit(":", 1)[1]
        named = live.http.get("/documents", headers={"Host": f"archivist.lan:{port}"})
        assert named.status_code == 200
        other = live.http.get("/documents", headers={"Host": f"attacker.test:{port}"})
        assert other.status_code == 400


def test_with_an_api_key_any_name_reaches_the_key_check(noted: Settings) -> None:
    settings = noted.model_copy(update={"api_key": "s3cret"})
    with live_server(settings) as live:
        rebound = {"Host": "attacker.test"}
        assert live.http.get("/documents", headers=rebound).status_code == 401
        keyed = rebound | {"Authorization": "Bearer s3cret"}
        assert live.http.get("/documents", headers=keyed).status_code == 200


def test_the_names_a_server_answers_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARCHIVIST_ALLOWED_HOSTS", " Archivist.LAN:8000, nas.local. ,")
    assert Settings().allowed_hosts == ["archivist.lan", "nas.local"]
    assert allowed_hosts(Settings(host="0.0.0.0")) == {"archivist.lan", "nas.local"}
    assert allowed_hosts(Settings(host="nas")) == {"archivist.lan", "nas.local", "nas"}
    assert allowed_hosts(Settings(allowed_hosts=[])) == {"127.0.0.1"}
    assert allowed_hosts(Settings(allowed_hosts=["*"])) is None
    assert allowed_hosts(Settings(allowed_hosts=[], api_key="k")) is None
    assert allowed_hosts(Settings(api_key="k")) == {"archivist.lan", "nas.local", "127.0.0.1"}


# --- In Chromium

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
    driver = chromium("--host-resolver-rules=MAP attacker.test 127.0.0.1, MAP evil.test 127.0.0.1")
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
