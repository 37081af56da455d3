"""One models folder per machine: every data folder shares one ONNX export, made once,
atomically, checked by SHA-256; older data folders' own models/ keep working."""

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnxruntime
import pytest

from api.service import Archivist, Settings
from api.service.models import gguf_file
from generation.models import CATALOGUE, resolve_gguf
from retrieval.embedder import DEFAULT_MODEL, resolve_model_path
from retrieval.onnx_export import FP32_FILE, INT8_FILE, MANIFEST, exported_model

ROOT = Path(__file__).resolve().parents[3]
EXPORTING = "Exporting the embedding model to ONNX"


@pytest.fixture(scope="module")
def session_export(model_dir: Path) -> Path:
    """The test session's export folder (made once per session, whoever asks first)."""
    folder = resolve_model_path(DEFAULT_MODEL)
    return exported_model(folder, quantized=True, cache=model_dir / "onnx").parent


def settings_for(data: Path, models: Path) -> Settings:
    return Settings(
        data=data, model_dir=models, llm="none", embed_backend="onnx-int8", device="cpu",
        workers=1,
    )  # fmt: skip


def ingest_a_note(settings: Settings, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "note.md").write_text("# Garden\n\nWater the tomatoes every morning before eight.\n")
    with Archivist(settings) as service:
        outcome = service.ingest([folder])
    assert outcome.index_error is None and outcome.index is not None
    assert outcome.index.upserted == 1


def exports(models: Path) -> list[Path]:
    return sorted((models / "onnx").iterdir())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_models_folder_is_per_machine_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ARCHIVIST_MODELS", "ARCHIVIST_MODEL_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert Settings(data=tmp_path / "a").models == tmp_path / "cache" / "archivist" / "models"
    assert Settings(data=tmp_path / "b").models == tmp_path / "cache" / "archivist" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert Settings().models == Path.home() / ".cache" / "archivist" / "models"


def test_archivist_models_sets_the_folder_and_the_old_name_still_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ARCHIVIST_MODELS", raising=False)
    monkeypatch.setenv("ARCHIVIST_MODEL_DIR", str(tmp_path / "old"))
    assert Settings().models == tmp_path / "old"
    monkeypatch.setenv("ARCHIVIST_MODELS", str(tmp_path / "new"))
    assert Settings().models == tmp_path / "new"
    assert Settings(model_dir=tmp_path / "given").models == tmp_path / "given"


def test_two_data_folders_share_one_export(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    models = tmp_path / "models"
    with caplog.at_level(logging.WARNING):
        ingest_a_note(settings_for(tmp_path / "one", models), tmp_path / "docs")
        [export] = exports(models)
        made = (export / INT8_FILE).stat()
        ingest_a_note(settings_for(tmp_path / "two", models), tmp_path / "docs")
    again = (export / INT8_FILE).stat()
    assert (again.st_ino, again.st_mtime_ns) == (made.st_ino, made.st_mtime_ns)
    assert exports(models) == [export]  # no second export, no workspace left behind
    assert sum(EXPORTING in record.getMessage() for record in caplog.records) == 1
    assert not (tmp_path / "one" / "models").exists()
    assert not (tmp_path / "two" / "models").exists()


def test_two_processes_exporting_at_once_leave_one_valid_model(tmp_path: Path) -> None:
    cache = tmp_path / "models" / "onnx"
    code = (
        "import sys; from pathlib import Path; "
        "from retrieval.embedder import resolve_model_path; "
        "from retrieval.onnx_export import exported_model; "
        f"print(exported_model(resolve_model_path({DEFAULT_MODEL!r}), quantized=True, "
        f"cache=Path({str(cache)!r})))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        for _ in range(2)
    ]
    results = [child.communicate(timeout=300) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    [export] = exports(tmp_path / "models")  # one export, neither workspace left
    assert {Path(out.strip()) for out, _ in results} == {export / INT8_FILE}
    recorded = json.loads((export / MANIFEST).read_text())
    assert sorted(recorded) == [INT8_FILE, FP32_FILE]
    for name, entry in recorded.items():
        assert sha256(export / name) == entry["sha256"]
        assert (export / name).stat().st_size == entry["size"]
    session = onnxruntime.InferenceSession(str(export / INT8_FILE))
    assert [i.name for i in session.get_inputs()] == [
        "input_ids", "attention_mask", "token_type_ids"
    ]  # fmt: skip


def test_a_corrupted_cached_model_is_detected_by_hash_and_rebuilt(
    session_export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "models" / "onnx"
    shutil.copytree(session_export, cache / session_export.name)
    damaged = cache / session_export.name / INT8_FILE
    with damaged.open("r+b") as file:  # same size, different bytes
        file.seek(damaged.stat().st_size // 2)
        file.write(b"\0" * 4096)
    with caplog.at_level(logging.WARNING):
        rebuilt = exported_model(resolve_model_path(DEFAULT_MODEL), quantized=True, cache=cache)
    assert "differ from the SHA-256 recorded" in caplog.text and EXPORTING in caplog.text
    recorded = json.loads((rebuilt.parent / MANIFEST).read_text())
    assert sha256(rebuilt) == recorded[INT8_FILE]["sha256"]
    assert b"\0" * 4096 not in rebuilt.read_bytes()[rebuilt.stat().st_size // 2 :][:4096]
    assert exports(tmp_path / "models") == [rebuilt.parent]


def test_a_touched_but_unchanged_model_is_kept(
    session_export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "models" / "onnx"
    shutil.copytree(session_export, cache / session_export.name)
    touched = cache / session_export.name / INT8_FILE
    os.utime(touched, ns=(1, 1))
    with caplog.at_level(logging.WARNING):
        found = exported_model(resolve_model_path(DEFAULT_MODEL), quantized=True, cache=cache)
    assert found == touched and caplog.text == ""
    assert json.loads((touched.parent / MANIFEST).read_text())[INT8_FILE]["mtime_ns"] == 1


def test_an_old_data_folder_with_its_own_models_opens_without_exporting(
    session_export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / "old-data"
    legacy = old / "models" / "onnx" / session_export.name
    legacy.mkdir(parents=True)
    for name in (FP32_FILE, INT8_FILE):  # as Archivist left them before the manifest
        shutil.copy2(session_export / name, legacy / name)
    before = {name: sha256(legacy / name) for name in (FP32_FILE, INT8_FILE)}
    models = tmp_path / "machine-models"
    with caplog.at_level(logging.WARNING):
        ingest_a_note(settings_for(old, models), tmp_path / "docs")
    assert EXPORTING not in caplog.text
    adopted = models / "onnx" / session_export.name / INT8_FILE
    assert adopted.stat().st_ino == (legacy / INT8_FILE).stat().st_ino  # linked, not copied
    assert {name: sha256(legacy / name) for name in (FP32_FILE, INT8_FILE)} == before
    assert sorted(p.name for p in legacy.iterdir()) == [INT8_FILE, FP32_FILE]  # left as it was


def test_an_old_data_folders_joined_gguf_is_used_without_joining_again(
    model_dir: Path, tmp_path: Path
) -> None:
    name = Settings().gguf
    model = CATALOGUE[name]
    resolve_gguf(name, model_dir)  # the session's, joined once
    joined = model_dir / model.file_name
    old = tmp_path / "old-data"
    (old / "models").mkdir(parents=True)
    (old / "models" / joined.name).hardlink_to(joined)  # as an older Archivist left it
    models = tmp_path / "machine-models"
    found = gguf_file(settings_for(old, models), name)
    assert found == models / model.run_file_name  # the form it runs in, made from that file
    adopted = models / joined.name
    assert adopted.stat().st_ino == joined.stat().st_ino  # linked in: neither joined nor copied
    assert (old / "models" / joined.name).is_file()
