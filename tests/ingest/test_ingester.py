"""Ingestion is incremental: unchanged, changed, deleted, renamed and copied files."""

import os
import shutil
from pathlib import Path

from api.service import Archivist
from ingest.store import ChunkStore
from tests.conftest import IngestRun, by_name
from tests.fixtures import HANDBOOK_MD, make_pdf, make_with_pandoc


def queue(store: ChunkStore) -> list[tuple[str, str]]:
    return [(w.op, w.chunk_id) for w in store.pending_work(limit=100_000)]


def chunk_ids(store: ChunkStore) -> set[str]:
    return {r[0] for r in store.db.execute("SELECT id FROM chunks")}


def test_first_run_stores_chunks_and_queues_one_upsert_each(
    docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    make_with_pandoc(docs / "handbook.docx", HANDBOOK_MD)
    (docs / "notes.md").write_text("# Notes\n\nBring a torch.\n")
    report = run_ingest(docs)
    assert report.summary() == {"ingested": 2, "unchanged": 0, "failed": 0, "removed": 0}
    assert sorted(op for op, _ in queue(store)) == ["upsert"] * store.chunk_count()
    assert {cid for _, cid in queue(store)} == chunk_ids(store)


def test_unchanged_files_are_not_converted_again(
    docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    (docs / "notes.md").write_text("# Notes\n\nBring a torch.\n")
    run_ingest(docs)
    before = queue(store)
    report = run_ingest(docs)
    assert [r.status for r in report.files] == ["unchanged"]
    assert queue(store) == before


def test_touched_but_identical_file_is_unchanged(
    docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    note = docs / "notes.md"
    note.write_text("# Notes\n\nBring a torch.\n")
    run_ingest(docs)
    os.utime(note, ns=(1, 1))
    assert [r.status for r in run_ingest(docs).files] == ["unchanged"]
    record = store.document(str(note.resolve()))
    assert record is not None and record.mtime_ns == 1


def test_changed_file_has_its_chunks_replaced(
    docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    note = docs / "notes.md"
    note.write_text("# Notes\n\nBring a torch.\n")
    run_ingest(docs)
    old_ids = chunk_ids(store)
    note.write_text("# Notes\n\nBring a lantern and spare batteries.\n")
    report = run_ingest(docs)
    assert [r.status for r in report.files] == ["ingested"]
    new_ids = chunk_ids(store)
    assert new_ids.isdisjoint(old_ids)
    texts = [c.text for c in store.chunks(sorted(new_ids))]
    assert any("lantern" in t for t in texts) and not any("torch" in t for t in texts)
    ops = queue(store)
    assert {cid for op, cid in ops if op == "delete"} == old_ids
    assert new_ids <= {cid for op, cid in ops if op == "upsert"}


def test_deleted_file_is_removed_with_its_chunks(
    docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    (docs / "keep.md").write_text("Keep this note.\n")
    (docs / "drop.md").write_text("Drop this note.\n")
    run_ingest(docs)
    dropped = chunk_ids(store)
    (docs / "drop.md").unlink()
    report = run_ingest(docs)
    assert report.removed == [str((docs / "drop.md").resolve())]
    assert [d.path.rsplit("/", 1)[-1] for d in store.documents()] == ["keep.md"]
    assert [c.text for c in store.chunks(sorted(chunk_ids(store)))] == ["Keep this note."]
    deleted = {cid for op, cid in queue(store) if op == "delete"}
    assert deleted == dropped - chunk_ids(store)


def test_moved_file_keeps_its_chunks(docs: Path, run_ingest: IngestRun, store: ChunkStore) -> None:
    make_pdf(docs / "manual.pdf", ["Page one of the manual.", "Page two of the manual."])
    run_ingest(docs)
    ids, work = chunk_ids(store), queue(store)
    (docs / "archive").mkdir()
    (docs / "manual.pdf").rename(docs / "archive" / "manual.pdf")
    report = run_ingest(docs)
    assert [(Path(r.path).name, r.status) for r in report.files] == [("manual.pdf", "ingested")]
    assert report.removed == [str((docs / "manual.pdf").resolve())]
    assert chunk_ids(store) == ids
    assert queue(store) == work  # same name: nothing to re-embed


def test_renamed_file_is_reindexed_under_its_new_name(
    docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    make_pdf(docs / "manual.pdf", ["Page one of the manual.", "Page two of the manual."])
    run_ingest(docs)
    ids, work = chunk_ids(store), queue(store)
    assert {c.document_title for c in store.chunks(sorted(ids))} == {"manual"}
    (docs / "manual.pdf").rename(docs / "Pump_X200 manual.pdf")
    report = run_ingest(docs)
    assert [(Path(r.path).name, r.status) for r in report.files] == [
        ("Pump_X200 manual.pdf", "ingested")
    ]
    assert chunk_ids(store) == ids  # not converted again
    requeued = queue(store)[len(work) :]
    assert sorted(requeued) == sorted(("upsert", cid) for cid in ids)
    assert {c.document_title for c in store.chunks(sorted(ids))} == {"Pump X200 manual"}


def test_identical_files_are_both_listed_but_processed_once(
    docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    make_with_pandoc(docs / "a.docx", HANDBOOK_MD)
    shutil.copy(docs / "a.docx", docs / "b.docx")
    report = run_ingest(docs)
    assert [r.status for r in report.files] == ["ingested", "ingested"]
    assert len(store.documents()) == 2
    assert len(queue(store)) == store.chunk_count() == report.files[0].chunks
    (docs / "a.docx").unlink()
    run_ingest(docs)
    assert store.chunk_count() == report.files[0].chunks  # b.docx still needs them


def test_bad_files_are_recorded_and_the_good_ones_still_go_in(
    docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    (docs / "good.md").write_text("Fine text.\n")
    (docs / "empty.pdf").touch()
    (docs / "movie.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    results = by_name(run_ingest(docs))
    assert results["good.md"].status == "ingested"
    assert (results["empty.pdf"].status, results["empty.pdf"].reason) == ("failed", "no-text")
    assert (results["movie.mp4"].status, results["movie.mp4"].reason) == ("failed", "unsupported")
    failed = {Path(f["path"]).name: f["reason"] for f in store.summary()["failed"]}
    assert failed == {"empty.pdf": "no-text", "movie.mp4": "unsupported"}


def test_unchanged_failed_file_stays_failed_without_reconverting(
    docs: Path, run_ingest: IngestRun
) -> None:
    (docs / "empty.pdf").touch()
    run_ingest(docs)
    again = run_ingest(docs).files[0]
    assert (again.status, again.reason) == ("failed", "no-text")


def test_fixed_file_replaces_its_failure(
    docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    (docs / "note.txt").write_bytes(bytes(range(256)) * 4)
    assert run_ingest(docs).files[0].status == "failed"
    (docs / "note.txt").write_text("Readable at last.\n")
    assert run_ingest(docs).files[0].status == "ingested"
    assert store.summary()["failed"] == []


def test_hidden_files_and_the_state_folder_are_skipped(
    tmp_path: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    data = tmp_path / "data"  # the settings' data folder: state/ lives inside it
    (data / "inbox").mkdir(parents=True)
    (data / "inbox" / "note.md").write_text("Visible.\n")
    (data / "inbox" / ".hidden.md").write_text("Hidden.\n")
    report = run_ingest(data)
    assert [Path(r.path).name for r in report.files] == ["note.md"]


def test_a_folder_is_read_without_the_temporary_files_the_watcher_ignores(
    docs: Path, run_ingest: IngestRun
) -> None:
    (docs / "report.md").write_text("The report.\n")
    for name in ("~$report.docx", "film.mp4.part", "paper.pdf.crdownload", "X.TMP", "notes.md~"):
        (docs / name).write_bytes(b"half written")
    assert [Path(r.path).name for r in run_ingest(docs).files] == ["report.md"]
    named = docs / "X.TMP"  # a file named on purpose is still read
    assert [Path(r.path).name for r in run_ingest(named).files] == ["X.TMP"]


def test_broken_and_looping_symlinks_fail_alone_with_a_reason(
    docs: Path, run_ingest: IngestRun
) -> None:
    (docs / "notes.md").write_text("# Notes\n\nBring a torch.\n")
    (docs / "dangling.md").symlink_to(docs / "gone.md")
    (docs / "loop.md").symlink_to(docs / "loop.md")
    report = run_ingest(docs)
    results = by_name(report)
    assert results["notes.md"].status == "ingested"
    for name in ("dangling.md", "loop.md"):
        assert results[name].status == "failed" and results[name].reason == "unreadable"
        assert "broken symbolic link" in (results[name].error or "")


def test_a_named_pipe_is_refused_instead_of_blocking_the_read(
    docs: Path, run_ingest: IngestRun
) -> None:
    os.mkfifo(docs / "notes.txt")  # opening it to hash it would wait for a writer forever
    (docs / "real.txt").write_text("A real note.\n")
    results = by_name(run_ingest(docs))
    assert results["real.txt"].status == "ingested"
    assert results["notes.txt"].status == "failed"
    assert results["notes.txt"].reason == "unsupported"
    assert "not a regular file" in (results["notes.txt"].error or "")


def test_symlinks_never_lead_ingestion_out_of_the_folder(
    tmp_path: Path, docs: Path, run_ingest: IngestRun, store: ChunkStore
) -> None:
    secret = tmp_path / "outside" / "passwd.txt"
    secret.parent.mkdir()
    secret.write_text("root:x:0:0:the secret line\n")
    (docs / "passwd.txt").symlink_to(secret)
    (docs / "sub").mkdir()
    (docs / "sub" / "inside.txt").write_text("A note inside the folder.\n")
    (docs / "alias.txt").symlink_to(docs / "sub" / "inside.txt")  # inside: followed
    results = by_name(run_ingest(docs))
    assert results["passwd.txt"].status == "failed"
    assert results["passwd.txt"].reason == "outside-folder"
    assert results["alias.txt"].status == "ingested"
    texts = [c.text for c in store.chunks(sorted(chunk_ids(store)))]
    assert not any("secret" in text for text in texts)


def test_a_link_named_by_the_watcher_is_held_to_the_watched_folder(
    tmp_path: Path, docs: Path, service: Archivist
) -> None:
    secret = tmp_path / "passwd.txt"
    secret.write_text("root:x:0:0:the secret line\n")
    (docs / "passwd.txt").symlink_to(secret)
    watched = service.ingest([docs / "passwd.txt"], index=False, within=[docs]).report
    assert [(r.status, r.reason) for r in watched.files] == [("failed", "outside-folder")]
