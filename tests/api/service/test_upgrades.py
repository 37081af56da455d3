"""Upgrades keep data: a data folder written by an earlier Archivist opens with this one.

Each folder under tests/fixtures/old-data was made once, by the code of an earlier commit
(make_fixture.py, README.md there), from the notes in corpus/, ingested from the fixed path
/tmp/archivist-old-corpus; its expected.json holds what that code stored and found. Here the
current service opens a copy: the schema is migrated, every document, chunk and conversation
is kept, and the recorded searches find the same passages, before and after the corpus is
ingested again (a pipeline change converts old documents again).
"""

import json
import shutil
import sqlite3
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.service import Archivist, Settings
from api.service.search import Filters
from generation.prompt import Turn
from ingest.migrations import MIGRATIONS
from ingest.store import PIPELINE_VERSION
from retrieval.errors import RetrievalError

OLD_DATA = Path(__file__).resolve().parents[2] / "fixtures" / "old-data"
CORPUS = Path("/tmp/archivist-old-corpus")  # where every fixture's documents were ingested from
FOLDERS = sorted(folder.name for folder in OLD_DATA.glob("m0*"))


@dataclass(frozen=True)
class OldFolder:
    """A copy of one fixture's data folder, and what the code that wrote it recorded."""

    settings: Settings
    expected: dict[str, Any]


@pytest.fixture(params=FOLDERS)
def old(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OldFolder]:
    """One earlier version's data folder, copied under tmp_path."""
    fixture, data = OLD_DATA / request.param, tmp_path / "data"
    shutil.copytree(fixture / "state", data / "state", ignore=shutil.ignore_patterns("*.tar.xz"))
    with tarfile.open(fixture / "state" / "dense.tar.xz") as packed:
        packed.extractall(data / "state", filter="data")
    expected = json.loads((fixture / "expected.json").read_text())
    yield OldFolder(Settings(data=data, workers=2, convert_timeout_s=30, llm="none"), expected)
    # Qdrant's engine preallocates 131 MB here; pytest keeps the last three runs' folders.
    shutil.rmtree(data / "state" / "dense", ignore_errors=True)


@pytest.fixture
def corpus() -> Path:
    """The documents again at the path the old versions ingested them from."""
    shutil.rmtree(CORPUS, ignore_errors=True)
    shutil.copytree(OLD_DATA / "corpus", CORPUS)
    return CORPUS


def test_the_schema_is_migrated_to_this_version(old: OldFolder) -> None:
    """Every migration of this version is recorded, those the old code had applied included."""
    with Archivist(old.settings) as service:
        service.status()
    applied = _column(old.settings.database, "SELECT name FROM _migrations")
    assert set(old.expected["migrations"]) <= set(applied)
    assert sorted(applied) == sorted(migration.__name__ for migration in MIGRATIONS)


def test_documents_chunks_and_failures_are_kept(old: OldFolder) -> None:
    """The same documents with the same status, the same chunks, the same failure reasons."""
    with Archivist(old.settings) as service:
        summary = service.status()
        documents = {record.path: record.status for record in service.store.documents()}
    assert documents == old.expected["documents"]
    assert summary["chunks"] == old.expected["chunks"]
    assert summary["documents"] == old.expected["status"]["documents"]
    assert summary["failed"] == old.expected["status"]["failed"]
    assert _column(old.settings.database, "SELECT count(*) FROM chunks") == [summary["chunks"]]


def test_conversations_are_kept(old: OldFolder) -> None:
    """A session started with the old version goes on with its earlier turns."""
    turn = old.expected["session"]
    if turn is None:
        pytest.skip("this version kept no conversations")
    with Archivist(old.settings) as service:
        history = service.sessions.history(turn["session_id"])
    assert history == [Turn(turn["question"], turn["answer"])]


def test_search_right_after_the_upgrade_finds_or_names_the_way_out(old: OldFolder) -> None:
    """Before any command has written, `status` names what must be rebuilt, and each search
    finds what the old version found first or, where it needs an index built differently by
    the old version, says which command rebuilds it."""
    with Archivist(old.settings) as service:
        stores = service.status()["stores"]
        problems = [stores.get("stale"), *stores.get("damaged", {}).values()]
        assert stores["in_sync"] or any(problems)
        assert all("reindex`" in problem for problem in problems if problem)
        for query, hits in old.expected["searches"].items():
            try:
                first = service.search(query, k=3)[0]
            except RetrievalError as error:
                assert not stores["in_sync"]
                assert "`archivist reindex`" in str(error)
                continue
            assert first.chunk_id == hits[0]["chunk_id"], query


def test_the_same_passages_are_found_after_reindex(old: OldFolder) -> None:
    """After `archivist reindex` (what the message says), each recorded search finds the very
    chunk it found first before; the documents' files are not needed for that."""
    shutil.rmtree(CORPUS, ignore_errors=True)
    with Archivist(old.settings) as service:
        service.reindex()
        assert service.status()["stores"]["in_sync"]
        _assert_same_first_hits(service, old.expected)
        recorded = {hit["chunk_id"] for hits in old.expected["searches"].values() for hit in hits}
        assert {chunk.id for chunk in service.store.chunks(sorted(recorded))} == recorded
        pdfs = service.search("what did the breakwater repair cost", k=10,
                              filters=Filters(file_type="pdf"))  # fmt: skip
    assert {hit.path for hit in pdfs} == {f"{CORPUS}/harbour-accounts.pdf"}


def test_ingesting_again_after_the_upgrade_finds_the_same_documents(
    old: OldFolder, corpus: Path
) -> None:
    """`archivist ingest` of the same folder rebuilds the old indexes on its own and converts
    documents of an older pipeline again; the searches find the same file and page."""
    with Archivist(old.settings) as service:
        outcome = service.ingest([corpus])
        assert outcome.index_error is None
        documents = service.store.documents()
        assert {d.path: d.status for d in documents} == old.expected["documents"]
        assert {d.pipeline_version for d in documents if d.status == "ingested"} == {
            PIPELINE_VERSION
        }
        assert service.status()["stores"]["in_sync"]
        for query, hits in old.expected["searches"].items():
            first = service.search(query, k=3)[0]
            assert (first.path, first.page_start) == (hits[0]["path"], hits[0]["page"]), query
    chunks = _column(old.settings.database, "SELECT count(*) FROM chunks")
    assert _column(old.settings.database, "SELECT count FROM totals") == chunks


def _assert_same_first_hits(service: Archivist, expected: dict[str, Any]) -> None:
    for query, hits in expected["searches"].items():
        first = service.search(query, k=3)[0]
        assert first.chunk_id == hits[0]["chunk_id"], query
        assert (first.path, first.page_start) == (hits[0]["path"], hits[0]["page"]), query


def _column(database: Path, sql: str) -> list[Any]:
    db = sqlite3.connect(database)
    try:
        return [row[0] for row in db.execute(sql)]
    finally:
        db.close()
