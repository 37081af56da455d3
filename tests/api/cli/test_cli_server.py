"""While a server runs, the other commands go through it instead of the locked stores."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from api.service import Settings, announce, running_server, server_file, withdraw
from tests.api.cli.test_ask_cli import ARCHIVIST
from tests.api.server.live import live_server

LENS = "# Lens\n\nThe Vellmar lighthouse lens is cleaned every fourteen days.\n"


def _run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARCHIVIST_DATA": str(settings.data), "ARCHIVIST_LLM": "none",
           "ARCHIVIST_WORKERS": "1"}  # fmt: skip
    return subprocess.run(
        [ARCHIVIST, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def _json(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def seeded(settings: Settings) -> Settings:
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "lens.md").write_text(LENS)
    return settings


def test_commands_talk_to_the_running_server(seeded: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "bell.md"
    outside.write_text("# Bell\n\nThe Vellmar bell weighs 300 kg.\n")
    questions = tmp_path / "questions.txt"
    questions.write_text("How often is the lens cleaned?\nHow heavy is the bell?\n")
    with live_server(seeded) as live:
        announce(seeded, live.url)
        status = _json(_run(seeded, "status", "--json"))
        assert status["server"] == live.url and status["documents"]["ingested"] == 1

        ingested = _json(_run(seeded, "ingest", str(outside), "--json"))
        assert ingested["summary"]["ingested"] == 1
        assert str(outside) in live.names()  # the server itself holds it now

        hits = _json(_run(seeded, "search", "how heavy is the bell", "--json"))["hits"]
        assert hits[0]["path"] == str(outside)
        plain = _run(seeded, "search", "lens cleaned", "--explain")
        assert "lens.md" in plain.stdout and "bm25 #" in plain.stdout

        answer = _json(_run(seeded, "ask", "How often is the lens cleaned?", "--json"))
        assert answer["backend"] == "none" and answer["citations"][0]["path"].endswith("lens.md")
        streamed = _run(seeded, "ask", "How often is the lens cleaned?")
        assert streamed.returncode == 0 and "fourteen days" in streamed.stdout

        batch = _json(_run(seeded, "batch", str(questions), "--json"))
        assert (batch["answered"], batch["failed"]) == (2, 0)
        lines = Path(batch["output"]).read_text().splitlines()
        assert len(lines) == 2 and all(json.loads(line)["citations"] for line in lines)

        refused = _run(seeded, "reindex")
        assert refused.returncode == 1 and live.url in refused.stderr
        withdraw(seeded)
    assert not server_file(seeded).exists()


def test_without_a_server_commands_open_the_stores_themselves(seeded: Settings) -> None:
    announce(seeded, "http://127.0.0.1:9")  # this test process: never taken for a server
    assert running_server(seeded) is None
    server_file(seeded).write_text(json.dumps({"url": "http://127.0.0.1:9", "pid": 2**22 + 7}))
    assert running_server(seeded) is None  # no such process: a stale file
    ingested = _json(_run(seeded, "ingest", str(seeded.inbox), "--json"))
    assert ingested["summary"]["ingested"] == 1
    status = _json(_run(seeded, "status", "--json"))
    assert "server" not in status and status["stores"]["in_sync"]


def test_an_api_key_server_tells_the_cli_to_send_the_key(seeded: Settings) -> None:
    keyed = seeded.model_copy(update={"api_key": "s3cret"})
    with live_server(keyed) as live:
        announce(keyed, live.url)
        refused = _run(keyed, "status")
        assert refused.returncode == 1 and "ARCHIVIST_API_KEY" in refused.stderr
        env_key = {**os.environ, "ARCHIVIST_DATA": str(keyed.data), "ARCHIVIST_API_KEY": "s3cret"}
        allowed = subprocess.run([ARCHIVIST, "status", "--json"], capture_output=True,
                                 text=True, env=env_key, timeout=300, check=False)  # fmt: skip
        assert _json(allowed)["server"] == live.url
        withdraw(keyed)


@pytest.mark.parametrize(
    ("stop", "background"),
    [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
    ids=["ctrl-c", "sigterm", "sigint-to-a-background-job"],
)
def test_ctrl_c_or_a_service_managers_stop_ends_the_server_cleanly(
    seeded: Settings, stop: signal.Signals, background: bool
) -> None:
    """`background`: started the way a non-interactive shell starts `archivist serve &`, with
    SIGINT ignored; `kill -INT` still stops it like Ctrl+C."""
    server = _serve(seeded, background=background)
    assert server.stdout is not None
    assert "is serving" in server.stdout.readline()
    out, err = _interrupted(server, stop)
    assert server.returncode == 0, err
    assert "Stopped." in out and "Aborted" not in err and "Traceback" not in err
    assert running_server(seeded) is None  # the announcement is withdrawn


def test_ctrl_c_during_the_models_first_export_stops_the_export(
    seeded: Settings, tmp_path: Path
) -> None:
    """A new models folder: the server exports the model to ONNX as it warms up (over a minute
    on a busy machine). Ctrl+C stops the export instead of waiting for it."""
    exports = tmp_path / "models" / "onnx"
    server = _serve(seeded, ARCHIVIST_MODEL_DIR=str(tmp_path / "models"))
    started = time.monotonic()
    while not (exports.is_dir() and any(exports.iterdir())) and time.monotonic() - started < 120:
        time.sleep(0.05)
    assert exports.is_dir() and [p.name[:8] for p in exports.iterdir()] == [".export-"]
    out, err = _interrupted(server)
    assert server.returncode == 0, err
    assert "Stopped." in out and "Traceback" not in err and "warming up failed" not in err
    assert not list(exports.iterdir())  # neither an export nor its workspace


def _serve(settings: Settings, *, background: bool = False, **more: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ARCHIVIST_DATA": str(settings.data), "ARCHIVIST_LLM": "none",
           "ARCHIVIST_WORKERS": "1", "ARCHIVIST_PORT": "0", "PYTHONFAULTHANDLER": "1",
           **more}  # fmt: skip
    # A shell's `trap "" INT` ignores SIGINT, and exec keeps it ignored, as for a background job.
    command = (
        ["sh", "-c", 'trap "" INT; exec "$0" serve', ARCHIVIST]
        if background
        else [ARCHIVIST, "serve"]
    )
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _interrupted(
    server: subprocess.Popen[str], stop: signal.Signals = signal.SIGINT
) -> tuple[str, str]:
    """Ctrl+C (or `stop`), then what the server printed until it exited (every thread's stack
    in the failure if it was still stopping a minute later)."""
    try:
        server.send_signal(stop)
        try:
            return server.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            server.send_signal(signal.SIGABRT)  # the fault handler prints every thread's stack
            out, err = server.communicate(timeout=30)
            pytest.fail(f"still stopping 60 s after Ctrl+C; where it was:\n{out}\n{err}")
    finally:
        server.kill()
