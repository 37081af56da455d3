"""Errors raised while turning a file into chunks; each message names the file and a way out."""


class IngestError(Exception):
    """Base class: a file could not be ingested. `reason` is a short machine-readable kind."""

    reason = "failed"


class UnsupportedType(IngestError):
    """The file's extension is not one Archivist can convert."""

    reason = "unsupported"


class Encrypted(IngestError):
    """The file is password-protected."""

    reason = "encrypted"


class NoTextLayer(IngestError):
    """The file converts, but holds no extractable text (a scan without OCR, an empty file)."""

    reason = "no-text"


class Corrupt(IngestError):
    """The file is damaged or is not what its extension says."""

    reason = "corrupt"


class TooLarge(IngestError):
    """The file, or what it expands to, is over the configured limits."""

    reason = "too-large"


class OutOfMemory(TooLarge):
    """Converting the file needs more memory than it was given (a bigger share may do)."""


class TooDeep(IngestError):
    """The file is valid, but nested deeper (sections, lists, tables) than the converter follows."""

    reason = "too-deep"


class TimedOut(IngestError):
    """Conversion ran past the configured time limit."""

    reason = "timeout"


class Unreadable(IngestError):
    """The path cannot be read as a file: a broken symbolic link, no permission."""

    reason = "unreadable"


class OutsideFolder(IngestError):
    """A symbolic link in an ingested folder points outside the folders being ingested."""

    reason = "outside-folder"


class BadName(IngestError):
    """The file's name is not valid UTF-8, so it cannot be stored or shown as it is."""

    reason = "bad-name"


class WorkersFailed(IngestError):
    """The conversion worker processes exit as they start, so nothing can be converted."""

    reason = "workers-failed"


class StoreError(Exception):
    """The SQLite store cannot be opened or written."""


class ReadOnly(StoreError):
    """The data folder cannot be written (a read-only mount, or no write permission)."""

    reason = "read-only"


class StoreDamaged(StoreError):
    """The SQLite file is corrupt: it is never written to, and the way out is a restore or a
    re-ingest from the source files into a new data folder."""

    reason = "store-damaged"
