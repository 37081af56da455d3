"""An empty or blank query is refused with one clear line, never answered with arbitrary hits."""

from pathlib import Path

import pytest

from api.service import Archivist, BadRequest, Settings
from tests.api.cli.test_cli import archivist
from tests.api.server.live import live_server

REFUSAL = "the search query is empty — say what to look for"


@pytest.mark.parametrize("query", ["", "   ", "\t\n"])
def test_the_service_refuses_a_blank_query(service: Archivist, docs: Path, query: str) -> None:
    (docs / "lens.md").write_text("# Lens\n\nThe lens is cleaned every fourteen days.\n")
    service.ingest([docs])
    with pytest.raises(BadRequest, match=REFUSAL):
        service.search(query, k=5)


@pytest.mark.parametrize("query", ["", "   "])
def test_cli_search_refuses_a_blank_query_with_exit_1(tmp_path: Path, query: str) -> None:
    done = archivist(tmp_path / "data", "search", query)
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith(f"Error: {REFUSAL}")
    assert len(done.stderr.splitlines()) == 1 and done.stdout == ""


def test_http_refuses_a_blank_query_or_question_with_the_error_body(settings: Settings) -> None:
    with live_server(settings) as live:
        for query in ("", "   "):
            refused = live.http.get("/search", params={"q": query})
            assert refused.status_code == 400
            assert refused.json()["reason"] == "bad-request"
            assert refused.json()["detail"].startswith(REFUSAL)
        for question in ("", "  "):
            refused = live.http.post("/ask", json={"question": question})
            assert refused.status_code == 400
            assert refused.json() == {
                "detail": "the question is empty — ask something about your documents",
                "reason": "bad-request",
            }
