"""The import rules that keep the house readable, checked on the source tree.

- The stage packages (ingest/, retrieval/, generation/) exchange plain values through api/:
  none imports another, nor api.
- Inside api/, the service imports no face; the faces (the HTTP server, the command line)
  import the service and never each other; evaluation is a client of the service, used by
  the command line; only the program (api/main.py) joins the faces.
- Outside the service, code reaches it through `api.service` (its public names), never
  through its modules; the benchmarks likewise through `api.service` and `api.evaluation`.
- No import circles anywhere, counting every import: deferred ones inside functions and those
  made only for type checking too.

Each rule is also run on a deliberately broken copy of the tree, which it must reject.
"""

import ast
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "retrieval", "generation")
PACKAGES = ("api", *STAGES)

# api's rooms: the api packages each may import (the root `api` prepares the environment and
# may be imported by all).
ROOMS: dict[str, set[str]] = {
    "api.service": set(),
    "api.evaluation": {"api.service"},
    "api.server": {"api.service"},
    "api.cli": {"api.service", "api.evaluation"},
    "api.main": {"api.service", "api.cli", "api.server"},
}
FACES = ("api.server", "api.cli")
FACE_LIBRARIES = {"fastapi", "starlette", "uvicorn", "click", "tqdm", "mcp", "textual"}
# Packages reached only through their public names from outside them.
PUBLIC_ONLY = ("api.service", "api.evaluation")


def modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    """Dotted module name -> source file, for every module of these packages."""
    found = {}
    for package in packages:
        for source in (root / package).rglob("*.py"):
            parts = source.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = source
    return found


def imports(name: str, source: Path) -> Iterator[str]:
    """Every module name `source` imports, wherever in the file (relative ones resolved)."""
    package = name if source.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the project modules it imports (`from a import b` counts a.b if it is one)."""
    known = modules(root)

    def module_of(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, source in known.items():
        targets = {module_of(imported) for imported in imports(name, source)}
        graph[name] = {t for t in targets if t and t != name}
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each set of modules that import each other, directly or round a circle (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == module:
                    break
            if len(members) > 1:
                circles.append(sorted(members))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def room_of(module: str) -> str | None:
    return next((r for r in ROOMS if module == r or module.startswith(r + ".")), None)


def room_violations(root: Path) -> list[str]:
    """Imports across api's rooms that the rules above forbid."""
    known = modules(root)
    found = []
    for name, source in modules(root, ("api",)).items():
        room = room_of(name)
        if room is None:
            continue
        imported_names = set(imports(name, source))
        for library in sorted({i.split(".")[0] for i in imported_names} & FACE_LIBRARIES):
            if room == "api.service":
                found.append(f"{name} imports {library}, a library of the faces")
        for imported in imported_names & known.keys():
            target = room_of(imported)
            if target is not None and target != room and target not in ROOMS[room]:
                found.append(f"{name} imports {imported}")
            elif target != room and any(imported.startswith(p + ".") for p in PUBLIC_ONLY):
                found.append(f"{name} imports {imported}, not {target}'s public names")
    return sorted(found)


def bench_violations(root: Path) -> list[str]:
    """Benchmark imports of api modules other than the public packages."""
    known = modules(root)
    found = []
    for source in sorted((root / "bench").glob("*.py")):
        for imported in sorted(set(imports("bench." + source.stem, source)) & known.keys()):
            if imported.startswith("api.") and imported not in PUBLIC_ONLY:
                found.append(f"bench/{source.name} imports {imported}")
    return found


def imported_packages(package: str, root: Path = ROOT) -> set[str]:
    return {imported.split(".")[0] for name, source in modules(root, (package,)).items()
            for imported in imports(name, source)}  # fmt: skip


@pytest.mark.parametrize("package", STAGES)
def test_stage_packages_import_no_other_stage_nor_api(package: str) -> None:
    forbidden = (set(STAGES) | {"api"}) - {package}
    assert imported_packages(package) & forbidden == set()


def test_ingest_knows_nothing_of_indexes_or_models() -> None:
    assert (
        imported_packages("ingest") & {"tantivy", "qdrant_edge", "qdrant_client", "torch"} == set()
    )


def test_no_import_circles_anywhere() -> None:
    assert import_circles(import_graph(ROOT)) == []


def test_the_service_imports_no_face_and_faces_import_only_the_service() -> None:
    assert room_violations(ROOT) == []


def test_every_api_module_lives_in_a_room() -> None:
    loose = [n for n in modules(ROOT, ("api",)) if n != "api" and room_of(n) is None]
    assert loose == []


def test_benchmarks_import_only_public_names() -> None:
    assert bench_violations(ROOT) == []


# The rules must be able to fail: each is run on a copy of the tree with one import added.


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    for folder in (*PACKAGES, "bench"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("web"))
    return tmp_path


def add_import(root: Path, module: str, line: str) -> None:
    source = root / (module.replace(".", "/") + ".py")
    source.write_text(source.read_text() + f"\n{line}\n")


def test_a_face_imported_by_the_service_is_refused(broken: Path) -> None:
    add_import(broken, "api.service.search", "from api.server.app import create_app")
    assert room_violations(broken) == ["api.service.search imports api.server.app"]


def test_a_face_library_in_the_service_is_refused(broken: Path) -> None:
    add_import(broken, "api.service.batch", "import click")
    assert room_violations(broken) == ["api.service.batch imports click, a library of the faces"]


def test_a_face_importing_another_face_is_refused(broken: Path) -> None:
    add_import(broken, "api.server.app", "from api.cli.console import echo_json")
    add_import(broken, "api.cli.ask", "def later():\n    from api.server import create_app")
    assert room_violations(broken) == [
        "api.cli.ask imports api.server",
        "api.server.app imports api.cli.console",
    ]


def test_a_service_module_reached_past_its_public_names_is_refused(broken: Path) -> None:
    add_import(broken, "api.cli.search", "from api.service.indexes import Indexes")
    add_import(broken, "bench.ask", "from api.service.answers import AskOptions")
    assert room_violations(broken) == [
        "api.cli.search imports api.service.indexes, not api.service's public names"
    ]
    assert bench_violations(broken) == ["bench/ask.py imports api.service.answers"]


def test_an_import_circle_is_found_even_through_type_checking_and_functions(
    broken: Path,
) -> None:
    add_import(
        broken,
        "api.service.settings",
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from api.service.archivist import Archivist",
    )
    add_import(broken, "retrieval.dense_base", "def later():\n    from retrieval import dense")
    circles = import_circles(import_graph(broken))
    assert any({"api.service.settings", "api.service.archivist"} <= set(c) for c in circles)
    assert any({"retrieval.dense", "retrieval.dense_base"} <= set(c) for c in circles)
    assert len(circles) == 2
