"""Two Archivist processes on one data folder: readers are served while a writer works, two
writers take turns, and neither deletes what the other made."""

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.api.cli.test_cli import ARCHIVIST, archivist
from tests.ollama_server import OllamaServer


def write_notes(folder: Path, count: int, topic: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        words = " ".join(f"{topic}{n}word{w}" for w in range(25))  # one chunk
        (folder / f"{topic}-{n}.md").write_text(f"# {topic.title()} note {n}\n\n{words}\n")


def start(data: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "ARCHIVIST_DATA": str(data), "ARCHIVIST_WORKERS": "1"}
    return subprocess.Popen(
        [ARCHIVIST, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def test_two_ingests_on_a_new_data_folder_take_turns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    write_notes(tmp_path / "garden", 60, "garden")
    write_notes(tmp_path / "bikes", 60, "bikes")
    first = start(data, "ingest", "--json", str(tmp_path / "garden"))
    second = start(data, "ingest", "--json", str(tmp_path / "bikes"))
    for process in (first, second):  # they overlap: both convert, embed and write at once
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        assert json.loads(out)["summary"]["ingested"] == 60
    stores = json.loads(archivist(data, "status", "--json").stdout)["stores"]
    assert stores == {"sqlite": 120, "tantivy": 120, "qdrant": 120, "pending": 0, "in_sync": True}
    for term, name in (("garden1word5", "garden-1.md"), ("bikes2word7", "bikes-2.md")):
        found = archivist(data, "search", "--json", term)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["hits"][0]["path"].endswith(name)


def test_searches_and_status_are_served_while_an_ingest_embeds(
    tmp_path: Path, ollama_embedder: tuple[OllamaServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer embeds through an Ollama-protocol server told to hold its chunks until the
    searches are done, so they surely run while it is mid-embedding (a local model embeds 400
    chunks in seconds, and a race against it is lost on a fast machine)."""
    server, url = ollama_embedder
    for name, value in (("MODEL", "nomic-embed-text"), ("BACKEND", "ollama")):
        monkeypatch.setenv(f"ARCHIVIST_EMBED_{name}", value)
    monkeypatch.setenv("ARCHIVIST_OLLAMA_URL", url)
    data = tmp_path / "data"
    write_notes(tmp_path / "first", 2, "first")
    assert archivist(data, "ingest", str(tmp_path / "first")).returncode == 0
    write_notes(tmp_path / "many", 40, "many")
    server.hold("many")  # the writer's first request of chunks waits
    ingest = start(data, "ingest", "--json", str(tmp_path / "many"))
    try:
        assert server.holding.wait(timeout=120), f"no chunks to embed (exit {ingest.poll()})"
        deadline = time.monotonic() + 120  # conversion goes on beside the held embedding
        while json.loads(archivist(data, "status", "--json").stdout)["chunks"] < 42:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        for args in (["--mode", "bm25"], ["--mode", "dense"], []):
            found = archivist(data, "search", "--json", *args, "first1word3")
            assert found.returncode == 0, found.stderr
            hits = json.loads(found.stdout)["hits"]
            if args != ["--mode", "dense"]:  # (made-up words mean nothing to the embedder)
                assert hits[0]["path"].endswith("first-1.md")
            assert hits
        status = archivist(data, "status", "--json")
        assert status.returncode == 0 and "busy" not in json.loads(status.stdout)["stores"]
        assert ingest.poll() is None and server.holding.is_set()  # still held: mid-embedding
        server.release()
        out, err = ingest.communicate(timeout=600)
    finally:
        server.release()
        ingest.kill()
    assert ingest.returncode == 0, err
    assert json.loads(out)["index"]["upserted"] == 40
    stores = json.loads(archivist(data, "status", "--json").stdout)["stores"]
    assert stores["in_sync"] and stores["sqlite"] == 42
