"""The machine's models folder: where the embedding model's ONNX exports and the joined GGUF
models are made once and shared by every data folder, what it holds, and pruning it.

Data folders made before it kept their own `models/`: what is there is still used (brought
into the machine's folder by hard link where it can be, or read in place), never deleted.
"""

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from api.service.settings import Settings
from generation.errors import ModelMissing
from generation.gguf import read_metadata
from generation.models import (
    CATALOGUE,
    EMBEDDING_CATALOGUE,
    FOLDER_CATALOGUE,
    CatalogueModel,
    find_gguf,
    resolve_folder,
    resolve_gguf,
    verify_file,
)
from generation.prompt_state import recorded_sha256
from retrieval.embedder import resolve_model_path
from retrieval.embedding_models import (
    EmbeddingModel,
    Runtime,
    gguf_model,
    ollama_model,
    sentence_transformers_model,
)
from retrieval.errors import RetrievalError
from retrieval.onnx_export import adopt_exports, export_name, fallback_folder, read_manifest

log = logging.getLogger(__name__)
_LEFTOVER_AGE_S = 3600
PROMPT_STATES = "prompts"  # a GGUF's evaluated prompt opening (generation.prompt_state)


@dataclass(frozen=True)
class InstalledModel:
    """One model file in a models folder."""

    path: str
    kind: str  # "onnx", "gguf", "folder" (a packaged model folder), "prompt" (a GGUF's evaluated
    # prompt opening), or "partial" (what a stopped export or join left)
    bytes: int
    sha256: str | None  # as recorded when it was made or last checked (a folder: its weights');
    # None: never recorded
    named: bool  # the current settings use it
    location: str  # "machine" (prunable) or "data folder" (an older data folder's own)

    def to_json(self) -> dict[str, Any]:
        """The model as a JSON object."""
        return asdict(self)


def onnx_cache(settings: Settings) -> Path:
    """The folder of ONNX exports, with the exports the data folder's own models/ holds
    brought in first (so an older data folder never exports again)."""
    cache = settings.models / "onnx"
    legacy = settings.data_models / "onnx"
    if legacy.is_dir() and not _same(legacy, cache):
        adopt_exports(legacy, cache)
    return cache


_VOCABULARY = 1 << 20  # read a GGUF's whole vocabulary (BERT's holds 30,522 tokens)


def runtime_of(name: str) -> Runtime:
    """Which kind of embedding model a name names, without reading it: a packaged GGUF or a
    .gguf file, else a sentence-transformers model."""
    gguf = name in EMBEDDING_CATALOGUE or name.lower().endswith(".gguf")
    return "gguf" if gguf else "sentence-transformers"


def exports_to_onnx(name: str) -> bool:
    """Whether the ONNX backends can take the named model (a packaged folder says)."""
    model = FOLDER_CATALOGUE.get(name)
    return model is None or model.exports_to_onnx


def embedding_model(settings: Settings) -> EmbeddingModel:
    """The embedding model the settings name, described from its files (a packaged GGUF is
    extracted into the models folder on first use: ~2 s), once per process: the service's
    settings check, its conversion pool and its indexes all ask, and a GGUF's description reads
    its whole vocabulary, an Ollama model's asks the server."""
    key = (settings.embed_model, settings.embed_backend, settings.ollama_url, settings.models,
           settings.data_models)  # fmt: skip
    if key not in _DESCRIBED:
        _DESCRIBED[key] = _describe(settings)
    return _DESCRIBED[key]


_DESCRIBED: dict[tuple[Any, ...], EmbeddingModel] = {}


def _describe(settings: Settings) -> EmbeddingModel:
    name, models = settings.embed_model, settings.models
    if settings.embed_backend == "ollama":
        timeout = settings.llm_timeout_s
        return ollama_model(name, settings.ollama_url, models / "tokenizers", timeout=timeout)
    if name in FOLDER_CATALOGUE:
        return sentence_transformers_model(name, model_folder(settings, name))
    if runtime_of(name) == "sentence-transformers":
        return sentence_transformers_model(name, resolve_model_path(name))
    path = gguf_file(settings, name, EMBEDDING_CATALOGUE)
    header = read_metadata(path, max_array=_VOCABULARY)
    try:
        return gguf_model(name, path, header, models / "tokenizers")
    except OSError:  # an unwritable models folder
        return gguf_model(name, path, header, fallback_folder() / "tokenizers")


def gguf_file(
    settings: Settings, name: str, catalogue: dict[str, CatalogueModel] = CATALOGUE
) -> Path:
    """The named model's verified GGUF: joined once in the machine's folder (or this user's
    fallback when it cannot be written), or taken from the data folder's own models/."""
    model = catalogue.get(name)
    if model is not None and model.size is not None and model.sha256 is not None:
        legacy = settings.data_models / model.file_name
        if legacy.is_file() and not (settings.models / model.file_name).exists():
            found = _adopt_gguf(legacy, settings.models, size=model.size, sha256=model.sha256)
            if found is not None:
                return resolve_gguf(name, found.parent, catalogue=catalogue)
    return _made_once(settings, name, partial(resolve_gguf, name, catalogue=catalogue), "joined")


def model_folder(settings: Settings, name: str) -> Path:
    """A packaged model folder, extracted once from its wheels into the machine's folder (or
    this user's fallback when it cannot be written) and checked file by file."""
    return _made_once(settings, name, partial(resolve_folder, name), "extracted")


def _made_once(settings: Settings, name: str, make: Callable[[Path], Path], made: str) -> Path:
    """`make(folder)` in the machine's models folder, or in this user's fallback folder when
    that one cannot be written."""
    try:
        return make(settings.models)
    except OSError as error:
        fallback = fallback_folder()
        log.warning(
            f"the models folder {settings.models} cannot be written ({error.strerror}): "
            f"'{name}' is {made} in {fallback} instead — set ARCHIVIST_MODELS to a writable "
            "folder to keep it"
        )
        return make(fallback)


def find_gguf_file(settings: Settings, name: str) -> Path | None:
    """The named model's GGUF if it is at hand, without joining or hashing anything."""
    for folder in (settings.models, settings.data_models, fallback_folder()):
        if (found := find_gguf(name, folder)) is not None:
            return found
    return None


def installed_models(settings: Settings) -> list[InstalledModel]:
    """The model files in the machine's folder, then those of the data folder's own models/."""
    named = _named_files(settings)
    found = _listed(settings.models, "machine", named)
    if settings.data_models.is_dir() and not _same(settings.data_models, settings.models):
        found += _listed(settings.data_models, "data folder", named)
    return found


def prune_models(settings: Settings, *, dry_run: bool = False) -> list[InstalledModel]:
    """Remove the machine folder's models that no setting names (a data folder's own are
    left alone); the models removed, or that would be with `dry_run`."""
    removed = [m for m in installed_models(settings) if m.location == "machine" and not m.named]
    for model in [] if dry_run else removed:
        path = Path(model.path)
        if path.is_dir():  # a packaged model folder, or a stopped export's workspace
            shutil.rmtree(path, ignore_errors=True)
            Path(f"{path}.verified").unlink(missing_ok=True)
            continue
        path.unlink(missing_ok=True)
        Path(f"{path}.verified").unlink(missing_ok=True)
        left = {p.name for p in path.parent.iterdir()} if path.parent.is_dir() else set()
        if model.kind == "onnx" and left <= {"manifest.json"}:
            shutil.rmtree(path.parent, ignore_errors=True)
    return removed


def _listed(folder: Path, location: str, named: set[str]) -> list[InstalledModel]:
    found = _leftovers(folder, location) if location == "machine" else []
    for path in sorted(folder.glob("*.gguf")):
        found.append(_entry(path, "gguf", _stamp_sha256(path), location, named))
    for name, model in FOLDER_CATALOGUE.items():
        if (folder / name).is_dir():
            weights = model.files.get("model.safetensors", (0, None))[1]
            found.append(_entry(folder / name, "folder", weights, location, named))
    for path in sorted((folder / PROMPT_STATES).glob("*.kv")):
        found.append(_entry(path, "prompt", recorded_sha256(path), location, named))
    for export in sorted((folder / "onnx").glob("[!.]*")):
        recorded = read_manifest(export)
        for path in sorted(export.glob("*.onnx")):
            sha256 = recorded.get(path.name, {}).get("sha256")
            found.append(_entry(path, "onnx", sha256, location, named))
    return found


def _leftovers(folder: Path, location: str) -> list[InstalledModel]:
    """What a stopped export or join left behind (an hour old: no export takes that long)."""
    found = []
    candidates = [*folder.glob(".*.tmp"), *(folder / PROMPT_STATES).glob(".*.tmp")]
    candidates += (folder / "onnx").glob(".export-*")
    candidates += (folder / "onnx").glob(".damaged-*")
    for path in sorted(candidates):
        with contextlib.suppress(OSError):
            if time.time() - path.stat().st_mtime > _LEFTOVER_AGE_S:
                files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
                size = sum(file.stat().st_size for file in files)
                found.append(InstalledModel(str(path), "partial", size, None, False, location))
    return found


def _entry(
    path: Path, kind: str, sha256: str | None, location: str, named: set[str]
) -> InstalledModel:
    files = path.rglob("*") if path.is_dir() else [path]
    size = sum(file.stat().st_size for file in files if file.is_file())
    # An export is named by its folder, a prompt state by its model ("<gguf>.<key>.kv").
    name = {"onnx": path.parent.name, "prompt": path.name.rsplit(".", 2)[0]}.get(kind, path.name)
    used = name in named
    return InstalledModel(str(path), kind, size, sha256, used, location)


def _named_files(settings: Settings) -> set[str]:
    """The names the settings use: the GGUF files (answers, embeddings) and the embedding
    model's export folder."""
    named = set()
    for model in (CATALOGUE.get(settings.gguf), EMBEDDING_CATALOGUE.get(settings.embed_model)):
        if model is not None:
            named |= {model.file_name, model.run_file_name}
    if settings.embed_model in FOLDER_CATALOGUE:  # run on torch: no ONNX export of it
        named.add(settings.embed_model)
    elif runtime_of(settings.embed_model) == "sentence-transformers":
        with contextlib.suppress(RetrievalError, OSError):
            named.add(export_name(resolve_model_path(settings.embed_model)))
    return named


def _stamp_sha256(path: Path) -> str | None:
    try:
        stamp = json.loads(Path(f"{path}.verified").read_text())
    except (OSError, ValueError):
        return None
    return stamp.get("sha256") if isinstance(stamp, dict) else None


def _adopt_gguf(legacy: Path, folder: Path, *, size: int, sha256: str) -> Path | None:
    """A data folder's own joined GGUF, checked, and hard-linked into `folder` when it can be
    (else used where it is); None if it is not the model it should be."""
    try:
        verify_file(
            legacy, size=size, sha256=sha256, stamp=legacy.with_name(f"{legacy.name}.verified")
        )
    except ModelMissing:
        return None
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            (folder / legacy.name).hardlink_to(legacy)
        return folder / legacy.name
    return legacy


def _same(one: Path, other: Path) -> bool:
    return one.resolve() == other.resolve()
