"""The kill -9 loop: SIGKILL at every named point of ingestion, indexing and reindexing, with
the folder changing between kills; after each restart SQLite, Tantivy and Qdrant agree
exactly, every file there is searchable, no removed file is, and nothing is duplicated.

The points are in tests/reliability/crashsite/sitecustomize.py (ARCHIVIST_CRASH_AT).
"""

import importlib.util
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from api.service import Archivist, Settings
from retrieval.dense import EdgeDenseIndex, probe_shard
from tests.fixtures import make_pdf, make_with_pandoc

ARCHIVIST = str(Path(sys.executable).parent / "archivist")
CRASH_SITE = Path(__file__).parent / "crashsite"
_spec = importlib.util.spec_from_file_location("crash_points", CRASH_SITE / "sitecustomize.py")
assert _spec is not None and _spec.loader is not None
_crash_points = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_crash_points)
POINTS: dict[str, tuple[str, ...]] = _crash_points.POINTS
REINDEX_POINTS = {"reindex-keyword-cleared", "reindex-dense-created", "requeue-committed"}
pytestmark = pytest.mark.reliability


@dataclass
class Corpus:
    """The documents folder and what each file in it must be found by."""

    folder: Path
    tokens: dict[Path, str] = field(default_factory=dict)  # a word only that file holds
    broken: set[Path] = field(default_factory=set)
    gone: set[str] = field(default_factory=set)  # tokens of files changed or removed
    made: int = 0

    def add(self, kind: str) -> Path:
        self.made += 1
        token = f"tok{self.made}x"
        path = self.folder / f"{kind}-{self.made}.{kind}"
        text = f"Note {self.made} mentions {token} among garden words and bicycle chains."
        if kind == "pdf":
            make_pdf(path, [text, f"A second page about {token} and tomatoes."])
        elif kind in ("docx", "html"):
            make_with_pandoc(path, f"# Note {self.made}\n\n{text}\n")
        else:
            path.write_text(f"# Note {self.made}\n\n{text}\n")
        self.tokens[path] = token
        return path

    def add_broken(self) -> None:
        self.made += 1
        path = self.folder / f"broken-{self.made}.pdf"
        path.write_bytes(b"%PDF-1.4 cut short")
        self.broken.add(path)

    def change(self, rng: random.Random) -> None:
        """Add, change, delete, rename and copy a few files."""
        for _ in range(3):
            self.add(rng.choice(["md", "txt", "html"]))
        self.add_broken()
        plain = sorted(p for p in self.tokens if p.suffix in (".md", ".txt"))
        for path in rng.sample(plain, 2):  # changed in place: the old text must vanish
            self.gone.add(self.tokens[path])
            self.made += 1
            self.tokens[path] = f"tok{self.made}x"
            path.write_text(f"# Changed\n\nNow it is about {self.tokens[path]} and bread.\n")
        for path in rng.sample(sorted(self.tokens), 2):
            os.unlink(path)
            self.gone.add(self.tokens.pop(path))
        for path in rng.sample(sorted(self.tokens), 2):
            moved = path.with_name(f"renamed-{self.made}-{path.name}")
            path.rename(moved)
            self.tokens[moved] = self.tokens.pop(path)
            self.made += 1
        original = rng.choice(sorted(p for p in self.tokens if p.suffix == ".md"))
        copy = original.with_name(f"copy-{self.made}.md")
        copy.write_bytes(original.read_bytes())
        self.tokens[copy] = self.tokens[original]
        self.made += 1
        self.gone -= set(self.tokens.values())  # an identical copy keeps a token alive


def build(folder: Path, rng: random.Random) -> Corpus:
    corpus = Corpus(folder)
    kinds = ["md"] * 140 + ["txt"] * 40 + ["html"] * 20 + ["docx"] * 10 + ["pdf"] * 10
    for kind in kinds:
        corpus.add(kind)
    corpus.add_broken()
    for path in rng.sample(sorted(corpus.tokens), 5):
        twin = path.with_name(f"twin-{path.name}")
        twin.write_bytes(path.read_bytes())
        corpus.tokens[twin] = corpus.tokens[path]
    return corpus


def run(data: Path, *args: str, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    # Killed, a process leaves its fork server's socket folder (pymp-*) in the temporary
    # folder: about 19 a run went to /tmp.
    scratch = data.parent / "tmp"
    scratch.mkdir(exist_ok=True)
    env = {**os.environ, "ARCHIVIST_DATA": str(data), "ARCHIVIST_WORKERS": "2",
           "TMPDIR": str(scratch)}  # fmt: skip
    env.pop("ARCHIVIST_CRASH_PID", None)
    if crash_at:
        env["ARCHIVIST_CRASH_AT"] = crash_at
        env["PYTHONPATH"] = os.pathsep.join([str(CRASH_SITE), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [ARCHIVIST, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


def check_agreement(data: Path, corpus: Corpus, point: str) -> None:
    settings = Settings(data=data, llm="none")
    with Archivist(settings) as service:
        stores = service.status(deep=True)["stores"]  # chunk ids compared one by one
        assert stores["in_sync"] and "damaged" not in stores, (point, stores)
        # No duplicates either: a chunk id twice in an index is one id in its set of ids.
        assert service.indexes.keyword.count() == stores["sqlite"], point
        assert service.indexes.dense.count() == stores["sqlite"], point
        records = {Path(r.path): r for r in service.store.documents()}
        assert set(records) == set(corpus.tokens) | corpus.broken, point
        assert {p for p, r in records.items() if r.status == "failed"} == corpus.broken, point
        holders: dict[str, set[str]] = {}  # identical files share chunks: a hit names one
        for path, token in corpus.tokens.items():
            holders.setdefault(token, set()).add(str(path))
        for token, paths in holders.items():
            hits = service.search(token, k=10, mode="bm25")
            assert paths & {hit.path for hit in hits}, (point, paths, token)
        for token in corpus.gone:
            assert not service.search(token, k=3, mode="bm25"), (point, token)


def test_every_crash_point_leaves_the_stores_in_agreement(tmp_path: Path) -> None:
    rng = random.Random(8)
    docs, data = tmp_path / "docs", tmp_path / "data"
    docs.mkdir()
    corpus = build(docs, rng)
    assert run(data, "ingest", str(docs)).returncode == 2  # the broken file fails
    check_agreement(data, corpus, "first ingest")
    for point in POINTS:
        corpus.change(rng)
        command = ["reindex"] if point in REINDEX_POINTS else ["ingest", str(docs)]
        crashed = run(data, *command, crash_at=point)
        assert crashed.returncode == -9, (point, crashed.returncode, crashed.stderr[-2000:])
        recovered = run(data, "ingest", "--json", str(docs))
        assert recovered.returncode in (0, 2), (point, recovered.stderr[-2000:])
        check_agreement(data, corpus, point)
    print(f"\n{len(POINTS)} crash points, {len(corpus.tokens)} files at the end, none lost")


HNSW_BUILD = """
import sys, uuid
import numpy as np
from retrieval.dense import EdgeDenseIndex
index = EdgeDenseIndex(sys.argv[1], model="m", dimension=384, exact_limit=500)
vectors = np.random.default_rng(0).standard_normal((6000, 384)).astype("float32")
vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
ids = [str(uuid.UUID(int=n + 1)) for n in range(len(vectors))]
index.upsert(ids, vectors)
index.flush()
print("optimizing", flush=True)
index.optimize()
print("built", flush=True)
"""


def test_a_kill_mid_hnsw_build_loses_no_vector(tmp_path: Path) -> None:
    path = tmp_path / "dense"
    build = subprocess.Popen(
        [sys.executable, "-c", HNSW_BUILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert build.stdout is not None and build.stdout.readline().strip() == "optimizing"
    # Killed as soon as the optimizer has begun the graph: its builder's index folder appears
    # ~0.05 s into optimize(), the finished segment ~2.5 s later on two cores (a fixed delay
    # would race a machine with more cores to the end of the build).
    building = path / "shard" / "temp_segments"
    deadline = time.monotonic() + 60
    while not any(building.glob("*/vector_index-*")):
        assert build.poll() is None and time.monotonic() < deadline, "no graph was begun"
        time.sleep(0.005)
    build.kill()
    assert build.wait() == -9 and build.stdout.read() == "", "the graph was done before the kill"
    assert probe_shard(path, 384) is None
    index = EdgeDenseIndex(path, model="m", dimension=384, exact_limit=500)
    try:
        assert index.count() == 6000
        vectors = np.random.default_rng(0).standard_normal((6000, 384)).astype("float32")
        query = vectors[1234] / np.linalg.norm(vectors[1234])
        assert index.search(query, 1)[0][0] == str(uuid.UUID(int=1235))
        index.optimize()  # and the build completes on the next run
        assert index.search(query, 1)[0][0] == str(uuid.UUID(int=1235))
    finally:
        index.close()
