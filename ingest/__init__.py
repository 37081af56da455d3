"""Converting files to text, chunking, and the SQLite store of documents and chunks."""

__all__: list[str] = []
