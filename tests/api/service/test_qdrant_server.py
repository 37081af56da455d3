"""The service with its dense index on a real Qdrant server (ARCHIVIST_QDRANT_URL): ingestion,
hybrid search, removal and a rebuild from SQLite keep the server's collection in line with
the store; on a real two-node cluster, a node that stops costs nothing with replicas, and
without them is named, search answers from the keyword index and nothing is lost."""

import re
from pathlib import Path

import pytest

from api.service import Archivist, Settings
from api.service.search import Mode
from retrieval.errors import IndexUnavailable
from tests.fixtures import make_pdf
from tests.qdrant_server import qdrant_installed, running_cluster, running_node

pytestmark = pytest.mark.skipif(not qdrant_installed(), reason="no Qdrant server (make qdrant)")


def test_the_service_keeps_a_qdrant_server_in_line_with_its_store(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "ferry.md").write_text("# Ferry\n\nThe ferry to Dunmore leaves pier three hourly.\n")
    (docs / "lamp.md").write_text("# Lamp\n\nLamp oil is ordered from Kessock every spring.\n")
    make_pdf(docs / "tides.pdf", ["Tide tables.", "High water at the north quay is at noon."])
    with running_node(tmp_path / "qdrant") as node:
        settings = Settings(data=tmp_path / "data", workers=1, llm="none", qdrant_url=node.url)
        with Archivist(settings) as service:
            service.ingest([docs])
            for question, name, mode in [
                ("Where does the Dunmore ferry leave from?", "ferry.md", "hybrid"),
                ("who supplies the lamp fuel", "lamp.md", "dense"),
                ("When is high water at the quay?", "tides.pdf", "hybrid"),
            ]:
                [hit] = service.search(question, k=1, mode=mode)
                assert Path(hit.path).name == name
            stores = service.status()["stores"]
            assert stores["in_sync"] and stores["qdrant"] == stores["sqlite"] == 4

            service.remove([docs / "lamp.md"])
            assert "lamp.md" not in {Path(h.path).name for h in service.search("lamp oil", k=4)}
            service.reindex()
            stores = service.status()["stores"]
            assert stores["in_sync"] and stores["qdrant"] == 3

        other = Settings(data=tmp_path / "other", workers=1, llm="none", qdrant_url=node.url,
                         qdrant_collection="other_folder")  # fmt: skip
        with Archivist(other) as neighbour:  # another data folder, its own collection
            neighbour.ingest([docs / "ferry.md"])
            assert neighbour.status()["stores"]["qdrant"] == 1

        with Archivist(settings) as reopened:  # the collection outlives the process
            [hit] = reopened.search("Where does the Dunmore ferry leave from?", k=1, mode="dense")
            assert Path(hit.path).name == "ferry.md"
            stores = reopened.status()["stores"]
            assert stores["in_sync"] and stores["qdrant"] == 3


BUOYS = {"red": "north", "green": "east", "blue": "south", "white": "west"}


def buoy_notes(folder: Path, colours: list[str]) -> None:
    folder.mkdir(exist_ok=True)
    for colour in colours:
        (folder / f"{colour}.md").write_text(
            f"# The {colour} buoy\n\nThe {colour} buoy marks the {BUOYS[colour]} channel.\n"
        )


def found(service: Archivist, colour: str, mode: Mode = "hybrid") -> str:
    [hit] = service.search(f"Which channel does the {colour} buoy mark?", k=1, mode=mode)
    return Path(hit.path).stem


def test_with_replicas_a_cluster_answers_with_a_node_down(tmp_path: Path) -> None:
    # Writes wait for the node: with two nodes, Raft has no majority to drop its copies.
    docs = tmp_path / "docs"
    buoy_notes(docs, ["red", "green", "blue"])
    with running_cluster(tmp_path / "cluster", nodes=2) as nodes:
        settings = Settings(data=tmp_path / "data", workers=1, llm="none", qdrant_url=nodes[0].url,
                            qdrant_shards=2, qdrant_replicas=2)  # fmt: skip
        with Archivist(settings) as service:
            service.ingest([docs])
            nodes[1].stop()
            for mode in ("dense", "hybrid"):
                assert [found(service, c, mode) for c in ("red", "green", "blue")] == [
                    "red", "green", "blue"]  # fmt: skip
            buoy_notes(docs, ["white"])
            outcome = service.ingest([docs])  # stored; indexed once the node is back
            assert outcome.index_error is not None
            nodes[1].restart()
            service.sync()
            stores = service.status()["stores"]
            assert stores["in_sync"] and stores["qdrant"] == stores["sqlite"] == 4
            assert found(service, "white", "dense") == "white"


def test_without_replicas_a_node_down_is_named_and_nothing_is_lost(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    buoy_notes(docs, ["red", "green", "blue"])
    with running_cluster(tmp_path / "cluster", nodes=2) as nodes:
        settings = Settings(data=tmp_path / "data", workers=1, llm="none", qdrant_url=nodes[0].url,
                            qdrant_shards=2)  # fmt: skip
        with Archivist(settings) as service:
            service.ingest([docs])
        nodes[1].stop()
        named = rf"node \d+ \({re.escape(str(nodes[1].p2p))}/?\) does not answer"
        with Archivist(settings) as service:
            hits = service.search("Which channel does the green buoy mark?", k=1)
            assert Path(hits[0].path).stem == "green"  # from the keyword index
            assert re.search(named, hits.missing_legs["dense"])
            with pytest.raises(IndexUnavailable, match=named):
                service.search("green buoy", k=1, mode="dense")
            buoy_notes(docs, ["white"])
            outcome = service.ingest([docs])  # stored; indexed once the node is back
            assert outcome.report.summary()["ingested"] == 1
            assert outcome.index_error is not None and re.search(named, str(outcome.index_error))
            assert re.search(named, service.status()["stores"]["unavailable"])
        nodes[1].restart()
        with Archivist(settings) as service:
            service.sync()
            stores = service.status()["stores"]
            assert stores["in_sync"] and stores["qdrant"] == stores["sqlite"] == 4
            assert [found(service, c, "dense") for c in BUOYS] == list(BUOYS)
