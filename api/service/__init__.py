"""The one Archivist service and what it owns; every face (CLI, HTTP) goes through it.

`Archivist` (archivist.py) is made once per process from `Settings` (settings.py). It owns the
SQLite store and both indexes (indexes.py, kept healthy with health.py's marks), search
(search.py), cited answers (answers.py) and their conversations (sessions.py), the model that
answers (llm.py), the machine's models folder that every data folder shares (models.py),
ingestion off the request path (background.py), batch questions (batch.py), backups
(backup.py) and the file that announces a running server (announcement.py). The errors every
face translates are in errors.py.

Faces and clients import from this package, never from its modules: these names are the
service's public surface. The service imports no face.
"""

from api.service.announcement import announce, running_server, server_file, withdraw
from api.service.answers import NO_DOCUMENTS, Answer, AskOptions, Citation, passage_source
from api.service.archivist import Archivist, IngestOutcome
from api.service.background import BackgroundIngest, display_name
from api.service.backup import BackupReport, make_backup, restore_backup
from api.service.batch import Question, answered_ids, read_questions, run_batch
from api.service.errors import USER_ERRORS, BadRequest, ConfigError, ServerError
from api.service.indexes import SYNC_BATCH, Indexes, SyncReport, embedding_text, sync_indexes
from api.service.models import (
    InstalledModel,
    embedding_model,
    exports_to_onnx,
    installed_models,
    prune_models,
    runtime_of,
)
from api.service.replica import ReplicaOnly
from api.service.search import MODES, Filters, Mode, SearchHit, SearchHits, search_passages
from api.service.sessions import SessionSummary, check_session_id
from api.service.settings import Settings, load_settings

__all__ = [
    "MODES",
    "NO_DOCUMENTS",
    "SYNC_BATCH",
    "USER_ERRORS",
    "Answer",
    "Archivist",
    "AskOptions",
    "BackgroundIngest",
    "BackupReport",
    "BadRequest",
    "Citation",
    "ConfigError",
    "Filters",
    "IngestOutcome",
    "Indexes",
    "InstalledModel",
    "Mode",
    "Question",
    "ReplicaOnly",
    "SearchHit",
    "SearchHits",
    "ServerError",
    "SessionSummary",
    "Settings",
    "SyncReport",
    "announce",
    "answered_ids",
    "check_session_id",
    "display_name",
    "embedding_model",
    "embedding_text",
    "exports_to_onnx",
    "installed_models",
    "load_settings",
    "make_backup",
    "passage_source",
    "prune_models",
    "read_questions",
    "restore_backup",
    "runtime_of",
    "run_batch",
    "running_server",
    "search_passages",
    "server_file",
    "sync_indexes",
    "withdraw",
]
