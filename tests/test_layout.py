"""The stage packages exchange plain values through api/: none imports another."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "retrieval", "generation")


def imported_packages(package: str) -> set[str]:
    found = set()
    for source in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", STAGES)
def test_stage_packages_import_no_other_stage_nor_api(package: str) -> None:
    forbidden = (set(STAGES) | {"api"}) - {package}
    assert imported_packages(package) & forbidden == set()


def test_ingest_knows_nothing_of_indexes_or_models() -> None:
    assert (
        imported_packages("ingest") & {"tantivy", "qdrant_edge", "qdrant_client", "torch"} == set()
    )
