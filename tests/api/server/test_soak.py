"""A minute of concurrent searches, questions and uploads against `archivist serve`.

The real server runs in its own process (its memory is what is sampled); a scripted
OpenAI-compatible model answers in a fraction of a second, so the server is what is under
load. With ARCHIVIST_LLM_QUEUE=1 and three clients asking at once, some questions are
refused with 429 on purpose; anything else that is not a success is an error. At the end
every upload must be ingested, indexed and found by a search for the word only it holds.
Run by `make test-reliability`; SOAK_SECONDS shortens or lengthens the minute.
"""

import os
import signal
import statistics
import subprocess
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.cli.test_ask_cli import ARCHIVIST
from tests.fixtures import make_pdf
from tests.llm_servers import free_port, scripted_openai_app, serve_app

pytestmark = pytest.mark.reliability

SOAK_S = float(os.environ.get("SOAK_SECONDS", "60"))
SEARCHERS, ASKERS = 4, 3
UPLOAD_EVERY_S = 1.0
# The server's memory under load: at most this far above where it started (measured: 1,345 MB
# idle, peak 1,390 MB), and no steady climb from the end of the first quarter to the end.
MAX_RISE_MB = 400
MAX_GROWTH_MB = 150
REPLY = (
    "The notes answer this in their first section [1]. They give the date and the place [1]. "
    "Nothing more is needed [1]."
)
QUERIES = ["lens cleaning schedule", "fog horn signal", "lamp oil supplies", "keeper duties",
           "how often is the lens cleaned", "storm procedure", "boat maintenance"]  # fmt: skip
SEED_NOTES = {
    "lens.md": "# Lens\n\nThe lighthouse lens is cleaned every fourteen days by the keeper.\n",
    "fog.md": "# Fog\n\nDuring fog the horn sounds twice every thirty seconds.\n",
    "supplies.txt": "Supplies\n\nThe store holds lamp oil, wicks and spare glass.\n",
}


@dataclass
class Tally:
    """What the clients saw, by endpoint; safe to share between threads."""

    served: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # the intended 429s
    errors: list[str] = field(default_factory=list)
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    uploads: dict[str, str] = field(default_factory=dict)  # saved name -> its unique word
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, endpoint: str, started: float, error: str | None = None) -> None:
        with self.lock:
            if error is None:
                self.served[endpoint] += 1
                self.latencies_ms[endpoint].append((time.monotonic() - started) * 1000)
            elif len(self.errors) < 50:
                self.errors.append(f"{endpoint}: {error}")

    def refuse(self, endpoint: str) -> None:
        with self.lock:
            self.refused[endpoint] += 1


class Server:
    """`archivist serve` on `data`, asking the model at `openai_url`."""

    def __init__(self, data: Path, openai_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = data.parent / "server.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVIST_")}
        env |= {
            "ARCHIVIST_DATA": str(data), "ARCHIVIST_LLM": "openai",
            "ARCHIVIST_OPENAI_URL": openai_url, "ARCHIVIST_OPENAI_MODEL": "scripted",
            "ARCHIVIST_LLM_QUEUE": "1", "ARCHIVIST_WORKERS": "1",
            "ARCHIVIST_WATCH_SETTLE_S": "0.5",
            "ARCHIVIST_MODEL_DIR": os.environ["ARCHIVIST_MODEL_DIR"],
        }  # fmt: skip
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [ARCHIVIST, "serve", "--port", str(self.port)], env=env, stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    def rss_mb(self) -> float:
        """The server process's resident memory now."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1]) / 1024

    def stop(self) -> int:
        """Ctrl+C, as a user stops it; its exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The server, started on an inbox of three notes and idle once they are indexed."""
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    for name, text in SEED_NOTES.items():
        (data / "inbox" / name).write_text(text)
    model = scripted_openai_app(REPLY.strip(), word_s=0.005)
    with serve_app(model) as model_url:
        running = Server(data, f"{model_url}/v1")
        try:
            with httpx.Client(base_url=running.url, timeout=10) as http:
                _wait(lambda: _get(http, "/health") is not None, 180, "the server starts")
                _wait(lambda: _settled(http, len(SEED_NOTES)), 180, "the notes are indexed")
            yield running
        finally:
            if running.process.poll() is None:
                running.stop()


def test_a_minute_of_searches_questions_and_uploads(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tally, stop = Tally(), threading.Event()
    rss: list[tuple[float, float]] = []
    clients = [*(lambda: _search(server.url, tally, stop) for _ in range(SEARCHERS)),
               *(lambda n=n: _ask(server.url, tally, stop, stream=n % 2 == 1)
                 for n in range(ASKERS)),
               lambda: _upload(server.url, tally, stop, tmp_path / "uploads"),
               lambda: _sample(server, rss, stop)]  # fmt: skip
    threads = [threading.Thread(target=client, daemon=True) for client in clients]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(SOAK_S)
    stop.set()
    for thread in threads:
        thread.join(120)
    _report(capsys, tally, rss, time.monotonic() - started)

    with httpx.Client(base_url=server.url, timeout=60) as http:
        _wait(lambda: _settled(http, len(SEED_NOTES) + len(tally.uploads)), 300,
              "every upload is ingested (or failed) and the stores agree")  # fmt: skip
        missing = _not_found(http, tally.uploads)
    with capsys.disabled():
        found = len(tally.uploads) - len(missing)
        print(f"  uploads: {len(tally.uploads)} accepted, {found} indexed and found by their own "
              f"word, {len(missing)} lost")  # fmt: skip
    exit_code = server.stop()
    log = server.log.read_text(errors="replace")

    assert not tally.errors, "\n".join(tally.errors)
    assert all(tally.served[e] for e in ("search", "ask", "ask-stream", "upload")), tally.served
    assert not missing, f"uploads not found by their own word: {missing}"
    start, peak, end = rss[0][1], max(mb for _, mb in rss), rss[-1][1]
    quarter = [mb for t, mb in rss if t <= SOAK_S / 4][-1]
    assert peak - start < MAX_RISE_MB and end - quarter < MAX_GROWTH_MB, (start, peak, end)
    assert exit_code == 0 and "Traceback" not in log, log[-3000:]


# The clients


def _search(url: str, tally: Tally, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=60) as http:
        n = 0
        while not stop.is_set():
            n += 1
            query = QUERIES[n % len(QUERIES)]
            _call(tally, http, "search", "GET", "/search", params={"q": query})


def _ask(url: str, tally: Tally, stop: threading.Event, *, stream: bool) -> None:
    endpoint = "ask-stream" if stream else "ask"
    body = {"question": "How often is the lens cleaned?", "stream": stream}
    with httpx.Client(base_url=url, timeout=60) as http:
        while not stop.is_set():
            started = time.monotonic()
            try:
                with http.stream("POST", "/ask", json=body) as response:
                    if response.status_code == 429:
                        tally.refuse(endpoint)
                        time.sleep(float(response.headers["retry-after"]))
                        continue
                    response.read()
                    error = _answer_error(response, stream)
            except httpx.HTTPError as failure:
                error = f"{type(failure).__name__}: {failure}"
            tally.record(endpoint, started, error)


def _answer_error(response: httpx.Response, stream: bool) -> str | None:
    """Why this answer is not a whole, cited answer; None when it is."""
    if response.status_code != 200:
        return f"{response.status_code} {response.text[:200]}"
    if not stream:
        answer = response.json()
        return None if answer["citations"] else f"no citations: {answer}"
    events = [line[6:].strip() for line in response.text.splitlines() if line.startswith("event:")]
    return None if events[-2:] == ["citations", "done"] else f"stream ended with {events[-3:]}"


def _upload(url: str, tally: Tally, stop: threading.Event, folder: Path) -> None:
    folder.mkdir()
    with httpx.Client(base_url=url, timeout=60) as http:
        n = 0
        while not stop.wait(UPLOAD_EVERY_S):
            n += 1
            word = f"soakword{n:04d}x"
            files = [("files", _document(folder, n, word))]
            response = _call(tally, http, "upload", "POST", "/documents", files=files)
            if response is not None and response.status_code == 202:
                saved = response.json()["accepted"][0]["name"]
                with tally.lock:
                    tally.uploads[saved] = word


def _document(folder: Path, n: int, word: str) -> tuple[str, bytes]:
    """The nth upload: mostly notes, every fourth a two-page PDF; `word` appears only in it."""
    text = f"Logbook entry {n}. The inspection code for this entry is {word}."
    if n % 4 == 0:
        pdf = make_pdf(folder / f"log-{n}.pdf", [f"Logbook {n}", text])
        return pdf.name, pdf.read_bytes()
    return f"log-{n}.md", f"# Logbook {n}\n\n{text}\n".encode()


def _sample(server: Server, rss: list[tuple[float, float]], stop: threading.Event) -> None:
    started = time.monotonic()
    while True:
        rss.append((time.monotonic() - started, server.rss_mb()))
        if stop.wait(0.5):
            return


def _call(
    tally: Tally, http: httpx.Client, endpoint: str, method: str, path: str, **request: Any
) -> httpx.Response | None:
    """Send one request and record it: a success is 200 (202 for an upload)."""
    started = time.monotonic()
    try:
        response = http.request(method, path, **request)
    except httpx.HTTPError as failure:
        tally.record(endpoint, started, f"{type(failure).__name__}: {failure}")
        return None
    error = None
    if response.status_code != (202 if endpoint == "upload" else 200):
        error = f"{response.status_code} {response.text[:200]}"
    tally.record(endpoint, started, error)
    return response


# Checks


def _get(http: httpx.Client, path: str) -> dict[str, Any] | None:
    try:
        response = http.get(path)
    except httpx.HTTPError:
        return None
    return dict(response.json()) if response.status_code == 200 else None


def _settled(http: httpx.Client, documents: int) -> bool:
    """Every document stored (ingested or failed), nothing pending, and the stores agree."""
    status = _get(http, "/status")
    if status is None:
        return False
    ingest, stores = status["ingest"], status["stores"]
    return (
        sum(status["documents"].values()) == documents
        and ingest["state"] == "idle" and not ingest["pending"] and not ingest["scan_pending"]
        and stores.get("in_sync") is True
        and stores.get("sqlite") == stores.get("tantivy") == stores.get("qdrant")
    )  # fmt: skip


def _not_found(http: httpx.Client, uploads: dict[str, str]) -> list[str]:
    """The uploads that are not listed as ingested and indexed, or that a search for their
    own word does not find first."""
    listed = http.get("/documents", params={"limit": 1000}).json()["documents"]
    indexed = {d["name"] for d in listed if d["status"] == "ingested" and d["indexed"]}
    missing = []
    for name, word in uploads.items():
        hits = http.get("/search", params={"q": word, "mode": "bm25", "k": 1}).json()["hits"]
        if name not in indexed or not hits or hits[0]["name"] != name:
            missing.append(name)
    return missing


def _wait(ready: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.5)


def _report(
    capsys: pytest.CaptureFixture[str], tally: Tally, rss: list[tuple[float, float]], soaked: float
) -> None:
    """The figures, printed whether the test passes or not."""
    lines = [f"soak: {soaked:.0f} s; requests served {sum(tally.served.values())}"]
    for endpoint in ("search", "ask", "ask-stream", "upload"):
        times = sorted(tally.latencies_ms[endpoint]) or [0.0]
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        served, refused = tally.served[endpoint], tally.refused[endpoint]
        lines.append(
            f"  {endpoint:<10} served {served:>5}  429s {refused:>4}"
            f"  p50 {statistics.median(times):>7.0f} ms  p95 {p95:>7.0f} ms"
        )
    mbs = [mb for _, mb in rss]
    lines.append(
        f"  server RSS: start {mbs[0]:.0f} MB, peak {max(mbs):.0f} MB, end {mbs[-1]:.0f} MB"
    )
    lines.append(f"  errors (beyond the intended 429s): {len(tally.errors)}")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
