"""`archivist models` and `archivist models prune` as a user runs them."""

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from generation import prompt_state
from generation.models import CATALOGUE
from retrieval.embedder import DEFAULT_MODEL, resolve_model_path
from retrieval.onnx_export import FP32_FILE, INT8_FILE, exported_model

ARCHIVIST = str(Path(sys.executable).parent / "archivist")
OTHER_GGUF = "qwen2.5-coder-1.5b.gguf"  # a catalogue model the default settings do not name


def archivist(data: Path, models: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARCHIVIST_DATA": str(data), "ARCHIVIST_MODELS": str(models)}
    return subprocess.run(
        [ARCHIVIST, *args], capture_output=True, text=True, env=env, timeout=120, check=False
    )


@pytest.fixture
def models(model_dir: Path, tmp_path: Path) -> Path:
    """A models folder holding the session's export (named by the settings) and a joined GGUF
    that no setting names, with the stamp its check wrote."""
    export = exported_model(
        resolve_model_path(DEFAULT_MODEL), quantized=True, cache=model_dir / "onnx"
    ).parent
    folder = tmp_path / "models"
    shutil.copytree(export, folder / "onnx" / export.name)
    (folder / OTHER_GGUF).write_bytes(b"GGUF" + b"\0" * 996)
    stamp = {"path": str(folder / OTHER_GGUF), "sha256": "ab" * 32}
    (folder / f"{OTHER_GGUF}.verified").write_text(json.dumps(stamp))
    return folder


def test_models_lists_files_sizes_hashes_and_what_the_settings_name(
    models: Path, tmp_path: Path
) -> None:
    done = archivist(tmp_path / "data", models, "models", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout)
    assert listing["folder"] == str(models)
    found = {Path(m["path"]).name: m for m in listing["models"]}
    assert sorted(found) == sorted([INT8_FILE, FP32_FILE, OTHER_GGUF])
    assert found[OTHER_GGUF] == {
        "path": str(models / OTHER_GGUF), "kind": "gguf", "bytes": 1000, "sha256": "ab" * 32,
        "named": False, "location": "machine",
    }  # fmt: skip
    assert found[INT8_FILE]["named"] and found[FP32_FILE]["named"]
    assert len(found[INT8_FILE]["sha256"]) == 64
    assert listing["total_bytes"] == sum(m["bytes"] for m in listing["models"])
    text = archivist(tmp_path / "data", models, "models").stdout
    assert f"Models folder: {models}" in text
    assert f"  gguf      0.0 MB  sha256 abababababababab  {models / OTHER_GGUF}" in text


def test_prune_dry_run_says_what_it_would_remove_and_keeps_it(models: Path, tmp_path: Path) -> None:
    done = archivist(tmp_path / "data", models, "models", "prune", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"Would remove {models / OTHER_GGUF} (0.0 MB)",
        "Would remove 1 files, 0.0 MB.",
    ]
    assert (models / OTHER_GGUF).is_file()


def test_prune_removes_what_no_setting_names_and_reports_the_bytes_freed(
    models: Path, tmp_path: Path
) -> None:
    done = archivist(tmp_path / "data", models, "models", "prune", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [m["path"] for m in report["removed"]] == [str(models / OTHER_GGUF)]
    assert (report["dry_run"], report["freed_bytes"]) == (False, 1000)
    assert sorted(p.name for p in models.iterdir()) == ["onnx"]  # the file and its stamp
    assert len(json.loads(archivist(tmp_path / "data", models, "models", "--json").stdout)[
        "models"
    ]) == 2  # fmt: skip


def test_prune_leaves_a_data_folders_own_models_alone(models: Path, tmp_path: Path) -> None:
    own = tmp_path / "data" / "models"
    own.mkdir(parents=True)
    shutil.copy(models / OTHER_GGUF, own / OTHER_GGUF)
    listing = json.loads(archivist(tmp_path / "data", models, "models", "--json").stdout)
    assert {"path": str(own / OTHER_GGUF), "location": "data folder"}.items() <= next(
        m for m in listing["models"] if m["path"] == str(own / OTHER_GGUF)
    ).items()
    archivist(tmp_path / "data", models, "models", "prune")
    assert (own / OTHER_GGUF).is_file()


def test_prune_removes_what_a_stopped_export_left_and_keeps_one_under_way(
    models: Path, tmp_path: Path
) -> None:
    stopped, running = models / "onnx" / ".export-stopped", models / "onnx" / ".export-running"
    for workspace in (stopped, running):
        workspace.mkdir()
        (workspace / "traced.onnx").write_bytes(b"\0" * 500)
    os.utime(stopped, (0, 0))  # left by an export stopped long ago
    report = json.loads(archivist(tmp_path / "data", models, "models", "prune", "--json").stdout)
    assert {"path": str(stopped), "kind": "partial", "bytes": 500}.items() <= next(
        m for m in report["removed"] if m["kind"] == "partial"
    ).items()
    assert not stopped.exists() and (running / "traced.onnx").is_file()


def test_a_packaged_model_folder_is_listed_whole_and_pruned_with_its_stamp(
    models: Path, tmp_path: Path
) -> None:
    """An extracted EmbeddingGemma folder is one entry (its files summed) until a setting
    names it; prune removes the folder and the stamp of its checks."""
    folder = models / "embeddinggemma-300m"
    (folder / "2_Dense").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 700)
    (folder / "2_Dense" / "model.safetensors").write_bytes(b"\0" * 300)
    (models / "embeddinggemma-300m.verified").write_text("{}")
    env = {**os.environ, "ARCHIVIST_EMBED_MODEL": "embeddinggemma-300m"}
    named = subprocess.run(
        [ARCHIVIST, "models", "--json"], capture_output=True, text=True, timeout=120, check=False,
        env={**env, "ARCHIVIST_DATA": str(tmp_path / "data"), "ARCHIVIST_MODELS": str(models)},
    )  # fmt: skip
    entry = next(m for m in json.loads(named.stdout)["models"] if m["path"] == str(folder))
    assert (entry["kind"], entry["bytes"], entry["named"]) == ("folder", 1000, True)
    report = json.loads(archivist(tmp_path / "data", models, "models", "prune", "--json").stdout)
    assert str(folder) in [m["path"] for m in report["removed"]]
    assert not folder.exists() and not (models / "embeddinggemma-300m.verified").exists()


def test_a_models_prompt_opening_is_listed_and_pruned_with_its_model(
    models: Path, tmp_path: Path
) -> None:
    """The default model's evaluated prompt opening stays; another model's goes with it."""
    default = CATALOGUE["qwen2.5-coder-0.5b"].run_file_name  # the file the default runs
    prompts = models / "prompts"
    prompts.mkdir()
    prompt_state.write(prompts / f"{default}.0123456789abcdef.kv", [1, 2, 3], b"\0" * 200)
    (prompts / f"{OTHER_GGUF}.fedcba9876543210.kv").write_bytes(b"\0" * 300)
    listing = json.loads(archivist(tmp_path / "data", models, "models", "--json").stdout)
    found = {Path(m["path"]).name: m for m in listing["models"] if m["kind"] == "prompt"}
    kept = prompts / f"{default}.0123456789abcdef.kv"
    assert {name: (m["bytes"], m["named"], m["sha256"]) for name, m in found.items()} == {
        kept.name: (kept.stat().st_size, True, hashlib.sha256(b"\0" * 200).hexdigest()),
        f"{OTHER_GGUF}.fedcba9876543210.kv": (300, False, None),  # not a state file
    }
    report = json.loads(archivist(tmp_path / "data", models, "models", "prune", "--json").stdout)
    assert str(prompts / f"{OTHER_GGUF}.fedcba9876543210.kv") in [
        m["path"] for m in report["removed"]
    ]
    assert [p.name for p in prompts.iterdir()] == [f"{default}.0123456789abcdef.kv"]
