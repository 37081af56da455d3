"""Real Qdrant servers shared by the session's index contract tests (a collection each)."""

from collections.abc import Iterator

import pytest

from tests.qdrant_server import Node, running_cluster, running_node


@pytest.fixture(scope="session")
def qdrant_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    """One real Qdrant server for the session's tests (a collection each)."""
    with running_node(tmp_path_factory.mktemp("qdrant-node")) as node:
        yield node


@pytest.fixture(scope="session")
def qdrant_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    """A real two-node Qdrant cluster; collections on it have a shard on each node."""
    with running_cluster(tmp_path_factory.mktemp("qdrant-cluster"), nodes=2) as nodes:
        yield nodes
