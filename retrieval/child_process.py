"""Other processes: one of the project's modules run in a child process of this interpreter
(the model exports and compiles, which hold much memory and the interpreter for long, and can
be stopped), and whether a process still runs."""

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

_PROJECT = Path(__file__).resolve().parents[1]


def run_module(args: list[str], log_file: Path, stop: Callable[[], bool]) -> bool:
    """`python -m ARGS…`, its output in `log_file`: True once it succeeded, False once `stop()`
    turned true (the child is killed); RuntimeError with the output's last line if it fails."""
    path = os.pathsep.join(p for p in (str(_PROJECT), os.environ.get("PYTHONPATH")) if p)
    with log_file.open("wb") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", *args],
            stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            env={**os.environ, "PYTHONPATH": path},
        )  # fmt: skip
        while True:
            try:
                child.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                if stop():
                    child.kill()
                    child.wait()
                    return False
    if child.returncode != 0:
        lines = log_file.read_text(errors="replace").strip().splitlines()
        raise RuntimeError(lines[-1] if lines else f"{args[0]} exited with {child.returncode}")
    return True


def process_alive(pid: int) -> bool:
    """Whether the process `pid` still runs (another user's counts: it cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
