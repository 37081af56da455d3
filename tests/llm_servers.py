"""Run LLM servers for tests on free local ports, in-process or as subprocesses; stop them after."""

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve_app(app: FastAPI, *, port: int = 0, start_timeout: float = 30.0) -> Iterator[str]:
    """Run `app` with uvicorn in a background thread; yields its base URL, stops it on exit.

    `port` (default: a free one) serves again where an earlier run served: a server that went
    down comes back at the same address."""
    # Binding here and handing uvicorn the socket leaves no window for another process to take
    # the port between choosing and listening.
    sock = socket.socket()
    if port:  # the last run's connections may linger in TIME_WAIT on this port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait(lambda: server.started, start_timeout, "uvicorn did not start", thread.is_alive)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=120)
        sock.close()
        # The app's shutdown (closing its stores) must end before anything reopens them.
        assert not thread.is_alive(), "uvicorn did not shut down within 120 s"


@contextmanager
def llama_cpp_server(
    gguf: Path,
    log: Path,
    *,
    n_ctx: int = 2048,
    alias: str | None = None,
    api_key: str | None = None,
    threads: int = 1,
    start_timeout: float = 120.0,
) -> Iterator[str]:
    """Run `python -m llama_cpp.server` on `gguf`; yields its OpenAI base URL (ending in /v1)."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf)]
    command += ["--n_ctx", str(n_ctx), "--n_threads", str(threads)]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    if alias:
        command += ["--model_alias", alias]
    if api_key:
        command += ["--api_key", api_key]
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    base_url = f"http://127.0.0.1:{port}/v1"
    # Output goes to a file: a pipe nobody reads would fill up and block the server.
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        try:
            try:
                _wait(
                    lambda: _answers(f"{base_url}/models", headers),
                    start_timeout,
                    f"llama_cpp.server did not answer at {base_url}",
                    lambda: process.poll() is None,
                )
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}; its log ends:\n{log.read_text()[-2000:]}") from None
            yield base_url
        finally:
            _stop(process)


def scripted_openai_app(reply: str, *, model: str = "scripted", word_s: float = 0.0) -> FastAPI:
    """An OpenAI-compatible server whose model streams `reply` word by word, `word_s` apart:
    GET /v1/models and POST /v1/chat/completions (streamed or not), for a model that costs
    no CPU. `app.state.requests` counts the completions asked for."""
    app = FastAPI()
    app.state.requests = 0
    words = reply.split(" ")

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return {"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 0,
                "model": model, "choices": [choice]}  # fmt: skip

    async def events() -> AsyncIterator[str]:
        yield f"data: {json.dumps(chunk({'role': 'assistant', 'content': ''}))}\n\n"
        for n, word in enumerate(words):
            await asyncio.sleep(word_s)
            yield f"data: {json.dumps(chunk({'content': word if n == 0 else ' ' + word}))}\n\n"
        yield f"data: {json.dumps(chunk({}, 'stop'))}\n\ndata: [DONE]\n\n"

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        entry = {"id": model, "object": "model", "created": 0, "owned_by": "tests"}
        return {"object": "list", "data": [entry]}

    @app.post("/v1/chat/completions")
    async def completions(body: dict[str, Any]) -> Any:
        app.state.requests += 1
        if body.get("stream"):
            return StreamingResponse(events(), media_type="text/event-stream")
        await asyncio.sleep(word_s * len(words))
        message = {"role": "assistant", "content": reply}
        choice = {"index": 0, "message": message, "finish_reason": "stop"}
        return {"id": "chatcmpl-scripted", "object": "chat.completion", "created": 0,
                "model": model, "choices": [choice]}  # fmt: skip

    return app


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate, and kill if it has not gone within ten seconds."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def _answers(url: str, headers: dict[str, str]) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _wait(
    ready: Callable[[], bool], timeout: float, message: str, alive: Callable[[], bool]
) -> None:
    """Poll `ready()` until true; fail with `message` on timeout or once `alive()` is false."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive():
            raise RuntimeError(f"{message}: it exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{message} within {timeout:g} s")
        time.sleep(0.1)
