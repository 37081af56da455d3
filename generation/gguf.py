"""A GGUF file's header key/values (no tensors), and the memory a llama.cpp context will take."""

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generation.errors import ModelMissing

_MAGIC = b"GGUF"
# GGUF value types: id -> struct format of one scalar (8 = string, 9 = array are handled apart).
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
_TYPE_NAMES = {
    0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32", 6: "float32",
    7: "bool", 8: "string", 9: "array", 10: "uint64", 11: "int64", 12: "float64",
}  # fmt: skip
_F16_BYTES = 2  # llama.cpp's default KV cache type


@dataclass(frozen=True)
class SkippedArray:
    """An array left unread because it is long (the vocabulary, merges, token types)."""

    item_type: str
    count: int


class _Reader:
    """Walks the header of a memory-mapped GGUF file."""

    def __init__(self, data: mmap.mmap) -> None:
        self.data = data
        self.pos = 0

    def scalar(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.scalar("<Q")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, kind: int, max_array: int) -> Any:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            return self.array(max_array)
        raise ValueError(f"unknown GGUF value type {kind}")

    def array(self, max_array: int) -> list[Any] | SkippedArray:
        kind, count = self.scalar("<I"), self.scalar("<Q")
        if count <= max_array:
            return [self.value(kind, max_array) for _ in range(count)]
        if kind in _SCALARS:  # fixed width: jump over the whole array at once
            self.pos += count * struct.calcsize(_SCALARS[kind])
        elif kind == _STRING:  # each string is length-prefixed: hop from length to length
            unpack, pos = struct.Struct("<Q").unpack_from, self.pos
            for _ in range(count):
                pos += 8 + unpack(self.data, pos)[0]
            self.pos = pos
        else:
            for _ in range(count):
                self.value(kind, 0)
        return SkippedArray(_TYPE_NAMES.get(kind, str(kind)), count)


def read_metadata(path: Path, *, max_array: int = 64) -> dict[str, Any]:
    """The header key/values of a GGUF file; arrays longer than `max_array` become SkippedArray."""
    try:
        with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data[:4] != _MAGIC:
                raise ModelMissing(f"{path}: not a GGUF file (it does not start with 'GGUF')")
            reader = _Reader(data)
            reader.pos = 4
            version = reader.scalar("<I")
            # Version 1 used 32-bit counts; 2 and 3 use 64-bit.
            count_fmt = "<I" if version == 1 else "<Q"
            reader.scalar(count_fmt)  # tensor count: not needed
            entries = reader.scalar(count_fmt)
            metadata: dict[str, Any] = {"GGUF.version": version}
            for _ in range(entries):
                key = reader.string()
                metadata[key] = reader.value(reader.scalar("<I"), max_array)
            return metadata
    except (OSError, ValueError, struct.error) as error:
        raise ModelMissing(
            f"{path}: cannot read the GGUF header ({error}) — check the path, or reinstall or "
            "re-download the model"
        ) from error


@dataclass(frozen=True)
class Shape:
    """What the KV cache depends on, from a model's GGUF metadata."""

    architecture: str
    layers: int
    kv_heads: int
    key_dim: int
    value_dim: int
    trained_context: int


def model_shape(metadata: dict[str, Any]) -> Shape:
    """Layers, KV heads, head dims and trained context from `<arch>.*` GGUF keys."""
    arch = str(metadata["general.architecture"])

    def key(name: str, default: Any = None) -> Any:
        return metadata.get(f"{arch}.{name}", default)

    heads = _per_layer_max(key("attention.head_count"))
    # Grouped-query attention stores fewer KV heads; absent means one per query head.
    kv_heads = _per_layer_max(key("attention.head_count_kv", heads))
    key_dim = int(key("attention.key_length", int(key("embedding_length")) // heads))
    return Shape(
        architecture=arch,
        layers=int(key("block_count")),
        kv_heads=kv_heads,
        key_dim=key_dim,
        value_dim=int(key("attention.value_length", key_dim)),
        trained_context=int(key("context_length")),
    )


def _per_layer_max(value: Any) -> int:
    """Some models give a head count per layer; the largest bounds the cache."""
    return max(int(v) for v in value) if isinstance(value, list) else int(value)


def memory_plan(path: Path, n_ctx: int, parallel: int = 1) -> dict[str, Any]:
    """Weights + f16 KV cache for `parallel` contexts of `n_ctx` tokens, as Ollama estimates it."""
    return plan_memory(model_shape(read_metadata(path)), path.stat().st_size, n_ctx, parallel)


def plan_memory(shape: Shape, weights_bytes: int, n_ctx: int, parallel: int) -> dict[str, Any]:
    """The memory plan from a model's shape and file size (flat, JSON-ready, in bytes)."""
    # K and V per layer per KV head: one f16 vector per token, for each parallel sequence.
    kv_cache = (
        shape.layers * shape.kv_heads * (shape.key_dim + shape.value_dim)
        * n_ctx * _F16_BYTES * parallel
    )  # fmt: skip
    return {
        "weights_bytes": weights_bytes,
        "kv_cache_bytes": kv_cache,
        "total_bytes": weights_bytes + kv_cache,
        "architecture": shape.architecture,
        "layers": shape.layers,
        "kv_heads": shape.kv_heads,
        "head_dim": shape.key_dim,
        "context_tokens": n_ctx,
        "parallel": parallel,
    }
