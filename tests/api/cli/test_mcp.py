"""`archivist mcp` as an assistant runs it: a real subprocess, driven by the MCP SDK's own
client over stdio, over a data folder ingested here (notes and a two-page PDF)."""

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from mcp import ClientSession, MCPError, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from api.service import Archivist, Settings, announce, withdraw
from tests.api.cli.test_ask_cli import ARCHIVIST
from tests.api.server.live import live_server
from tests.fixtures import HANDBOOK_MD, make_pdf

T = TypeVar("T")
MANUAL_PAGES = [
    "Harbor Point Lighthouse. Keeper's manual. Contents: the lamp, the lens, the fog signal.",
    "The fog signal. The Harbor Point foghorn sounds two blasts every thirty seconds while "
    "visibility is under two nautical miles.",
]
TOOLS = {"search", "ask", "list_documents", "get_passage"}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data folder holding the handbook, a note and the two-page manual, indexed."""
    docs = tmp_path_factory.mktemp("docs")
    (docs / "handbook.md").write_text(HANDBOOK_MD)
    (docs / "bell.md").write_text("# Bell\n\nThe Vellmar bell weighs 300 kg.\n")
    make_pdf(docs / "manual.pdf", MANUAL_PAGES)
    settings = Settings(data=tmp_path_factory.mktemp("data"), workers=1, llm="none")
    with Archivist(settings) as service:
        outcome = service.ingest([docs])
    assert outcome.report.summary()["ingested"] == 3 and outcome.index_error is None
    return settings.data


def with_session(
    data: Path, use: Callable[[ClientSession], Awaitable[T]], *, llm: str = "none", **env: str
) -> T:
    """Start `archivist mcp` over `data`, initialize, and run `use` with the session."""
    env = {**os.environ, "ARCHIVIST_DATA": str(data), "ARCHIVIST_LLM": llm, **env}
    server = StdioServerParameters(command=ARCHIVIST, args=["mcp"], env=env)

    async def run() -> T:
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            return await use(session)

    return anyio.run(run)


def call(name: str, **arguments: Any) -> Callable[[ClientSession], Awaitable[CallToolResult]]:
    async def use(session: ClientSession) -> CallToolResult:
        return await session.call_tool(name, arguments)

    return use


def result(done: CallToolResult) -> dict[str, Any]:
    """A tool's structured result (asserting it is not an error)."""
    assert not done.is_error, text(done)
    assert done.structured_content is not None
    return done.structured_content


def text(done: CallToolResult) -> str:
    return " ".join(c.text for c in done.content if isinstance(c, TextContent))


def test_the_tools_are_listed_with_their_arguments(data: Path) -> None:
    async def use(session: ClientSession) -> dict[str, Any]:
        return {tool.name: tool.input_schema for tool in (await session.list_tools()).tools}

    tools = with_session(data, use)
    assert set(tools) == TOOLS
    assert tools["search"]["required"] == ["query"]
    assert {"k", "mode", "filters"} <= set(tools["search"]["properties"])
    assert set(tools["ask"]["properties"]) == {"question", "session"}


def test_a_search_cites_the_file_and_page(data: Path) -> None:
    found = result(with_session(data, call("search", query="how often does the foghorn sound")))
    first = found["hits"][0]
    assert (first["name"].endswith("manual.pdf"), first["page"]) == (True, 2)
    assert "two blasts every thirty seconds" in first["text"]
    assert first["link"] == Path(first["file"]).as_uri() + "#page=2"
    assert first["document_uri"] == f"archivist://documents/{first['document']}"


def test_a_search_takes_mode_k_and_filters(data: Path) -> None:
    arguments = {"query": "bell", "k": 1, "mode": "bm25", "filters": {"file_type": "md"}}
    found = result(with_session(data, call("search", **arguments)))
    assert [hit["name"][-7:] for hit in found["hits"]] == ["bell.md"]


def test_an_ask_answers_with_citations_and_a_session(data: Path) -> None:
    question = "How much does the Vellmar bell weigh?"
    answered = result(with_session(data, call("ask", question=question)))
    assert "300 kg" in answered["answer"] and answered["extractive"] is True
    assert answered["citations"][0]["name"].endswith("bell.md")
    assert answered["session"]


def test_a_passage_comes_with_its_neighbours(data: Path) -> None:
    async def use(session: ClientSession) -> dict[str, Any]:
        hits = result(await session.call_tool("search", {"query": "late fees per item"}))["hits"]
        handbook = next(h for h in hits if h["name"].endswith("handbook.md"))
        return result(await session.call_tool("get_passage", {"chunk_id": handbook["chunk_id"]}))

    found = with_session(data, use)
    passage = found["passage"]
    assert passage["name"].endswith("handbook.md") and "20 cents" in passage["text"]
    neighbours = found["before"] + found["after"]
    assert neighbours and all(n["chunk_id"] != passage["chunk_id"] for n in neighbours)


def test_documents_are_listed_and_readable_as_resources(data: Path) -> None:
    async def use(session: ClientSession) -> tuple[dict[str, Any], Any, str, str]:
        listed = result(await session.call_tool("list_documents", {}))
        resources = await session.list_resources()
        every = await session.read_resource("archivist://documents")
        manual = next(d for d in listed["documents"] if d["name"].endswith("manual.pdf"))
        read = await session.read_resource(manual["uri"])
        return listed, resources, every.contents[0].text, read.contents[0].text  # type: ignore[union-attr]

    listed, resources, every, manual = with_session(data, use)
    assert listed["total"] == 3 and {d["status"] for d in listed["documents"]} == {"ingested"}
    assert json.loads(every) == listed
    assert [str(r.uri) for r in resources.resources] == ["archivist://documents"]
    assert "[page 2" in manual and "two blasts every thirty seconds" in manual


BAD_CALLS: list[tuple[str, dict[str, Any], str]] = [
    ("search", {"query": "   "}, "bad-request: the search query is empty"),
    ("search", {"query": "bell", "k": 0}, "k\n  Input should be greater than or equal to 1"),
    ("search", {"query": "bell", "mode": "fuzzy"}, "Input should be 'hybrid', 'bm25' or 'dense'"),
    ("search", {"query": "bell", "filters": {"colour": "red"}}, "colour\n  Extra inputs"),
    ("ask", {}, "question\n  Field required"),
    ("get_passage", {"chunk_id": "nope"}, "not-found: no passage 'nope'"),
    ("translate", {"text": "hi"}, "Unknown tool: translate"),
]


def test_bad_arguments_are_tool_errors_not_tracebacks(data: Path) -> None:
    async def use(session: ClientSession) -> list[CallToolResult]:
        return [await session.call_tool(name, arguments) for name, arguments, _ in BAD_CALLS]

    for done, (name, _, message) in zip(with_session(data, use), BAD_CALLS, strict=True):
        assert done.is_error and message in text(done), name
        assert "Traceback" not in text(done)


def test_an_unknown_document_resource_is_an_mcp_error(data: Path) -> None:
    async def use(session: ClientSession) -> str:
        with pytest.raises(MCPError) as refused:
            await session.read_resource("archivist://documents/999")
        return str(refused.value)

    assert "no document 999" in with_session(data, use)


def test_stdout_carries_only_protocol_messages(data: Path) -> None:
    env = {**os.environ, "ARCHIVIST_DATA": str(data), "ARCHIVIST_LLM": "none"}
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "ask", "arguments": {"question": "What does the bell weigh?"}}},
    ]  # fmt: skip
    server = subprocess.Popen(
        [ARCHIVIST, "mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    assert server.stdin and server.stdout
    server.stdin.write("".join(json.dumps(m) + "\n" for m in messages))
    server.stdin.flush()
    replies = [json.loads(server.stdout.readline()) for _ in range(2)]  # each line is JSON-RPC
    server.stdin.close()
    assert server.wait(timeout=60) == 0 and server.stdout.read() == ""
    assert [r["id"] for r in replies] == [1, 2]
    assert "300 kg" in replies[1]["result"]["structuredContent"]["answer"]


def test_it_serves_streamable_http_when_asked(data: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "ARCHIVIST_DATA": str(data), "ARCHIVIST_LLM": "none"}
    server = subprocess.Popen([ARCHIVIST, "mcp", "--http", str(port)], env=env)

    async def run() -> CallToolResult:
        url = f"http://127.0.0.1:{port}/mcp"
        async with streamable_http_client(url) as (read, write), ClientSession(read, write) as s:
            await s.initialize()
            return await s.call_tool("search", {"query": "foghorn", "k": 1})

    try:
        _wait_for_port(port, server)
        found = result(anyio.run(run))
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0
    assert found["hits"][0]["page"] == 2


def _wait_for_port(port: int, server: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while server.poll() is None and time.monotonic() < deadline:
        with socket.socket() as client:
            if client.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"archivist mcp --http {port} did not listen (exit {server.poll()})")


def test_the_embedded_model_answers(data: Path) -> None:
    question = "How many items may adults borrow at a time?"
    answered = result(with_session(data, call("ask", question=question), llm="llamacpp"))
    assert answered["backend"] != "none" and not answered["extractive"], json.dumps(answered)
    assert "15" in answered["answer"]
    assert answered["citations"] and answered["citations"][0]["name"].endswith("handbook.md")


def test_beside_a_running_server_it_goes_through_it_with_the_api_key(tmp_path: Path) -> None:
    settings = Settings(data=tmp_path / "data", workers=1, llm="none", api_key="mcp-test-key")
    settings.inbox.mkdir(parents=True)
    (settings.inbox / "lens.md").write_text("# Lens\n\nThe lens is cleaned every fourteen days.\n")

    async def use(session: ClientSession) -> tuple[CallToolResult, CallToolResult]:
        searched = await session.call_tool("search", {"query": "when is the lens cleaned"})
        asked = await session.call_tool("ask", {"question": "How often is the lens cleaned?"})
        return searched, asked

    async def read(session: ClientSession) -> dict[str, Any]:
        searched = result(await session.call_tool("search", {"query": "lens"}))
        chunk_id = searched["hits"][0]["chunk_id"]
        return result(await session.call_tool("get_passage", {"chunk_id": chunk_id}))

    with live_server(settings) as live:  # it holds the indexes: no one else can open them
        announce(settings, live.url)
        searched, asked = with_session(settings.data, use, ARCHIVIST_API_KEY="mcp-test-key")
        passage = with_session(settings.data, read, ARCHIVIST_API_KEY="mcp-test-key")
        refused, _ = with_session(settings.data, use)  # no key
        withdraw(settings)
    assert result(searched)["hits"][0]["name"] == "lens.md"
    assert "fourteen days" in result(asked)["answer"]
    assert refused.is_error and "set ARCHIVIST_API_KEY" in text(refused)
    assert "fourteen days" in passage["passage"]["text"]  # read from SQLite beside the server
