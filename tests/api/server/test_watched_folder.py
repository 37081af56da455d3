"""The watched folder with a live server: add, modify, delete, rename, slow writes, restarts."""

import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from api.cli.watch import run_watcher
from api.server.app import create_app
from api.service import Archivist, Settings
from tests.api.server.live import Live, live_server, wait_until
from tests.llm_servers import serve_app

FEW_SECONDS = 20.0  # generous for two busy cores; typically 1-3 s (settle 0.3 s + ingest)


@pytest.fixture
def watched(settings: Settings) -> Settings:
    return settings.model_copy(update={"watch_settle_s": 0.3})


def _embedded(live: Live) -> int:
    return live.running.service.indexes.embedder.texts_encoded


def _stores(live: Live) -> dict:
    return live.http.get("/status").json()["stores"]


def test_a_dropped_file_is_searchable_within_seconds(watched: Settings) -> None:
    with live_server(watched) as live:
        started = time.monotonic()
        (watched.inbox / "tides.md").write_text("# Tides\n\nSpring tides at Vellmar reach 6 m.\n")
        wait_until(lambda: "tides.md" in live.hit_names("spring tides height"), FEW_SECONDS,
                   "the new file is found")  # fmt: skip
        print(f"searchable after {time.monotonic() - started:.1f} s")
        assert live.names() == {"tides.md": "ingested"}


def test_modify_replaces_the_content_everywhere(watched: Settings) -> None:
    watched.inbox.mkdir(parents=True)
    note = watched.inbox / "stores.md"
    note.write_text("# Stores\n\nThe cellar holds forty barrels of whale oil.\n")
    with live_server(watched) as live:
        assert "stores.md" in live.hit_names("whale oil barrels", mode="bm25")
        note.write_text("# Stores\n\nThe cellar now holds kerosene tins only.\n")
        wait_until(lambda: "stores.md" in live.hit_names("kerosene tins", mode="bm25"),
                   FEW_SECONDS, "the new content is found")  # fmt: skip
        assert "stores.md" not in live.hit_names("whale oil barrels", mode="bm25")
        stores = _stores(live)
        assert stores["in_sync"] and stores["sqlite"] == stores["qdrant"] == stores["tantivy"] == 1


def test_delete_removes_the_document_from_every_store(watched: Settings) -> None:
    watched.inbox.mkdir(parents=True)
    (watched.inbox / "keep.md").write_text("# Keep\n\nThe foghorn is tested on Mondays.\n")
    (watched.inbox / "drop.md").write_text("# Drop\n\nThe flag is raised at dawn.\n")
    with live_server(watched) as live:
        (watched.inbox / "drop.md").unlink()
        wait_until(lambda: set(live.names()) == {"keep.md"}, FEW_SECONDS, "drop.md is forgotten")
        live.settle()
        assert "drop.md" not in live.hit_names("flag raised at dawn")
        stores = _stores(live)
        assert stores["in_sync"] and stores["sqlite"] == stores["qdrant"] == stores["tantivy"] == 1


def test_a_move_never_re_embeds_and_a_rename_re_embeds_once(watched: Settings) -> None:
    watched.inbox.mkdir(parents=True)
    (watched.inbox / "log.md").write_text("# Log\n\nThe keeper logs wind speed hourly.\n")
    with live_server(watched) as live:
        before = _embedded(live)
        (watched.inbox / "archive").mkdir()
        os.rename(watched.inbox / "log.md", watched.inbox / "archive" / "log.md")
        wait_until(lambda: set(live.names()) == {"archive/log.md"}, FEW_SECONDS, "the move")
        live.settle()
        assert _embedded(live) == before  # same content, same name: the chunks moved with it
        assert "archive/log.md" in live.hit_names("wind speed", mode="bm25")
        os.rename(watched.inbox / "archive" / "log.md", watched.inbox / "archive" / "gales.md")
        wait_until(lambda: set(live.names()) == {"archive/gales.md"}, FEW_SECONDS, "the rename")
        live.settle()
        assert _embedded(live) == before + 1  # indexed under its new name, not converted again
        assert "archive/gales.md" in live.hit_names("gales", mode="bm25")
        assert _stores(live)["in_sync"]


def test_a_file_written_slowly_is_ingested_once_and_complete(watched: Settings) -> None:
    with live_server(watched) as live:
        before = _embedded(live)
        path = watched.inbox / "slow.md"
        with path.open("w") as handle:
            handle.write("# Slow\n\n")
            for n in range(8):  # pauses shorter than the settle time
                handle.write(f"Line {n} of the keeper's slow report.\n")
                handle.flush()
                time.sleep(0.1)
            handle.write("The final line names the relief boat Aurora.\n")
        wait_until(lambda: "slow.md" in live.hit_names("relief boat Aurora", mode="bm25"),
                   FEW_SECONDS, "the complete file is found")  # fmt: skip
        live.settle()
        listed = live.http.get("/documents").json()["documents"][0]
        assert listed["size"] == path.stat().st_size and listed["chunks"] == 1
        assert _embedded(live) - before == 1  # one chunk, embedded once: never half-written


def test_changes_made_while_the_server_was_down_are_reconciled_at_start(
    watched: Settings,
) -> None:
    inbox = watched.inbox
    inbox.mkdir(parents=True)
    (inbox / "edit.md").write_text("# Edit\n\nThe lamp burns paraffin.\n")
    (inbox / "gone.md").write_text("# Gone\n\nThe cat is called Mouser.\n")
    (inbox / "move.md").write_text("# Move\n\nThe stairs have 132 steps.\n")
    with live_server(watched) as live:
        assert set(live.names()) == {"edit.md", "gone.md", "move.md"}
    (inbox / "edit.md").write_text("# Edit\n\nThe lamp now burns electricity.\n")
    (inbox / "gone.md").unlink()
    os.rename(inbox / "move.md", inbox / "moved.md")
    (inbox / "new.md").write_text("# New\n\nA radio mast was added in 1931.\n")
    with live_server(watched) as live:  # start-up scan runs before live_server returns
        assert set(live.names()) == {"edit.md", "moved.md", "new.md"}
        assert "edit.md" in live.hit_names("lamp burns electricity", mode="bm25")
        assert "edit.md" not in live.hit_names("paraffin", mode="bm25")
        assert "moved.md" in live.hit_names("stairs steps", mode="bm25")
        stores = _stores(live)
        assert stores["in_sync"] and stores["sqlite"] == 3


def test_watch_command_keeps_a_folder_in_line_without_http(watched: Settings, docs: Path) -> None:
    stop = threading.Event()
    watcher = threading.Thread(target=run_watcher, args=(watched, docs), kwargs={"stop": stop})
    watcher.start()
    try:
        (docs / "bell.md").write_text("# Bell\n\nThe bell weighs 300 kg.\n")
        time.sleep(0.5)
        deadline = time.monotonic() + FEW_SECONDS
        while time.monotonic() < deadline:
            with Archivist(watched) as reader:  # a second reader of SQLite only
                if reader.store.document(str((docs / "bell.md").resolve())):
                    break
            time.sleep(0.2)
        else:
            pytest.fail("the watcher did not ingest bell.md")
    finally:
        stop.set()
        watcher.join(30)
    assert not watcher.is_alive()
    with Archivist(watched) as service:  # the watcher let go of the indexes
        hits = service.search("how heavy is the bell", k=3)
        assert hits and hits[0].path.endswith("bell.md")


def test_stopping_during_a_large_import_is_prompt_and_loses_nothing(watched: Settings) -> None:
    inbox = watched.inbox
    inbox.mkdir(parents=True)
    for n in range(40):  # about 400 chunks: more than one index batch
        paragraphs = [
            f"Report {n}, part {p}: " + " ".join(f"entry{n}x{p}x{w} tide{w}" for w in range(80))
            for p in range(10)
        ]
        (inbox / f"report-{n:02}.md").write_text("\n\n".join(paragraphs) + "\n")
    app = create_app(watched)
    started = time.monotonic()
    with serve_app(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        wait_until(lambda: http.get("/status").json()["stores"].get("tantivy", 0) > 0, 120,
                   "indexing has begun")  # fmt: skip
        stopping = time.monotonic()
    stopped_in = time.monotonic() - stopping
    with Archivist(watched) as service:
        partial = service.status()
    assert partial["stores"]["tantivy"] < partial["chunks"] or partial["documents"]["ingested"] < 40
    print(f"stopped in {stopped_in:.1f} s, {time.monotonic() - started:.1f} s after start")
    with live_server(watched, ready_s=600) as live:  # the next start carries on
        status = live.http.get("/status").json()
        assert status["documents"]["ingested"] == 40
        assert status["stores"]["in_sync"] and status["stores"]["qdrant"] == status["chunks"]
