"""Exports a local sentence-transformers model to ONNX, fp32 and int8, once per model.

The export runs on this machine from the model's own folder (nothing is downloaded) and takes
~5 s plus torch's import, the first time a data folder uses an ONNX backend, in a child
process: torch and transformers stay out of the caller's memory, and an export can be stopped
(a server asked to stop while it exports: on a busy two-core machine it took over a minute).
The result is cached under the data folder's models directory, in a folder named after what it
was made from (the model folder, its weight files' sizes and times, the ONNX Runtime version and
this module's EXPORT_VERSION), so a changed model or runtime gets a new export and never a stale
one.

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
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from retrieval.errors import EmbedderUnavailable

log = logging.getLogger(__name__)

EXPORT_VERSION = 3
FP32_FILE, INT8_FILE = "model.onnx", "model-int8.onnx"
_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_OPTIMIZER_MODEL_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "mpnet": "bert"}
_PROJECT = Path(__file__).resolve().parents[1]


class ExportStopped(EmbedderUnavailable):
    """The export was stopped on request before it finished (nothing was kept)."""


def exported_model(
    folder: Path, *, quantized: bool, cache: Path, stop: Callable[[], bool] = lambda: False
) -> Path:
    """The ONNX file for the model in `folder`, exporting it into `cache` on first use.

    Concurrent first uses each export into a folder of their own; the first to finish is kept.
    An export under way ends (ExportStopped) soon after `stop()` turns true.
    """
    name, file = _export_name(folder), INT8_FILE if quantized else FP32_FILE
    # A read-only data folder: export for this user, outside it.
    for place in (cache, Path(tempfile.gettempdir()) / f"archivist-onnx-{os.getuid()}"):
        if (place / name / file).is_file():
            return place / name / file
        try:
            place.mkdir(mode=0o700, parents=True, exist_ok=True)
            workspace = Path(tempfile.mkdtemp(prefix=".export-", dir=place))
            break
        except OSError:
            continue
    else:
        raise EmbedderUnavailable(
            f"no writable folder to export the embedding model to ONNX in ({cache}, "
            f"{place}) — use ARCHIVIST_EMBED_BACKEND=torch"
        )
    target, wanted = place / name, place / name / file
    log.warning("Exporting the embedding model to ONNX (once for this data folder, ~10 s)")
    try:
        _export_in_child(folder, workspace, stop)
        with contextlib.suppress(OSError):  # another process finished first: keep theirs
            os.rename(workspace, target)
    except ExportStopped:
        raise
    except Exception as error:
        raise EmbedderUnavailable(
            f"could not export the embedding model in {folder} to ONNX ({error}) — use "
            "ARCHIVIST_EMBED_BACKEND=torch"
        ) from error
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
    return wanted


def _export_name(folder: Path) -> str:
    import onnxruntime

    resolved = folder.resolve()
    facts: list[Any] = [EXPORT_VERSION, onnxruntime.__version__, str(resolved)]
    for path in sorted(resolved.iterdir()):
        if path.suffix in _WEIGHT_SUFFIXES or path.name == "config.json":
            stat = path.stat()
            facts.append([path.name, stat.st_size, stat.st_mtime_ns])
    digest = hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:16]
    return f"{resolved.name}-{digest}"


def _export_in_child(folder: Path, into: Path, stop: Callable[[], bool]) -> None:
    """`_export` in a child process of this interpreter, stopped once `stop()` is true."""
    log_file = into / "export.log"
    path = os.pathsep.join(p for p in (str(_PROJECT), os.environ.get("PYTHONPATH")) if p)
    with log_file.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "retrieval.onnx_export", str(folder), str(into)],
            stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            env={**os.environ, "PYTHONPATH": path},
        )  # fmt: skip
        while True:
            try:
                child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if stop():
                    child.kill()
                    child.wait()
                    raise ExportStopped("the embedding model's ONNX export was stopped") from None
    if child.returncode != 0:
        lines = log_file.read_text(errors="replace").strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"the export exited with {child.returncode}")
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
