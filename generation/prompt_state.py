"""A llama.cpp context's evaluated prompt opening, kept in a file so a new process skips it.

Every prompt opens with the same system prompt and worked example (184 tokens for Qwen2.5).
Evaluating them took 1.4 s of a cold `archivist ask`'s first token on two AVX2 cores; reading
their evaluated state (the KV cache of one sequence: 2.3 MB for the 0.5B, 5.3 MB for the 1.5B)
takes ~5 ms. The state is bit-for-bit what evaluating gives — the opening evaluated alone or
inside a longer prompt leaves the same KV cache — so answers do not change.

A file is named by everything that shapes the state: the model file, the llama.cpp build, the
context's settings and the messages. Its bytes carry their SHA-256; a file that does not match,
or that llama.cpp refuses, is ignored (and replaced), never trusted.
"""

import contextlib
import ctypes
import glob
import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

import llama_cpp

log = logging.getLogger(__name__)

_MAGIC = b"archivist prompt state 2\n"
_SEQUENCE = 0  # llama-cpp-python evaluates every prompt as sequence 0


def state_file(folder: Path, model: Path, context: dict[str, Any], messages: list[Any]) -> Path:
    """Where the state of `messages` evaluated by `model` under `context` is kept in `folder`."""
    key = {
        "model": _identity(model),
        "llama.cpp": [llama_cpp.__version__, *_library()],
        "context": context,
        "messages": messages,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return folder / f"{model.name}.{digest}.kv"


def capture(llm: Any) -> tuple[list[int], bytes]:
    """The tokens `llm` has evaluated and its KV cache of them."""
    ctx = llm._ctx.ctx
    size = llama_cpp.llama_state_seq_get_size(ctx, _SEQUENCE)
    buffer = (ctypes.c_uint8 * size)()
    written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, _SEQUENCE)
    return evaluated_tokens(llm), bytes(buffer)[:written]


def evaluated_tokens(llm: Any) -> list[int]:
    """The tokens `llm` holds evaluated (what the next prompt is compared with)."""
    return [int(token) for token in llm.input_ids[: llm.n_tokens]]


def restore(llm: Any, tokens: list[int], state: bytes) -> bool:
    """Put a captured state back into `llm` in place of what it holds; False if llama.cpp
    refuses it."""
    if not tokens or len(tokens) > llm.n_ctx():
        return False
    buffer = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
    if llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buffer, len(state), _SEQUENCE) == 0:
        llm.n_tokens = 0  # what the sequence held may be gone: the next prompt is read whole
        return False
    # llama-cpp-python compares the next prompt with these tokens and evaluates only what
    # follows their common beginning.
    llm.input_ids[: len(tokens)] = tokens
    llm.n_tokens = len(tokens)
    return True


def keep_first(llm: Any, count: int) -> None:
    """Forget what `llm` evaluated after its first `count` tokens."""
    llm._ctx.kv_cache_seq_rm(_SEQUENCE, count, -1)
    llm.n_tokens = min(llm.n_tokens, count)


def common_start(one: list[int], other: list[int]) -> list[int]:
    """The tokens both lists start with."""
    same = 0
    for a, b in zip(one, other, strict=False):
        if a != b:
            break
        same += 1
    return one[:same]


def recorded_sha256(file: Path) -> str | None:
    """The SHA-256 a state file says its state has (read from its header only), or None."""
    try:
        with file.open("rb") as kept:
            if kept.readline() != _MAGIC:
                return None
            return str(json.loads(kept.readline())["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read(file: Path) -> tuple[list[int], bytes] | None:
    """A state written by `write`, or None when there is none or it is not whole."""
    try:
        data = file.read_bytes()
    except OSError:
        return None
    if not data.startswith(_MAGIC):
        return None
    header_end = data.find(b"\n", len(_MAGIC))
    try:
        header = json.loads(data[len(_MAGIC) : header_end])
        tokens = [int(token) for token in header["tokens"]]
        sha256 = str(header["sha256"])
    except (ValueError, KeyError, TypeError):
        return None
    state = data[header_end + 1 :]
    if header_end < 0 or hashlib.sha256(state).hexdigest() != sha256:
        log.info("%s is damaged: the prompt's opening is evaluated again", file)
        return None
    return tokens, state


def write(file: Path, tokens: list[int], state: bytes) -> None:
    """Keep a state in `file` (whole or not at all), replacing the model's older states there."""
    header = json.dumps({"tokens": tokens, "sha256": hashlib.sha256(state).hexdigest()})
    partial = file.with_name(f".{file.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(_MAGIC + header.encode() + b"\n" + state)
        os.replace(partial, file)
    except OSError as error:  # a read-only models folder: the opening is evaluated each time
        log.info("cannot keep the prompt's evaluated opening in %s (%s)", file, error)
        with contextlib.suppress(OSError):
            partial.unlink()
        return
    model = file.name.rsplit(".", 2)[0]
    for older in file.parent.glob(f"{glob.escape(model)}.*.kv"):
        if older != file:
            with contextlib.suppress(OSError):
                older.unlink()


def _library() -> list[Any]:
    """The llama.cpp library file this process loaded (a rebuild for another CPU rounds
    differently), where llama-cpp-python says which."""
    name = getattr(getattr(llama_cpp.llama_cpp, "_lib", None), "_name", None)
    return _identity(Path(name)) if isinstance(name, str) else []


def _identity(path: Path) -> list[Any]:
    """A file as its path, size and modification time (hashing a 1 GB model would cost more
    than the evaluation it saves)."""
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
