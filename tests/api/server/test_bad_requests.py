"""Bad requests to the real server get a 4xx with the API's error body, never a 500 or an echo.

The error body is `{"detail": "<what is wrong and what to do>", "reason": "<kind>"}` (under /v1
also OpenAI's `{"error": {...}}`); it never repeats the request back, however large that was.
"""

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.service import Settings
from tests.api.server.live import Live, live_server
from tests.scripted_backend import ScriptedBackend

JSON = {"Content-Type": "application/json"}
BIG_ID = str(10**30)  # beyond SQLite's 64-bit integers
INT64_END = str(2**63)
MAX_BODY = 2**20  # what the API accepts in a JSON body


def _chunks(data: bytes, size: int = 65536) -> list[bytes]:
    """A body to send in chunks, with no Content-Length."""
    return [data[start : start + size] for start in range(0, len(data), size)]


def _multipart(name: str) -> tuple[bytes, dict[str, str]]:
    """A hand-written multipart body with one file called `name` (clients escape names)."""
    body = (
        f'--b0\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        "Content-Type: text/plain\r\n\r\nx\r\n--b0--\r\n"
    )
    return body.encode(), {"Content-Type": "multipart/form-data; boundary=b0"}


LONG_QUESTION = "lens " * 20_000  # 100 KB
OVERSIZED = b'{"question": "' + b"a" * (MAX_BODY + 1) + b'"}'
NUL_NAME = _multipart("bad\x00name.txt")

# (id, method, path, request keyword arguments, status, reason)
CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("malformed JSON", "POST", "/ask", {"content": b"{not json", "headers": JSON}, 422, "invalid"),
    ("truncated JSON", "POST", "/ask", {"content": b'{"question": "x"', "headers": JSON}, 422,
     "invalid"),
    ("JSON array", "POST", "/ask", {"json": ["lens"]}, 422, "invalid"),
    ("no body", "POST", "/ask", {}, 422, "invalid"),
    ("not UTF-8", "POST", "/ask", {"content": b'{"question": "\xff\xfe"}', "headers": JSON}, 400,
     "bad-request"),
    ("lone surrogate", "POST", "/ask",
     {"content": b'{"question": "\\ud800 lens"}', "headers": JSON}, 422, "invalid"),
    ("NaN temperature", "POST", "/ask",
     {"content": b'{"question": "lens", "temperature": NaN}', "headers": JSON}, 422, "invalid"),
    ("Infinity top_p", "POST", "/ask",
     {"content": b'{"question": "lens", "top_p": Infinity}', "headers": JSON}, 422, "invalid"),
    ("deeply nested JSON", "POST", "/ask",
     {"content": b'{"filters": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "headers": JSON},
     400, "bad-request"),
    ("empty question", "POST", "/ask", {"json": {"question": ""}}, 400, "bad-request"),
    ("blank question", "POST", "/ask", {"json": {"question": " \n\t "}}, 400, "bad-request"),
    ("100 KB question", "POST", "/ask", {"json": {"question": LONG_QUESTION}}, 422, "invalid"),
    ("question not a string", "POST", "/ask", {"json": {"question": 5}}, 422, "invalid"),
    ("unknown field", "POST", "/ask", {"json": {"question": "lens", "bogus": 1}}, 422, "invalid"),
    ("huge top_k", "POST", "/ask", {"json": {"question": "lens", "top_k": 10**12}}, 422,
     "invalid"),
    ("huge seed", "POST", "/ask", {"json": {"question": "lens", "seed": 10**30}}, 422, "invalid"),
    ("huge top_k_sampling", "POST", "/ask",
     {"json": {"question": "lens", "top_k_sampling": 2**40}}, 422, "invalid"),
    ("huge document filter", "POST", "/ask",
     {"json": {"question": "lens", "filters": {"document": 10**30}}}, 422, "invalid"),
    ("oversized body", "POST", "/ask", {"content": OVERSIZED, "headers": JSON}, 413, "too-large"),
    ("oversized chunked body", "POST", "/ask", {"content": _chunks(OVERSIZED), "headers": JSON},
     413, "too-large"),
    ("session id with slashes", "POST", "/ask",
     {"json": {"question": "lens", "session_id": "../.."}}, 400, "bad-request"),
    ("empty session id", "POST", "/ask", {"json": {"question": "lens", "session_id": ""}}, 400,
     "bad-request"),
    ("5000-character session id", "POST", "/ask",
     {"json": {"question": "lens", "session_id": "a" * 5000}}, 400, "bad-request"),
    ("session id not a string", "POST", "/ask", {"json": {"question": "lens", "session_id": 7}},
     422, "invalid"),
    ("NUL session id", "GET", "/sessions/%00", {}, 400, "bad-request"),
    ("unknown session", "GET", "/sessions/no-such-session", {}, 404, "not-found"),
    ("empty query", "GET", "/search?q=", {}, 400, "bad-request"),
    ("no query", "GET", "/search", {}, 422, "invalid"),
    ("10 KB query", "GET", "/search?q=" + "a" * 10_000, {}, 422, "invalid"),
    ("huge k", "GET", "/search?q=lens&k=1000000000000", {}, 422, "invalid"),
    ("k zero", "GET", "/search?q=lens&k=0", {}, 422, "invalid"),
    ("k not a number", "GET", "/search?q=lens&k=ten", {}, 422, "invalid"),
    ("unknown mode", "GET", "/search?q=lens&mode=magic", {}, 422, "invalid"),
    ("huge document", "GET", f"/search?q=lens&document={BIG_ID}", {}, 422, "invalid"),
    ("document past int64", "GET", f"/search?q=lens&document={INT64_END}", {}, 422, "invalid"),
    ("huge offset", "GET", f"/documents?offset={BIG_ID}", {}, 422, "invalid"),
    ("huge limit", "GET", "/documents?limit=1000000000000", {}, 422, "invalid"),
    ("unknown status", "GET", "/documents?status=lost", {}, 422, "invalid"),
    ("huge document id", "GET", f"/documents/{BIG_ID}", {}, 422, "invalid"),
    ("document id past int64", "GET", f"/documents/{INT64_END}/file", {}, 422, "invalid"),
    ("delete huge document id", "DELETE", f"/documents/{BIG_ID}", {}, 422, "invalid"),
    ("document id not a number", "GET", "/documents/abc", {}, 422, "invalid"),
    ("unknown document", "GET", "/documents/999", {}, 404, "not-found"),
    ("upload as JSON", "POST", "/documents", {"json": {"files": "x"}}, 422, "invalid"),
    ("upload, broken multipart", "POST", "/documents",
     {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=b0"}},
     400, "bad-request"),
    ("upload, no boundary", "POST", "/documents",
     {"content": b"x", "headers": {"Content-Type": "multipart/form-data"}}, 400, "bad-request"),
    ("upload, 101 files", "POST", "/documents",
     {"files": [("files", (f"f{n}.txt", b"x")) for n in range(101)]}, 400, "bad-request"),
    ("upload, NUL in the name", "POST", "/documents",
     {"content": NUL_NAME[0], "headers": NUL_NAME[1]}, 400, "bad-request"),
    ("ingest, no such path", "POST", "/ingest", {"json": {"paths": ["/no/such/file"]}}, 400,
     "bad-request"),
    ("ingest, path too long", "POST", "/ingest", {"json": {"paths": ["/" + "a" * 5000]}}, 400,
     "bad-request"),
    ("ingest, no paths", "POST", "/ingest", {"json": {"paths": []}}, 422, "invalid"),
    ("chat, malformed JSON", "POST", "/v1/chat/completions", {"content": b"{", "headers": JSON},
     422, "invalid"),
    ("chat, no messages", "POST", "/v1/chat/completions", {"json": {"messages": []}}, 422,
     "invalid"),
    ("chat, no question", "POST", "/v1/chat/completions",
     {"json": {"messages": [{"role": "system", "content": "hi"}]}}, 400, "bad-request"),
    ("chat, NaN seed", "POST", "/v1/chat/completions",
     {"content": b'{"messages": [{"role": "user", "content": "x"}], "seed": NaN}',
      "headers": JSON}, 422, "invalid"),
    ("chat, unknown model", "POST", "/v1/chat/completions",
     {"json": {"model": "x" * 100_000, "messages": [{"role": "user", "content": "lens"}]}},
     404, "not-found"),
    ("unknown route", "GET", "/no/such/route", {}, 404, "not-found"),
    ("wrong method", "PUT", "/ask", {}, 405, "method-not-allowed"),
]  # fmt: skip


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One server for the table, with a note in its inbox and a scripted model."""
    data = tmp_path_factory.mktemp("bad-requests") / "data"
    (data / "inbox").mkdir(parents=True)
    (data / "inbox" / "lens.md").write_text("# Lens\n\nThe lens is cleaned every fourteen days.\n")
    settings = Settings(data=data, workers=1, convert_timeout_s=30, llm="none")
    with live_server(settings, backend=ScriptedBackend("Every fourteen days [1].")) as serving:
        yield serving


@pytest.mark.parametrize(
    ("method", "path", "request_args", "status", "reason"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_a_bad_request_gets_a_4xx_and_the_error_body(
    live: Live, method: str, path: str, request_args: dict[str, Any], status: int, reason: str
) -> None:
    # A connection of its own: a server that failed a request may close the shared one.
    with httpx.Client(base_url=live.url, timeout=60) as client:
        response = client.request(method, path, **request_args)
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert body["reason"] == reason, body
    assert isinstance(body["detail"], str) and body["detail"], body
    assert len(response.content) < 4096  # no echo of what was sent
    if path.startswith("/v1/"):
        assert body["error"]["message"] == body["detail"]  # what OpenAI clients show


def test_the_server_still_answers_after_the_bad_requests(live: Live) -> None:
    answer = live.http.post("/ask", json={"question": "When is the lens cleaned?"})
    assert answer.status_code == 200 and answer.json()["answer"] == "Every fourteen days [1]."
    hits = live.http.get("/search", params={"q": "lens"}).json()["hits"]
    assert hits[0]["name"] == "lens.md"


def test_a_body_just_under_the_limit_is_read(live: Live) -> None:
    question = b"a" * (MAX_BODY - 100)
    body = b'{"question": "' + question + b'"}'
    refused = live.http.post("/ask", content=body, headers=JSON)
    assert refused.status_code == 422  # read and judged: too long a question, not too large a body
    assert "4000 characters" in refused.json()["detail"]
