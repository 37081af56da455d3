"""Errors from embedding, indexing and search."""


class RetrievalError(Exception):
    """Base class for retrieval failures."""


class ModelNotFound(RetrievalError):
    """The configured embedding model is not available offline."""


class IndexMismatch(RetrievalError):
    """An index was built with a different embedding model or dimension."""


class EmbedderUnavailable(RetrievalError):
    """The embedding model cannot run as configured (device, backend or export)."""
