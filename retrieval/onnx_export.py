"""Exports a local sentence-transformers model to ONNX, fp32 and int8, once per model.

The export runs on this machine from the model's own folder (nothing is downloaded) and takes
~5 s plus torch's import, the first time the machine uses an ONNX backend, in a child
process: torch and transformers stay out of the caller's memory, and an export can be stopped
(a server asked to stop while it exports: on a busy two-core machine it took over a minute).
The result is cached in the machine's models folder (every data folder shares it), in a folder
named after what it was made from (the model folder, its weight files' sizes and times, the ONNX
Runtime version and this module's EXPORT_VERSION), so a changed model or runtime gets a new
export and never a stale one. Its files' sizes and SHA-256 are recorded in manifest.json once
written, and checked again whenever a file's size or modification time has changed since: a
damaged export is made again.

- fp32: the transformer traced with eager attention, then ONNX Runtime's transformer optimizer
  fuses attention, GELU and layer norms (BERT-family models).
- int8: the fp32 graph with the weights of its attention (fused projections and output) and
  of each feed-forward block's first matrix multiply quantized per output channel, the
  activations quantized dynamically; the feed-forward blocks' second multiply (whose inputs,
  after GELU, have the outliers one activation scale handles worst), embeddings, layer norms
  and softmax stay in fp32. On 1,000 corpus chunks (2 cores), against torch: this form 22.0
  chunks/s, mean cosine 0.995, lowest 0.984; quantizing those multiplies too 26.6 chunks/s but
  0.990 / 0.964; one scale per tensor instead of per channel 0.926 mean.
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from retrieval.child_process import run_module
from retrieval.errors import EmbedderUnavailable

log = logging.getLogger(__name__)

EXPORT_VERSION = 3
FP32_FILE, INT8_FILE = "model.onnx", "model-int8.onnx"
MANIFEST = "manifest.json"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_OPTIMIZER_MODEL_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "mpnet": "bert"}


class ExportStopped(EmbedderUnavailable):
    """The export was stopped on request before it finished (nothing was kept)."""


def exported_model(
    folder: Path, *, quantized: bool, cache: Path, stop: Callable[[], bool] = lambda: False
) -> Path:
    """The ONNX file for the model in `folder`, exporting it into `cache` on first use.

    Concurrent first uses each export into a folder of their own; the first to finish is kept.
    An export under way ends (ExportStopped) soon after `stop()` turns true.
    """
    name, file = export_name(folder), INT8_FILE if quantized else FP32_FILE
    for place in _places(cache):
        found = _reusable(place / name, file)
        if found is not None:
            return found
        workspace = _workspace(place)
        if workspace is not None:
            break
    else:
        raise EmbedderUnavailable(
            f"no writable folder to export the embedding model to ONNX in ({cache}, "
            f"{place}) — set ARCHIVIST_MODELS to a writable folder, or use "
            "ARCHIVIST_EMBED_BACKEND=torch"
        )
    _say_if_elsewhere(cache, place)
    log.warning(
        f"Exporting the embedding model to ONNX (once for this machine, into {place}, ~10 s)"
    )
    try:
        _export_in_child(folder, workspace, stop)
        _write_manifest(workspace)
        with contextlib.suppress(OSError):  # another process finished first: keep theirs
            os.rename(workspace, place / name)
    except ExportStopped:
        raise
    except Exception as error:
        raise EmbedderUnavailable(
            f"could not export the embedding model in {folder} to ONNX ({error}) — use "
            "ARCHIVIST_EMBED_BACKEND=torch"
        ) from error
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return place / name / file


def adopt_exports(source: Path, cache: Path) -> list[Path]:
    """Bring the exports an earlier Archivist made in a data folder's own models/onnx (`source`)
    into `cache`, hard-linked where the file system allows (no second copy on disk), else
    copied; `source` is left as it was. The exports adopted, where they now are."""
    adopted: list[Path] = []
    exports = sorted(source.iterdir()) if source.is_dir() else []
    for export in exports:
        complete = all((export / file).is_file() for file in (FP32_FILE, INT8_FILE))
        if export.name.startswith(".") or not complete:
            continue  # an export is renamed into place whole: a partial one was never kept
        if any((place / export.name).is_dir() for place in _places(cache)):
            continue
        place, workspace = next(
            ((p, w) for p in _places(cache) if (w := _workspace(p)) is not None), (cache, None)
        )
        if workspace is None:
            break
        try:
            for file in export.iterdir():
                if file.is_file() and file.name != MANIFEST:
                    _link_or_copy(file, workspace / file.name)
            _write_manifest(workspace)
            with contextlib.suppress(OSError):  # another process adopted it first
                os.rename(workspace, place / export.name)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        log.info(f"Using the ONNX export {export} from {place / export.name}")
        adopted.append(place / export.name)
    return adopted


def export_name(folder: Path) -> str:
    """The name of the export folder made from the model in `folder` (it changes with the
    model's weights, the ONNX Runtime version and EXPORT_VERSION)."""
    import onnxruntime

    resolved = folder.resolve()
    facts = [EXPORT_VERSION, onnxruntime.__version__, *weight_facts(resolved)]
    digest = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]
    return f"{resolved.name}-{digest}"


def weight_facts(folder: Path) -> list[Any]:
    """What tells the model in `folder` from another or from itself with new weights: its
    path, and the name, size and time of its weight files and config."""
    resolved = folder.resolve()
    facts: list[Any] = [str(resolved)]
    for path in sorted(resolved.iterdir()):
        if path.suffix in _WEIGHT_SUFFIXES or path.name == "config.json":
            stat = path.stat()
            facts.append([path.name, stat.st_size, stat.st_mtime_ns])
    return facts


def fallback_folder() -> Path:
    """Where models go when the models folder cannot be written: this user's, in the
    temporary folder."""
    return Path(tempfile.gettempdir()) / f"archivist-models-{os.getuid()}"


def read_manifest(export: Path) -> dict[str, dict[str, Any]]:
    """What manifest.json recorded of each file of an export ({} if it has none)."""
    try:
        recorded = json.loads((export / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _places(cache: Path) -> tuple[Path, Path]:
    """Where an export is looked for and made: the cache, else this user's fallback."""
    return cache, fallback_folder() / "onnx"


def _workspace(place: Path) -> Path | None:
    """A new private folder in `place` to export into; None if `place` cannot be written."""
    try:
        place.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=".export-", dir=place))
    except OSError:
        return None


def _say_if_elsewhere(cache: Path, place: Path) -> None:
    if place != cache:
        log.warning(
            f"the models folder {cache.parent} cannot be written: the embedding model's ONNX "
            f"export goes to {place} instead — set ARCHIVIST_MODELS to a writable folder to "
            "keep it"
        )


def _reusable(export: Path, file: str) -> Path | None:
    """`export/file` if it is there and its export is as its manifest recorded; a damaged
    export is moved aside and removed (None: export again)."""
    path = export / file
    if not path.is_file():
        return None
    if _intact(export):
        return path
    log.warning(
        f"{export}: the files differ from the SHA-256 recorded when they were exported — "
        "exporting the embedding model again"
    )
    aside = export.with_name(f".damaged-{export.name}-{os.getpid()}")
    with contextlib.suppress(OSError):  # read-only, or another process moved it first
        os.rename(export, aside)
        shutil.rmtree(aside, ignore_errors=True)
    return None


def _intact(export: Path) -> bool:
    """Every file the manifest lists has its recorded SHA-256, re-hashed only when its size or
    modification time changed. An export made before manifests is recorded as it is."""
    recorded = read_manifest(export)
    if not recorded:
        with contextlib.suppress(OSError):
            _write_manifest(export)
        return True
    changed = False
    for name, entry in recorded.items():
        try:
            stat = (export / name).stat()
        except OSError:
            return False
        if [stat.st_size, stat.st_mtime_ns] == [entry.get("size"), entry.get("mtime_ns")]:
            continue
        if stat.st_size != entry.get("size") or _sha256(export / name) != entry.get("sha256"):
            return False
        changed = True
    if changed:  # touched but the same bytes: no need to hash again next time
        with contextlib.suppress(OSError):
            _write_manifest(export)
    return True


def _write_manifest(export: Path) -> None:
    """Record each file's size, time and SHA-256, read back from disk once it is there."""
    entries = {}
    for path in sorted(export.iterdir()):
        if path.is_file() and path.name != MANIFEST and not path.name.startswith("."):
            with path.open("rb") as written:
                os.fsync(written.fileno())
            stat = path.stat()
            entries[path.name] = {
                "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": _sha256(path)
            }  # fmt: skip
    temporary = export / f".{MANIFEST}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(entries, indent=1))
    temporary.replace(export / MANIFEST)


def _sha256(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def _export_in_child(folder: Path, into: Path, stop: Callable[[], bool]) -> None:
    """`_export` in a child process of this interpreter, stopped once `stop()` is true."""
    log_file = into / "export.log"
    if not run_module(["retrieval.onnx_export", str(folder), str(into)], log_file, stop):
        raise ExportStopped("the embedding model's ONNX export was stopped")
    log_file.unlink()


def _export(folder: Path, into: Path) -> None:
    import onnx
    import torch
    import transformers
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoConfig, AutoModel

    transformers.logging.disable_progress_bar()
    config = AutoConfig.from_pretrained(str(folder))
    # Eager attention traces to plain MatMul/Softmax, which the optimizer fuses into one
    # Attention operator; the default SDPA path traces to a graph it cannot fuse.
    model = AutoModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    traced = into / "traced.onnx"
    example = torch.ones(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "tokens"} for name in [*names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _hidden_states(model),
            (example, torch.ones_like(example), torch.zeros_like(example)),
            str(traced),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    fp32 = into / FP32_FILE
    _optimize(traced, fp32, config)
    traced.unlink()
    with _quiet_root_logger():  # the quantizer logs advice meant for image models
        graph = onnx.load(str(fp32), load_external_data=False).graph
        kept = [n.name for n in graph.node if _feed_forward_out(n.name)]
        quantize_dynamic(
            str(fp32),
            str(into / INT8_FILE),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            nodes_to_exclude=kept,
            extra_options={"DefaultTensorType": 1},  # float, for the fused operators' outputs
        )


def _feed_forward_out(node: str) -> bool:
    """A feed-forward block's second multiply, in the traced BERT graph's naming."""
    return node.endswith("/output/dense/MatMul") and "/attention/" not in node


@contextlib.contextmanager
def _quiet_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _optimize(source: Path, target: Path, config: Any) -> None:
    """Fuse the transformer's operators where ONNX Runtime knows the architecture."""
    model_type = _OPTIMIZER_MODEL_TYPES.get(getattr(config, "model_type", ""))
    if model_type is None:
        shutil.copyfile(source, target)
        return
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    optimized = optimize_model(
        str(source),
        model_type=model_type,
        num_heads=config.num_attention_heads,
        hidden_size=config.hidden_size,
        opt_level=1,
    )
    optimized.save_model_to_file(str(target))


def _hidden_states(model: Any) -> Any:
    """The transformer as a module of its three inputs that returns the token states (the
    traced graph then has plain tensor inputs and one output)."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    return HiddenStates()


if __name__ == "__main__":  # the child process of `_export_in_child`: MODEL_FOLDER INTO
    _export(Path(sys.argv[1]), Path(sys.argv[2]))
