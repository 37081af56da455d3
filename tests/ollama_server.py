"""An Ollama-protocol server on llama.cpp, for tests: the API our clients use, for one GGUF model.

Serves /api/version, /api/tags, /api/show, /api/ps, /api/chat, /api/generate (NDJSON streaming or
one JSON body), /api/embed (with an embedding GGUF, `embedding=True`) and, like Ollama, the
OpenAI-style /v1/models and /v1/chat/completions. Run it with
`tests.llm_servers.serve_app(server.app)`. Unlike Ollama, the model keeps a window of at least the
num_ctx asked for (it never reloads smaller), and a prompt that does not fit is an error rather
than silently cut.
"""

import asyncio
import json
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import anyio
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response, StreamingResponse
from llama_cpp import Llama

DEFAULT_NUM_CTX = 2048  # Ollama's window when a request names none
_CUT = object()  # where a stream told to cut ends, without its final message


@dataclass(frozen=True)
class Seen:
    """One generation request as the server received it."""

    path: str
    body: dict[str, Any]


class OllamaServer:
    """Serves one GGUF under one model name, records requests, and can be told to misbehave.

    `stall_s` pauses that many seconds before the response starts, or, with `stall_after` > 0,
    after that many streamed pieces. `drop_after` > 0 breaks the connection after that many
    streamed pieces, mid-body, as a server that crashes or a network that fails does;
    `cut_after` > 0 ends the body properly after that many pieces but without the final message
    (Ollama's done=true line, OpenAI's finish_reason and [DONE]), as a proxy that gives up may.
    `fail_with` makes it report that error, as Ollama does when its model runner fails: with
    status 500 instead of an answer, or, with `fail_after` > 0, in the stream after that many
    pieces. `hold(text)` keeps each /api/embed request that carries `text` waiting, without the
    model, until `release()` (`holding` is set once one waits), as a slow embedding server keeps
    its client: a test can then act while a writer is mid-embedding. `seen` holds the
    generation requests, oldest first.
    """

    # One thread by default: tests share two cores with other work, and llama.cpp's worker
    # threads spin-wait for each other, which slows to a crawl when they must share a core.
    def __init__(
        self,
        gguf: Path,
        model: str = "smollm2:latest",
        *,
        threads: int = 1,
        embedding: bool = False,
    ) -> None:
        self.gguf = gguf
        self.embedding = embedding
        self.model = _tagged(model)
        self.threads = threads
        self.seen: list[Seen] = []
        self.stall_s = 0.0
        self.stall_after = 0
        self.drop_after = 0
        self.cut_after = 0
        self.fail_with = ""
        self.fail_after = 0
        self.hold_embed = ""
        self.holding = threading.Event()
        self._released = threading.Event()
        self._lock = threading.Lock()  # one llama.cpp context: one generation at a time
        self._llama = Llama(
            str(gguf), n_ctx=DEFAULT_NUM_CTX, n_batch=DEFAULT_NUM_CTX if embedding else 512,
            n_ubatch=DEFAULT_NUM_CTX if embedding else 512, n_threads=threads,
            embedding=embedding, verbose=False,
        )  # fmt: skip
        self._window = DEFAULT_NUM_CTX
        meta = dict(self._llama.metadata)
        self.arch = meta.get("general.architecture", "llama")
        self.trained_context = int(meta.get(f"{self.arch}.context_length", DEFAULT_NUM_CTX))
        self._template = meta.pop("tokenizer.chat_template", "")
        self._size_label = meta.get("general.size_label", "")
        self.model_info = {key: _number(value) for key, value in meta.items()}
        self.app = self._routes()

    @property
    def last_options(self) -> dict[str, Any]:
        """The `options` of the latest /api/chat or /api/generate request."""
        body = next(s.body for s in reversed(self.seen) if s.path.startswith("/api/"))
        return dict(body.get("options") or {})

    def _header(self, *, verbose: bool) -> dict[str, Any]:
        """`model_info` as Ollama gives it: the GGUF's header keys, long arrays (the vocabulary)
        as null unless `verbose` asks for them."""
        if not verbose:
            return self.model_info
        from generation.gguf import read_metadata

        return {**self.model_info, **read_metadata(self.gguf, max_array=1 << 20)}

    def reset(self) -> None:
        """Forget recorded requests; stop stalling, dropping, cutting and failing."""
        self.seen.clear()
        self.stall_s, self.stall_after, self.drop_after, self.cut_after = 0.0, 0, 0, 0
        self.fail_with, self.fail_after = "", 0
        self.release()

    def release(self) -> None:
        """Let held embed requests go on and hold no more."""
        self.hold_embed = ""
        self._released.set()
        self.holding.clear()

    def hold(self, text: str) -> None:
        """Keep embed requests that carry `text` waiting until `release()`."""
        self._released.clear()
        self.hold_embed = text

    def close(self) -> None:
        """Free the model."""
        with self._lock:
            self._llama.close()

    async def _stall(self) -> None:
        """Pause for `stall_s` seconds, or until `reset()` ends the stall."""
        deadline = time.monotonic() + self.stall_s
        while self.stall_s and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def _routes(self) -> FastAPI:
        app = FastAPI()
        app.get("/api/version")(lambda: {"version": "0.12.0"})
        app.get("/api/tags")(lambda: {"models": [self._entry()]})
        app.get("/api/ps")(lambda: {"models": [self._entry() | self._loaded()]})
        app.get("/v1/models")(lambda: {"object": "list", "data": [_openai_model(self.model)]})

        @app.post("/api/show")
        def show(body: dict[str, Any]) -> Any:
            if not self._knows(body.get("model") or body.get("name")):
                return _not_found(body.get("model"))
            return {
                "modelfile": f"FROM {self.gguf}\n",
                "parameters": "",
                "template": self._template,
                "details": self._entry()["details"],
                "model_info": self._header(verbose=bool(body.get("verbose"))),
                "capabilities": ["embedding" if self.embedding else "completion"],
                "modified_at": _now(),
            }

        @app.post("/api/embed")
        def embed(body: dict[str, Any]) -> Any:
            if not self._knows(body.get("model")):
                return _not_found(body.get("model"))
            self.seen.append(Seen("/api/embed", body))
            texts = body.get("input") or []
            texts = [texts] if isinstance(texts, str) else texts
            if self.hold_embed and any(self.hold_embed in text for text in texts):
                self.holding.set()  # (a sync route: it waits in the server's thread pool)
                self._released.wait()
            truncate = body.get("truncate", True)
            with self._lock:  # Ollama's /api/embed gives unit vectors
                vectors = [self._llama.embed(t, normalize=True, truncate=truncate) for t in texts]
            return {"model": self.model, "embeddings": vectors}

        @app.post("/api/chat")
        async def chat(body: dict[str, Any]) -> Response:
            return await self._answer("/api/chat", body, body.get("messages") or [])

        @app.post("/api/generate")
        async def generate(body: dict[str, Any]) -> Response:
            system = [{"role": "system", "content": body["system"]}] if body.get("system") else []
            user = [{"role": "user", "content": body.get("prompt", "")}]
            return await self._answer("/api/generate", body, system + user)

        @app.post("/v1/chat/completions")
        async def completions(body: dict[str, Any]) -> Response:
            return await self._answer("/v1/chat/completions", body, body.get("messages") or [])

        return app

    async def _answer(self, path: str, body: dict[str, Any], messages: list[Any]) -> Response:
        """Generate for any of the three routes, in the shape that route's clients expect."""
        openai = path.startswith("/v1/")
        if not self._knows(body.get("model")):
            return _not_found(body.get("model"), openai=openai)
        self.seen.append(Seen(path, body))
        options = _openai_options(body) if openai else dict(body.get("options") or {})
        if self.stall_after == 0:
            await self._stall()
        if self.fail_with and not self.fail_after:
            return _failed(self.fail_with, openai=openai)
        stats: dict[str, Any] = {}
        chunks = self._generate(messages, options, stats)
        if openai and body.get("stream"):
            return StreamingResponse(_sse(chunks), media_type="text/event-stream")
        if openai:
            return JSONResponse(await _openai_completion(chunks, self.model))
        lines = self._ndjson(chunks, stats, "message" if path == "/api/chat" else "response")
        if body.get("stream", True):
            return StreamingResponse(lines, media_type="application/x-ndjson")
        parts = [json.loads(line) async for line in lines]
        if "error" in parts[-1]:
            return JSONResponse(parts[-1], status_code=500)
        return JSONResponse(_joined(parts))

    async def _ndjson(self, chunks: AsyncIterator[Any], stats: dict[str, Any], field: str) -> Any:
        """Ollama's stream: one JSON object per line, the last with done=true and the counts."""

        def line(text: str, **extra: Any) -> str:
            value = {"role": "assistant", "content": text} if field == "message" else text
            return json.dumps({"model": self.model, "created_at": _now(), field: value} | extra)

        async for chunk in chunks:
            if chunk is _CUT:
                return
            if isinstance(chunk, Exception):
                yield json.dumps({"error": str(chunk)}) + "\n"
                return
            if text := _text(chunk):
                yield line(text, done=False) + "\n"
        yield line("", done=True, **stats) + "\n"

    async def _generate(
        self, messages: list[Any], options: dict[str, Any], stats: dict[str, Any]
    ) -> AsyncIterator[Any]:
        """llama.cpp chunks (or the exception) from a worker thread; stalls, drops, cuts or fails
        as told."""
        out: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        # A thread rather than holding the lock across awaits: a client that goes away can then
        # never leave the model locked; the worker notices `stop` and finishes on its own.
        work = (messages, options, stats, out, stop)
        threading.Thread(target=self._work, args=work, name="ollama-test-generate").start()
        sent = 0
        try:
            while chunk := await anyio.to_thread.run_sync(out.get, abandon_on_cancel=True):
                if not isinstance(chunk, Exception) and _text(chunk):
                    if self.stall_after and sent == self.stall_after:
                        await self._stall()
                    if self.drop_after and sent == self.drop_after:
                        # Raised after the response started: uvicorn closes the connection
                        # without ending the chunked body, so the client sees it cut short.
                        raise ConnectionAbortedError(f"dropped the stream after {sent} pieces")
                    if self.cut_after and sent == self.cut_after:
                        yield _CUT
                        return
                    if self.fail_with and sent == self.fail_after:
                        yield RuntimeError(self.fail_with)  # reported in the stream
                        return
                    sent += 1
                yield chunk
        finally:
            stop.set()

    def _work(
        self,
        messages: list[Any],
        options: dict[str, Any],
        stats: dict[str, Any],
        out: "queue.Queue[Any]",
        stop: threading.Event,
    ) -> None:
        """Run one generation under the model lock, putting chunks on `out`, then None."""
        started = time.monotonic_ns()
        window = min(options.get("num_ctx") or DEFAULT_NUM_CTX, self.trained_context)
        with self._lock:
            try:
                llama = self._load(window)
                count, reason = 0, "stop"
                sampling = _sampling(options)
                chunks = llama.create_chat_completion(messages, stream=True, **sampling)
                for chunk in cast(Iterator[dict[str, Any]], chunks):
                    if stop.is_set():
                        break
                    count += bool(_text(chunk))
                    reason = chunk["choices"][0].get("finish_reason") or reason
                    out.put(chunk)
                elapsed = time.monotonic_ns() - started
                prompt = llama.n_tokens - count
                stats.update(done_reason=reason, eval_count=count, prompt_eval_count=prompt)
                stats.update(total_duration=elapsed, eval_duration=elapsed)
            except Exception as exc:  # reported to the client, as Ollama does
                out.put(exc)
            finally:
                out.put(None)

    def _load(self, num_ctx: int) -> Llama:
        """The model with a window of at least `num_ctx` tokens."""
        # Ollama reloads for any other size; growing only keeps llama.cpp's prompt cache, which
        # saves seconds per test on a busy machine. ps reports the size asked for, as Ollama's.
        self._window = num_ctx
        if self._llama.n_ctx() < num_ctx:
            self._llama.close()
            self._llama = Llama(
                str(self.gguf), n_ctx=num_ctx, n_threads=self.threads, verbose=False
            )
        return self._llama

    def _knows(self, name: str | None) -> bool:
        return bool(name) and _tagged(str(name)) == self.model

    def _entry(self) -> dict[str, Any]:
        size = self.gguf.stat().st_size
        quantization = self.gguf.stem.rsplit(".", 1)[-1] if "." in self.gguf.stem else ""
        details = {
            "parent_model": "",
            "format": "gguf",
            "family": self.arch,
            "families": [self.arch],
            "parameter_size": self._size_label,
            "quantization_level": quantization,
        }
        # A stand-in digest: clients only compare it, and hashing 100 MB per call is slow.
        return {
            "name": self.model,
            "model": self.model,
            "modified_at": _now(),
            "size": size,
            "digest": f"{size:064x}",
            "details": details,
        }

    def _loaded(self) -> dict[str, Any]:
        return {"expires_at": _now(), "size_vram": 0, "context_length": self._window}


def _sampling(options: dict[str, Any]) -> dict[str, Any]:
    """Ollama options as llama.cpp arguments, with Ollama's defaults where a request names none."""
    predict = options.get("num_predict")
    return {
        "temperature": options.get("temperature", 0.8),
        "top_p": options.get("top_p", 0.9),
        "top_k": options.get("top_k", 40),
        "seed": options.get("seed"),
        "max_tokens": predict if predict and predict > 0 else None,
    }


def _openai_options(body: dict[str, Any]) -> dict[str, Any]:
    keys = {"temperature": "temperature", "top_p": "top_p", "top_k": "top_k", "seed": "seed"}
    options = {ours: body[theirs] for theirs, ours in keys.items() if body.get(theirs) is not None}
    return options | {"num_predict": body.get("max_tokens") or body.get("max_completion_tokens")}


async def _sse(chunks: AsyncIterator[Any]) -> AsyncIterator[str]:
    async for chunk in chunks:
        if chunk is _CUT:
            return
        if isinstance(chunk, Exception):
            yield f"data: {json.dumps({'error': {'message': str(chunk)}})}\n\n"
            return
        yield f"data: {json.dumps(chunk)}\n\n"
    yield "data: [DONE]\n\n"


async def _openai_completion(chunks: AsyncIterator[Any], model: str) -> dict[str, Any]:
    text, reason = "", "stop"
    async for chunk in chunks:
        if chunk is _CUT:
            break
        if isinstance(chunk, Exception):
            raise chunk
        text += _text(chunk)
        reason = chunk["choices"][0].get("finish_reason") or reason
    message = {"role": "assistant", "content": text}
    choice = {"index": 0, "message": message, "finish_reason": reason}
    created = int(time.time())
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
    }


def _text(chunk: dict[str, Any]) -> str:
    return chunk["choices"][0]["delta"].get("content") or ""


def _joined(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A whole streamed answer as the one object Ollama returns for stream=false."""
    final = parts[-1]
    if "message" in final:
        text = "".join(p["message"]["content"] for p in parts)
        return final | {"message": {"role": "assistant", "content": text}}
    return final | {"response": "".join(p["response"] for p in parts)}


def _not_found(name: Any, *, openai: bool = False) -> JSONResponse:
    """Ollama's 404 for a model that is not pulled, in its native or its OpenAI shape."""
    if openai:
        error = {"message": f'model "{name}" not found, try pulling it first', "type": "api_error"}
        return JSONResponse({"error": error}, status_code=404)
    return JSONResponse({"error": f"model '{name}' not found"}, status_code=404)


def _failed(message: str, *, openai: bool) -> JSONResponse:
    """Ollama's 500 when the model runner fails, in its native or its OpenAI shape."""
    error: Any = {"message": message, "type": "api_error"} if openai else message
    return JSONResponse({"error": error}, status_code=500)


def _openai_model(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": "library"}


def _tagged(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _number(value: str) -> Any:
    """GGUF metadata arrives as strings; Ollama's model_info has numbers where they are numbers."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def _now() -> str:
    return datetime.now(UTC).isoformat()
