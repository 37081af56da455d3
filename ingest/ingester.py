"""The one ingestion function: files and folders in, documents and chunks in SQLite out."""

import fnmatch
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import Any

from ingest.convert import is_supported, unsupported
from ingest.errors import BadName, IngestError, OutsideFolder, Unreadable, UnsupportedType
from ingest.store import PIPELINE_VERSION, ChunkStore, DocumentRecord, FileState
from ingest.workers import Chunked, ConversionPool, Failed, Job


@dataclass(frozen=True)
class FileResult:
    """What happened to one file."""

    path: str
    status: str  # "ingested" | "unchanged" | "failed"
    chunks: int = 0
    reason: str | None = None
    error: str | None = None
    pages_without_text: int = 0
    ocr_pages: int = 0


@dataclass
class IngestReport:
    """Every file's result, plus the stored paths that were removed because they are gone."""

    files: list[FileResult] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """Counts by status."""
        counts = {"ingested": 0, "unchanged": 0, "failed": 0}
        for result in self.files:
            counts[result.status] += 1
        return {**counts, "removed": len(self.removed)}

    def to_json(self) -> dict[str, Any]:
        """The report as `archivist ingest --json` prints it."""
        files = []
        for result in self.files:
            item: dict[str, Any] = {
                "path": result.path,
                "status": result.status,
                "chunks": result.chunks,
            }
            if result.status == "failed":
                item["reason"] = result.reason
                item["error"] = result.error
            if result.pages_without_text:
                item["pages_without_text"] = result.pages_without_text
            if result.ocr_pages:
                item["ocr_pages"] = result.ocr_pages
            files.append(item)
        return {"summary": self.summary(), "files": files, "removed": self.removed}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "IngestReport":
        """A report read back from `to_json` (a server's answer to `archivist ingest`)."""
        files = [FileResult(**item) for item in data["files"]]
        return cls(files, list(data["removed"]))


# Files being written by another program: Office's lock files (~$x.docx), downloads in
# progress (*.part, *.crdownload), editors' temporaries and backups (*.tmp, *.swp, x~).
TEMPORARY_NAMES = ("~$*", "*.part", "*.crdownload", "*.tmp", "*.swp", "*~")


def is_temporary(name: str) -> bool:
    """Whether a file name is a hidden or temporary file's, which folders are read without."""
    lowered = name.lower()
    return name.startswith(".") or any(fnmatch.fnmatchcase(lowered, p) for p in TEMPORARY_NAMES)


def find_files(paths: Sequence[Path], *, skip: Path | None = None) -> Iterator[Path]:
    """Files named directly, and every file under folders but hidden and temporary ones (and
    none under `skip`): the same files the folder watcher reports."""
    for path in paths:
        if path.is_file():
            yield path
            continue
        for folder, dirs, files in os.walk(path):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith(".") and here / d != skip)
            yield from (here / name for name in sorted(files) if not is_temporary(name))


def ingest_paths(
    store: ChunkStore,
    pool: ConversionPool,
    paths: Sequence[Path],
    *,
    force: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_file: Callable[[FileResult], None] | None = None,
    on_page: Callable[[str, int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    within: Sequence[Path] | None = None,
) -> IngestReport:
    """Bring the store in line with files and folders: add, update, skip unchanged, remove gone.

    A symbolic link is followed only into `within` (default: the folders among `paths`; a
    file named on its own may link anywhere): a link in the inbox never makes `/etc/passwd`
    searchable. Broken links and anything but a regular file (a named pipe would block the
    read forever) are recorded as failures, with the reason.

    `on_page(path, done, count)` hears how far a long PDF or picture has come (from the
    conversion threads; a file converted within a quarter of a second reports no pages).

    `stop()` returning True ends the work after the file at hand (a server shutting down);
    what was not done yet is done by the next run, which finds those files unchanged or not.

    Unchanged files (same size and mtime, or same hash) cost no conversion; a file whose
    content is already stored under another path (a rename or a copy) shares its chunks.
    """
    # A named file keeps its own name (a link stays a link, held to `within`); folders resolve.
    paths = [p.resolve() if p.is_dir() else p.parent.resolve() / p.name for p in paths]
    named = {p for p in paths if not p.is_dir()}
    folders = [p.resolve() for p in within] if within is not None else sorted(set(paths) - named)
    files = list(dict.fromkeys(find_files(paths, skip=store.path.parent.resolve())))
    if on_start:
        on_start(len(files))
    report = IngestReport()

    def done(result: FileResult) -> None:
        report.files.append(result)
        if on_file:
            on_file(result)

    # Identical files are converted once (the same bytes under another extension are not
    # identical: an empty .txt and an empty .pdf fail differently).
    waiting: dict[str, list[FileState]] = {}
    for path in files:
        if stop and stop():
            return report
        allowed = () if path in named and within is None else folders
        result, state = _plan(store, path, force, allowed)
        if result:
            done(result)
        elif state:
            waiting.setdefault(state.sha256 + path.suffix.lower(), []).append(state)

    # Largest first, so the two workers finish together instead of one waiting on a big file.
    jobs = sorted(
        (Job(key, Path(states[0].path)) for key, states in waiting.items()),
        key=lambda job: -waiting[job.key][0].size,
    )
    pages = (lambda job, done, count: on_page(str(job.path), done, count)) if on_page else None
    for job, outcome in pool.run(jobs, pages):
        for state in waiting[job.key]:
            done(_record(store, state, _renamed(outcome, job.path, Path(state.path))))
        if stop and stop():
            return report  # the conversions under way are dropped with the workers

    seen = {_shown_path(path) for path in files}
    for root in (p for p in paths if p.is_dir()):
        for record in store.documents(under=str(root)):
            if record.path not in seen and not os.path.exists(record.path):
                store.remove(record.path)
                report.removed.append(record.path)
    return report


def _plan(
    store: ChunkStore, path: Path, force: bool, folders: Sequence[Path]
) -> tuple[FileResult | None, FileState | None]:
    """Settle a file without converting it if possible; otherwise say what to convert."""
    try:
        _check_name(path)
        stat = _readable_stat(path, folders)
    except IngestError as refusal:
        return _refused(store, path, path.lstat(), refusal), None
    record = store.document(str(path))
    current = record is not None and record.pipeline_version == PIPELINE_VERSION and not force
    if current and record and (record.size, record.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
        return _unchanged(record), None
    if not is_supported(path):
        return _refused(store, path, stat, unsupported(path)), None
    state = FileState(str(path), _sha256(path), stat.st_size, stat.st_mtime_ns)
    if current and record and record.sha256 == state.sha256:
        store.record_stat(state.path, state.size, state.mtime_ns)
        return _unchanged(record), None
    source = None if force else store.ingested_content(state.sha256)
    if source:
        store.record_copy(state, source)
        result = FileResult(
            state.path,
            "ingested",
            chunks=source.chunk_count,
            pages_without_text=source.pages_without_text,
        )
        return result, None
    return None, state


def _refused(store: ChunkStore, path: Path, stat: os.stat_result, error: IngestError) -> FileResult:
    """Record a file that is not read at all, and why."""
    state = FileState(_shown_path(path), "", stat.st_size, stat.st_mtime_ns)
    store.record_failure(state, _file_type(path), error.reason, str(error))
    return FileResult(state.path, "failed", reason=error.reason, error=str(error))


def _shown_path(path: Path) -> str:
    """The path as text that SQLite, JSON and a terminal can take: bytes of a name that are
    not UTF-8 (Python carries them as lone surrogates) written as \\x escapes."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _check_name(path: Path) -> None:
    """Refuse a path that is not valid UTF-8 (a name from a Latin-1 disk or an old archive):
    it cannot be stored, printed or sent as JSON as it is."""
    shown = _shown_path(path)
    if shown != str(path):
        raise BadName(
            f"{Path(shown).name}: the file name is not valid UTF-8 (bytes of another encoding, "
            "shown as \\x escapes) — rename it, e.g. `convmv -f latin1 -t utf8 --notest FILE`"
        )


def _readable_stat(path: Path, folders: Sequence[Path]) -> os.stat_result:
    """The file's stat, or why it must not be read: a broken or looping symbolic link, a link
    out of `folders` (when given), anything but a regular file."""
    try:
        stat = path.stat()
    except OSError as error:
        what = "broken symbolic link" if path.is_symlink() else "cannot be read"
        raise Unreadable(f"{path.name}: {what} ({error.strerror or error})") from None
    target = path.resolve()
    if folders and not any(target.is_relative_to(folder) for folder in folders):
        raise OutsideFolder(
            f"{path.name}: a symbolic link to {target}, outside the folders being ingested "
            "— not followed; copy the file in, or ingest its folder"
        )
    if not S_ISREG(stat.st_mode):
        raise UnsupportedType(
            f"{path.name}: not a regular file (a named pipe, socket or device) — Archivist "
            "reads files only"
        )
    return stat


def _renamed(outcome: Chunked | Failed, converted: Path, path: Path) -> Chunked | Failed:
    """A copy's failure message names the copy, not the file that was converted."""
    prefix = f"{converted.name}: "
    if isinstance(outcome, Failed) and outcome.message.startswith(prefix):
        return Failed(outcome.reason, f"{path.name}: {outcome.message[len(prefix) :]}")
    return outcome


def _record(store: ChunkStore, state: FileState, outcome: Chunked | Failed) -> FileResult:
    if isinstance(outcome, Failed):
        store.record_failure(state, _file_type(Path(state.path)), outcome.reason, outcome.message)
        return FileResult(state.path, "failed", reason=outcome.reason, error=outcome.message)
    store.record_chunks(
        state,
        outcome.file_type,
        outcome.chunks,
        page_count=outcome.page_count,
        pages_without_text=outcome.pages_without_text,
        title=outcome.title,
        ocr_pages=outcome.ocr_pages,
        low_confidence_pages=outcome.low_confidence_pages,
    )
    return FileResult(
        state.path,
        "ingested",
        chunks=len(outcome.chunks),
        pages_without_text=outcome.pages_without_text,
        ocr_pages=outcome.ocr_pages,
    )


def _unchanged(record: DocumentRecord) -> FileResult:
    """An unchanged file keeps its earlier result; a failure stays a failure until it changes."""
    if record.status == "failed":
        return FileResult(record.path, "failed", reason=record.reason, error=record.error)
    return FileResult(record.path, "unchanged", chunks=record.chunk_count)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _file_type(path: Path) -> str:
    return path.suffix.lower().lstrip(".") or "unknown"
