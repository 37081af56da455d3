"""The service with its dense index, and its BM25 leg too (ARCHIVIST_KEYWORD=qdrant), on a real
Qdrant server (ARCHIVIST_QDRANT_URL): ingestion, hybrid search, removal and a rebuild from
SQLite keep the server's collection in line with the store, and the BM25 leg there scores as
Tantivy's; on a real two-node cluster, a node that stops costs nothing with replicas, and
without them is named, search answers from the keyword index and nothing is lost; a replica
(ARCHIVIST_REPLICA=true) answers from the writer's collection and refuses every change."""

import random
import re
from pathlib import Path

import pytest

from api.service import Archivist, AskOptions, BadRequest, Filters, ReplicaOnly, Settings
from api.service.search import Mode
from retrieval.errors import IndexUnavailable
from retrieval.keyword_server import WEIGHTING
from tests.api.server.live import live_server
from tests.fixtures import make_pdf
from tests.qdrant_server import qdrant_installed, running_cluster, running_node

pytestmark = pytest.mark.skipif(not qdrant_installed(), reason="no Qdrant server (make qdrant)")


def harbour_notes(docs: Path) -> Path:
    """A folder of three documents: ferry.md, lamp.md and a two-page tides.pdf."""
    docs.mkdir()
    (docs / "ferry.md").write_text("# Ferry\n\nThe ferry to Dunmore leaves pier three hourly.\n")
    (docs / "lamp.md").write_text("# Lamp\n\nLamp oil is ordered from Kessock every spring.\n")
    make_pdf(docs / "tides.pdf", ["Tide tables.", "High water at the north quay is at noon."])
    return docs


@pytest.mark.parametrize("keyword", ["tantivy", "qdrant"])
def test_the_service_keeps_a_qdrant_server_in_line_with_its_store(
    tmp_path: Path, keyword: str
) -> None:
    keyword_store = "qdrant_bm25" if keyword == "qdrant" else "tantivy"
    docs = harbour_notes(tmp_path / "docs")
    with running_node(tmp_path / "qdrant") as node:
        settings = Settings(data=tmp_path / "data", workers=1, llm="none", qdrant_url=node.url,
                            keyword=keyword)  # fmt: skip
        with Archivist(settings) as service:
            service.ingest([docs])
            for question, name, mode in [
                ("Where does the Dunmore ferry leave from?", "ferry.md", "hybrid"),
                ("who supplies the lamp fuel", "lamp.md", "dense"),
                ("lamp oil from Kessock", "lamp.md", "bm25"),
                ("When is high water at the quay?", "tides.pdf", "hybrid"),
            ]:
                [hit] = service.search(question, k=1, mode=mode)
                assert Path(hit.path).name == name
            stores = service.status()["stores"]
            assert stores["in_sync"] and stores["qdrant"] == stores[keyword_store] == 4
            assert (Path(settings.state_dir) / "keyword").exists() == (keyword == "tantivy")

            service.remove([docs / "lamp.md"])
            for mode in ("hybrid", "bm25"):
                hits = service.search("lamp oil", k=4, mode=mode)
                assert "lamp.md" not in {Path(h.path).name for h in hits}
            service.reindex()
            stores = service.status()["stores"]
            assert stores["in_sync"] and stores["qdrant"] == stores[keyword_store] == 3

        other = Settings(data=tmp_path / "other", workers=1, llm="none", qdrant_url=node.url,
                         qdrant_collection="other_folder")  # fmt: skip
        with Archivist(other) as neighbour:  # another data folder, its own collection
            neighbour.ingest([docs / "ferry.md"])
            assert neighbour.status()["stores"]["qdrant"] == 1

        with Archivist(settings) as reopened:  # the collection outlives the process
            for mode in ("dense", "bm25"):
                [hit] = reopened.search("Where does the Dunmore ferry leave from?", k=1, mode=mode)
                assert Path(hit.path).name == "ferry.md"
            stores = reopened.status()["stores"]
            assert stores["in_sync"] and stores["qdrant"] == stores[keyword_store] == 3


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


@pytest.mark.parametrize("keyword", ["tantivy", "qdrant"])
def test_with_replicas_a_cluster_answers_with_a_node_down(tmp_path: Path, keyword: str) -> None:
    # Writes wait for the node: with two nodes, Raft has no majority to drop its copies.
    docs = tmp_path / "docs"
    buoy_notes(docs, ["red", "green", "blue"])
    with running_cluster(tmp_path / "cluster", nodes=2) as nodes:
        settings = Settings(data=tmp_path / "data", workers=1, llm="none", qdrant_url=nodes[0].url,
                            qdrant_shards=2, qdrant_replicas=2, keyword=keyword)  # fmt: skip
        with Archivist(settings) as service:
            service.ingest([docs])
            nodes[1].stop()
            for mode in ("dense", "bm25", "hybrid"):
                hits = service.search("Which channel does the red buoy mark?", k=1, mode=mode)
                assert not hits.missing_legs
                assert [found(service, c, mode) for c in ("red", "green", "blue")] == [
                    "red", "green", "blue"]  # fmt: skip
            buoy_notes(docs, ["white"])
            outcome = service.ingest([docs])  # stored; indexed once the node is back
            assert outcome.index_error is not None
            nodes[1].restart()
            service.sync()
            stores = service.status()["stores"]
            assert stores["in_sync"] and stores["qdrant"] == stores["sqlite"] == 4
            assert found(service, "white", "dense") == found(service, "white", "bm25") == "white"


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


def test_a_replica_answers_from_the_writers_collection_and_changes_nothing(
    tmp_path: Path,
) -> None:
    docs = harbour_notes(tmp_path / "docs")
    with running_node(tmp_path / "qdrant") as node:
        shared = {"workers": 1, "llm": "none", "qdrant_url": node.url, "keyword": "qdrant"}
        writer = Settings(data=tmp_path / "writer", **shared)
        replica = Settings(data=tmp_path / "replica", replica=True, **shared)
        nothing_yet = pytest.raises(IndexUnavailable, match="no collection 'archivist_chunks'.*yet")
        with Archivist(replica) as early, nothing_yet:  # nothing written yet: said, not created
            early.search("ferry", k=1)
        with Archivist(writer) as service:
            service.ingest([docs])
        with Archivist(replica) as service:
            [hit] = service.search("When is high water at the quay?", k=1)
            assert (hit.path, hit.page_start) == (str((docs / "tides.pdf").resolve()), 2)
            [hit] = service.search("Dunmore ferry", k=1, mode="bm25")
            assert hit.path == str((docs / "ferry.md").resolve()) and hit.section == ("Ferry",)
            answer = service.ask("Who supplies the lamp oil?", AskOptions(extractive=True))
            assert "Kessock" in answer.answer
            assert [Path(c.path).name for c in answer.citations] == ["lamp.md"]
            only = Filters(path_glob="*tides*")
            assert {Path(h.path).name for h in service.search("ferry", k=3, filters=only)} == {
                "tides.pdf"}  # fmt: skip
            with pytest.raises(BadRequest, match="document ids"):
                service.search("ferry", k=1, filters=Filters(document=1))
            status = service.status()
            assert status["documents"]["ingested"] == 3 and "sqlite" not in status["stores"]
            assert status["stores"]["qdrant"] == status["stores"]["qdrant_bm25"] == 4
            writer_named = re.escape(str(writer.data.resolve()))
            assert re.search(writer_named, status["replica_of"])
            for change in (lambda: service.ingest([docs]), lambda: service.remove([docs]),
                           service.reindex):  # fmt: skip
                with pytest.raises(ReplicaOnly, match=f"replica.*{writer_named}"):
                    change()
        assert not replica.database.exists()  # no store of its own

        (docs / "lamp.md").unlink()
        with Archivist(writer) as service:
            service.remove([docs / "lamp.md"])
        with Archivist(replica) as service:
            assert "lamp.md" not in {Path(h.path).name for h in service.search("lamp oil", k=3)}

        with live_server(replica) as live:  # the HTTP API: answers, and refuses changes
            hits = live.http.get("/search", params={"q": "Dunmore ferry"}).json()["hits"]
            assert hits[0]["path"] == str((docs / "ferry.md").resolve())
            for response in (
                live.http.get("/documents"),
                live.http.post("/documents", files={"files": ("new.md", b"# New")}),
                live.http.post("/ingest", json={"paths": [str(docs)]}),
            ):
                assert response.status_code == 409, response.text
                assert response.json()["reason"] == "replica"
                assert re.search(writer_named, response.json()["detail"])


def test_terms_weighed_another_way_are_weighed_again_from_sqlite(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    buoy_notes(docs, ["red", "green", "blue"])
    with running_node(tmp_path / "qdrant") as node:
        settings = Settings(data=tmp_path / "data", workers=1, llm="none", qdrant_url=node.url,
                            keyword="qdrant")  # fmt: skip
        with Archivist(settings) as service:
            service.ingest([docs])
            service.indexes.dense.record({"bm25": {"weighting": "2.9", "lengths": [1, 1]}})
        with Archivist(settings) as service:
            stores = service.status()["stores"]
            assert "weighed by another Archivist" in stores["damaged"]["keyword"]
            hits = service.search("Which channel does the green buoy mark?", k=1)
            assert "bm25" in hits.missing_legs  # searched without it until it is weighed again
            service.sync()  # what every writer does first
            stores = service.status()["stores"]
            assert stores["in_sync"] and stores["qdrant_bm25"] == stores["sqlite"] == 3
            assert found(service, "green", "bm25") == "green"
            recorded = service.indexes.dense.metadata()["bm25"]
            assert recorded["weighting"] == WEIGHTING and recorded["lengths"][0] > 1


def test_the_qdrant_leg_is_weighed_again_as_its_chunks_change_and_then_scores_as_tantivy(
    tmp_path: Path,
) -> None:
    rng = random.Random(5)
    words = [f"{stem}{n}" for stem in ("harbor", "ledger", "signal", "tide") for n in range(40)]
    long, short = tmp_path / "long", tmp_path / "short"
    for folder, count, size in ((long, 4, 500), (short, 30, 25)):
        folder.mkdir()
        for n in range(count):
            text = " ".join(rng.choices(words, k=size))
            (folder / f"{folder.name}{n}.md").write_text(f"# Note {n}\n\n{text}\n")
    queries = [" ".join(rng.sample(words, 3)) for _ in range(20)]
    with running_node(tmp_path / "qdrant") as node:
        settings = Settings(data=tmp_path / "data", workers=1, llm="none", qdrant_url=node.url,
                            keyword="qdrant")  # fmt: skip
        with Archivist(settings) as service:
            service.ingest([long])  # the first chunks: long ones
            first = service.indexes.dense.metadata()["bm25"]["lengths"]
            service.ingest([short])  # now mostly short ones: weighed again
            again = service.indexes.dense.metadata()["bm25"]["lengths"]
            assert again[0] < first[0] * 0.8
            qdrant = [service.search(q, k=5, mode="bm25") for q in queries]
        with Archivist(settings.model_copy(update={"keyword": "tantivy"})) as service:
            service.ingest([])  # fills the Tantivy leg from SQLite
            tantivy = [service.search(q, k=5, mode="bm25") for q in queries]
    for mine, theirs in zip(qdrant, tantivy, strict=True):
        assert [round(h.score, 3) for h in mine] == [round(h.score, 3) for h in theirs]


def test_a_replica_of_a_collection_without_its_keyword_leg_says_what_the_writer_lacks(
    tmp_path: Path,
) -> None:
    docs = tmp_path / "docs"
    buoy_notes(docs, ["red"])
    with running_node(tmp_path / "qdrant") as node:
        with Archivist(Settings(data=tmp_path / "writer", workers=1, llm="none",
                                qdrant_url=node.url)) as writer:  # fmt: skip
            writer.ingest([docs])  # BM25 in its own folder: nothing to answer from
        replica = Settings(data=tmp_path / "replica", llm="none", qdrant_url=node.url,
                           keyword="qdrant", replica=True)  # fmt: skip
        with Archivist(replica) as service, pytest.raises(IndexUnavailable, match="KEYWORD=qdrant"):
            service.search("red buoy", k=1)
