"""Two processes opening a new data folder at the same moment, beside busy loops: how many fail?

Run: .venv/bin/python bench/first_open.py [--rounds 300] [--ingests 0] [--busy 2]

Prints, for each kind of round, how many rounds ran and how many ended with an error (and the
first error seen):
1. `--rounds` times, two waiting processes are told at once to open a fresh data folder's
   databases (the documents' and the conversations', as the service does on first use): the
   moment of opening itself, without the seconds of imports that spread real commands apart;
2. `--ingests` times, two real `archivist ingest` commands started together on a fresh data
   folder, two notes each (the embedding model is exported once, before the rounds).
Meanwhile `--busy` processes spin, so that the openers are preempted mid-way as under load (in
the ingest rounds at the conversion workers' lower priority, which would otherwise get a tenth
of a core each and make a round take 70 s instead of 4).
"""
# ruff: noqa: E402  (the environment is prepared before numpy loads)

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import argparse
import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator

import api  # noqa: F401  (prepares the environment before numpy loads)
from api.service import Archivist, Settings

ARCHIVIST = str(Path(sys.executable).parent / "archivist")


def serve_openings() -> None:
    """The worker: for each data folder read from stdin, open its databases; print the outcome."""
    for line in sys.stdin:
        settings = Settings(data=Path(line.strip()), llm="none", workers=1)
        try:
            with Archivist(settings) as service:
                service.store.chunk_count()
                service.sessions.history("s")
            print("ok", flush=True)
        except Exception as error:
            print(f"{type(error).__name__}: {error}".replace("\n", " "), flush=True)


def opening_rounds(rounds: int, scratch: Path) -> tuple[int, list[str]]:
    """Rounds of two processes opening one new data folder at once: (rounds, errors)."""
    command = [sys.executable, __file__, "--worker"]
    workers = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errors = []
    for round_ in range(rounds):
        data = scratch / f"open-{round_}"
        for worker in workers:  # both wake at once from reading stdin
            assert worker.stdin is not None
            worker.stdin.write(f"{data}\n")
            worker.stdin.flush()
        for worker in workers:
            assert worker.stdout is not None
            outcome = worker.stdout.readline().strip()
            if outcome != "ok":
                errors.append(outcome)
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.close()
        worker.wait()
    return rounds, errors


def ingest_rounds(rounds: int, scratch: Path) -> tuple[int, list[str]]:
    """Rounds of two `archivist ingest` commands on one new data folder: (rounds, errors)."""
    notes = []
    for topic in ("garden", "bikes"):
        folder = scratch / topic
        folder.mkdir()
        for n in range(2):
            (folder / f"{topic}-{n}.md").write_text(f"# {topic} {n}\n\n{topic}{n} words.\n")
        notes.append(folder)
    env = {**os.environ, "ARCHIVIST_WORKERS": "1", "ARCHIVIST_LLM": "none",
           "ARCHIVIST_MODEL_DIR": str(scratch / "models")}  # fmt: skip
    warm = {**env, "ARCHIVIST_DATA": str(scratch / "warm")}
    subprocess.run([ARCHIVIST, "ingest", str(notes[0])], env=warm, capture_output=True, check=True)
    errors = []
    for round_ in range(rounds):
        run_env = {**env, "ARCHIVIST_DATA": str(scratch / f"ingest-{round_}")}
        pair = [
            subprocess.Popen(
                [ARCHIVIST, "ingest", str(folder)],
                env=run_env,
                text=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )  # fmt: skip
            for folder in notes
        ]
        for process in pair:
            _, err = process.communicate(timeout=300)
            if process.returncode != 0:
                errors.append(err.strip().splitlines()[-1] if err.strip() else "no message")
    return rounds, errors


@contextlib.contextmanager
def busy_loops(count: int, nice: int) -> Iterator[None]:
    """`count` processes spinning at this niceness, for the time of the block."""
    spin = [sys.executable, "-c", f"import os; os.nice({nice})\nwhile True: pass"]
    busy = [subprocess.Popen(spin) for _ in range(count)]
    try:
        yield
    finally:
        for process in busy:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--ingests", type=int, default=0)
    parser.add_argument("--busy", type=int, default=2)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve_openings()
        return
    with tempfile.TemporaryDirectory() as scratch:
        for name, run, rounds, nice in (
            ("two processes opening a new data folder", opening_rounds, args.rounds, 0),
            ("two `archivist ingest` on a new data folder", ingest_rounds, args.ingests, 10),
        ):
            if rounds:
                with busy_loops(args.busy, nice):
                    began = time.monotonic()
                    ran, errors = run(rounds, Path(scratch))
                print(f"{name}, beside {args.busy} busy loops (nice {nice}): {ran} rounds, "
                      f"{len(errors)} failed ({time.monotonic() - began:.0f} s)")  # fmt: skip
                if errors:
                    print(f"  first error: {errors[0]}")


if __name__ == "__main__":
    main()
