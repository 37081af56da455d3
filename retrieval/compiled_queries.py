"""A sentence-transformers model's question path compiled ahead of time: the transformer
exported with torch.export for one text of any length, compiled by AOTInductor (weights frozen
into the compiled code) and kept as an unpacked AOTInductor package — a folder in the models
folder, made once per machine in a child process and loaded in about a second.

Measured on two AVX-512 BF16 cores (2026-12-07, `bench/embed.py --compile`, squad-dev's
questions one at a time, one torch thread): EmbeddingGemma-300M in bf16 embedded a question
in 20.2 ms p50 against 43.0 ms uncompiled, in fp32 32.9 against 88.1 ms (cosine to the
uncompiled vectors 0.9998 or more); the compile took 66-68 s and the package is 582 MB (47 MB
for MiniLM). Compiling in the serving process itself (torch.compile) ran as fast, but took its
minute at every start and failed while other threads embedded with the same model: torch
marks the whole process as compiling, and the model's layers route their kernels through
process-wide state then.

Run as a module it compiles: `python -m retrieval.compiled_queries FOLDER DTYPE OUT`.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from retrieval.child_process import process_alive, run_module
from retrieval.onnx_export import weight_facts

log = logging.getLogger(__name__)

COMPILE_VERSION = 1  # bump to compile every model again
_UNPACKED = "package"  # what the child compiles into, inside its scratch folder


class CompileStopped(Exception):
    """The compile was stopped before it finished (the process is closing)."""


def compiled_package(
    folder: Path, dtype: str, cache: Path, stop: Callable[[], bool] = lambda: False
) -> Path:
    """The package folder of the model in `folder` in `dtype` (bfloat16, float32, …),
    compiled into `cache` on first use. Concurrent first uses each compile into a folder of
    their own; the first to finish is kept. Raises CompileStopped once `stop()` turns true,
    RuntimeError with the compile's last line when it fails."""
    package = cache / package_name(folder, dtype)
    if package.is_dir():
        return package
    cache.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(cache)
    log.warning(
        f"Compiling the embedding model's question path (once for this machine, into {cache}, "
        "about a minute); questions are embedded as before meanwhile"
    )
    work = Path(tempfile.mkdtemp(prefix=f".compile-{os.getpid()}-", dir=cache))
    try:
        args = ["retrieval.compiled_queries", str(folder), dtype, str(work / _UNPACKED)]
        if not run_module(args, work / "compile.log", stop):
            raise CompileStopped("the question path's compile was stopped")
        with contextlib.suppress(OSError):  # another process finished first: keep theirs
            os.rename(work / _UNPACKED, package)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return package


def package_name(folder: Path, dtype: str) -> str:
    """The package's folder name: it changes with the model's weights, torch's version, the CPU's
    instruction set torch uses, the precision and COMPILE_VERSION."""
    capability = torch.backends.cpu.get_cpu_capability()
    facts = [COMPILE_VERSION, torch.__version__, capability, dtype, *weight_facts(folder)]
    digest = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]
    return f"{folder.resolve().name}-{dtype}-{digest}"


def load_package(package: Path) -> Callable[[Any, Any], Any]:
    """The compiled transformer: called with a (1, tokens) int64 `input_ids` and
    `attention_mask`, it returns the token embeddings. Loaded from the unpacked folder, as
    it is kept: given a `.pt2` file, torch unpacks it into a new temporary folder at every load
    and never removes it (hundreds of MB each time a server starts)."""
    loader = torch._C._aoti.AOTIModelPackageLoader(str(package), "model", False, 1, -1)
    return lambda input_ids, attention_mask: loader.run([input_ids, attention_mask])[0]


def _remove_abandoned(cache: Path) -> None:
    """Remove what compiles of processes that are gone left behind (a package is hundreds of
    MB; a process killed while compiling never removes its own)."""
    for scratch in cache.glob(".compile-*"):
        pid = scratch.name.split("-")[1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)


def _compile(folder: Path, dtype: str, out: Path) -> None:
    """Compile into the folder `out` (the package, unpacked)."""
    import transformers
    from sentence_transformers import SentenceTransformer

    from retrieval.embedding_models import max_tokens

    transformers.logging.disable_progress_bar()
    torch.set_num_threads(1)  # the compiled kernels keep this count: the query thread's one
    with contextlib.suppress(OSError):  # a background job: the serving process comes first
        os.nice(10)
    model = SentenceTransformer(str(folder), device="cpu").to(getattr(torch, dtype)).eval()
    transformer = _Transformer(model[0].model).eval()
    example = torch.ones(1, 8, dtype=torch.long)
    tokens = torch.export.Dim("tokens", min=2, max=max(3, max_tokens(folder)))
    with torch.inference_mode():
        program = torch.export.export(
            transformer, (example, torch.ones_like(example)),
            dynamic_shapes=({1: tokens}, {1: tokens}),
        )  # fmt: skip
        packed = out.with_suffix(".pt2")
        torch._inductor.aoti_compile_and_package(
            program, package_path=str(packed), inductor_configs={"freezing": True}
        )
    with zipfile.ZipFile(packed) as archive:  # one folder, named after the file
        archive.extractall(out.parent)
    packed.unlink()


class _Transformer(torch.nn.Module):
    """The model's transformer as a module of (input_ids, attention_mask) -> token embeddings."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: Any, attention_mask: Any) -> Any:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


if __name__ == "__main__":
    _compile(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
