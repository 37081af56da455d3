"""Search and first-token latency over HTTP, idle and while the watcher ingests the PDF corpus.

Run: .venv/bin/python bench/serve.py [--seconds 30] [--clients 20] [--no-ask] [--json]

The acceptance of `archivist serve`: CLIENTS clients calling GET /search back to back keep
getting answers (no errors, p95 under 100 ms) while ../shared/corpus/pdfs is ingested through
the watched folder. The server runs as `archivist serve` in its own process (the load
generator would otherwise share its interpreter), on a fresh data folder. In one run:
1. seed the inbox with three short notes and wait until they are indexed, warm up;
2. idle: the search load for SECONDS; then the same load plus one client asking POST /ask
   (streamed) back to back, timing its first token and hanging up (the model is warmed first);
3. copy the PDFs into the inbox, as a user would, and run both loads again while the watcher
   ingests them (/status, polled every 3 s in every phase, shows how far ingestion got).
Each phase reports the CPU used by the server (with its conversion workers), by this load
generator and by everything else, so that figures taken beside other work are flagged.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
PDFS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pdfs"
STATUS_EVERY_S = 3.0
STOP_WAIT_S = 60
TIMEOUT_S = 30  # a search slower than this counts as an error
QUESTIONS = [
    "How do I read a CSV file into a data frame?",
    "What is the difference between a list and a data frame in R?",
    "How do I install a package from CRAN?",
    "How can I import data from a spreadsheet or another statistics program?",
    "How do I write a function with default arguments in R?",
    "Why does R print numbers with so many digits?",
    "How do I change the citation style of the acmart class?",
    "Which options does the apa6 class accept?",
    "How do I format references in Harvard style?",
    "How do I add a figure with a caption to a LaTeX paper?",
    "How are the works cited formatted in MLA style?",
    "How do I set the author affiliations for a conference paper?",
]
NOTES = {
    "r-notes.md": '# Working with R\n\nRead a CSV file with `read.csv("file.csv")`; it returns '
    "a data frame. A data frame is a list of columns of equal length. Install packages from "
    'CRAN with `install.packages("name")` and load them with `library(name)`.\n',
    "latex-notes.md": "# Writing papers in LaTeX\n\nConference classes such as acmart set the "
    "fonts, the author affiliations and the citation style. Figures go in a `figure` "
    "environment with `\\includegraphics` and a `\\caption`.\n",
    "citation-notes.txt": "Citation styles\n\nHarvard style cites author and year in the text. "
    "APA and MLA styles have their own classes; the bibliography is built with BibTeX or "
    "biblatex from a .bib file.\n",
}


@dataclass
class Phase:
    """What one load phase measured."""

    name: str
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    no_hits: int = 0
    worst_ms: float = 0.0
    worst_at_s: float = 0.0  # when the slowest search started, from the phase start
    first_tokens_s: list[float] = field(default_factory=list)
    ask_errors: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)
    ingest: dict[str, Any] = field(default_factory=dict)


class Server:
    """`archivist serve` on a fresh data folder, in its own process and session (so a Ctrl+C
    in the terminal reaches only this script, which stops the server once, cleanly)."""

    def __init__(self, scratch: Path, *, ask: bool) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.url, self.log = f"http://127.0.0.1:{port}", scratch / "server.log"
        self.inbox = scratch / "data" / "inbox"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARCHIVIST_")}
        env |= {"ARCHIVIST_DATA": str(scratch / "data"), "ARCHIVIST_WATCH_SETTLE_S": "0.5",
                "ARCHIVIST_LLM": "llamacpp" if ask else "none",
                "ARCHIVIST_GGUF": "qwen2.5-coder-0.5b",
                "ARCHIVIST_MODEL_DIR": str(ROOT / "data" / "models")}  # fmt: skip
        command = [str(Path(sys.executable).with_name("archivist")), "serve", "--port", str(port)]
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> None:
        """Wait until GET /health answers; exit with the server's log if it does not."""
        deadline = time.monotonic() + timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.25)
        raise SystemExit(f"the server did not start; its log ends:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self, say: Callable[..., None]) -> None:
        """SIGINT (uvicorn's clean shutdown: watcher, ingestion, stores), then wait; after
        STOP_WAIT_S, SIGKILL to the server's process group (it and its conversion workers)."""
        if self.process.poll() is not None:
            return
        started = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=STOP_WAIT_S)
            say(f"server stopped {time.monotonic() - started:.1f} s after SIGINT")
        except subprocess.TimeoutExpired:
            say(f"the server did not stop within {STOP_WAIT_S} s of SIGINT: killed it")
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


async def bench(server: Server, args: argparse.Namespace, say: Callable[..., None]) -> dict:
    """Seed, warm up, then the idle phases, the copy, and the phases during ingestion."""
    ask, result = not args.no_ask, {}
    inbox = server.inbox
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT_S) as client:
        for name, text in NOTES.items():
            (inbox / name).write_text(text)
        started = time.monotonic()
        await _wait_for(client, lambda s: _files(s) >= len(NOTES) and _finished(s), 600)
        say(f"seed notes indexed in {time.monotonic() - started:.1f} s (embedding model loaded)")
        for question in QUESTIONS * 2:
            (await client.get("/search", params={"q": question})).raise_for_status()
        if ask:
            result["ask_warmup_s"] = await _warm_up_ask(client)
            say(f"/ask warm-up (loads the model) took {result['ask_warmup_s']:.1f} s")
        phases = [await _phase(client, server, "idle", args, ask=False, say=say)]
        if ask:
            phases.append(await _phase(client, server, "idle + /ask", args, ask=True, say=say))
        pdfs = sorted(PDFS.glob("*.pdf"))
        for pdf in pdfs:
            shutil.copy2(pdf, inbox / pdf.name)
        result["pdfs"], result["files_expected"] = len(pdfs), len(pdfs) + len(NOTES)
        await _wait_for(client, lambda s: not _finished(s), 15)
        say(f"copied {len(pdfs)} PDFs into the inbox; ingestion started")
        phases.append(await _phase(client, server, "during ingest", args, ask=False, say=say))
        if ask:
            name = "during ingest + /ask"
            phases.append(await _phase(client, server, name, args, ask=True, say=say))
    return result | {"phases": phases}


async def _warm_up_ask(client: httpx.AsyncClient) -> float:
    started = time.monotonic()
    body = {"question": QUESTIONS[0], "max_tokens": 8, "start_session": False}
    response = await client.post("/ask", json=body, timeout=900)
    if response.status_code != 200:
        raise SystemExit(f"/ask warm-up failed: HTTP {response.status_code} {response.text[:500]}"
                         " (--no-ask skips /ask)")  # fmt: skip
    return time.monotonic() - started


async def _phase(
    client: httpx.AsyncClient, server: Server, name: str, args: argparse.Namespace, *,
    ask: bool, say: Callable[..., None],
) -> Phase:  # fmt: skip
    """CLIENTS search loops for SECONDS (and an /ask loop), with /status polled beside them."""
    phase, first = Phase(name), await _status(client)
    cpu = _cpu_counters(server.process.pid)
    started, begun = time.monotonic(), time.perf_counter()
    deadline = started + args.seconds
    searches = [_search_loop(client, n, begun, deadline, phase) for n in range(args.clients)]
    beside = [asyncio.create_task(_watch_ingest(client, started, phase))]
    if ask:
        beside.append(asyncio.create_task(_ask_loop(server.url, deadline, phase)))
    await asyncio.gather(*searches)
    phase.seconds = time.monotonic() - started
    phase.cpu = _cpu_share(cpu, _cpu_counters(server.process.pid), phase.seconds)
    for task in beside:  # an answer still waiting for its first token is not counted
        task.cancel()
    await asyncio.gather(*beside, return_exceptions=True)
    phase.ingest |= {"start": _progress(first), "end": _progress(await _status(client))}
    say(f"{name}: {len(phase.latencies_ms)} searches in {phase.seconds:.1f} s")
    return phase


async def _search_loop(
    client: httpx.AsyncClient, offset: int, begun: float, deadline: float, phase: Phase
) -> None:
    n = offset
    while time.monotonic() < deadline:
        query, n = QUESTIONS[n % len(QUESTIONS)], n + 1
        started = time.perf_counter()
        try:
            response = await client.get("/search", params={"q": query})
        except httpx.HTTPError as error:
            _count(phase.errors, type(error).__name__)
            continue
        if response.status_code != 200:
            _count(phase.errors, f"HTTP {response.status_code}")
            continue
        latency = (time.perf_counter() - started) * 1000
        if latency > phase.worst_ms:
            phase.worst_ms, phase.worst_at_s = latency, started - begun
        phase.latencies_ms.append(latency)
        phase.no_hits += not response.json()["hits"]


async def _ask_loop(url: str, deadline: float, phase: Phase) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        n = 0
        while time.monotonic() < deadline:
            question, n = QUESTIONS[n % len(QUESTIONS)], n + 1
            started = time.monotonic()
            try:
                outcome = await _first_token(client, question)
            except httpx.HTTPError as error:
                outcome = type(error).__name__
            if isinstance(outcome, str):
                _count(phase.ask_errors, outcome)
            else:
                phase.first_tokens_s.append(outcome - started)


async def _first_token(client: httpx.AsyncClient, question: str) -> float | str:
    """When the first `token` event arrived, or what went wrong; then hang up (the server
    cancels the answer at its next token)."""
    body = {"question": question, "stream": True, "max_tokens": 32}
    async with client.stream("POST", "/ask", json=body) as response:
        if response.status_code != 200:
            return f"HTTP {response.status_code}"
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
                if event == "token":
                    return time.monotonic()
                if event in ("error", "done"):
                    return f"{event} before any token"
    return "stream ended before any token"


async def _watch_ingest(client: httpx.AsyncClient, started: float, phase: Phase) -> None:
    while True:
        await asyncio.sleep(STATUS_EVERY_S)
        if _finished(await _status(client)) and "finished_after_s" not in phase.ingest:
            phase.ingest["finished_after_s"] = time.monotonic() - started


async def _status(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/status")
    response.raise_for_status()
    return dict(response.json())


async def _wait_for(
    client: httpx.AsyncClient, condition: Callable[[dict[str, Any]], bool], timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not condition(status := await _status(client)):
        if time.monotonic() > deadline:
            raise SystemExit(f"/status did not get there in {timeout:.0f} s: {status}")
        await asyncio.sleep(0.25)


def _finished(status: dict[str, Any]) -> bool:
    """Nothing queued or running in the background, and every stored chunk indexed."""
    ingest = status["ingest"]
    busy = ingest["state"] != "idle" or ingest["scan_pending"] or ingest["pending"]
    return not busy and status["pending_index_work"] == 0


def _files(status: dict[str, Any]) -> int:
    return int(status["documents"]["ingested"] + status["documents"]["failed"])


def _progress(status: dict[str, Any]) -> dict[str, Any]:
    stores = status.get("stores", {})
    indexed = stores.get("qdrant") if stores.get("qdrant") is not None else stores.get("tantivy")
    return {"chunks": status["chunks"], "indexed": indexed, "files": _files(status)}


def _count(errors: dict[str, int], kind: str) -> None:
    errors[kind] = errors.get(kind, 0) + 1


# CPU accounting from /proc (Linux): who used the cores during a phase.


def _cpu_counters(server_pid: int) -> dict[str, float]:
    """CPU seconds so far: the machine (busy), the server's process tree, this process."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    machine = (sum(fields) - fields[3] - fields[4]) / ticks  # all but idle and iowait
    parents, used = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            rest = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # the process ended
        pid = int(stat.parent.name)
        parents[pid] = int(rest[1])
        used[pid] = sum(int(v) for v in rest[11:15]) / ticks  # its own and its reaped children
    tree = {server_pid}
    for _ in range(4):  # server -> forkserver -> conversion workers
        tree |= {pid for pid, parent in parents.items() if parent in tree}
    server = sum(used.get(pid, 0.0) for pid in tree)
    return {"machine": machine, "server": server, "bench": time.process_time()}


def _cpu_share(before: dict[str, float], after: dict[str, float], seconds: float) -> dict:
    """Percent of one core (2 cores = 200 %) used by the server, the bench and the rest."""
    share = {key: (after[key] - before[key]) / seconds * 100 for key in before}
    share["other"] = max(0.0, share["machine"] - share["server"] - share["bench"])
    return share


# Reporting


def figures(phase: Phase) -> dict[str, Any]:
    """One phase's row: throughput, latency percentiles, errors, CPU, first tokens, ingest."""
    latencies, errors = phase.latencies_ms, sum(phase.errors.values())
    row = {"phase": phase.name, "requests": len(latencies) + errors,
           "requests_per_s": len(latencies) / phase.seconds, "errors": phase.errors,
           "no_hits": phase.no_hits, "cpu_percent_of_one_core": phase.cpu,
           "ingest": phase.ingest}  # fmt: skip
    if len(latencies) >= 2:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        row |= {"p50_ms": cuts[49], "p95_ms": cuts[94], "max_ms": max(latencies),
                "max_at_s": phase.worst_at_s}  # fmt: skip
    if phase.first_tokens_s or phase.ask_errors:
        tokens = phase.first_tokens_s
        row["ask"] = {"first_token_p50_s": statistics.median(tokens) if tokens else None,
                      "first_token_max_s": max(tokens, default=None), "n": len(tokens),
                      "errors": phase.ask_errors}  # fmt: skip
    return row


def print_table(result: dict[str, Any], args: argparse.Namespace, load: float) -> None:
    """The figures side by side, and what ran beside them."""
    rows = [figures(p) for p in result["phases"]]
    print(f"\n{args.clients} clients x {args.seconds:.0f} s of GET /search per phase, "
          f"{os.cpu_count()} cores, load average {load:.2f} before the run")  # fmt: skip
    print(f"{'phase':22}{'requests':>9}{'req/s':>8}{'p50 ms':>8}{'p95 ms':>8}{'max ms':>8}"
          f"{'errors':>8}   CPU % server/bench/other")  # fmt: skip
    for row in rows:
        cpu = row["cpu_percent_of_one_core"]
        print(f"{row['phase']:22}{row['requests']:9}{row['requests_per_s']:8.1f}"
              f"{row.get('p50_ms', 0):8.1f}{row.get('p95_ms', 0):8.1f}{row.get('max_ms', 0):8.0f}"
              f"{sum(row['errors'].values()):8}   "
              f"{cpu['server']:.0f}/{cpu['bench']:.0f}/{cpu['other']:.0f}")  # fmt: skip
    for row in rows:
        _print_notes(row, result)
    noisy = max(row["cpu_percent_of_one_core"]["other"] for row in rows)
    if noisy > 20:
        print(f"note: other processes used up to {noisy:.0f} % of a core during a phase "
              f"(load {load:.2f} before the run): these figures are noisy")  # fmt: skip


def _print_notes(row: dict[str, Any], result: dict[str, Any]) -> None:
    name = row["phase"]
    if row["errors"]:
        print(f"{name}: search errors {row['errors']}")
    if row.get("max_ms", 0) > 1000:
        print(f"{name}: the slowest search started {row['max_at_s']:.1f} s into the phase")
    if row["no_hits"]:
        print(f"{name}: {row['no_hits']} searches returned no hits")
    if "ask" in row:
        ask, p50 = row["ask"], row["ask"]["first_token_p50_s"]
        first = (
            "no first token"
            if p50 is None
            else f"p50 {p50:.2f} s, max {ask['first_token_max_s']:.2f} s"
        )
        errors = f", errors {ask['errors']}" if ask["errors"] else ""
        print(f"{name}: /ask first token {first} (n={ask['n']}{errors})")
    if name.startswith("during ingest"):
        start, end = row["ingest"]["start"], row["ingest"]["end"]
        done = row["ingest"].get("finished_after_s")
        state = "still running at the end" if done is None else f"FINISHED after {done:.0f} s"
        print(f"{name}: ingest {start['chunks']} -> {end['chunks']} chunks stored, "
              f"{start['indexed']} -> {end['indexed']} indexed, {start['files']} -> "
              f"{end['files']} of {result['files_expected']} files; {state}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="Length of each phase.")
    parser.add_argument("--clients", type=int, default=20, help="Concurrent search clients.")
    parser.add_argument("--no-ask", action="store_true", help="No /ask client, no model.")
    parser.add_argument("--json", action="store_true", help="Print one JSON object.")
    args = parser.parse_args()
    if not PDFS.is_dir():
        raise SystemExit(f"{PDFS}: the shared PDF corpus is missing — this bench ingests it")
    out = sys.stderr if args.json else sys.stdout

    def say(*parts: Any) -> None:
        print(*parts, file=out, flush=True)

    load = os.getloadavg()[0]
    scratch = Path(tempfile.mkdtemp(prefix="archivist-bench-serve-"))
    server = None
    try:
        server = Server(scratch, ask=not args.no_ask)
        server.wait_ready()
        say(f"server up at {server.url} (data in {scratch})")
        result = asyncio.run(bench(server, args, say))
    except KeyboardInterrupt:
        raise SystemExit("interrupted: the server was stopped and its data removed") from None
    finally:
        if server is not None:
            server.stop(say)
        shutil.rmtree(scratch, ignore_errors=True)
    if args.json:
        report = result | {"phases": [figures(p) for p in result["phases"]], "load": load}
        print(json.dumps(report, indent=2))
    else:
        print_table(result, args, load)


if __name__ == "__main__":
    main()
