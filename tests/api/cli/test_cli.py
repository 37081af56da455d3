"""The `archivist` command as a user runs it: output, --json and exit codes."""

import json
import os
import subprocess
import sys
from pathlib import Path

ARCHIVIST = str(Path(sys.executable).parent / "archivist")


def archivist(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARCHIVIST_DATA": str(data), "ARCHIVIST_WORKERS": "2"}
    return subprocess.run(
        [ARCHIVIST, *args], capture_output=True, text=True, env=env, timeout=300, check=False
    )


def test_ingest_json_reports_every_file_and_exits_2_when_some_failed(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Tips\n\nWater the beans at dawn.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    done = archivist(tmp_path / "data", "ingest", "--json", str(docs))
    assert done.returncode == 2, done.stderr
    report = json.loads(done.stdout)
    assert report["summary"] == {"ingested": 1, "unchanged": 0, "failed": 1, "removed": 0}
    files = {Path(f["path"]).name: f for f in report["files"]}
    assert files["good.md"] == {
        "path": str(docs.resolve() / "good.md"),
        "status": "ingested",
        "chunks": 1,
    }
    assert files["broken.pdf"]["status"] == "failed"
    assert files["broken.pdf"]["error"].startswith("broken.pdf: damaged or not a PDF")


def test_second_ingest_reports_unchanged_and_exits_0(tmp_path: Path) -> None:
    note = tmp_path / "note.txt"
    note.write_text("A short note.\n")
    assert archivist(tmp_path / "data", "ingest", str(note)).returncode == 0
    done = archivist(tmp_path / "data", "ingest", str(note))
    assert done.returncode == 0
    assert "0 ingested, 1 unchanged, 0 failed, 0 removed" in done.stdout


def test_missing_path_is_a_usage_error_with_exit_1(tmp_path: Path) -> None:
    done = archivist(tmp_path / "data", "ingest", str(tmp_path / "nope.pdf"))
    assert done.returncode == 1
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_status_lists_documents_chunks_and_failures(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Alpha.\n")
    (docs / "empty.txt").touch()
    archivist(tmp_path / "data", "ingest", str(docs))
    text = archivist(tmp_path / "data", "status")
    assert text.returncode == 0
    assert "1 ingested, 1 failed" in text.stdout
    assert "empty.txt: the file is empty (0 bytes)" in text.stdout
    summary = json.loads(archivist(tmp_path / "data", "status", "--json").stdout)
    assert summary["documents"] == {"ingested": 1, "failed": 1}
    assert summary["chunks"] == 1
    assert summary["pending_index_work"] == 0


def test_bad_setting_is_a_clear_error_with_exit_1(tmp_path: Path) -> None:
    env = {**os.environ, "ARCHIVIST_DATA": str(tmp_path), "ARCHIVIST_CHUNK_MAX_TOKENS": "999"}
    (tmp_path / "n.txt").write_text("x\n")
    done = subprocess.run(
        [ARCHIVIST, "ingest", str(tmp_path / "n.txt")], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert "ARCHIVIST_CHUNK_MAX_TOKENS=999 is over what all-MiniLM-L6-v2 reads" in done.stderr


def test_search_json_returns_hits_with_citations(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bread.md").write_text("# Bread\n\nBake the sourdough loaf until 96 degrees inside.\n")
    (docs / "bikes.md").write_text("# Bikes\n\nOil the chain every two weeks.\n")
    assert archivist(tmp_path / "data", "ingest", str(docs)).returncode == 0
    done = archivist(
        tmp_path / "data", "search", "sourdough temperature", "-k", "1", "--json", "--explain"
    )
    assert done.returncode == 0, done.stderr
    (hit,) = json.loads(done.stdout)["hits"]
    assert Path(hit["path"]).name == "bread.md"
    assert hit["section"] == "Bread" and hit["page"] is None
    assert set(hit) >= {"chunk_id", "path", "page", "section", "score", "snippet"}
    assert hit["legs"]["bm25"]["rank"] == 1
    text = archivist(tmp_path / "data", "search", "oil the chain")
    assert "bikes.md — Bikes" in text.stdout


def test_before_any_document_search_and_ask_say_how_to_add_some(tmp_path: Path) -> None:
    inbox = tmp_path / "data" / "inbox"
    for command in ("search", "ask"):
        done = archivist(tmp_path / "data", command, "how often is the lens cleaned")
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("No documents have been added yet"), done.stdout
        assert str(inbox) in done.stdout and "archivist ingest PATH" in done.stdout
    (tmp_path / "bikes.md").write_text("# Bikes\n\nOil the chain every two weeks.\n")
    assert archivist(tmp_path / "data", "ingest", str(tmp_path / "bikes.md")).returncode == 0
    done = archivist(tmp_path / "data", "search", "oil the chain", "--type", "pdf")
    assert done.stdout.strip() == "No matches."
    questions = tmp_path / "q.txt"
    questions.write_text("How often is the chain oiled?\n")
    done = archivist(tmp_path / "empty", "batch", str(questions))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no documents have been added yet" in done.stderr, done.stderr
    assert not (tmp_path / "q.answers.jsonl").exists()  # no answer taken as done
    done = archivist(tmp_path / "data", "ask", "how often is the chain oiled", "--extractive")
    assert "Oil the chain every two weeks." in done.stdout
    assert "\nnone, first token" in done.stderr  # no model named: no space before the comma


def test_status_reports_each_store_and_agreement(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("A note.\n")
    archivist(tmp_path / "data", "ingest", str(note))
    status = json.loads(archivist(tmp_path / "data", "status", "--json").stdout)
    assert status["stores"] == {
        "sqlite": 1, "tantivy": 1, "qdrant": 1, "pending": 0, "in_sync": True
    }  # fmt: skip
    models = os.environ["ARCHIVIST_MODEL_DIR"]  # the test session's (tests/conftest.py)
    assert status["models"] == models
    shown = archivist(tmp_path / "data", "status").stdout
    assert "SQLite 1, Tantivy 1, Qdrant 1 chunks (in sync)" in shown
    assert f"Models:      {models} (archivist models lists them)" in shown


def test_a_bad_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    cases = {
        "ARCHIVIST_FUSION": ("foo", "should be 'blend', 'score' or 'rrf'"),
        "ARCHIVIST_CHUNK_TOKENS": ("abc", "valid integer"),
        "ARCHIVIST_EMBED_BATCH_SIZE": ("0", "greater than 0"),
        "ARCHIVIST_CONVERT_MEMORY_MB": ("1", "greater than or equal to 256"),
        "ARCHIVIST_CONVERT_TIMEOUT_S": ("-1", "greater than 0"),
        "ARCHIVIST_DATA": ("", "must name a folder"),
    }
    for name, (value, says) in cases.items():
        env = {**os.environ, "ARCHIVIST_DATA": str(tmp_path / "data"), name: value}
        done = subprocess.run(
            [ARCHIVIST, "status"], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 1, (name, done.stderr)
        assert "Traceback" not in done.stderr
        assert done.stderr.startswith(f"Error: {name}={value!r}: ") and says in done.stderr
    assert not (tmp_path / "state").exists() and not Path("state").exists()


def test_an_error_with_json_is_also_an_object_on_stdout(tmp_path: Path) -> None:
    done = archivist(tmp_path / "data", "search", "--json", "   ")
    assert done.returncode == 1 and done.stderr.startswith("Error: the search query is empty")
    assert json.loads(done.stdout) == {
        "error": done.stderr.removeprefix("Error: ").strip(),
        "reason": "bad-request",
    }


def test_backup_and_restore_bring_a_data_folder_back_searchable(tmp_path: Path) -> None:
    note = tmp_path / "docs" / "bell.md"
    note.parent.mkdir()
    note.write_text("# Bell\n\nThe Vellmar fog bell weighs 300 kg.\n")
    assert archivist(tmp_path / "data", "ingest", str(note.parent)).returncode == 0
    backup = json.loads(
        archivist(tmp_path / "data", "backup", "--json", str(tmp_path / "b")).stdout
    )
    assert (backup["documents"], set(backup["files"])) == (1, {"archivist.db"})
    again = archivist(tmp_path / "data", "backup", str(tmp_path / "b"))
    assert again.returncode == 1 and "not an empty folder" in again.stderr

    done = archivist(tmp_path / "restored", "restore", "--json", str(tmp_path / "b"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["index"]["upserted"] == 1
    found = archivist(tmp_path / "restored", "search", "--json", "fog bell weight")
    assert json.loads(found.stdout)["hits"][0]["path"] == str(note.resolve())
    refused = archivist(tmp_path / "restored", "restore", str(tmp_path / "b"))
    assert refused.returncode == 1 and "already holds an Archivist database" in refused.stderr
