"""Errors from embedding, indexing and search."""


class RetrievalError(Exception):
    """Base class for retrieval failures."""


class ModelNotFound(RetrievalError):
    """A configured model (embedding or reranker) is not available offline, or is not the kind
    of model its setting needs."""


class IndexMismatch(RetrievalError):
    """An index was built with a different embedding model or dimension."""


class EmbedderUnavailable(RetrievalError):
    """The embedding model cannot run as configured (device, backend or export)."""


class IndexBusy(RetrievalError):
    """An index is open for writing in another process (an ingest, a server)."""

    reason = "index-busy"


class IndexDamaged(RetrievalError):
    """An index cannot be read: it is rebuilt from SQLite, which holds every chunk."""

    reason = "index-damaged"


class IndexUnavailable(RetrievalError):
    """The Qdrant server (or a node of its cluster) holding the dense index does not answer; the
    index is not damaged, and nothing is rebuilt: it is used again once the server answers."""

    reason = "index-unavailable"
