"""`archivist ask` and `archivist batch` as a user runs them, with the real embedded model."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.service import Settings
from tests.fixtures import make_pdf

ARCHIVIST = str(Path(sys.executable).parent / "archivist")
MANUAL_PAGES = [
    "Harbor Point Lighthouse. Keeper's manual. Contents: the lamp, the lens, the fog signal.",
    "Cleaning the lens. The Fresnel lens is cleaned every Tuesday with a soft cloth and "
    "distilled water, never with soap.",
    "The fog signal. The fog signal is tested on the first day of each month at noon.",
]


def environment(data: Path, models: Path, **extra: str) -> dict[str, str]:
    """The default embedded model (joined on first use into `models`), answering
    deterministically and briefly. The batch test takes the smallest model."""
    return {
        **os.environ,
        "ARCHIVIST_DATA": str(data),
        "ARCHIVIST_MODEL_DIR": str(models),
        "ARCHIVIST_WORKERS": "2",
        "ARCHIVIST_LLM": "llamacpp",
        "ARCHIVIST_LLM_CONTEXT_TOKENS": "2048",
        "ARCHIVIST_TEMPERATURE": "0",
        "ARCHIVIST_SEED": "0",
        "ARCHIVIST_ANSWER_TOKENS": "48",
        **extra,
    }


def archivist(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ARCHIVIST, *args], capture_output=True, text=True, env=env, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> dict[str, str]:
    root = tmp_path_factory.mktemp("ask")
    docs = root / "docs"
    docs.mkdir()
    make_pdf(docs / "keeper-manual.pdf", MANUAL_PAGES)
    (docs / "garden.md").write_text("# Garden\n\nTomatoes are watered every morning at seven.\n")
    env = environment(root / "data", model_dir)
    done = archivist(env, "ingest", str(docs))
    assert done.returncode == 0, done.stderr
    return env


def test_ask_json_answers_and_cites_the_file_and_page(ingested: dict[str, str]) -> None:
    done = archivist(ingested, "ask", "How often is the Fresnel lens cleaned?", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert set(answer) >= {
        "answer", "citations", "backend", "model", "session_id", "retrieval_ms",
        "first_token_ms", "generation_ms", "tokens", "tokens_per_s",
    }  # fmt: skip
    assert (answer["backend"], answer["model"]) == ("llamacpp", Settings().gguf)
    assert answer["answer"] and answer["tokens"] > 0 and answer["tokens_per_s"] > 0
    cited = {(Path(c["path"]).name, c["page"]) for c in answer["citations"]}
    assert ("keeper-manual.pdf", 2) in cited, answer


def test_ask_streams_the_answer_then_lists_the_sources(ingested: dict[str, str]) -> None:
    done = archivist(ingested, "ask", "How often is the Fresnel lens cleaned?")
    assert done.returncode == 0, done.stderr
    answer, _, sources = done.stdout.partition("\nSources:\n")
    assert answer.strip()
    assert "keeper-manual.pdf, page 2" in sources
    assert f"llamacpp {Settings().gguf}" in done.stderr and "session " in done.stderr


def test_ask_without_a_model_quotes_the_passages_and_says_why(ingested: dict[str, str]) -> None:
    env = {**ingested, "ARCHIVIST_LLM": "none"}
    done = archivist(env, "ask", "How often is the Fresnel lens cleaned?", "--json")
    answer = json.loads(done.stdout)
    assert (answer["backend"], answer["extractive"]) == ("none", True)
    assert answer["note"].startswith("No language model is available")
    assert "“" in answer["answer"] and "[1]" in answer["answer"]
    assert answer["citations"][0]["page"] == 2
    plain = archivist(env, "ask", "How often is the Fresnel lens cleaned?")
    assert plain.stdout.count("“") == answer["answer"].count("“")  # printed once
    assert "No language model is available" in plain.stderr


def test_a_missing_model_file_is_a_clear_error(ingested: dict[str, str], tmp_path: Path) -> None:
    env = {**ingested, "ARCHIVIST_GGUF": str(tmp_path / "nope.gguf")}
    done = archivist(env, "ask", "How often is the lens cleaned?")
    assert done.returncode == 1
    assert "nope.gguf" in done.stderr and "Traceback" not in done.stderr


def test_batch_killed_halfway_and_resumed_answers_every_id_once(
    ingested: dict[str, str], tmp_path: Path
) -> None:
    questions = tmp_path / "questions.jsonl"
    topics = ["the lens cleaned", "the fog signal tested", "the tomatoes watered"]
    with questions.open("w") as handle:
        for n in range(24):
            handle.write(json.dumps({"id": f"q{n}", "question": f"When is {topics[n % 3]}?"}))
            handle.write("\n")
    out = tmp_path / "answers.jsonl"
    env = {**ingested, "ARCHIVIST_GGUF": "smollm2-135m", "ARCHIVIST_ANSWER_TOKENS": "12",
           "ARCHIVIST_ASK_SOURCES": "2"}  # fmt: skip
    command = [ARCHIVIST, "batch", str(questions), "-o", str(out), "--concurrency", "2"]
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _lines(out) < 8 and first.poll() is None:
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert 0 < _lines(out) < 24
    resumed = subprocess.run(command + ["--json"], capture_output=True, text=True, env=env,
                             timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["questions"] == 24 and summary["skipped"] >= 8
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert sorted(ids) == sorted(f"q{n}" for n in range(24))


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0
