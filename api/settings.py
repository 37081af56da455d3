"""Settings: every field has a working local default and can be set as ARCHIVIST_<NAME>."""

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Archivist's configuration, read from ARCHIVIST_* environment variables."""

    model_config = SettingsConfigDict(env_prefix="ARCHIVIST_", extra="ignore")

    data: Path = Field(
        Path("data"),
        description="Data folder: inbox/ holds documents; state/ holds the database and indexes.",
    )
    embed_model: str = Field(
        "all-MiniLM-L6-v2",
        description="Sentence-transformers model name or local folder; the default ships offline.",
    )
    chunk_tokens: int = Field(200, description="Target chunk size, in embedding-model tokens.")
    chunk_max_tokens: int = Field(
        240, description="Hard cap on chunk size; must stay below the model's input limit."
    )
    chunk_overlap_tokens: int = Field(32, description="Tokens repeated between neighbour chunks.")
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="Conversion processes (default: one per core).",
    )
    convert_timeout_s: float = Field(120.0, description="Time limit for converting one file.")
    convert_memory_mb: int = Field(2048, description="Memory limit for converting one file.")
    max_file_mb: int = Field(512, description="Files larger than this are not converted.")
    max_expand_mb: int = Field(
        1024, description="Office/EPUB archives that unpack larger than this are refused."
    )

    @property
    def inbox(self) -> Path:
        """The watched folder of documents."""
        return self.data / "inbox"

    @property
    def state_dir(self) -> Path:
        """Where the database and indexes live (git-ignored)."""
        return self.data / "state"

    @property
    def database(self) -> Path:
        """The SQLite file: the source of truth."""
        return self.state_dir / "archivist.db"
