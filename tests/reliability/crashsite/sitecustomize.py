"""Fault injection for the kill -9 test (tests/reliability/test_kill9.py), loaded by Python at
start-up when this folder is on PYTHONPATH.

ARCHIVIST_CRASH_AT=<point> SIGKILLs the process the first time it reaches a named point
(`<point>@<n>`: the n-th time). A point names one function and a moment: `before` it runs,
`after` it returns (its effects made, the caller's next step not), or `during` it (a separate
`kill -9` fires a few milliseconds after it starts, whatever it is doing then, native code
included). A `main` point is reached in a conversion worker and kills the ingesting process.
The wrapper calls the function unchanged: nothing is faked, the process just dies there.
"""

import contextlib
import functools
import importlib.abc
import importlib.util
import os
import signal
import subprocess
import sys
import time
from typing import Any

# name: (module, attribute path, moment[, victim])
POINTS: dict[str, tuple[str, ...]] = {
    "conversion": ("ingest.workers", "convert_file", "during", "main"),
    "record-before": ("ingest.store", "ChunkStore.record_chunks", "before"),
    "record-chunks-written": ("ingest.store", "ChunkStore._replace_chunks", "after"),
    "record-queue-written": ("ingest.store", "ChunkStore._enqueue", "after"),
    "record-committed": ("ingest.store", "ChunkStore.record_chunks", "after"),
    "copy-committed": ("ingest.store", "ChunkStore.record_copy", "after"),
    "failure-committed": ("ingest.store", "ChunkStore.record_failure", "after"),
    "release-mid-transaction": ("ingest.store", "ChunkStore._release", "after"),
    "rename-mid-transaction": ("ingest.store", "ChunkStore._rename", "after"),
    "remove-committed": ("ingest.store", "ChunkStore.remove", "after"),
    "before-index-sync": ("api.service.indexes", "Indexes.heal", "before"),
    "model-load": ("api.service.indexes", "shared_embedder", "during"),
    "embedding": ("api.service.indexes", "_Embedding.vectors", "during"),
    "write-before": ("api.service.indexes", "_IndexWriter._write", "before"),
    "qdrant-write": ("retrieval.dense", "EdgeDenseIndex._put", "during"),
    "qdrant-written": ("retrieval.dense", "EdgeDenseIndex._put", "after"),
    "qdrant-delete": ("retrieval.dense", "EdgeDenseIndex._remove", "after"),
    "qdrant-flush": ("retrieval.dense", "EdgeDenseIndex.flush", "during"),
    "tantivy-written": ("retrieval.keyword", "KeywordIndex.upsert", "after"),
    "tantivy-commit": ("retrieval.keyword", "KeywordIndex.commit", "during"),
    "tantivy-committed": ("retrieval.keyword", "KeywordIndex.commit", "after"),
    "queue-done-committed": ("ingest.store", "ChunkStore.complete_work", "after"),
    "optimize": ("retrieval.dense", "EdgeDenseIndex.optimize", "during"),
    "reindex-keyword-cleared": ("api.service.indexes", "Indexes._recreate_keyword", "after"),
    "reindex-dense-created": ("retrieval.dense", "EdgeDenseIndex._create", "after"),
    "requeue-committed": ("ingest.store", "ChunkStore.requeue_all", "after"),
}
DURING_DELAY_S = 0.005


def _kill(pid: int, delay_s: float = 0.0) -> None:
    if delay_s:  # from outside: a thread of this process may not run while native code holds
        subprocess.Popen(["sh", "-c", f"sleep {delay_s}; kill -9 {pid}"])  # the interpreter
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _wrap(function: Any, moment: str, victim: str, nth: int) -> Any:
    reached = 0

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal reached
        reached += 1
        if reached != nth:
            return function(*args, **kwargs)
        if victim == "main":  # killed while this worker has only begun its work
            _kill(int(os.environ["ARCHIVIST_CRASH_PID"]))
            return function(*args, **kwargs)
        if moment == "before":
            _kill(os.getpid())
        if moment == "during":
            _kill(os.getpid(), DURING_DELAY_S)
        result = function(*args, **kwargs)
        if moment == "after":
            _kill(os.getpid())
        time.sleep(60)  # `during`: the kill lands while the function runs, or right after
        return result

    return wrapper


class _Injector(importlib.abc.MetaPathFinder):
    """Wraps the point's function as soon as its module is imported."""

    def __init__(self, module: str, path: str, moment: str, victim: str, nth: int) -> None:
        self.target, self.path, self.moment, self.victim, self.nth = (
            module,
            path,
            moment,
            victim,
            nth,
        )

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name != self.target:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        loader, injector = spec.loader, self

        class Loader(importlib.abc.Loader):
            def create_module(self, spec: Any) -> Any:
                return loader.create_module(spec)

            def exec_module(self, module: Any) -> None:
                loader.exec_module(module)  # type: ignore[attr-defined]
                injector.inject(module)

        spec.loader = Loader()
        return spec

    def inject(self, module: Any) -> None:
        *owner, name = self.path.split(".")
        holder = getattr(module, owner[0]) if owner else module
        setattr(holder, name, _wrap(getattr(holder, name), self.moment, self.victim, self.nth))


def _install(spec: str) -> None:
    name, _, nth = spec.partition("@")
    module, path, moment, *victim = POINTS[name]
    os.environ.setdefault("ARCHIVIST_CRASH_PID", str(os.getpid()))  # the first process: main
    sys.meta_path.insert(0, _Injector(module, path, moment, (victim or ["self"])[0], int(nth or 1)))


if os.environ.get("ARCHIVIST_CRASH_AT"):
    _install(os.environ["ARCHIVIST_CRASH_AT"])
