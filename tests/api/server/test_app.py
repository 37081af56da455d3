"""The HTTP API through the real app on a live uvicorn: real stores, real conversions."""

import json
import socket
import threading
from pathlib import Path

import httpx
import pytest
from openai import OpenAI

from api.server.serve import is_loopback, run_server
from api.service import ConfigError, Settings
from tests.api.server.live import live_server, wait_until
from tests.fixtures import make_pdf
from tests.llm_servers import free_port
from tests.scripted_backend import ScriptedBackend

LENS = "The Vellmar lighthouse lens is cleaned every fourteen days by the keeper on duty."
FOG = "During fog the Vellmar horn sounds twice every thirty seconds until visibility returns."


@pytest.fixture
def seeded(settings: Settings) -> Settings:
    """An inbox with a two-page PDF and a note, ingested by the server's start-up scan."""
    settings.inbox.mkdir(parents=True)
    make_pdf(settings.inbox / "manual.pdf", ["Keeper duties.\n\n" + LENS, "Signals.\n\n" + FOG])
    (settings.inbox / "notes.md").write_text("# Supplies\n\nThe store holds lamp oil and wicks.\n")
    return settings


def test_status_documents_and_files(seeded: Settings) -> None:
    with live_server(seeded) as live:
        assert live.http.get("/health").json() == {"status": "ok"}
        status = live.http.get("/status").json()
        assert status["documents"] == {"ingested": 2, "failed": 0}
        assert status["stores"]["in_sync"] and status["stores"]["qdrant"] == status["chunks"] > 0
        assert status["ingest"]["state"] == "idle" and status["embed_model"]
        assert status["llm"]["configured"] == "none"

        listing = live.http.get("/documents", params={"limit": 1}).json()
        assert (listing["total"], len(listing["documents"])) == (2, 1)
        second = live.http.get("/documents", params={"limit": 1, "offset": 1}).json()
        assert {listing["documents"][0]["name"], second["documents"][0]["name"]} == {
            "manual.pdf",
            "notes.md",
        }
        pdf = next(
            d for d in [*listing["documents"], *second["documents"]] if d["file_type"] == "pdf"
        )
        assert (pdf["status"], pdf["pages"]) == ("ingested", 2)
        assert live.http.get(f"/documents/{pdf['id']}").json() == pdf
        original = live.http.get(pdf["url"])
        assert original.status_code == 200
        assert original.content == (seeded.inbox / "manual.pdf").read_bytes()
        assert original.headers["content-type"] == "application/pdf"
        assert original.headers["content-disposition"].startswith("inline")
        assert live.http.get("/documents", params={"status": "failed"}).json()["total"] == 0

        missing = live.http.get("/documents/999")
        assert missing.status_code == 404 and "999" in missing.json()["detail"]
        assert live.http.get("/documents", params={"status": "lost"}).status_code == 422
        assert live.http.get("/docs").status_code == 200
        schema = live.http.get("/openapi.json").json()
        assert {"/ask", "/search", "/documents", "/v1/chat/completions"} <= set(schema["paths"])
        assert "<title>Archivist</title>" in live.http.get("/").text


def test_search_with_legs_pages_and_filters(seeded: Settings) -> None:
    with live_server(seeded) as live:
        query = {"q": "how often is the lens cleaned", "explain": "true", "k": 3}
        response = live.http.get("/search", params=query).json()
        assert response["missing_legs"] == {}  # both indexes sound (see test_healing.py)
        best = response["hits"][0]
        assert (best["name"], best["page_start"]) == ("manual.pdf", 1)
        assert best["url"].endswith("/file#page=1") and set(best["legs"]) == {
            "bm25",
            "dense",
            "document",
        }
        assert best["legs"]["bm25"]["rank"] >= 1 and "fourteen days" in best["text"]
        only_md = live.http.get("/search", params={"q": "lens", "file_type": "md"}).json()
        assert {h["name"] for h in only_md["hits"]} <= {"notes.md"}
        assert live.http.get("/search", params={"q": ""}).status_code == 400
        assert live.http.get("/search", params={"q": "x", "mode": "magic"}).status_code == 422


def test_ask_json_and_sessions_without_a_model(seeded: Settings) -> None:
    with live_server(seeded) as live:
        answer = live.http.post("/ask", json={"question": "When is the lens cleaned?"}).json()
        assert answer["backend"] == "none" and answer["extractive"]
        assert answer["note"].startswith("No language model is available")
        assert "fourteen days" in answer["answer"]  # the sentence that answers, quoted
        first = answer["citations"][0]
        assert (first["name"], first["page"]) == ("manual.pdf", 1)
        assert first["url"] == f"/documents/{first['document_id']}/file#page=1"
        turns = live.http.get(f"/sessions/{answer['session_id']}").json()["turns"]
        assert turns == [{"question": "When is the lens cleaned?", "answer": answer["answer"]}]

        empty = live.http.post("/ask", json={"question": "   "})
        assert empty.status_code == 400 and "empty" in empty.json()["detail"]
        bad_session = live.http.post("/ask", json={"question": "x", "session_id": "../.."})
        assert bad_session.status_code == 400
        assert live.http.post("/ask", json={"question": "x", "top_k": 0}).status_code == 422
        assert live.http.post("/ask", json={"question": "x", "bogus": 1}).status_code == 422
        assert live.http.get("/sessions/unknown-session").status_code == 404


def _events(response: httpx.Response) -> list[tuple[str, dict]]:
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            events.append((name, json.loads(line[5:])))
    return events


def test_ask_streams_tokens_then_citations_then_done(seeded: Settings, smollm2_gguf: Path) -> None:
    # From the whole passages SmolLM2 writes several sentences: several events to check.
    update = {"llm": "llamacpp", "gguf": str(smollm2_gguf), "answer_evidence": 0}
    settings = seeded.model_copy(update=update)
    with live_server(settings) as live:
        body = {"question": "How often is the Vellmar lens cleaned?", "max_tokens": 40, "seed": 1}
        with live.http.stream("POST", "/ask", json={**body, "stream": True}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response)
        kinds = [kind for kind, _ in events]
        assert kinds[-2:] == ["citations", "done"] and set(kinds[:-2]) == {"token"}
        assert len(kinds) > 3
        done = events[-1][1]
        # Each event is a checked sentence or more; the model wrote at least as many tokens.
        assert done["backend"] == "llamacpp" and done["tokens"] >= len(kinds) - 2
        assert done["answer"] == "".join(data["text"] for _, data in events[:-2]).strip()
        assert events[-2][1]["citations"] == done["citations"]

        # Accept: text/event-stream asks for the stream too; a follow-up keeps the session.
        follow = {**body, "question": "And who cleans it?", "session_id": done["session_id"]}
        headers = {"Accept": "text/event-stream"}
        with live.http.stream("POST", "/ask", json=follow, headers=headers) as response:
            assert _events(response)[-1][1]["session_id"] == done["session_id"]
        turns = live.http.get(f"/sessions/{done['session_id']}").json()["turns"]
        assert [t["question"] for t in turns] == [body["question"], follow["question"]]


def test_the_server_opens_the_model_as_it_starts(seeded: Settings, smollm2_gguf: Path) -> None:
    settings = seeded.model_copy(update={"llm": "llamacpp", "gguf": str(smollm2_gguf)})
    with live_server(settings) as live:
        llm = wait_until(
            lambda: (s := live.http.get("/status").json()["llm"]).get("backend") and s,
            timeout=60, what="the model is open before any question",
        )  # fmt: skip
        assert (llm["backend"], llm["model"]) == ("llamacpp", str(smollm2_gguf))
        assert llm["queue"] == {"running": 0, "waiting": 0}  # nothing was asked


def test_openai_chat_completions_with_the_official_client(
    seeded: Settings, smollm2_gguf: Path
) -> None:
    settings = seeded.model_copy(update={"llm": "llamacpp", "gguf": str(smollm2_gguf)})
    with live_server(settings) as live:
        client = OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list()] == ["archivist"]
        messages = [{"role": "user", "content": "How often is the Vellmar lens cleaned?"}]
        reply = client.chat.completions.create(
            model="archivist",
            messages=messages,
            max_tokens=40,
            seed=1,  # type: ignore[arg-type]
        )
        text = reply.choices[0].message.content or ""
        assert reply.model == "archivist" and text.strip()
        cited = (reply.model_extra or {}).get("citations", [])
        for citation in cited:
            assert citation["name"] in text  # the sources are listed in the text too

        stream = client.chat.completions.create(
            model="archivist",
            messages=messages,
            max_tokens=40,
            seed=1,
            stream=True,  # type: ignore[arg-type]
        )
        pieces = [chunk.choices[0].delta.content or "" for chunk in stream]
        # The role, each checked sentence (one at least), then the sources.
        assert len(pieces) >= 3 and "".join(pieces).strip()

        try:
            client.chat.completions.create(model="gpt-4", messages=messages)  # type: ignore[arg-type]
        except Exception as error:  # the client raises NotFoundError
            assert "archivist" in str(error)
        else:
            pytest.fail("an unknown model name must be refused")


def test_a_full_generation_queue_answers_429(seeded: Settings) -> None:
    gate = threading.Event()
    backend = ScriptedBackend("It is cleaned every fourteen days [1].", gate=gate)
    settings = seeded.model_copy(update={"llm_parallel": 1, "llm_queue": 0})
    with live_server(settings, backend=backend) as live:
        first: dict = {}
        asking = threading.Thread(
            target=lambda: first.update(live.http.post("/ask", json={"question": "lens?"}).json())
        )
        asking.start()
        assert backend.started.acquire(timeout=60)  # the one slot is taken
        refused = live.http.post("/ask", json={"question": "fog?"})
        streamed = live.http.post("/ask", json={"question": "fog?", "stream": True})
        gate.set()
        asking.join(60)
        assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
        assert refused.json()["reason"] == "queue-full"
        assert streamed.status_code == 429
        assert first["answer"] == "It is cleaned every fourteen days [1]."
        assert first["citations"][0]["name"] == "manual.pdf"


def test_an_unreachable_model_server_answers_503(seeded: Settings) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    settings = seeded.model_copy(update={"llm": "ollama", "ollama_url": closed})
    with live_server(settings) as live:
        for body in ({"question": "lens?"}, {"question": "lens?", "stream": True}):
            refused = live.http.post("/ask", json=body)
            assert refused.status_code == 503, refused.text
            assert refused.json()["reason"] == "backend-unavailable"
            assert closed in refused.json()["detail"]


def long_answer(words: int) -> str:
    """The answer in the quote's words, then sentences of eight made-up words, none repeated:
    nothing the answer checks hold back (made-up words alone disagree with the quote)."""
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "vo", "pe", "du"]
    made_up = [a + b + c for a in syllables for b in syllables for c in syllables][:words]
    sentences = " ".join(w + ("." if n % 8 == 7 else "") for n, w in enumerate(made_up))
    return f"The lens is cleaned every fourteen days [1]. {sentences} [1]"


def test_a_client_that_goes_away_stops_the_generation(seeded: Settings) -> None:
    backend = ScriptedBackend(long_answer(400), word_s=0.02)
    with live_server(seeded, backend=backend) as live:
        body = {"question": "When is the lens cleaned?", "stream": True}
        with live.http.stream("POST", "/ask", json=body) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: token"
        queue = live.running.service.llm.queue
        wait_until(lambda: queue.running() == 0, 10, "the generation stops")
        assert backend.words_sent < 200  # 400 words at 20 ms each would take 8 s


def test_upload_saves_safe_names_and_never_overwrites(settings: Settings) -> None:
    with live_server(settings) as live:
        note = b"The Vellmar boat is painted red every spring.\n"

        def upload(name: str, data: bytes = note) -> httpx.Response:
            return live.http.post("/documents", files=[("files", (name, data))])

        saved = upload("boat.txt")
        assert saved.status_code == 202
        assert saved.json()["accepted"] == [
            {"name": "boat.txt", "path": str(live.running.inbox / "boat.txt"), "status": "queued"}
        ]
        live.settle()
        assert live.names() == {"boat.txt": "ingested"}
        assert "boat.txt" in live.hit_names("when is the boat painted")

        same = upload("copy.txt")
        assert same.status_code == 409 and "boat.txt" in same.json()["detail"]
        other = upload("boat.txt", b"The boat has two oars.\n")
        assert other.json()["accepted"][0]["name"] == "boat (2).txt"
        assert (live.running.inbox / "boat.txt").read_bytes() == note  # not overwritten

        for name in ("../../etc/passwd", "/etc/passwd", "..\\..\\evil.txt"):
            accepted = upload(name, f"{name} holds nothing.\n".encode())
            saved_name = accepted.json()["accepted"][0]["name"]
            assert "/" not in saved_name and "\\" not in saved_name
            assert (live.running.inbox / saved_name).is_file()
        for name in ("..", ".hidden.txt", "~$lock.docx", "x.part"):
            assert upload(name).status_code == 400, name
        live.settle()
        assert not list(live.running.inbox.parent.glob("*.txt"))  # nothing escaped the inbox
        assert not list(live.running.inbox.glob(".upload-*"))  # no staging files left

        # A NUL byte in the raw multipart file name (clients usually escape it).
        boundary = "archivist-test"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="bad\x00name.txt"\r\nContent-Type: text/plain\r\n\r\nx\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        assert live.http.post("/documents", content=body, headers=headers).status_code == 400
        assert live.http.post("/documents", files=[("other", ("a.txt", b"x"))]).status_code == 422


def test_upload_size_limit(settings: Settings) -> None:
    with live_server(settings.model_copy(update={"max_file_mb": 1})) as live:
        big = b"x" * (2**20 + 1)
        refused = live.http.post("/documents", files=[("files", ("big.txt", big))])
        assert refused.status_code == 413 and "ARCHIVIST_MAX_FILE_MB=1" in refused.json()["detail"]
        assert not any(live.running.inbox.iterdir())


def test_delete_removes_the_file_and_the_document_everywhere(seeded: Settings) -> None:
    outside = seeded.data.parent / "elsewhere.md"
    outside.write_text("# Elsewhere\n\nThe Vellmar bell was cast in bronze.\n")
    with live_server(seeded) as live:
        assert live.http.post("/ingest", json={"paths": [str(outside)]}).status_code == 200
        documents = live.http.get("/documents").json()["documents"]
        ids = {d["name"]: d["id"] for d in documents}
        deleted = live.http.delete(f"/documents/{ids['notes.md']}")
        assert deleted.status_code == 202 and deleted.json()["status"] == "queued"
        live.http.delete(f"/documents/{ids[str(outside)]}")
        live.settle()
        assert set(live.names()) == {"manual.pdf"}
        assert not (seeded.inbox / "notes.md").exists()
        assert outside.exists()  # a file outside the inbox is only forgotten
        assert "notes.md" not in live.hit_names("lamp oil and wicks")
        stores = live.http.get("/status").json()["stores"]
        assert stores["in_sync"] and stores["sqlite"] == stores["tantivy"] == stores["qdrant"]
        assert live.http.delete(f"/documents/{ids['notes.md']}").status_code == 404


def test_an_api_key_guards_every_endpoint_but_health(seeded: Settings) -> None:
    settings = seeded.model_copy(update={"api_key": "s3cret"})
    with live_server(settings) as live:
        for method, path in [("GET", "/status"), ("GET", "/documents"), ("GET", "/search?q=x"),
                             ("POST", "/ask"), ("GET", "/v1/models")]:  # fmt: skip
            response = live.http.request(method, path, json={"question": "x"})
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == "Bearer"
        wrong = live.http.get("/status", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = live.http.get("/status", headers={"Authorization": "Bearer s3cret"})
        assert right.status_code == 200
        assert live.http.get("/health").status_code == 200
        assert live.http.get("/").status_code == 200  # the page itself holds nothing private


def test_serving_off_loopback_needs_an_api_key(settings: Settings) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    with pytest.raises(ConfigError, match="ARCHIVIST_API_KEY"):
        run_server(settings, "0.0.0.0", 8000)


def test_a_taken_port_is_a_clear_error(settings: Settings) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}.*--port"):
            run_server(settings, "127.0.0.1", port)
